"""The intent log: exactly-once effects under at-least-once delivery.

Record the intent durably under a deterministic id *before* the
irreversible action, acknowledge the input only after that, and on every
restart replay what is not terminal. Recording the same id twice writes
nothing and returns the first record, so a redelivered input cannot create a
second intent. Which intents may already have had their effect (the dead
zone between "send" and "the broker said so") is recorded too, so a
replayer looks them up before it ever sends again.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import re
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import msgspec

from garrison._errors import GarrisonError, InvalidConfig, JournalError
from garrison.persistence._codec import EventCodec
from garrison.persistence._journal import Journal, check_stream

P = TypeVar("P")

_VENUE_SAFE = re.compile(r"^[A-Za-z0-9_-]*$")


def deterministic_id(*parts: str | int, length: int = 32, prefix: str = "") -> str:
    """A stable id derived from the input's identity, fit for venue limits.

    ``deterministic_id("momentum-1", 42)`` is the same string in every process
    and every run: ``prefix`` followed by base64url characters
    (``[A-Za-z0-9_-]``) of a BLAKE2b digest of the parts, ``length``
    characters in all (at most 36, the common client-order-id limit).

    Collision odds: with ``b = 6 * (length - len(prefix))`` bits of digest and
    ``n`` ids, p ≈ n² / 2^(b+1). At the default 32 characters (192 bits),
    a billion ids collide with probability about 1e-40; even 16 characters
    (96 bits) keep a billion ids below 1e-11.
    """
    if isinstance(length, bool) or not isinstance(length, int) or not 8 <= length <= 36:
        raise InvalidConfig("length", length, "must be an int from 8 to 36 (venue limits)")
    if not isinstance(prefix, str) or not _VENUE_SAFE.match(prefix) or len(prefix) >= length - 7:
        raise InvalidConfig(
            "prefix", prefix, "must use only [A-Za-z0-9_-] and leave at least 8 characters of digest"
        )
    for index, part in enumerate(parts):
        if isinstance(part, bool) or not isinstance(part, str | int):
            raise InvalidConfig(f"parts[{index}]", part, "id parts are str or int (stable across runs)")
    if not parts:
        raise InvalidConfig("parts", (), "derive the id from at least one part of the input's identity")
    digest = hashlib.blake2b(msgspec.msgpack.encode(parts), digest_size=27).digest()
    text = base64.urlsafe_b64encode(digest).decode("ascii")
    return prefix + text[: length - len(prefix)]


def client_order_id(strategy_id: str, signal_seq: int, *, length: int = 32, prefix: str = "") -> str:
    """The client order id for a strategy's signal: ``deterministic_id(strategy_id, signal_seq)``."""
    return deterministic_id(strategy_id, signal_seq, length=length, prefix=prefix)


class IntentState(enum.Enum):
    """Where an intent stands. REJECTED and DONE are terminal."""

    RECORDED = "recorded"
    """Durable; the effect has certainly not been attempted."""
    SENDING = "sending"
    """The effect is being attempted: it may have happened (the dead zone)."""
    UNKNOWN = "unknown"
    """An attempt ended ambiguously (timeout, connection reset): it may have happened."""
    ACKED = "acked"
    """The other side confirmed the effect (an order accepted and live)."""
    REJECTED = "rejected"
    """The other side reliably refused it. Never use this for an ambiguous attempt."""
    DONE = "done"
    """Finished (filled, cancelled, closed)."""


TERMINAL = frozenset({IntentState.REJECTED, IntentState.DONE})
MAY_HAVE_HAPPENED = frozenset({IntentState.SENDING, IntentState.UNKNOWN, IntentState.ACKED})

