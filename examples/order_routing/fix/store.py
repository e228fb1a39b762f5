"""The session's durable state: sequence numbers and the outbound application messages.

The session state is event-sourced: ``FixSession`` hands its changes out as records
(``SeqSent``, ``AppSent``, ``TargetAdvanced``, ``SequencesReset``), and ``apply_record`` folds
them into a ``SessionState``, live and on replay alike. ``FixSessionStore`` keeps the records
in one stream of a garrison journal (any ``Journal``: SQLite or Redis), snapshots the state every
``snapshot_every`` records and deletes the records the snapshot holds, so the stream stays
bounded; the state itself stays bounded by ``Retention`` (outbound messages older than the
resend window, or beyond a count, are forgotten: a ResendRequest for them gets a gap fill).

Why a journal stream of records and not an actor of its own: the session is sans-IO and runs
in both the node's session actor and the broker simulator, and its one durability rule
(records persisted before the frames that carry them are written) is a step the caller takes,
in order, with ``await store.persist(step.records)``. An ``EventSourcedActor`` can hold the same
state instead: its ``events`` are ``RECORD_TYPES`` and its ``apply`` calls ``apply_record``.
"""

from __future__ import annotations

from typing import Final, Union, cast

import msgspec

from examples.order_routing.fix.errors import FixConfigError
from garrison.persistence import Journal


class Retention(msgspec.Struct, frozen=True):
    """How long outbound application messages are kept for resends.

    ``max_age_seconds``: a message sent longer ago than this (measured at each later send) is
    forgotten; ``max_messages``: at most this many are kept, the oldest forgotten first.
    """

    max_age_seconds: float = 24 * 3600.0
    max_messages: int = 100_000

    def __post_init__(self) -> None:
        if not isinstance(self.max_age_seconds, (int, float)) or not 0 < self.max_age_seconds < float("inf"):
            raise FixConfigError(
                "retention.max_age_seconds", self.max_age_seconds, "must be a finite number > 0"
            )
        if (
            isinstance(self.max_messages, bool)
            or not isinstance(self.max_messages, int)
            or self.max_messages < 1
        ):
            raise FixConfigError("retention.max_messages", self.max_messages, "must be an int >= 1")


class StoredMessage(msgspec.Struct, frozen=True, array_like=True):
    """An application message as first sent: its frame and when (epoch seconds)."""

    msg_type: str
    frame: bytes
    sent_at: float


class SessionState(msgspec.Struct):
    """What a restarted session logs on with. Mutable: ``apply_record`` updates it in place."""

    next_sender_seq: int = 1
    next_target_seq: int = 1
    period_start: float = 0.0
    """Start (epoch seconds) of the session period of the last sequence reset (0: never reset)."""
    outbound: dict[int, StoredMessage] = msgspec.field(default_factory=dict)


