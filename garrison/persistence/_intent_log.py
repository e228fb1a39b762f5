"""The intent log: exactly-once effects under at-least-once delivery.

Record the intent durably under a deterministic id *before* the
irreversible action, acknowledge the input only after that, and on every
restart replay what is not terminal. Recording the same id twice writes
nothing and returns the first record, so a redelivered input cannot create a
second intent. Which intents may already have had their effect (the dead
zone between "send" and "the broker said so") is recorded too, so a
replayer looks them up before it ever sends again.

This module is the log's pipeline: queued writes folded into bounded journal
appends, conflicts with other writers, a log broken by an unconfirmed write.
What an intent is, its states and events, and how an event changes an intent
are the model's (``_intent_model.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import msgspec

from garrison._errors import EventDecodeError, InvalidConfig, JournalError, SequenceConflict
from garrison.persistence._codec import EventCodec
from garrison.persistence._intent_model import (
    TRANSITIONS,
    Intent,
    IntentEvent,
    IntentMoved,
    IntentRecorded,
    IntentState,
    IntentTransitionError,
    apply_intent_events,
)
from garrison.persistence._journal import Journal, check_stream
from garrison.persistence._replay import replay_events
from garrison.persistence._roundtrip import invalid_payload

P = TypeVar("P")

MAX_EVENTS_PER_APPEND = 1024
"""Events folded into one journal append at most (a batch is never split, so one larger batch
goes alone). One append is in flight at a time: this bounds the log's rate per commit."""

EVENTS_PER_STEP = 256
"""Events encoded, or applied once durable, between two yields to the loop. All of an append's
in one go held the loop for 2-2.5 ms at capacity (cold caches), one loop-lag spike's worth."""

MAX_CONFLICT_RETRIES = 100
"""How many times in a row a write re-reads another writer's events before giving up."""


class IntentLogBroken(JournalError):
    """A write of the intent log could not be confirmed; reopen the log (restart its owner)."""

    def __init__(self, stream: str, cause: BaseException) -> None:
        self.stream = stream
        self.cause = cause
        super().__init__(
            f"intent log {stream!r} could not confirm a write ({type(cause).__name__}: {cause}); "
            "reopen it (restart its owner) to read back what is durable"
        )


_CODEC = EventCodec([IntentRecorded, IntentMoved])
_encode_event = msgspec.msgpack.Encoder().encode
"""Only IntentRecorded and IntentMoved reach it, so the codec's type check is skipped."""

_Group = tuple[list[Any], "asyncio.Future[None]"]
"""Events written together (one call's worth) and the future that resolves once they are durable."""


