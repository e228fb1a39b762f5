"""``EventSourcedActor``: state as a fold over journaled events."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import msgspec

from garrison._errors import FatalError, InvalidConfig, PersistFailed
from garrison._validate import check_count
from garrison.actors import Actor
from garrison.persistence._codec import EventCodec, StateCodec
from garrison.persistence._replay import replay_events
from garrison.persistence._retention import trim_to_snapshot
from garrison.persistence._upcast import Upcaster

if TYPE_CHECKING:
    from garrison.persistence._journal import Journal, QuarantinedEvent

S = TypeVar("S")


class EventSourcedActor(Actor, Generic[S]):
    """An actor whose state is rebuilt from its journal on every start and restart.

    Declare ``events`` (the msgspec Struct types it persists, each with
    ``tag=True``), ``initial_state()`` and a pure ``apply(state, event)``.
    In a handler, ``await self.persist(*events)`` journals the events first
    and applies them after: state never runs ahead of what is durable, and a
    multi-event persist is all or nothing. If the journal cannot confirm the
    write, ``persist`` raises PersistFailed, which stops the actor even
    inside an ``ask``; its supervisor restarts it and recovery reads back
    what was written.

    Recovery runs before ``on_start``: the latest snapshot, then the events
    after it, streamed in bounded batches. Messages arriving meanwhile wait
    in the mailbox. An event that does not decode fails the start with
    EventDecodeError naming the stream and seq; nothing is skipped.

    Every event is proven to decode back as itself before it is written: one
    that would not (a msgspec Struct does not check its field types when it is
    constructed) raises InvalidEvent from ``persist``, naming the field and its
    value; nothing is written and the actor keeps running. ``upcasters`` read
    the stored events of older versions of the event types (older tags) as the
    current ones.

    ``persistence_id`` names the stream (default: the actor's path); one
    live writer per id. ``snapshot_every=N`` saves a snapshot every N
    events (a failed snapshot is logged, not fatal); with
    ``trim_after_snapshot = True`` the events a snapshot holds are then
    deleted (``trim_to_snapshot``: never one past it; a failed trim is
    logged, and the next snapshot's trim deletes them). The journal is the
    node's (``Node(journal=...)``) unless ``journal()`` is overridden; under a
    ``singleton=True`` child of a cluster it is fenced with the singleton's token
    (``node.journal_for``): a stale owner's persist fails with PersistFailed(Fenced).
    """

    events: ClassVar[Sequence[type[msgspec.Struct]]] = ()
    upcasters: ClassVar[Sequence[Upcaster]] = ()
    """How stored events of older tags become ``events`` types on replay (schema evolution)."""
    snapshot_every: ClassVar[int | None] = None
    trim_after_snapshot: ClassVar[bool] = False
    state_type: ClassVar[Any] = None
    """The snapshot's type for decoding; default ``type(self.initial_state())``."""
    persistence_id: str | None = None

    _codec: ClassVar[EventCodec | None] = None
    _state: S
    _seq: int = 0
    _trimmed_through: int | None = None
    """Where this incarnation last trimmed its stream (None: not yet, read where it starts)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "events" in cls.__dict__ or "upcasters" in cls.__dict__:
            cls._codec = EventCodec(cls.events, upcasters=cls.upcasters)
        every = cls.__dict__.get("snapshot_every")
        check_count(f"{cls.__qualname__}.snapshot_every", every, allow_none=True)
        trim = cls.__dict__.get("trim_after_snapshot", False)
        if not isinstance(trim, bool):
            raise InvalidConfig(f"{cls.__qualname__}.trim_after_snapshot", trim, "must be True or False")

    # -- what subclasses write -------------------------------------------------

    def initial_state(self) -> S:
        """The state of a stream with no events."""
        raise NotImplementedError(f"{type(self).__qualname__} must define initial_state()")

    def apply(self, state: S, event: Any) -> S:
        """Return the state after ``event``. Pure: it also runs during replay."""
        raise NotImplementedError(f"{type(self).__qualname__} must define apply(state, event)")

    # -- what they use ---------------------------------------------------------------

    @property
    def state(self) -> S:
        return self._state

    @property
    def last_seq(self) -> int:
        """The sequence number of the last event applied."""
        return self._seq

    @property
    def stream(self) -> str:
        return self.persistence_id or self.ctx.path

    def journal(self) -> Journal:
        # Under a cluster singleton: the node's journal fenced with the singleton's token.
        journal: Journal | None = self.ctx.node.journal_for(self.ctx.path)
        if journal is None:
            raise InvalidConfig(
                "journal",
                None,
                f"{type(self).__qualname__} needs a journal: Node(journal=SqliteJournal(...))",
            )
        return journal

    async def persist(self, *events: Any) -> None:
        """Journal ``events`` atomically, then apply them in order. Awaits the durable write.

        Raises InvalidConfig for an unregistered event type, InvalidEvent
        for an event that would not decode back as itself (both: nothing
        written, the actor keeps running, an asker gets the error), and
        PersistFailed when the journal cannot confirm the write. If
        ``apply`` raises once the events are durable, FatalError: this
        incarnation's state is behind the journal, so it stops (even in an
        ``ask``) and its restart replays them.
        """
        if not events:
            return
        codec = self._event_codec()
        stream = self.stream
        payloads = [codec.encode(event, stream) for event in events]
        previous = self._seq
        try:
            highest = await self.journal().append(stream, payloads, previous)
        except Exception as error:
            raise PersistFailed(stream, error) from error
        state = self._state
        for offset, event in enumerate(events, start=previous + 1):
            try:
                state = self.apply(state, event)
            except Exception as error:
                raise FatalError(
                    f"apply({type(event).__name__}) raised on stream {stream!r} seq {offset}, "
                    f"which is already journaled ({type(error).__name__}: {error}); "
                    "the actor stops and replays it on restart"
                ) from error
        self._state = state
        self._seq = highest
        every = self.snapshot_every
        if every is not None and highest // every > previous // every:
            await self._save_snapshot()

    async def _save_snapshot(self) -> None:
        try:
            await self.journal().save_snapshot(
                self.stream, self._seq, self._state_codec().encode(self._state)
            )
        except Exception:
            self.ctx.logger.opt(exception=True).warning(
                "snapshot of {stream} at seq {seq} failed; recovery replays more events",
                stream=self.stream,
                seq=self._seq,
            )
            return
        if self.trim_after_snapshot:
            try:
                start = None if self._trimmed_through is None else self._trimmed_through + 1
                await trim_to_snapshot(self.journal(), self.stream, self._seq, from_seq=start)
                self._trimmed_through = self._seq
            except Exception:
                self.ctx.logger.opt(exception=True).warning(
                    "trimming {stream} up to its snapshot at seq {seq} failed; the next snapshot trims again",
                    stream=self.stream,
                    seq=self._seq,
                )

    # -- recovery ---------------------------------------------------------------------

    async def on_recover(self) -> None:
        """Rebuild the state: the last snapshot, then the events after it, before ``on_start``."""
        journal = self.journal()
        stream = self.stream
        codec = self._event_codec()
        state: S
        snapshot = await journal.load_snapshot(stream)
        if snapshot is not None:
            seq, payload = snapshot
            state = self._state_codec().decode(payload, stream, seq)
        else:
            seq, state = 0, self.initial_state()
        apply = self.apply
        replayed_after = seq
        async with aclosing(replay_events(journal, stream, codec, seq)) as replay:
            async for first_seq, events in replay:
                for event in events:
                    state = apply(state, event)
                seq = first_seq + len(events) - 1
        self._state = state
        set_aside = [event for event in await journal.quarantined(stream) if event.seq > replayed_after]
        if set_aside:
            # The stream's seqs go on after them: the next persist follows the highest.
            self._seq = max(seq, set_aside[-1].seq)
            self.on_quarantined(set_aside)
        else:
            self._seq = seq

    def on_quarantined(self, events: list[QuarantinedEvent]) -> None:
        """Recovery skipped ``events``, set aside by ``garrison journal quarantine``: called
        once the state is rebuilt without them, before ``on_start``.

        The default logs a warning naming their seqs and reasons, and the actor starts.
        Override to decide otherwise: raise to refuse to start (the supervisor sees a
        failed start), or persist a compensating event from ``on_start``.
        """
        self.ctx.logger.warning(
            "{stream}: recovery skipped {count} quarantined event(s): {events}",
            stream=self.stream,
            count=len(events),
            events=", ".join(f"seq {event.seq} ({event.reason})" for event in events[:10]),
        )

    def _event_codec(self) -> EventCodec:
        codec = self._codec
        if codec is None:
            raise InvalidConfig(
                f"{type(self).__qualname__}.events", (), "declare the event types this actor persists"
            )
        return codec

    def _state_codec(self) -> StateCodec:
        cls = type(self)
        codec: StateCodec | None = cls.__dict__.get("_garrison_state_codec")
        if codec is None:
            state_type = cls.state_type if cls.state_type is not None else type(self.initial_state())
            codec = StateCodec(state_type)
            cls._garrison_state_codec = codec  # type: ignore[attr-defined]
        return codec