_TRANSITIONS: dict[IntentState, frozenset[IntentState]] = {
    IntentState.RECORDED: frozenset({IntentState.SENDING, IntentState.REJECTED, IntentState.DONE}),
    IntentState.SENDING: frozenset(
        {IntentState.SENDING, IntentState.UNKNOWN, IntentState.ACKED, IntentState.REJECTED, IntentState.DONE}
    ),
    IntentState.UNKNOWN: frozenset(
        {IntentState.SENDING, IntentState.UNKNOWN, IntentState.ACKED, IntentState.REJECTED, IntentState.DONE}
    ),
    IntentState.ACKED: frozenset({IntentState.ACKED, IntentState.DONE}),
    IntentState.REJECTED: frozenset(),
    IntentState.DONE: frozenset(),
}


class IntentTransitionError(GarrisonError, ValueError):
    """A state change the intent lifecycle does not allow (e.g. out of a terminal state)."""

    def __init__(self, intent_id: str, current: IntentState, target: IntentState) -> None:
        self.intent_id = intent_id
        super().__init__(
            f"intent {intent_id!r}: cannot move from {current.name} to {target.name}; "
            f"allowed: {sorted(state.name for state in _TRANSITIONS[current]) or 'none (terminal)'}"
        )


class IntentLogBroken(JournalError):
    """A write of the intent log could not be confirmed; reopen the log (restart its owner)."""

    def __init__(self, stream: str, cause: BaseException) -> None:
        self.stream = stream
        self.cause = cause
        super().__init__(
            f"intent log {stream!r} could not confirm a write ({type(cause).__name__}: {cause}); "
            "reopen it (restart its owner) to read back what is durable"
        )


class IntentRecorded(msgspec.Struct, frozen=True, tag="garrison.intent.recorded"):
    id: str
    payload: bytes


class IntentMoved(msgspec.Struct, frozen=True, tag="garrison.intent.moved"):
    id: str
    state: IntentState
    detail: str = ""


_CODEC = EventCodec([IntentRecorded, IntentMoved])


class Intent(msgspec.Struct, Generic[P], frozen=True):
    """One recorded intent as the log knows it durably."""

    id: str
    payload: P
    state: IntentState
    detail: str = ""
    attempts: int = 0
    """How many times it entered SENDING."""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def may_have_happened(self) -> bool:
        """True in the dead zone: look the effect up before attempting it again."""
        return self.state in MAY_HAVE_HAPPENED