class IntentLog(Generic[P]):
    """A durable, idempotent log of intents on one journal stream.

    One live writer per stream (like an event-sourced actor). Concurrent
    calls are folded into one journal append, and writes keep the order they
    were queued in. If the journal cannot confirm a write, every later call
    (writes and ``get``/``intents``/``pending``) raises IntentLogBroken until
    ``await log.open()`` reads back what is durable (or its owner restarts):
    memory never runs ahead of the journal, and no decision is made from a
    view that may be behind it.

    For many intents at a time, ``record_many_nowait`` and ``move_many_nowait``
    queue a whole batch under one future (one journal append), which costs
    a fraction of one call per intent.
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
        self._queue: list[_Group] = []
        self._flusher: asyncio.Task[None] | None = None
        self._recording: dict[str, asyncio.Future[None]] = {}
        """Ids queued for recording and not yet durable -> their group's future."""
        self._decoded: dict[str, P] = {}
        """Payloads of queued records as they decode from their bytes (what a replay would read)."""
        self._projected: dict[str, IntentState] = {}

    async def open(self) -> IntentLog[P]:
        """Read the stream back (idempotent). Awaits; raises EventDecodeError on an event
        (or a payload of another type) that does not decode, naming the stream and seq.

        Call it before the first write, or after IntentLogBroken; while writes
        are in flight it raises InvalidConfig (the read could miss them)."""
        if self._flusher is not None and not self._flusher.done():
            raise InvalidConfig("intent log", self.stream, "writes are in flight: open() it before writing")
        intents: dict[str, Intent[P]] = {}
        seq = 0
        async with contextlib.aclosing(replay_events(self.journal, self.stream, _CODEC)) as runs:
            async for first_seq, events in runs:
                self._replay(intents, first_seq, events)
                seq = first_seq + len(events) - 1
        self._intents = intents
        self._projected = {intent_id: intent.state for intent_id, intent in intents.items()}
        self._recording = {}
        self._decoded = {}
        self._seq = seq
        self._broken = None
        self._opened = True
        return self

    def _replay(self, intents: dict[str, Intent[P]], first_seq: int, events: list[IntentEvent]) -> None:
        """Apply a run of stored events (``events[i]`` has seq ``first_seq + i``). Raises
        EventDecodeError naming the seq of an event that does not apply."""
        decode = self._decoder.decode
        try:
            apply_intent_events(intents, events, lambda event: decode(event.payload))
        except (msgspec.DecodeError, KeyError) as error:
            offset, cause = self._unapplied(intents, events, error)
            raise EventDecodeError(self.stream, first_seq + offset, cause) from error

    def _unapplied(
        self, intents: dict[str, Intent[P]], events: list[IntentEvent], error: Exception
    ) -> tuple[int, Exception]:
        """The offset of the event ``apply_intent_events`` stopped at with ``error``, and the
        cause to report. Only after a failure: it looks through the run again."""
        if isinstance(error, KeyError):
            # Every event before the failing move left its id known; that move's id is not.
            for offset, event in enumerate(events):
                if event.id not in intents and type(event) is IntentMoved:
                    return offset, LookupError(
                        f"intent {event.id!r} moved to {event.state.name} before it was recorded"
                    )
        else:
            # Every record before the failing one decoded (each record's payload is decoded).
            decode = self._decoder.decode
            for offset, event in enumerate(events):
                if type(event) is IntentRecorded:
                    try:
                        decode(event.payload)
                    except msgspec.DecodeError:
                        return offset, error
        return 0, error

    def _encode_payload(self, payload: P) -> tuple[bytes, P]:
        # A payload that would not decode as payload_type must never reach the
        # journal: it would make the stream unreadable on the next open.
        try:
            encoded = self._encoder.encode(payload)
            decoded = self._decoder.decode(encoded)
        except (TypeError, ValueError, OverflowError, msgspec.MsgspecError) as error:
            name = f"intent of {self.stream!r}"
            raise invalid_payload(payload, self.payload_type, name, error) from error
        return encoded, decoded

    # -- queries (what is durable) ------------------------------------------------
    # get, intents and pending raise IntentLogBroken on a broken log: after an
    # unconfirmed write, memory may be behind the journal, and a replayer must
    # not decide from it.

    def get(self, intent_id: str) -> Intent[P] | None:
        """The intent with this id as durably known, or None."""
        self._check_usable()
        return self._intents.get(intent_id)

    def __len__(self) -> int:
        return len(self._intents)

    def __contains__(self, intent_id: object) -> bool:
        return intent_id in self._intents

    def intents(self) -> list[Intent[P]]:
        """Every intent, terminal or not, in the order recorded."""
        self._check_usable()
        return list(self._intents.values())

    def pending(self) -> list[Intent[P]]:
        """Every intent not terminal, in the order recorded. ``may_have_happened`` marks the dead zone."""
        self._check_usable()
        return [intent for intent in self._intents.values() if not intent.terminal]

    def can_move(self, intent_id: str, state: IntentState) -> bool:
        """Whether ``move_nowait(intent_id, state)`` would be accepted now: the id was recorded
        (or its record is queued) and the lifecycle allows the move from the state its
        queued writes leave it in. Never raises for a broken log (the move would)."""
        current = self._projected.get(intent_id)
        return current is not None and state in TRANSITIONS[current]

    # -- writes -----------------------------------------------------------------------

    async def record(self, intent_id: str, payload: P) -> Intent[P]:
        """Record an intent durably; a second record of the same id writes nothing and
        returns the first (also while the first is still being written).

        Awaits the durable write (shared with concurrent calls). Raises
        InvalidConfig for an empty id or a payload that is not a
        ``payload_type``, IntentLogBroken if the write cannot be confirmed.
        If the caller is cancelled, the record still completes (or breaks
        the log): cancelling never leaves it half-known.
        """
        return await asyncio.shield(self.record_nowait(intent_id, payload))

    def record_nowait(self, intent_id: str, payload: P) -> asyncio.Future[Intent[P]]:
        """Queue a record without awaiting it; the future resolves once it is durable.

        For an actor that records many intents without serializing on each
        write (resolve a ``ctx.defer_reply()`` from the future's callback).
        Same idempotence and errors as ``record``; do not cancel the future.
        """
        self._check_usable()
        _check_id(intent_id)
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Intent[P]] = loop.create_future()
        existing = self._intents.get(intent_id)
        if existing is not None:
            result.set_result(existing)
            return result
        written = self._recording.get(intent_id)
        if written is None:
            encoded, decoded = self._encode_payload(payload)
            written = self._queue_records([IntentRecorded(intent_id, encoded)], {intent_id: decoded})
        written.add_done_callback(functools.partial(self._resolve_record, intent_id, result))
        return result

    def record_many_nowait(self, records: Iterable[tuple[str, P]]) -> asyncio.Future[list[Intent[P]]]:
        """Queue the records of many intents under one future (one journal append); it
        resolves, once every one is durable, to their intents in the order given.

        Each ``(intent_id, payload)`` behaves as ``record_nowait`` would: an id
        already recorded (or queued by an earlier call) writes nothing and
        resolves to the first intent; an id given twice in the batch is
        recorded once, with its first payload. Every record is checked before
        anything is queued: an empty id or a payload that is not a
        ``payload_type`` raises InvalidConfig and queues nothing. A batch
        that is all known ids still resolves only after the writes queued
        before it. Raises IntentLogBroken (now, or in the future) if a write
        cannot be confirmed. Do not cancel the future.
        """
        self._check_usable()
        ids: list[str] = []
        events: list[Any] = []
        decoded: dict[str, P] = {}
        earlier: asyncio.Future[None] | None = None
        for intent_id, payload in records:
            _check_id(intent_id)
            ids.append(intent_id)
            if intent_id in self._intents or intent_id in decoded:
                continue
            in_flight = self._recording.get(intent_id)
            if in_flight is not None:
                earlier = in_flight
                continue
            encoded, decoded[intent_id] = self._encode_payload(payload)
            events.append(IntentRecorded(intent_id, encoded))
        loop = asyncio.get_running_loop()
        result: asyncio.Future[list[Intent[P]]] = loop.create_future()
        if events:
            written = self._queue_records(events, decoded)
        elif earlier is not None:
            # Nothing of ours to write, but some records are still in flight: an empty
            # group resolves after every write queued before it.
            written = self._enqueue([])
        else:
            result.set_result([self._intents[intent_id] for intent_id in ids])
            return result
        written.add_done_callback(functools.partial(self._resolve_records, ids, result))
        return result

    def _queue_records(self, events: list[Any], decoded: dict[str, P]) -> asyncio.Future[None]:
        written = self._enqueue(events)
        for event in events:
            self._recording[event.id] = written
            self._projected[event.id] = IntentState.RECORDED
        self._decoded.update(decoded)
        return written

    def _resolve_record(
        self, intent_id: str, result: asyncio.Future[Intent[P]], written: asyncio.Future[None]
    ) -> None:
        if result.done():
            return
        error = _error_of(written)
        if error is None:
            result.set_result(self._intents[intent_id])
            return
        result.set_exception(error)
        result.exception()  # retrieved: only callers still waiting re-raise it

    def _resolve_records(
        self, ids: list[str], result: asyncio.Future[list[Intent[P]]], written: asyncio.Future[None]
    ) -> None:
        if result.done():
            return
        error = _error_of(written)
        if error is None:
            intents = self._intents
            result.set_result([intents[intent_id] for intent_id in ids])
            return
        result.set_exception(error)
        result.exception()

    async def move(self, intent_id: str, state: IntentState, detail: str = "") -> Intent[P]:
        """Move an intent to ``state`` durably. Raises IntentTransitionError for a move
        the lifecycle forbids (nothing written), KeyError for an unknown id,
        IntentLogBroken if the write cannot be confirmed. Awaits the write;
        if the caller is cancelled, the move may still be written."""
        self._check_usable()
        _check_move(state, detail)
        recording = self._recording.get(intent_id)
        if recording is not None:
            await asyncio.shield(recording)
        await self.move_nowait(intent_id, state, detail)
        return self._intents[intent_id]

    def move_nowait(self, intent_id: str, state: IntentState, detail: str = "") -> asyncio.Future[None]:
        """Queue a move without awaiting it (after a record queued earlier is fine: writes
        keep their order); the future resolves once it is durable. Raises at once
        for an unknown id or a forbidden move (nothing queued)."""
        self._check_usable()
        _check_move(state, detail)
        current = self._projected.get(intent_id)
        if current is None:
            raise KeyError(f"intent {intent_id!r} was never recorded in {self.stream!r}")
        if state not in TRANSITIONS[current]:
            raise IntentTransitionError(intent_id, current, state)
        self._projected[intent_id] = state
        return self._enqueue([IntentMoved(intent_id, state, detail)])

    def move_many_nowait(
        self, moves: Iterable[tuple[str, IntentState] | tuple[str, IntentState, str]]
    ) -> asyncio.Future[None]:
        """Queue many moves, ``(intent_id, state)`` or ``(intent_id, state, detail)``, under
        one future; it resolves once all of them are durable.

        The moves are checked in order, each from the state the moves before
        it leave (``[(i, SENDING), (i, ACKED)]`` is fine), and all or none
        are queued: an unknown id raises KeyError, a forbidden move
        IntentTransitionError, and nothing is queued (``can_move`` tells
        beforehand). They are written in order, in one journal append, so
        either all of them are durable or none is. Same as that many
        ``move_nowait`` calls, for the cost of about one. If another writer
        of the stream made one of them forbidden before it was written (see
        ``refresh``), the whole batch fails with IntentTransitionError and
        nothing of it is written. Keep a batch to a few thousand moves: it
        is encoded on the loop in one go. Do not cancel the future.
        """
        self._check_usable()
        projected = self._projected
        events: list[Any] = []
        before: dict[str, IntentState] = {}
        try:
            for move in moves:
                intent_id, state = move[0], move[1]
                detail = move[2] if len(move) > 2 else ""
                _check_move(state, detail)
                current = projected.get(intent_id)
                if current is None:
                    raise KeyError(f"intent {intent_id!r} was never recorded in {self.stream!r}")
                if state not in TRANSITIONS[current]:
                    raise IntentTransitionError(intent_id, current, state)
                before.setdefault(intent_id, current)
                projected[intent_id] = state
                events.append(IntentMoved(intent_id, state, detail))
        except BaseException:
            projected.update(before)
            raise
        if not events:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future
        return self._enqueue(events)

    def _check_usable(self) -> None:
        if not self._opened:
            raise InvalidConfig("intent log", self.stream, "open it first: await log.open()")
        if self._broken is not None:
            raise self._broken

    def _enqueue(self, events: list[Any]) -> asyncio.Future[None]:
        """Queue events for the writer; the future resolves once they are durable and applied."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append((events, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush(), name=f"garrison:intent-log:{self.stream}")
        return future

    def _take_batch(self) -> list[_Group]:
        """The oldest queued groups, up to MAX_EVENTS_PER_APPEND events (at least one group)."""
        queue = self._queue
        taken = 0
        count = 0
        for events, _ in queue:
            if taken and count + len(events) > MAX_EVENTS_PER_APPEND:
                break
            count += len(events)
            taken += 1
        batch, self._queue = queue[:taken], queue[taken:]
        return batch

    async def _flush(self) -> None:
        while self._queue and self._broken is None:
            # Bounded appends: a burst of queued writes never holds the loop for long.
            batch = self._take_batch()
            for _ in range(MAX_CONFLICT_RETRIES):
                events = [event for group, _ in batch for event in group]
                if not events:
                    break
                payloads: list[bytes] = []
                for start in range(0, len(events), EVENTS_PER_STEP):
                    if start:
                        await asyncio.sleep(0)
                    payloads.extend(_encode_event(event) for event in events[start : start + EVENTS_PER_STEP])
                try:
                    self._seq = await self.journal.append(self.stream, payloads, self._seq)
                except SequenceConflict:
                    # Another writer (another process) appended: read its events, then
                    # re-check ours against them; nothing of ours was written.
                    try:
                        await self._catch_up()
                    except Exception as error:
                        self._break(batch, error)
                        return
                    batch = self._revalidate(batch)
                except Exception as error:
                    self._break(batch, error)
                    return
                else:
                    for start in range(0, len(events), EVENTS_PER_STEP):
                        if start:
                            # Between two slices, an id of this append is either applied or still
                            # recording (never neither), and its group's future is not resolved yet.
                            await asyncio.sleep(0)
                        self._apply_written(events[start : start + EVENTS_PER_STEP])
                    break
            else:
                self._break(batch, RuntimeError(f"{MAX_CONFLICT_RETRIES} conflicting writers in a row"))
                return
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _apply_written(self, events: list[IntentEvent]) -> None:
        """Our own events, durable now: applied without decoding the payloads again."""
        apply_intent_events(self._intents, events, self._take_decoded)

    def _take_decoded(self, event: IntentRecorded) -> P:
        """A record of ours is durable: it is no longer recording, and its payload (decoded
        when it was queued, as a replay would decode it) goes to its intent."""
        self._recording.pop(event.id, None)
        return self._decoded.pop(event.id)

    def _break(self, batch: list[_Group], error: BaseException) -> None:
        self._broken = IntentLogBroken(self.stream, error)
        batch.extend(self._queue)
        self._queue = []
        self._recording = {}
        self._decoded = {}
        for _, future in batch:
            if not future.done():
                future.set_exception(self._broken)
                # Retrieved: a caller that queued without awaiting (a move it did not need to
                # wait for) learns it from its next call, which raises the same error.
                future.exception()

    async def refresh(self) -> None:
        """Read what other writers appended since this log last wrote or read (several
        processes sharing one stream); queued writes of this log are re-checked when they
        conflict anyway, this only makes ``get``/``pending`` and move checks current."""
        self._check_usable()
        await self._catch_up()
        pending = {intent_id for intent_id in self._projected if intent_id in self._recording}
        self._projected = {intent_id: intent.state for intent_id, intent in self._intents.items()}
        for intent_id in pending:
            self._projected.setdefault(intent_id, IntentState.RECORDED)

    async def _catch_up(self) -> None:
        async with contextlib.aclosing(replay_events(self.journal, self.stream, _CODEC, self._seq)) as runs:
            async for first_seq, events in runs:
                self._replay(self._intents, first_seq, events)
                self._seq = first_seq + len(events) - 1

    def _revalidate(self, batch: list[_Group]) -> list[_Group]:
        """Our queued writes, re-checked against what the other writer did: a record of an
        id it recorded is dropped (the record resolves to its intent), a group with a move
        its moves made illegal fails alone, as a whole. The projected states are rebuilt
        from the durable ones."""
        self._projected = {intent_id: intent.state for intent_id, intent in self._intents.items()}
        kept: list[_Group] = []
        for events, future in batch:
            still: list[Any] = []
            for event in events:
                if isinstance(event, IntentRecorded):
                    if event.id not in self._projected:
                        self._projected[event.id] = IntentState.RECORDED
                        still.append(event)
                    else:
                        self._recording.pop(event.id, None)
                        self._decoded.pop(event.id, None)
                    continue
                current = self._projected.get(event.id)
                if current is None or event.state not in TRANSITIONS[current]:
                    if not future.done():
                        future.set_exception(
                            IntentTransitionError(event.id, current or IntentState.RECORDED, event.state)
                        )
                    still = []
                    break
                self._projected[event.id] = event.state
                still.append(event)
            if not future.done():
                kept.append((still, future))
        return kept


def _check_id(intent_id: object) -> None:
    if not isinstance(intent_id, str) or not intent_id:
        raise InvalidConfig("intent_id", intent_id, "an intent id is a non-empty string")


def _check_move(state: object, detail: object) -> None:
    if not isinstance(state, IntentState):
        raise InvalidConfig("state", state, "must be an IntentState member")
    if not isinstance(detail, str):
        raise InvalidConfig("detail", detail, "must be a str")


def _error_of(future: asyncio.Future[None]) -> BaseException | None:
    return asyncio.CancelledError() if future.cancelled() else future.exception()
