"""Journals in tests: journal I/O that takes no virtual time, and a journal that fails on cue.

Both wrap a real journal and delegate every call to it; nothing here stores
events itself.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from garrison._clock import Clock
from garrison._errors import InvalidConfig, JournalWriteError
from garrison._validate import check_count
from garrison.persistence import Ack, Journal, PackedEvents, QuarantinedEvent, SqliteJournal
from garrison.testing._injected import InjectedFault
from garrison.testing._waiting import outside_work

if TYPE_CHECKING:
    from garrison._node import Node
    from garrison.testing._guard import NodeGuard

T = TypeVar("T")

JournalFaultMode = Literal["before_write", "after_write"]
MODES: tuple[JournalFaultMode, ...] = ("before_write", "after_write")

JournalErrorSpec = BaseException | type[BaseException] | Callable[[str], BaseException] | None
"""What a failing append raises: an exception instance, an exception class (a
JournalWriteError class gets the stream and an InjectedFault as its cause;
another class, a message), a factory called with the stream name, or None for
JournalWriteError."""


class TrackedJournal:
    """A real journal whose calls take no virtual time in the kit.

    Every call is delegated to ``inner`` and counted as outside work of the
    node's clock while it runs (SQLite works on its own thread, which virtual
    time knows nothing about): on the manual clock, the kit's expectations
    and its shutdown wait for journal calls in flight before they fire the
    next timer, so an actor recovering from its journal is done recovering
    before ``events.expect(Started(...))`` gives up. ``ManualClock.advance``
    itself does not wait.

    Attributes that are not part of the Journal protocol (``path``,
    ``stats()``) are the inner journal's.
    """

    def __init__(self, inner: Journal, clock: Clock) -> None:
        self.inner = inner
        """The journal every call goes to."""
        self.clock = clock
        self._work = outside_work(clock)

    async def append(
        self, stream: str, events: Sequence[bytes], expected_seq: int, *, acks: Sequence[Ack] = ()
    ) -> int:
        return await self._work.run(self.inner.append(stream, events, expected_seq, acks=acks))

    async def read(self, stream: str, after_seq: int = 0) -> AsyncGenerator[tuple[int, bytes], None]:
        async for rows in self.read_batches(stream, after_seq):
            for row in rows:
                yield row

    def read_batches(self, stream: str, after_seq: int = 0) -> AsyncGenerator[list[tuple[int, bytes]], None]:
        return self._work.run_each(self.inner.read_batches(stream, after_seq))

    def read_packed(self, stream: str, after_seq: int = 0) -> AsyncGenerator[PackedEvents, None]:
        return self._work.run_each(self.inner.read_packed(stream, after_seq))

    async def highest_seq(self, stream: str) -> int:
        return await self._work.run(self.inner.highest_seq(stream))

    async def save_snapshot(self, stream: str, seq: int, state: bytes) -> None:
        await self._work.run(self.inner.save_snapshot(stream, seq, state))

    async def load_snapshot(self, stream: str) -> tuple[int, bytes] | None:
        return await self._work.run(self.inner.load_snapshot(stream))

    async def delete_events(self, stream: str, up_to_seq: int) -> None:
        await self._work.run(self.inner.delete_events(stream, up_to_seq))

    async def ack(self, stream: str, group: str, seq: int) -> None:
        await self._work.run(self.inner.ack(stream, group, seq))

    async def acked_seq(self, stream: str, group: str) -> int:
        return await self._work.run(self.inner.acked_seq(stream, group))

    async def replace_snapshot(self, stream: str, expected_seq: int | None, seq: int, state: bytes) -> bool:
        return await self._work.run(self.inner.replace_snapshot(stream, expected_seq, seq, state))

    async def quarantined(self, stream: str) -> list[QuarantinedEvent]:
        return await self._work.run(self.inner.quarantined(stream))

    async def open(self) -> TrackedJournal:
        await self._work.run(self.inner.open())
        return self

    async def close(self) -> None:
        await self._work.run(self.inner.close())

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class lacks; "inner" itself must not recurse.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.inner!r}>"


def tracked(journal: Journal | str | os.PathLike[str], clock: Clock) -> TrackedJournal:
    """``journal`` (a path means a new SqliteJournal there) as a TrackedJournal on ``clock``."""
    if isinstance(journal, TrackedJournal):
        return journal
    if isinstance(journal, str | os.PathLike):
        journal = SqliteJournal(journal)
    if not isinstance(journal, Journal):
        raise InvalidConfig("journal", journal, "must be a garrison Journal or a path for a SqliteJournal")
    return TrackedJournal(journal, clock)


class JournalFault(TrackedJournal):
    """Installed as ``node.journal`` in front of the node's journal: appends fail on cue.

    Among the appends that reach it (to ``stream``, or to any stream), the
    first ``after`` go through; the next ``times`` (None: all) fail, in
    ``mode``:

    - ``"before_write"``: nothing is written and ``append`` raises: the
      events are definitely not in the journal;
    - ``"after_write"``: the events are written (durable), then ``append``
      raises: the writer is not told, the ambiguous case an event-sourced
      actor survives by stopping and recovering from the journal.

    ``fired`` counts the appends it failed. ``remove()`` (or a ``with``
    block) restores the journal it stood in front of, and is idempotent.
    """

    def __init__(
        self,
        node: Node,
        *,
        after: int,
        times: int | None,
        mode: JournalFaultMode,
        error: JournalErrorSpec,
        stream: str | None,
        guard: NodeGuard | None,
    ) -> None:
        check_count("after", after, minimum=0)  # appends that go through first
        check_count("times", times, allow_none=True)  # None: every append
        if mode not in MODES:
            raise InvalidConfig("mode", mode, f"must be one of {MODES}")
        if stream is not None and (not isinstance(stream, str) or not stream):
            raise InvalidConfig("stream", stream, "must be a stream name, or None for every stream")
        inner = node.journal
        if inner is None:
            raise InvalidConfig(
                "journal",
                None,
                f"node {node.name!r} has no journal to fail: use the `journal` fixture, "
                "ActorTestKit(journal=...) or Node(journal=...)",
            )
        super().__init__(inner, node.clock)
        self.node = node
        self.after = after
        self.times = times
        self.mode: JournalFaultMode = mode
        self.stream = stream
        self.matched = 0
        """Appends to ``stream`` that reached the fault while it was active."""
        self.fired = 0
        """Appends it failed so far."""
        self._error = error
        self._guard = guard
        self._active = True
        node.journal = self

    @property
    def active(self) -> bool:
        return self._active

    def remove(self) -> None:
        """Put the journal it stood in front of back; appends go through from now on."""
        if not self._active:
            return
        self._active = False
        if self.node.journal is self:
            self.node.journal = self.inner
            return
        # Another wrapper was installed in front of this one later: unlink from the middle.
        current = self.node.journal
        while isinstance(current, TrackedJournal):
            if current.inner is self:
                current.inner = self.inner
                return
            current = current.inner

    def __enter__(self) -> JournalFault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    async def append(
        self, stream: str, events: Sequence[bytes], expected_seq: int, *, acks: Sequence[Ack] = ()
    ) -> int:
        if not self._strikes(stream):
            return await super().append(stream, events, expected_seq, acks=acks)
        if self.mode == "after_write":
            await super().append(stream, events, expected_seq, acks=acks)
        self.fired += 1
        error = self._exception(stream)
        if self._guard is not None:
            self._guard.injected_error(stream, error)
        raise error

    def _strikes(self, stream: str) -> bool:
        if not self._active or (self.stream is not None and stream != self.stream):
            return False
        self.matched += 1
        return self.matched > self.after and (self.times is None or self.fired < self.times)

    def _exception(self, stream: str) -> BaseException:
        error = self._error
        text = f"injected journal failure {self.mode.replace('_', ' ')} of an append to {stream!r}"
        if error is None:
            return JournalWriteError(stream, InjectedFault(text))
        if isinstance(error, BaseException):
            return error
        if isinstance(error, type) and issubclass(error, JournalWriteError):
            return error(stream, InjectedFault(text))
        if isinstance(error, type) and issubclass(error, BaseException):
            return error(text)
        factory = cast("Callable[[str], BaseException]", error)
        return factory(stream)

    def __repr__(self) -> str:
        target = "every stream" if self.stream is None else repr(self.stream)
        times = "every append" if self.times is None else f"{self.times} append(s)"
        state = "active" if self._active else "removed"
        return (
            f"<JournalFault {self.mode} on {target} after {self.after} append(s), {times}, "
            f"fired {self.fired}, {state}>"
        )