class IntentLog(Generic[P]):
    """A durable, idempotent log of intents on one journal stream.

    One live writer per stream (like an event-sourced actor). Concurrent
    calls are folded into one journal append. If the journal cannot confirm
    a write, every later call raises IntentLogBroken until the log is
    opened again (restart its owner): memory never runs ahead of the journal.
    """

    def __init__(self, journal: Journal, stream: str, payload_type: type[P]) -> None:
        self.journal = journal
        self.stream = check_stream(stream)
        self.payload_type = payload_type
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[P] = msgspec.msgpack.Decoder(payload_type)
        self._intents: dict[str, Intent[P]] = {}
        self._seq = 0
        self._opened = False
        self._broken: IntentLogBroken | None = None
        self._queue: list[tuple[list[Any], asyncio.Future[None]]] = []
        self._flushing = False
        self._recording: dict[str, asyncio.Future[Intent[P]]] = {}
        self._projected: dict[str, IntentState] = {}

    async def open(self) -> IntentLog[P]:
        """Read the stream back (idempotent). Awaits; raises EventDecodeError on a bad event."""
        intents: dict[str, Intent[P]] = {}
        seq = 0
        async for rows in self.journal.read_batches(self.stream, 0):
            for event in _CODEC.decode_rows(rows, self.stream):
                _apply(intents, event, self._decode_payload)
            seq = rows[-1][0]
        self._intents = intents
        self._projected = {intent_id: intent.state for intent_id, intent in intents.items()}
        self._seq = seq
        self._broken = None
        self._opened = True
        return self

    def _decode_payload(self, payload: bytes) -> P:
        return self._decoder.decode(payload)

    # -- queries (what is durable) ------------------------------------------------

    def get(self, intent_id: str) -> Intent[P] | None:
        return self._intents.get(intent_id)

    def __len__(self) -> int:
        return len(self._intents)

    def __contains__(self, intent_id: object) -> bool:
        return intent_id in self._intents

    def pending(self) -> list[Intent[P]]:
        """Every intent not terminal, in the order recorded. ``may_have_happened`` marks the dead zone."""
        return [intent for intent in self._intents.values() if not intent.terminal]

    # -- writes -----------------------------------------------------------------------

    async def record(self, intent_id: str, payload: P) -> Intent[P]:
        """Record an intent durably; a second record of the same id writes nothing and
        returns the first. Awaits the durable write (shared with concurrent calls)."""
        self._check_usable()
        if not isinstance(intent_id, str) or not intent_id:
            raise InvalidConfig("intent_id", intent_id, "an intent id is a non-empty string")
        existing = self._intents.get(intent_id)
        if existing is not None:
            return existing
        in_flight = self._recording.get(intent_id)
        if in_flight is not None:
            return await asyncio.shield(in_flight)
        future: asyncio.Future[Intent[P]] = asyncio.get_running_loop().create_future()
        self._recording[intent_id] = future
        self._projected[intent_id] = IntentState.RECORDED
        try:
            await self._write([IntentRecorded(intent_id, self._encoder.encode(payload))])
        except BaseException as error:
            self._recording.pop(intent_id, None)
            if self._projected.get(intent_id) is IntentState.RECORDED and intent_id not in self._intents:
                del self._projected[intent_id]
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: duplicates waiting on it re-raise it
            raise
        self._recording.pop(intent_id, None)
        intent = self._intents[intent_id]
        if not future.done():
            future.set_result(intent)
        return intent

    async def move(self, intent_id: str, state: IntentState, detail: str = "") -> Intent[P]:
        """Move an intent to ``state`` durably. Raises IntentTransitionError for a move
        the lifecycle forbids (nothing written), KeyError for an unknown id."""
        self._check_usable()
        if not isinstance(state, IntentState):
            raise InvalidConfig("state", state, "must be an IntentState member")
        if intent_id in self._recording:
            await asyncio.shield(self._recording[intent_id])
        current = self._projected.get(intent_id)
        if current is None:
            raise KeyError(f"intent {intent_id!r} was never recorded in {self.stream!r}")
        if state not in _TRANSITIONS[current]:
            raise IntentTransitionError(intent_id, current, state)
        self._projected[intent_id] = state
        await self._write([IntentMoved(intent_id, state, detail)])
        return self._intents[intent_id]

    def _check_usable(self) -> None:
        if not self._opened:
            raise InvalidConfig("intent log", self.stream, "open it first: await log.open()")
        if self._broken is not None:
            raise self._broken

    async def _write(self, events: list[Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((events, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush(), name=f"garrison:intent-log:{self.stream}")
        await future

    async def _flush(self) -> None:
        try:
            while self._queue and self._broken is None:
                batch, self._queue = self._queue, []
                events = [event for group, _ in batch for event in group]
                payloads = [_CODEC.encode(event) for event in events]
                try:
                    self._seq = await self.journal.append(self.stream, payloads, self._seq)
                except Exception as error:
                    self._broken = IntentLogBroken(self.stream, error)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(self._broken)
                    break
                for event in events:
                    _apply(self._intents, event, self._decode_payload)
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
            for _, future in self._queue:
                if not future.done() and self._broken is not None:
                    future.set_exception(self._broken)
            if self._broken is not None:
                self._queue.clear()
        finally:
            self._flushing = False


def _apply(intents: dict[str, Intent[Any]], event: Any, decode: Any) -> None:
    if isinstance(event, IntentRecorded):
        if event.id not in intents:
            intents[event.id] = Intent(event.id, decode(event.payload), IntentState.RECORDED)
        return
    current = intents[event.id]
    attempts = current.attempts + (1 if event.state is IntentState.SENDING else 0)
    intents[event.id] = msgspec.structs.replace(
        current, state=event.state, detail=event.detail, attempts=attempts
    )


def payload_types() -> Sequence[type[msgspec.Struct]]:
    """The event types the intent log writes (for tools that decode its stream)."""
    return _CODEC.types
