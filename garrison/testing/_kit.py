"""``ActorTestKit``: a node on virtual time with everything a test needs, pytest or not."""

from __future__ import annotations

import os
from types import TracebackType

from garrison._clock import ManualClock
from garrison._errors import InvalidConfig
from garrison._node import Node
from garrison.persistence import Journal
from garrison.testing._awaited import take_unawaited, unawaited_report
from garrison.testing._events import EventRecorder
from garrison.testing._faults import Faults
from garrison.testing._guard import NodeGuard
from garrison.testing._journal import TrackedJournal, tracked
from garrison.testing._probe import TestProbe
from garrison.testing._waiting import drive_to_completion

DEFAULT_SEED = 0

SHUTDOWN_VIRTUAL_LIMIT = 3600.0
"""Virtual seconds the kit lets a shutdown take (every actor's shutdown timeout fits)."""
SHUTDOWN_REAL_LIMIT = 30.0
"""Real seconds for what a shutdown waits on outside the loop (pools closing)."""


class ActorTestKit:
    """A running :class:`~garrison.Node` on a :class:`~garrison.ManualClock`, seeded, with a
    :class:`NodeGuard`, an :class:`EventRecorder` and :class:`Faults` linked to the guard.

    ``async with ActorTestKit(seed=7) as kit:`` — on leaving, faults are
    removed (processes killed and reaped), the guard is checked (unless the
    block raised), and the node is shut down. The pytest fixtures are this
    kit, one per test.

    Deterministic mode: the manual clock and ``Node(seed=...)`` remove the
    two sources of variation (time and ``node.random``); with the same code
    and seed, messages, crashes and restarts interleave the same way on every
    run, so a failing seed replays.

    ``journal`` (a Journal, or a path for a new SqliteJournal) becomes the
    node's journal, opened and closed with the node, as a
    :class:`TrackedJournal` so that its I/O takes no virtual time.
    """

    def __init__(
        self,
        *,
        name: str = "test",
        seed: int | None = DEFAULT_SEED,
        clock: ManualClock | None = None,
        allow_crashes: bool = False,
        allow_dead_letters: bool = False,
        journal: Journal | str | os.PathLike[str] | None = None,
    ) -> None:
        self.seed = seed
        self.clock = clock if clock is not None else ManualClock()
        self.journal: TrackedJournal | None = None if journal is None else tracked(journal, self.clock)
        """The node's journal as the kit gave it (``node.journal`` is a fault while one is installed)."""
        self.node = Node(name, clock=self.clock, seed=seed, handle_signals=False, journal=self.journal)
        self.guard = NodeGuard(self.node, allow_crashes=allow_crashes, allow_dead_letters=allow_dead_letters)
        self.events = EventRecorder(self.node)
        self.faults = Faults(self.guard)
        self._probes = 0

    async def start(self) -> ActorTestKit:
        """Enter the node (``async with`` does this)."""
        await self.node.__aenter__()
        return self

    async def open_journal(self, journal: Journal | str | os.PathLike[str]) -> TrackedJournal:
        """Give the running node a journal (a path means a new SqliteJournal there) and open it.

        Awaits the open. The node closes it when it shuts down, as if it had
        been passed to the constructor. Raises InvalidConfig if the node has
        a journal already.
        """
        if self.node.journal is not None:
            raise InvalidConfig("journal", journal, f"node {self.node.name!r} has a journal already")
        opened = tracked(journal, self.clock)
        await opened.open()
        self.journal = self.node.journal = opened
        return opened

    def probe(self, name: str | None = None) -> TestProbe:
        """A new :class:`TestProbe` on the node (``/probe``, ``/probe-2``, ... unless named)."""
        if name is None:
            self._probes += 1
            name = "probe" if self._probes == 1 else f"probe-{self._probes}"
        return TestProbe(self.node, name)

    async def close(self, *, check: bool = True) -> None:
        """Remove faults, check (if ``check``) that every expectation made was awaited and the
        guard, shut the node down, close the journal.

        Idempotent. The shutdown runs on virtual time: the clock is advanced timer by
        timer, so a message in flight finishes (or its shutdown timeout fires)
        without the test advancing it. Raises AssertionError from the guard
        after the node is down.
        """
        try:
            await self.faults.aclose()
            if check:
                unawaited = take_unawaited()
                if unawaited:
                    raise AssertionError(unawaited_report(unawaited))
                self.guard.check()
        finally:
            self.guard.close()
            try:
                await drive_to_completion(
                    self.clock,
                    self.node.shutdown(),
                    virtual_limit=SHUTDOWN_VIRTUAL_LIMIT,
                    real_limit=SHUTDOWN_REAL_LIMIT,
                )
            finally:
                self.events.close()
                if self.journal is not None:
                    # The node closed it, unless its shutdown failed part-way; a journal
                    # left open keeps its threads, and the test process, alive.
                    await self.journal.close()

    async def __aenter__(self) -> ActorTestKit:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close(check=exc_type is None)
