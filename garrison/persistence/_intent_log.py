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
are the model's (``_intent_model.py``); the snapshot a compaction stores and the
window of settled intents it keeps are ``_intent_compaction.py``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Iterable
from typing import Any, Generic, NoReturn, TypeVar

import msgspec
from loguru import logger

from garrison._clock import Clock
from garrison._errors import EventDecodeError, InvalidConfig, JournalClosed, JournalError, SequenceConflict
from garrison._validate import check_count, check_seconds
from garrison.persistence._codec import EventCodec
from garrison.persistence._intent_bounds import Gate, IntentBacklogFull, IntentLogStats, SendWindowFull
from garrison.persistence._intent_compaction import (
    CHUNK,
    SETTLED_CODEC,
    SettledWindow,
    decode_chunk,
    decode_snapshot,
    encode_chunks,
    encode_snapshot,
    settled_stream,
)
from garrison.persistence._intent_model import (
    IN_DOUBT,
    TERMINAL,
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
from garrison.persistence._retention import delete_through, trim_to_snapshot
from garrison.persistence._roundtrip import invalid_payload

P = TypeVar("P")

MAX_EVENTS_PER_APPEND = 4096
"""Events folded into one journal append at most (a batch is never split, so one larger batch
goes alone). One append is in flight at a time: this bounds the log's rate per commit, so it
must hold what arrives during one commit at the rate wanted (at 1,024, a 90 ms commit on a
loaded disk capped a stream at ~11k events/s, ~2.8k orders/s at four events per order; encoding
and applying go in slices of EVENTS_PER_STEP, so a larger append holds the loop no longer)."""

EVENTS_PER_STEP = 256
"""Events encoded, or applied once durable, between two yields to the loop. All of an append's
in one go held the loop for 2-2.5 ms at capacity (cold caches), one loop-lag spike's worth."""

MAX_CONFLICT_RETRIES = 100
"""How many times in a row a write re-reads another writer's events before giving up."""

MAX_RELOADS = 10
"""How many times in a row a read starts again from the snapshot because another writer
compacted the events it was about to read."""

COMPACT_EVERY = 10_000
"""Default ``compact_every``: settled intents between two automatic compactions."""

RETAIN_SETTLED = 100_000
"""Default ``retain_settled``: the most recent settled intents kept through compactions."""

_ENTERS_DOUBT, _LEAVES_DOUBT, _SETTLES, _EXPIRES = 1, 2, 4, 8
"""What a move does to the bounds' counts (flags; 0: nothing)."""


def _effect(current: IntentState, state: IntentState) -> int:
    effect = 0
    if state in IN_DOUBT and current not in IN_DOUBT:
        effect |= _ENTERS_DOUBT
    if current in IN_DOUBT and state not in IN_DOUBT:
        effect |= _LEAVES_DOUBT
    if state in TERMINAL and current not in TERMINAL:
        effect |= _SETTLES | (_EXPIRES if state is IntentState.EXPIRED else 0)
    return effect


_MOVES: dict[IntentState, dict[IntentState, int]] = {
    current: {state: _effect(current, state) for state in allowed} for current, allowed in TRANSITIONS.items()
}
"""``TRANSITIONS`` with each allowed move's effect on the counts: one lookup checks a move and
tells what to count (``_MOVES[current].get(state)`` is None for a forbidden move)."""
_MAY_EXPIRE = frozenset({IntentState.RECORDED, IntentState.SENDING, IntentState.UNKNOWN})
"""States ``expired`` lists an intent in (ACKED never expires: the other side has it)."""

CHUNKS_PER_APPEND = 16
"""Chunks of settled intents written to the settled stream per append (a few MB at most)."""


class IntentHistoryMissing(JournalError):
    """Raised by ``IntentLog.open`` (and reads of other writers' events) when events of the
    intent stream were deleted that no snapshot holds: what they recorded is lost."""

    def __init__(self, stream: str, after_seq: int, found_seq: int | None) -> None:
        self.stream = stream
        self.after_seq = after_seq
        self.found_seq = found_seq
        found = f"the next stored event is seq {found_seq}" if found_seq is not None else "none is stored"
        super().__init__(
            f"intent log {stream!r}: the events after seq {after_seq} were deleted ({found}) and no "
            "snapshot holds them; trim an intent stream only through IntentLog compaction "
            "(or trim_to_snapshot), and restore the journal from a backup to recover them"
        )


class _Gap(Exception):
    """Events right after the seq a read started from are gone (another writer compacted)."""

    def __init__(
        self, stream: str, after_seq: int, found_seq: int | None, snapshot: tuple[int, bytes] | None = None
    ) -> None:
        self.stream = stream
        self.after_seq = after_seq
        self.found_seq = found_seq
        self.snapshot = snapshot
        """The snapshot whose window was being read (a gap in the settled stream)."""


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

    History stays bounded (compaction): once ``compact_every`` intents have
    settled (REJECTED or DONE) since the last compaction, the log stores a
    snapshot of what it still needs (every open intent, and the
    ``retain_settled`` most recent settled ones at least) and deletes the
    events before it, in bounded steps, while writes go on; ``open`` reads
    that snapshot and the events after it, so its cost follows the open and
    retained intents, not the history. A settled intent in the window is
    still known (``get``, ``in``, ``intents``): recording its id again writes
    nothing and returns it, as before the compaction. One that left the
    window is forgotten: recording its id again records a new intent. Size
    ``retain_settled`` to outlast the longest time an input can be
    redelivered after its intent settled. ``compact_every=None`` compacts
    only when ``await log.compact()`` is called. The window is stored once,
    in chunks, in the stream ``<stream>.settled`` (``settled_stream``);
    ``archive_settled=True`` keeps every chunk there instead of deleting
    those that left the window. ``await log.close()`` (in the owner's
    ``on_stop``) ends a compaction in progress before the journal closes.

    Progress stays bounded too (#24). With a ``clock`` (the node's), every
    intent records its creation time (``clock.now()``) and a time-to-live
    (``record(..., ttl=seconds)``, or ``default_ttl``); ``expired(now)``
    lists those past it, to be moved to EXPIRED instead of sent late.
    ``max_unsettled`` bounds the intents not settled yet: a record beyond
    it is refused with IntentBacklogFull, or waits (``wait=seconds``) in
    line for one to settle. ``send_window`` bounds the intents in SENDING
    or UNKNOWN the same way (SendWindowFull), so a crash leaves at most
    that many to look up; ``in_doubt()`` lists them. ``stats`` counts
    waits and refusals. None (the default) leaves a bound off.
    """

    def __init__(
        self,
        journal: Journal,
        stream: str,
        payload_type: type[P],
        *,
        compact_every: int | None = COMPACT_EVERY,
        retain_settled: int = RETAIN_SETTLED,
        archive_settled: bool = False,
        max_unsettled: int | None = None,
        send_window: int | None = None,
        default_ttl: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        check_count("compact_every", compact_every, allow_none=True)
        check_count("retain_settled", retain_settled, minimum=0)
        if not isinstance(archive_settled, bool):
            raise InvalidConfig("archive_settled", archive_settled, "must be True or False")
        check_count("max_unsettled", max_unsettled, allow_none=True)
        check_count("send_window", send_window, allow_none=True)
        check_seconds("default_ttl", default_ttl, below=math.inf, allow_none=True)
        if clock is not None and not isinstance(clock, Clock):
            raise InvalidConfig("clock", clock, "must be a garrison Clock (the node's: ctx.clock) or None")
        if default_ttl is not None and clock is None:
            raise InvalidConfig(
                "default_ttl", default_ttl, "an intent expires by a clock: give IntentLog a clock= too"
            )
        self.journal = journal
        self.stream = check_stream(stream)
        self.payload_type = payload_type
        self.compact_every = compact_every
        self.retain_settled = retain_settled
        self.archive_settled = archive_settled
        self.max_unsettled = max_unsettled
        self.send_window = send_window
        self.default_ttl = default_ttl
        self.clock = clock
        """Stamps each record's ``created`` (None: intents carry no creation time and cannot expire)."""
        self.settled_stream = settled_stream(self.stream)
        """Where compactions store the settled intents they keep (``<stream>.settled``)."""
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[P] = msgspec.msgpack.Decoder(payload_type)
        self._intents: dict[str, Intent[P]] = {}
        self._seq = 0
        self._opened = False
        self._broken: IntentLogBroken | None = None
        self._queue: list[_Group] = []
        self._flusher: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()
        """Held by an append until it is applied, and by a refresh: a refresh never reads our own
        events in flight as another writer's, and sees every write of ours not durable queued."""
        self._recording: dict[str, asyncio.Future[None]] = {}
        """Ids queued for recording and not yet durable -> their group's future."""
        self._decoded: dict[str, P] = {}
        """Payloads of queued records as they decode from their bytes (what a replay would read)."""
        self._projected: dict[str, IntentState] = {}
        self._settled: SettledWindow[P] = SettledWindow(retain_settled, archive_settled)
        """Settled intents kept through compactions (not in ``_intents``)."""
        self._newly_settled: list[str] = []
        """Ids of the intents in ``_intents`` that settled since the last compaction, in that order."""
        self._applying = False
        """True while a durable append's events are applied in slices (the state is behind ``_seq``)."""
        self._applied = asyncio.Event()
        """Set whenever ``_applying`` is False."""
        self._applied.set()
        self._compaction: asyncio.Task[None] | None = None
        self._trimmed_through = 0
        """The seq the events are deleted through, as far as this log knows (its latest snapshot's)."""
        self._based_on: int | None = None
        """The seq of the stored snapshot this log's state is built on (None: none was stored). A
        compaction replaces only that one: a snapshot another writer stored since wins, and this
        log leaves its chunks alone (Journal.replace_snapshot)."""
        self._backlog = Gate(max_unsettled)
        """Unsettled intents (by ``_projected``), against ``max_unsettled``."""
        self._window = Gate(send_window)
        """Intents in SENDING or UNKNOWN (by ``_projected``), against ``send_window``."""
        self._in_doubt: dict[str, None] = {}
        """Ids whose projected state is SENDING or UNKNOWN, oldest entry first."""
        self._expired = 0

    async def open(self) -> IntentLog[P]:
        """Read the stream back (idempotent): its snapshot, then the events after it. Awaits;
        raises EventDecodeError on an event, snapshot or payload that does not decode, naming
        the stream and seq, and IntentHistoryMissing if events were deleted that no snapshot
        holds.

        Call it before the first write, or after IntentLogBroken; while writes
        are in flight it raises InvalidConfig (the read could miss them). A
        compaction in progress is waited for first."""
        if self._flusher is not None and not self._flusher.done():
            raise InvalidConfig("intent log", self.stream, "writes are in flight: open() it before writing")
        await self._compaction_done()
        await self._reload()
        self._projected = {intent_id: intent.state for intent_id, intent in self._intents.items()}
        self._recording = {}
        self._decoded = {}
        self._broken = None
        self._opened = True
        self._recount()
        self._maybe_compact()
        return self

    async def _reload(self) -> None:
        """Read the whole state again from the snapshot and the events after it; another writer
        compacting meanwhile makes it start again (MAX_RELOADS times at most).

        Chunks of the window missing while the snapshot naming them is still the latest are
        a lasting loss (two writers' compactions crossing): those settled ids are forgotten
        early, with a warning, rather than the log never opening again."""
        lost_chunks_of: tuple[int, bytes] | None = None
        for _ in range(MAX_RELOADS):
            try:
                intents, settled, newly_settled, seq = await self._read_from_snapshot(lost_chunks_of)
            except _Gap as gap:
                missing = gap
                still_latest = gap.stream == self.settled_stream and (
                    await self.journal.load_snapshot(self.stream) == gap.snapshot
                )
                if still_latest:
                    lost_chunks_of = gap.snapshot
                continue
            self._intents, self._settled, self._seq = intents, settled, seq
            self._newly_settled = newly_settled
            return
        raise IntentHistoryMissing(missing.stream, missing.after_seq, missing.found_seq)

    async def _read_from_snapshot(
        self, lost_chunks_of: tuple[int, bytes] | None
    ) -> tuple[dict[str, Intent[P]], SettledWindow[P], list[str], int]:
        intents: dict[str, Intent[P]] = {}
        settled: SettledWindow[P] = SettledWindow(self.retain_settled, self.archive_settled)
        seq = 0
        snapshot = await self.journal.load_snapshot(self.stream)
        self._based_on = None if snapshot is None else snapshot[0]
        if snapshot is not None:
            seq, payload = snapshot
            # The compaction that saved it deleted the events before it (or will: a step hint).
            self._trimmed_through = max(self._trimmed_through, seq)
            stored = decode_snapshot(payload, self.stream, seq)
            decode = self._decoder.decode
            for index, chunk in enumerate(stored.open):
                if index:
                    await asyncio.sleep(0)
                try:
                    for entry in decode_chunk(chunk, self.stream, seq):
                        intents[entry.id] = Intent(
                            entry.id,
                            decode(entry.payload),
                            entry.state,
                            entry.detail,
                            entry.attempts,
                            entry.created,
                            entry.ttl,
                        )
                except msgspec.DecodeError as error:
                    raise EventDecodeError(self.stream, seq, error) from error
            await self._read_window(
                settled,
                stored.settled_from,
                stored.settled_through,
                snapshot,
                lost=snapshot == lost_chunks_of,
            )
        newly_settled: list[str] = []
        seq = await self._read_tail(intents, seq, newly_settled)
        return intents, settled, newly_settled, seq

    async def _read_window(
        self, window: SettledWindow[P], first: int, last: int, snapshot: tuple[int, bytes], *, lost: bool
    ) -> None:
        """Load the chunks ``first`` to ``last`` of the settled stream. Raises _Gap if one of
        them is gone (another writer's later compaction let it go), unless ``lost``: then
        loads those that are there, and warns."""
        window.through = max(first - 1, last)
        if first > last:
            return
        loaded = 0
        async with contextlib.aclosing(
            replay_events(self.journal, self.settled_stream, SETTLED_CODEC, first - 1)
        ) as runs:
            async for first_seq, chunks in runs:
                if first_seq != first + loaded and not lost:
                    raise _Gap(self.settled_stream, first + loaded - 1, first_seq, snapshot)
                for offset, chunk in enumerate(chunks[: last - first_seq + 1]):
                    window.load_chunk(first_seq + offset, chunk.intents)
                    loaded += 1
                if first_seq + len(chunks) > last:
                    break
        if loaded < last - first + 1:
            if not lost:
                raise _Gap(self.settled_stream, first + loaded - 1, None, snapshot)
            logger.warning(
                "intent log {stream}: {missing} chunks of settled intents named by the snapshot at "
                "seq {seq} are gone (two writers' compactions crossed); their ids are forgotten early",
                stream=self.stream,
                missing=last - first + 1 - loaded,
                seq=snapshot[0],
            )
        window.expire()

    async def _read_tail(self, intents: dict[str, Intent[P]], seq: int, newly_settled: list[str]) -> int:
        """Apply the stored events after ``seq`` to ``intents``; returns the seq of the last.
        Raises _Gap if the events right after ``seq`` (or after a run) are gone, unless they
        were quarantined (replay skips those)."""
        expected = seq + 1
        async with contextlib.aclosing(replay_events(self.journal, self.stream, _CODEC, seq)) as runs:
            async for first_seq, events in runs:
                if first_seq != expected and not await self._quarantined_between(expected - 1, first_seq):
                    raise _Gap(self.stream, expected - 1, first_seq)
                self._replay(intents, first_seq, events, newly_settled)
                expected = first_seq + len(events)
        if expected == seq + 1:
            return await self._highest_after(seq)
        return expected - 1

    async def _highest_after(self, seq: int) -> int:
        """The stream's highest seq, having read nothing after ``seq``: ``seq`` itself, or a
        higher one if every event after it was quarantined. Raises _Gap otherwise."""
        highest = await self.journal.highest_seq(self.stream)
        if highest > seq and not await self._quarantined_between(seq, highest + 1):
            raise _Gap(self.stream, seq, None)
        return max(highest, seq)

    async def _quarantined_between(self, after_seq: int, before_seq: int) -> bool:
        """Whether every seq after ``after_seq`` and before ``before_seq`` was set aside by
        ``garrison journal quarantine`` (replay skips those: not a gap)."""
        quarantined = {event.seq for event in await self.journal.quarantined(self.stream)}
        return all(seq in quarantined for seq in range(after_seq + 1, before_seq))

    def _replay(
        self,
        intents: dict[str, Intent[P]],
        first_seq: int,
        events: list[IntentEvent],
        newly_settled: list[str] | None = None,
    ) -> None:
        """Apply a run of stored events (``events[i]`` has seq ``first_seq + i``). Raises
        EventDecodeError naming the seq of an event that does not apply."""
        decode = self._decoder.decode
        try:
            apply_intent_events(intents, events, lambda event: decode(event.payload), newly_settled)
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
        """The intent with this id as durably known, or None (never recorded, or settled and
        out of the compaction window)."""
        self._check_usable()
        return self._known(intent_id)

    def _known(self, intent_id: str) -> Intent[P] | None:
        intent = self._intents.get(intent_id)
        if intent is None and self._settled.index:
            return self._settled.get(intent_id, self._decoder.decode)
        return intent

    def __len__(self) -> int:
        """How many intents the log knows: open ones and the settled ones it keeps."""
        return len(self._intents) + len(self._settled.index)

    def __contains__(self, intent_id: object) -> bool:
        return intent_id in self._intents or intent_id in self._settled.index

    def intents(self) -> list[Intent[P]]:
        """Every intent the log knows, terminal or not: the settled ones kept by compactions
        (in the order they settled), then the others in the order recorded. Decodes the
        payloads of the kept settled ones: O(all it knows)."""
        self._check_usable()
        decode = self._decoder.decode
        settled = self._settled
        kept = [settled.get(intent_id, decode) for intent_id in settled.index]
        return [intent for intent in kept if intent is not None] + list(self._intents.values())

    def pending(self) -> list[Intent[P]]:
        """Every intent not terminal, in the order recorded. ``may_have_happened`` marks the dead zone."""
        self._check_usable()
        return [intent for intent in self._intents.values() if not intent.terminal]

    def in_doubt(self) -> list[Intent[P]]:
        """The intents in SENDING or UNKNOWN (counting queued moves), longest in doubt first:
        what a restart must look up. O(in doubt), from an index. An intent whose move is
        still queued is listed with its durable state until the move is written; one whose
        record is still queued is not listed yet."""
        self._check_usable()
        intents = self._intents
        return [intents[intent_id] for intent_id in self._in_doubt if intent_id in intents]

    def oldest_in_doubt_age(self, now: float) -> float | None:
        """How long ago (at the clock time ``now``) the oldest intent in doubt was recorded,
        or None when none is in doubt or none carries a creation time. O(in doubt)."""
        self._check_usable()
        intents = self._intents
        oldest: float | None = None
        for intent_id in self._in_doubt:
            intent = intents.get(intent_id)
            created = None if intent is None else intent.created
            if created is not None and (oldest is None or created < oldest):
                oldest = created
        return None if oldest is None else now - oldest

    def expired(self, now: float) -> list[Intent[P]]:
        """The intents past their time-to-live at the clock time ``now`` (the node's clock,
        as the log's ``clock`` reads it) that may still move to EXPIRED: RECORDED ones (never
        sent: expire them) and SENDING or UNKNOWN ones (look them up first: expire only those
        the other side does not have). Counts queued moves (one already queued to a terminal
        state or ACKED is left out); in the order recorded; O(open)."""
        self._check_usable()
        projected = self._projected
        may_expire = _MAY_EXPIRE
        return [
            intent
            for intent in self._intents.values()
            if intent.ttl is not None
            and intent.created is not None
            and now >= intent.created + intent.ttl
            and projected.get(intent.id) in may_expire
        ]

    @property
    def unsettled(self) -> int:
        """Intents recorded (or queued) and not settled, counting queued moves: what
        ``max_unsettled`` bounds."""
        return self._backlog.used - self._backlog.reserved

    @property
    def stats(self) -> IntentLogStats:
        """The bounds' figures now: unsettled and in-doubt counts, waits, refusals, expiries."""
        backlog, window = self._backlog, self._window
        return IntentLogStats(
            unsettled=backlog.used - backlog.reserved,
            max_unsettled=self.max_unsettled,
            in_doubt=len(self._in_doubt),
            send_window=self.send_window,
            backlog_waits=backlog.waits,
            backlog_refused=backlog.refused,
            window_waits=window.waits,
            window_refused=window.refused,
            expired=self._expired,
        )

    def can_move(self, intent_id: str, state: IntentState) -> bool:
        """Whether ``move_nowait(intent_id, state)`` would be accepted now: the id was recorded
        (or its record is queued) and the lifecycle allows the move from the state its
        queued writes leave it in. Never raises for a broken log (the move would)."""
        current = self._projected.get(intent_id)
        return current is not None and state in TRANSITIONS[current]

    # -- writes -----------------------------------------------------------------------

    async def record(
        self, intent_id: str, payload: P, *, ttl: float | None = None, wait: float = 0.0
    ) -> Intent[P]:
        """Record an intent durably; a second record of the same id writes nothing and
        returns the first (also while the first is still being written).

        ``ttl``: its time-to-live in seconds after now (by the log's clock);
        None takes the log's ``default_ttl``. ``wait``: when ``max_unsettled``
        intents are unsettled, how many seconds to wait in line for one to
        settle (0, the default: refuse at once). Awaits the durable write
        (shared with concurrent calls). Raises IntentBacklogFull when there
        is no room (at once, or once ``wait`` ran out), InvalidConfig for an
        empty id, a payload that is not a ``payload_type``, a bad ``ttl`` or
        ``wait``, IntentLogBroken if the write cannot be confirmed. A known
        id never needs room. If the caller is cancelled, the record still
        completes (or breaks the log): cancelling never leaves it half-known.
        """
        if wait:
            check_seconds("wait", wait, allow_minimum=True, below=math.inf)
            self._check_usable()
            _check_id(intent_id)
            backlog = self._backlog
            if intent_id not in self and intent_id not in self._recording and not backlog.room():
                # Stamped now: time spent waiting for room counts against its ttl.
                created, ttl = self._expiry(ttl)
                if not await backlog.wait(wait, self.clock):
                    return self._backlog_full(intent_id)
                return await asyncio.shield(self._record_reserved(intent_id, payload, created, ttl))
        return await asyncio.shield(self.record_nowait(intent_id, payload, ttl=ttl))

    def record_nowait(
        self, intent_id: str, payload: P, *, ttl: float | None = None
    ) -> asyncio.Future[Intent[P]]:
        """Queue a record without awaiting it; the future resolves once it is durable.

        For an actor that records many intents without serializing on each
        write (resolve a ``ctx.defer_reply()`` from the future's callback).
        Same idempotence and errors as ``record``; raises IntentBacklogFull
        at once when ``max_unsettled`` intents are unsettled (nothing queued).
        Do not cancel the future.
        """
        self._check_usable()
        _check_id(intent_id)
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Intent[P]] = loop.create_future()
        existing = self._known(intent_id)
        if existing is not None:
            result.set_result(existing)
            return result
        written = self._recording.get(intent_id)
        if written is None:
            if ttl is None and self.clock is None:
                created = None  # the common case of a log without expiry: no call
            else:
                created, ttl = self._expiry(ttl)
            backlog = self._backlog
            if backlog.bound is not None and not backlog.room():
                self._backlog_full(intent_id)
            encoded, decoded = self._encode_payload(payload)
            written = self._queue_records(
                [IntentRecorded(intent_id, encoded, created, ttl)], {intent_id: decoded}
            )
            backlog.used += 1
        written.add_done_callback(functools.partial(self._resolve_record, intent_id, result))
        return result

    def _record_reserved(
        self, intent_id: str, payload: P, created: float | None, ttl: float | None
    ) -> asyncio.Future[Intent[P]]:
        """``record_nowait`` for a caller the backlog reserved a slot for (it waited in line),
        stamped when it asked; the slot is used, or returned if not needed."""
        backlog = self._backlog
        reserved = True
        try:
            self._check_usable()
            _check_id(intent_id)
            loop = asyncio.get_running_loop()
            result: asyncio.Future[Intent[P]] = loop.create_future()
            existing = self._known(intent_id)
            if existing is not None:
                result.set_result(existing)
                written = None
            else:
                written = self._recording.get(intent_id)
            if existing is None and written is None:
                encoded, decoded = self._encode_payload(payload)
                written = self._queue_records(
                    [IntentRecorded(intent_id, encoded, created, ttl)], {intent_id: decoded}
                )
                backlog.claim()
                reserved = False
        finally:
            if reserved:
                backlog.unreserve()  # not needed (a known id), or the record was refused
        if written is not None:
            written.add_done_callback(functools.partial(self._resolve_record, intent_id, result))
        return result

    def _expiry(self, ttl: float | None) -> tuple[float | None, float | None]:
        """A new record's ``created`` and ``ttl`` (the default one if None)."""
        clock = self.clock
        if ttl is None:
            ttl = self.default_ttl
        else:
            if type(ttl) is not float or not 0.0 < ttl < math.inf:
                check_seconds("ttl", ttl, below=math.inf)
                ttl = float(ttl)
            if clock is None:
                raise InvalidConfig("ttl", ttl, "an intent expires by a clock: give IntentLog a clock=")
        return (None if clock is None else clock.now()), ttl

    def _backlog_full(self, intent_id: str) -> NoReturn:
        """Refuse a record for want of room (counted); never returns."""
        self._backlog.refused += 1
        raise IntentBacklogFull(self.stream, self.unsettled, self.max_unsettled or 0)

    def record_many_nowait(
        self, records: Iterable[tuple[str, P]], *, ttl: float | None = None
    ) -> asyncio.Future[list[Intent[P]]]:
        """Queue the records of many intents under one future (one journal append); it
        resolves, once every one is durable, to their intents in the order given.

        Each ``(intent_id, payload)`` behaves as ``record_nowait`` would: an id
        already recorded (or queued by an earlier call) writes nothing and
        resolves to the first intent; an id given twice in the batch is
        recorded once, with its first payload. Every record is checked before
        anything is queued: an empty id or a payload that is not a
        ``payload_type`` raises InvalidConfig and queues nothing. ``ttl``
        applies to each (None: the log's ``default_ttl``). All or none:
        when the new ids do not all fit under ``max_unsettled``,
        IntentBacklogFull is raised and nothing is queued (a batch larger
        than the bound never fits). A batch that is all known ids still
        resolves only after the writes queued before it. Raises
        IntentLogBroken (now, or in the future) if a write cannot be
        confirmed. Do not cancel the future.
        """
        self._check_usable()
        ids: list[str] = []
        events: list[Any] = []
        decoded: dict[str, P] = {}
        earlier: asyncio.Future[None] | None = None
        created, ttl = self._expiry(ttl)
        for intent_id, payload in records:
            _check_id(intent_id)
            ids.append(intent_id)
            if intent_id in self._intents or intent_id in decoded or intent_id in self._settled.index:
                continue
            in_flight = self._recording.get(intent_id)
            if in_flight is not None:
                earlier = in_flight
                continue
            encoded, decoded[intent_id] = self._encode_payload(payload)
            events.append(IntentRecorded(intent_id, encoded, created, ttl))
        loop = asyncio.get_running_loop()
        result: asyncio.Future[list[Intent[P]]] = loop.create_future()
        if events:
            if not self._backlog.room(len(events)):
                self._backlog.refused += 1
                raise IntentBacklogFull(self.stream, self.unsettled, self.max_unsettled or 0)
            written = self._queue_records(events, decoded)
            self._backlog.take(len(events))
        elif earlier is not None:
            # Nothing of ours to write, but some records are still in flight: an empty
            # group resolves after every write queued before it.
            written = self._enqueue([])
        else:
            result.set_result(self._resolved(ids))
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
            result.set_result(self._resolved([intent_id])[0])
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
            result.set_result(self._resolved(ids))
            return
        result.set_exception(error)
        result.exception()

    async def move(
        self, intent_id: str, state: IntentState, detail: str = "", *, wait: float = 0.0
    ) -> Intent[P]:
        """Move an intent to ``state`` durably. Raises IntentTransitionError for a move
        the lifecycle forbids (nothing written), KeyError for an unknown id,
        SendWindowFull for a move into SENDING or UNKNOWN beyond ``send_window``
        (``wait``: how many seconds to wait in line for room first; 0 refuses at
        once), IntentLogBroken if the write cannot be confirmed. Awaits the
        write; if the caller is cancelled, the move may still be written."""
        self._check_usable()
        _check_move(state, detail)
        if wait:
            check_seconds("wait", wait, allow_minimum=True, below=math.inf)
        recording = self._recording.get(intent_id)
        if recording is not None:
            await asyncio.shield(recording)
        reserved = False
        if wait and state in IN_DOUBT and self._projected.get(intent_id) not in IN_DOUBT:
            window = self._window
            if not window.room():
                self._check_allowed(intent_id, state)  # before waiting: a forbidden move never fits
                if not await window.wait(wait, self.clock):
                    self._window_full()
                reserved = True
        before = self._intents.get(intent_id)
        if reserved:
            await self._move_reserved(intent_id, state, detail)
        else:
            await self.move_nowait(intent_id, state, detail)
        after = self._known(intent_id)
        if after is None and before is not None:
            # Settled, and already out of a compaction window smaller than one append.
            attempts = before.attempts + 1 if state is IntentState.SENDING else before.attempts
            return Intent(intent_id, before.payload, state, detail, attempts, before.created, before.ttl)
        assert after is not None, "a durable move leaves its intent known"
        return after

    def _resolved(self, ids: list[str]) -> list[Intent[P]]:
        """The intents of ids whose writes are durable (a compaction may have taken a settled
        one out of the working set since)."""
        intents = self._intents
        try:
            return [intents[intent_id] for intent_id in ids]
        except KeyError:
            known = [self._known(intent_id) for intent_id in ids]
            return [intent for intent in known if intent is not None]

    def move_nowait(self, intent_id: str, state: IntentState, detail: str = "") -> asyncio.Future[None]:
        """Queue a move without awaiting it (after a record queued earlier is fine: writes
        keep their order); the future resolves once it is durable. Raises at once
        for an unknown id, a forbidden move, or a move into the dead zone beyond
        ``send_window`` (SendWindowFull); nothing is queued then."""
        self._check_usable()
        _check_move(state, detail)
        current = self._projected.get(intent_id)
        if current is None:
            current = self._unknown(intent_id)
        effect = _MOVES[current].get(state)
        if effect is None:
            raise IntentTransitionError(intent_id, current, state)
        if effect:
            # _count_move, inlined: most moves of every intent come here.
            if effect & _ENTERS_DOUBT:
                window = self._window
                if window.bound is not None and not window.room():
                    self._window_full()
                window.used += 1
                self._in_doubt[intent_id] = None
            elif effect & _LEAVES_DOUBT:
                del self._in_doubt[intent_id]
                window = self._window
                window.used -= 1
                if window.waiters:
                    window.wake_waiters()
            if effect & _SETTLES:
                backlog = self._backlog
                backlog.used -= 1
                if backlog.waiters:
                    backlog.wake_waiters()
                if effect & _EXPIRES:
                    self._expired += 1
        self._projected[intent_id] = state
        return self._enqueue([IntentMoved(intent_id, state, detail)])

    def _move_reserved(self, intent_id: str, state: IntentState, detail: str) -> asyncio.Future[None]:
        """``move_nowait`` for a caller the send window reserved a slot for (it waited in line)."""
        try:
            self._check_usable()
            current = self._projected.get(intent_id)
            if current is None:
                current = self._unknown(intent_id)
            if state not in TRANSITIONS[current]:
                raise IntentTransitionError(intent_id, current, state)
        except BaseException:
            self._window.unreserve()
            raise
        self._count_move(intent_id, current, state, reserved=True)
        self._projected[intent_id] = state
        return self._enqueue([IntentMoved(intent_id, state, detail)])

    def _count_move(
        self, intent_id: str, current: IntentState, state: IntentState, *, reserved: bool
    ) -> None:
        """Count an allowed move against the bounds (before it is projected); raises
        SendWindowFull, counting nothing, for one into the dead zone that does not fit.
        ``reserved``: a slot of the window is reserved for it (used, or returned if not needed)."""
        window = self._window
        if state in IN_DOUBT:
            if current in IN_DOUBT:
                if reserved:
                    window.unreserve()  # already in doubt: no new slot needed
                return
            if reserved:
                window.claim()
            elif window.room():
                window.take()
            else:
                self._window_full()
            self._in_doubt[intent_id] = None
            return
        if current in IN_DOUBT:
            del self._in_doubt[intent_id]
            window.release()
        if reserved:
            window.unreserve()
        if state in TERMINAL:
            self._backlog.release()  # never from a terminal state: the move was checked
            if state is IntentState.EXPIRED:
                self._expired += 1

    def _check_allowed(self, intent_id: str, state: IntentState) -> None:
        current = self._projected.get(intent_id)
        if current is None:
            current = self._unknown(intent_id)
        if state not in TRANSITIONS[current]:
            raise IntentTransitionError(intent_id, current, state)

    def _window_full(self) -> NoReturn:
        """Refuse a move into the dead zone for want of room (counted); never returns."""
        self._window.refused += 1
        raise SendWindowFull(self.stream, len(self._in_doubt), self.send_window or 0)

    def move_many_nowait(
        self, moves: Iterable[tuple[str, IntentState] | tuple[str, IntentState, str]]
    ) -> asyncio.Future[None]:
        """Queue many moves, ``(intent_id, state)`` or ``(intent_id, state, detail)``, under
        one future; it resolves once all of them are durable.

        The moves are checked in order, each from the state the moves before
        it leave (``[(i, SENDING), (i, ACKED)]`` is fine), and all or none
        are queued: an unknown id raises KeyError, a forbidden move
        IntentTransitionError, more intents in SENDING or UNKNOWN at the end
        than ``send_window`` allows SendWindowFull, and nothing is queued (``can_move`` tells
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
        entering: list[str] = []
        leaving: list[str] = []
        settling = expiring = 0
        try:
            for move in moves:
                intent_id, state = move[0], move[1]
                detail = move[2] if len(move) > 2 else ""
                _check_move(state, detail)
                current = projected.get(intent_id)
                if current is None:
                    current = self._unknown(intent_id)
                effect = _MOVES[current].get(state)
                if effect is None:
                    raise IntentTransitionError(intent_id, current, state)
                if effect:
                    if effect & _ENTERS_DOUBT:
                        entering.append(intent_id)
                    elif effect & _LEAVES_DOUBT:
                        leaving.append(intent_id)
                    if effect & _SETTLES:
                        settling += 1
                        if effect & _EXPIRES:
                            expiring += 1
                before.setdefault(intent_id, current)
                projected[intent_id] = state
                events.append(IntentMoved(intent_id, state, detail))
            if entering or leaving or settling:
                self._count_moves(entering, leaving, settling, expiring)
        except BaseException:
            projected.update(before)
            raise
        if not events:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future
        return self._enqueue(events)

    def _count_moves(self, entering: list[str], leaving: list[str], settling: int, expiring: int) -> None:
        """Count a batch's moves against the bounds: the ids it moves into the dead zone and out
        of it, in order, and how many it settles (of which expire). Raises SendWindowFull,
        counting nothing, when the batch leaves more in doubt than fit. An id enters the dead
        zone at most once per batch, before it leaves it (no move goes back into it from
        outside), so entering all then leaving all ends with the index the moves leave."""
        window = self._window
        more = len(entering) - len(leaving)
        if more > 0 and not window.room(more):
            self._window_full()
        in_doubt = self._in_doubt
        for intent_id in entering:
            in_doubt[intent_id] = None
        for intent_id in leaving:
            del in_doubt[intent_id]
        window.take(len(entering))
        if leaving:
            window.release(len(leaving))
        if settling:
            self._backlog.release(settling)
            self._expired += expiring

    def _unknown(self, intent_id: str) -> IntentState:
        """The state of an id not in the working set: a settled one's (that no move leaves),
        or KeyError when it was never recorded (or has left the compaction window)."""
        state = self._settled.state_of(intent_id)
        if state is None:
            raise KeyError(f"intent {intent_id!r} was never recorded in {self.stream!r}")
        return state

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
            async with self._writing:
                if self._queue and self._broken is None:
                    await self._write_batch()

    async def _write_batch(self) -> None:
        """Append the oldest queued groups (re-read and re-checked on a conflict) and apply
        them once durable; holds ``_writing`` (a refresh reads between two of these)."""
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
                    touched = await self._catch_up()
                except Exception as error:
                    self._break(batch, error)
                    return
                # Ours are checked again, the rest of the queue too (queued after ours).
                futures = {id(future) for _, future in batch}
                kept = self._rebase(batch + self._queue, touched)
                batch = [group for group in kept if id(group[1]) in futures]
                self._queue = kept[len(batch) :]
            except Exception as error:
                self._break(batch, error)
                return
            else:
                self._applying = True
                self._applied.clear()
                try:
                    for start in range(0, len(events), EVENTS_PER_STEP):
                        if start:
                            # Between two slices, an id of this append is either applied or still
                            # recording (never neither), and its group's future is not resolved yet.
                            await asyncio.sleep(0)
                        self._apply_written(events[start : start + EVENTS_PER_STEP])
                finally:
                    self._applying = False
                    self._applied.set()
                break
        else:
            self._break(batch, RuntimeError(f"{MAX_CONFLICT_RETRIES} conflicting writers in a row"))
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)
        self._maybe_compact()

    def _apply_written(self, events: list[IntentEvent]) -> None:
        """Our own events, durable now: applied without decoding the payloads again."""
        apply_intent_events(self._intents, events, self._take_decoded, self._newly_settled)

    def _take_decoded(self, event: IntentRecorded) -> P:
        """A record of ours is durable: it is no longer recording, and its payload (decoded
        when it was queued, as a replay would decode it) goes to its intent."""
        self._recording.pop(event.id, None)
        return self._decoded.pop(event.id)

    def _break(self, batch: list[_Group], error: BaseException) -> None:
        self._broken = IntentLogBroken(self.stream, error)
        # Callers waiting for room learn it now, not when their wait runs out.
        self._backlog.wake_all()
        self._window.wake_all()
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
        processes sharing one stream), so that ``get``/``pending`` and move checks are current.

        This log's own writes still queued stay applied on top of what the others wrote:
        each is checked again against their events (as on a conflicting append), a record
        of an id they recorded writes nothing, a group with a move they made forbidden
        fails alone with IntentTransitionError, and the counts (``unsettled``, ``in_doubt``,
        the send window) follow. Waits for an append of this log in flight to be applied
        first; costs O(events read + writes queued)."""
        self._check_usable()
        async with self._writing:
            self._check_usable()
            touched = await self._catch_up()
            self._queue = self._rebase(self._queue, touched)
        self._maybe_compact()

    async def _catch_up(self) -> set[str] | None:
        """Apply what other writers appended; if one compacted the events after ``_seq``
        away, read the whole state again from its snapshot. Returns the ids their events
        touched (None: the state was read again, any id may have changed)."""
        expected = self._seq + 1
        touched: set[str] = set()
        try:
            async with contextlib.aclosing(
                replay_events(self.journal, self.stream, _CODEC, self._seq)
            ) as runs:
                async for first_seq, events in runs:
                    if first_seq != self._seq + 1 and not await self._quarantined_between(
                        self._seq, first_seq
                    ):
                        raise _Gap(self.stream, self._seq, first_seq)
                    self._replay(self._intents, first_seq, events, self._newly_settled)
                    touched.update(event.id for event in events)
                    self._seq = first_seq + len(events) - 1
            if self._seq + 1 == expected:
                self._seq = await self._highest_after(self._seq)
        except _Gap:
            await self._reload()
            return None
        return touched

    def _rebase(self, groups: list[_Group], touched: set[str] | None) -> list[_Group]:
        """Lay this log's writes not yet durable (``groups``, in order) again on the durable
        state, after other writers' events changed the ids ``touched`` (None: any id).

        Only those ids are re-checked and projected again (and the ids of a group that
        fails, whose later moves may fail in turn): a record of an id already known is
        dropped (the record resolves to that intent), a group with a move now forbidden
        fails alone, as a whole. The counts change by what each id's projected state did.
        Returns the groups still to write."""
        ids = set(self._projected).union(self._intents) if touched is None else set(touched)
        if not ids:
            return groups
        failed: dict[int, IntentTransitionError] = {}
        while True:
            states: dict[str, IntentState | None] = {
                intent_id: self._durable_state(intent_id) for intent_id in ids
            }
            dropped: dict[int, list[int]] = {}
            grown = False
            for index, (events, _) in enumerate(groups):
                if index in failed:
                    continue
                trial: dict[str, IntentState | None] = {}
                drops: list[int] = []
                for position, event in enumerate(events):
                    intent_id = event.id
                    if intent_id not in ids:
                        continue
                    current = trial[intent_id] if intent_id in trial else states[intent_id]
                    if type(event) is IntentRecorded:
                        if current is None:
                            trial[intent_id] = IntentState.RECORDED
                        else:
                            drops.append(position)
                        continue
                    if current is None or event.state not in TRANSITIONS[current]:
                        failed[index] = IntentTransitionError(
                            intent_id, current or IntentState.RECORDED, event.state
                        )
                        break
                    trial[intent_id] = event.state
                if index in failed:
                    more = {event.id for event in events} - ids
                    if more:
                        # Its other ids' projections included its moves: check them again too.
                        ids |= more
                        grown = True
                        break
                    continue
                states.update(trial)
                if drops:
                    dropped[index] = drops
            if not grown:
                break
        kept: list[_Group] = []
        for index, (events, future) in enumerate(groups):
            error = failed.get(index)
            if error is not None:
                if not future.done():
                    future.set_exception(error)
                continue
            drops = dropped.get(index, [])
            for position in drops:
                intent_id = events[position].id
                self._recording.pop(intent_id, None)
                self._decoded.pop(intent_id, None)
            if drops:
                skip = set(drops)
                events = [event for position, event in enumerate(events) if position not in skip]
            kept.append((events, future))
        self._project(states)
        return kept

    def _durable_state(self, intent_id: str) -> IntentState | None:
        intent = self._intents.get(intent_id)
        if intent is not None:
            return intent.state
        return self._settled.state_of(intent_id)

    def _project(self, states: dict[str, IntentState | None]) -> None:
        """Set the projected state of each id in ``states`` (None: unknown), counting what
        changes against the bounds."""
        projected, in_doubt, intents, kept = (
            self._projected,
            self._in_doubt,
            self._intents,
            self._settled.index,
        )
        unsettled = 0
        doubt = 0
        for intent_id, state in states.items():
            old = projected.get(intent_id)
            unsettled -= old is not None and old not in TERMINAL
            if state is None or (intent_id not in intents and intent_id in kept):
                # Unknown, or settled and kept by a compaction (no move leaves it): not projected.
                projected.pop(intent_id, None)
            else:
                projected[intent_id] = state
                unsettled += state not in TERMINAL
            if state in IN_DOUBT:
                if intent_id not in in_doubt:
                    in_doubt[intent_id] = None
                    doubt += 1
            elif intent_id in in_doubt:
                del in_doubt[intent_id]
                doubt -= 1
        self._backlog.shift(unsettled)
        self._window.shift(doubt)

    def _recount(self) -> None:
        """Count the unsettled and in-doubt intents again from the projected states (after
        they were rebuilt from what is durable). O(working set); never on the hot path."""
        unsettled = 0
        in_doubt: dict[str, None] = {}
        for intent_id, state in self._projected.items():
            if state not in TERMINAL:
                unsettled += 1
                if state in IN_DOUBT:
                    in_doubt[intent_id] = None
        self._in_doubt = in_doubt
        self._backlog.recount(unsettled)
        self._window.recount(len(in_doubt))

    # -- compaction ----------------------------------------------------------------------

    async def compact(self) -> None:
        """Compact now, whatever ``compact_every``: store a snapshot of the open intents and
        the settled ones kept (``retain_settled``), then delete the events it holds.

        Awaits a compaction already running first, then this one's snapshot and
        deletion; writes go on meanwhile. Raises the journal's error if the
        snapshot or the deletion fails (an automatic compaction logs it instead
        and the next one tries again; nothing is lost either way: the events
        are deleted only once the snapshot holding them is durable)."""
        self._check_usable()
        while self.compacting:
            # Several callers may wait for the same one: each checks again, so one runs at a time.
            await self._compaction_done()
        self._check_usable()
        compaction = asyncio.get_running_loop().create_task(
            self._compact(), name=f"garrison:intent-log-compaction:{self.stream}"
        )
        self._compaction = compaction
        await asyncio.shield(compaction)

    async def close(self) -> None:
        """Stop a compaction in progress and wait for it to end; later calls raise InvalidConfig
        until ``await log.open()``. Call it before the journal closes (in its owner's
        ``on_stop``): a compaction cut short loses nothing (the next one stores what it did
        not), one left running meets a closed journal and logs a warning. Queued writes are
        the journal's to finish."""
        self._opened = False
        compaction = self._compaction
        if compaction is not None and not compaction.done():
            compaction.cancel()
            await asyncio.wait([compaction])

    @property
    def compacting(self) -> bool:
        """Whether a compaction is running (await ``compact()`` to wait for it and run one more)."""
        return self._compaction is not None and not self._compaction.done()

    def _maybe_compact(self) -> None:
        """Start an automatic compaction when ``compact_every`` intents settled since the last
        one (none while one runs, or when the log is broken)."""
        every = self.compact_every
        if (
            every is None
            or len(self._newly_settled) < every
            or self._broken is not None
            or not self._opened
            or self.compacting
        ):
            return
        self._compaction = asyncio.get_running_loop().create_task(
            self._compact_quietly(), name=f"garrison:intent-log-compaction:{self.stream}"
        )

    async def _compaction_done(self) -> None:
        compaction = self._compaction
        if compaction is not None and not compaction.done():
            await asyncio.wait([compaction])

    async def _compact_quietly(self) -> None:
        try:
            await self._compact()
        except JournalClosed:
            pass  # the node is shutting down: the next open reads the events this would have deleted
        except Exception:
            logger.opt(exception=True).warning(
                "intent log {stream}: compaction failed; the next one tries again "
                "(until then, opening the log reads more events)",
                stream=self.stream,
            )

    async def _compact(self) -> None:
        """Capture the state at a seq (synchronously), then store and trim in steps.

        The settled intents leave the working set at the capture, into the window, which
        keeps them known whatever happens next. They are appended to the settled stream
        first, then the snapshot naming them is saved, and only then are the events it
        holds deleted: a failure at any step loses nothing (the next compaction stores
        what this one did not). Runs as a task so that the loop and the writes go on."""
        while True:
            while self._applying:
                await self._applied.wait()  # an append's slices are being applied: wait for the whole of it
            # Once more round the loop: the callbacks resolving that append's futures (queued as
            # it finished) see its intents in the working set before the capture moves them.
            await asyncio.sleep(0)
            if not self._applying:
                break
        seq = self._seq
        window = self._settled
        stored_from = window.settled_from
        window.capture(self._take_settled())
        open_intents = list(self._intents.values())
        encode = self._encoder.encode
        unsaved = list(window.unsaved)
        per_append = CHUNKS_PER_APPEND * CHUNK
        for start in range(0, len(unsaved), per_append):
            entries = unsaved[start : start + per_append]
            chunks = await encode_chunks(entries, encode, settled=True)
            window.saved(entries, await self._append_settled(chunks))
        open_chunks = await encode_chunks(open_intents, encode, settled=False)
        settled_from = window.settled_from
        snapshot = encode_snapshot(open_chunks, settled_from, window.through)
        if not await self.journal.replace_snapshot(self.stream, self._based_on, seq, snapshot):
            # Another writer stored a snapshot since this log's state was read: theirs stands,
            # and the chunks it names may be older than ours, so nothing is trimmed or deleted.
            # This log compacts again once it has read that snapshot (after a gap, or open()).
            return
        self._based_on = seq
        await trim_to_snapshot(self.journal, self.stream, seq, from_seq=self._trimmed_through + 1)
        self._trimmed_through = max(self._trimmed_through, seq)
        if not self.archive_settled:
            # A writer that stores the next snapshot has read this one first (replace_snapshot
            # refuses it otherwise), so its window starts at or after our settled_from.
            await delete_through(self.journal, self.settled_stream, settled_from - 1, from_seq=stored_from)

    async def _append_settled(self, chunks: list[bytes]) -> int:
        """Append chunks to the settled stream (after another writer's, if it compacted too);
        returns the seq of the last."""
        for _ in range(MAX_CONFLICT_RETRIES):
            highest = await self.journal.highest_seq(self.settled_stream)
            try:
                return await self.journal.append(self.settled_stream, chunks, highest)
            except SequenceConflict:
                continue
        raise SequenceConflict(
            self.settled_stream, highest, await self.journal.highest_seq(self.settled_stream)
        )

    def _take_settled(self) -> list[Intent[P]]:
        """The intents settled since the last compaction, out of the working set, in settle order."""
        ids, self._newly_settled = self._newly_settled, []
        intents, projected = self._intents, self._projected
        settled: list[Intent[P]] = []
        for intent_id in ids:
            intent = intents.get(intent_id)
            if intent is not None and intent.state in TERMINAL:
                del intents[intent_id]
                projected.pop(intent_id, None)
                settled.append(intent)
        return settled


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