class SeqSent(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """An admin message took sender seq ``seq`` (its content is never re-sent: gap-filled)."""

    seq: int


class AppSent(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """An application message took sender seq ``seq``; kept for resends while retention allows."""

    seq: int
    msg_type: str
    frame: bytes
    sent_at: float


class TargetAdvanced(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """Every inbound seq below ``next_target_seq`` has been handled."""

    next_target_seq: int


class SequencesReset(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """Both sequences start over at 1 for the session period starting at ``period_start``."""

    period_start: float


Record = Union[SeqSent, AppSent, TargetAdvanced, SequencesReset]  # noqa: UP007
RECORD_TYPES: Final = (SeqSent, AppSent, TargetAdvanced, SequencesReset)


def apply_record(state: SessionState, record: Record, retention: Retention) -> SessionState:
    """``state`` after ``record`` (updated in place and returned). Deterministic: replay gives
    the state the live session had."""
    # Dispatched on the exact type, the common records first: this runs for every message
    # sent, in the session and again in the store.
    kind = type(record)
    if kind is AppSent:
        app = cast(AppSent, record)
        seq = app.seq
        if seq >= state.next_sender_seq:
            state.next_sender_seq = seq + 1
        outbound = state.outbound
        outbound[seq] = StoredMessage(app.msg_type, app.frame, app.sent_at)
        horizon = app.sent_at - retention.max_age_seconds
        limit = retention.max_messages
        while outbound:
            oldest = next(iter(outbound))
            if len(outbound) > limit or outbound[oldest].sent_at < horizon:
                del outbound[oldest]
            else:
                break
        return state
    if kind is TargetAdvanced:
        target = cast(TargetAdvanced, record).next_target_seq
        if target > state.next_target_seq:
            state.next_target_seq = target
        return state
    match record:
        case SeqSent(seq):
            state.next_sender_seq = max(state.next_sender_seq, seq + 1)
        case SequencesReset(period_start):
            state.next_sender_seq = 1
            state.next_target_seq = 1
            state.period_start = period_start
            state.outbound.clear()
    return state


def copy_state(state: SessionState) -> SessionState:
    """An independent copy (the stored messages themselves are immutable and shared)."""
    return SessionState(
        state.next_sender_seq, state.next_target_seq, state.period_start, dict(state.outbound)
    )


_record_encoder: Final = msgspec.msgpack.Encoder()
_record_decoder: Final = msgspec.msgpack.Decoder(Record)
_state_decoder: Final = msgspec.msgpack.Decoder(SessionState)


class FixSessionStore:
    """One FIX session's records in a garrison journal stream (``fix-session/SENDER-TARGET``
    by default), with the state they fold to.

    Use: ``state = await store.load()`` once, give it to ``FixSession``, then
    ``await store.persist(step.records)`` for every step, before writing ``step.outbound``.
    One writer per stream: a second writer's ``persist`` raises garrison's ``SequenceConflict``.
    """

    def __init__(
        self,
        journal: Journal,
        stream: str,
        *,
        retention: Retention | None = None,
        snapshot_every: int = 1_000,
    ) -> None:
        if snapshot_every < 1:
            raise FixConfigError("snapshot_every", snapshot_every, "must be an int >= 1")
        self.journal = journal
        self.stream = stream
        self.retention = retention or Retention()
        self.snapshot_every = snapshot_every
        self._seq = 0
        self._snapshot_seq = 0
        self._state = SessionState()

    @staticmethod
    def stream_for(sender_comp_id: str, target_comp_id: str) -> str:
        """The default stream name of the session between two CompIDs."""
        return f"fix-session/{sender_comp_id}-{target_comp_id}"

    @property
    def state(self) -> SessionState:
        """The durable state: as of the last record loaded or persisted."""
        return self._state

    async def load(self) -> SessionState:
        """Read the snapshot and the records after it; returns a copy of the state for the
        session to run on (a fresh one for a new stream). Awaits the journal; raises what its
        decoder raises for a record that does not decode."""
        state = SessionState()
        after = 0
        snapshot = await self.journal.load_snapshot(self.stream)
        if snapshot is not None:
            after, payload = snapshot
            state = _state_decoder.decode(payload)
        self._snapshot_seq = after
        async for _seq, payload in self.journal.read(self.stream, after):
            apply_record(state, _record_decoder.decode(payload), self.retention)
        self._seq = await self.journal.highest_seq(self.stream)
        self._state = state
        return copy_state(state)

    async def persist(self, records: list[Record]) -> None:
        """Append ``records`` (all or none) and fold them into ``state``; returns once durable.
        Nothing to do for an empty list. Raises what the journal raises (``JournalWriteError``:
        unknown whether written; reload before going on)."""
        if not records:
            return
        self._seq = await self.journal.append(
            self.stream, [_record_encoder.encode(record) for record in records], self._seq
        )
        for record in records:
            apply_record(self._state, record, self.retention)
        if self._seq - self._snapshot_seq >= self.snapshot_every:
            await self.compact()

    async def compact(self) -> None:
        """Snapshot the state and delete the records it holds (the stream stays bounded)."""
        await self.journal.save_snapshot(self.stream, self._seq, _record_encoder.encode(self._state))
        await self.journal.delete_events(self.stream, self._seq)
        self._snapshot_seq = self._seq
