"""``EventRecorder``: the lifecycle events of a node during a test, with expectations."""

from __future__ import annotations

from garrison._node import Node
from garrison.actors import LifecycleEvent
from garrison.testing._awaited import expectation
from garrison.testing._matching import Matcher, describe, matches
from garrison.testing._waiting import Notifier, check_within, clock_kind, wait_until

SHOWN_IN_FAILURES = 20
"""How many of the events seen are listed when an expectation fails."""


class EventRecorder:
    """Records every lifecycle event a node publishes (Started, Failed,
    Restarted, Stopped, GaveUp), from creation until :meth:`close`.

    ``await events.expect(Restarted(path="/root/feed"))`` waits for the first
    matching event after the one the previous ``expect`` returned, so a
    sequence of ``expect`` calls asserts order; events in between are skipped.
    A template event matches on the fields given (those that differ from their
    defaults); types and predicates work too. ``within`` is node-clock time,
    advanced while waiting on the manual clock.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.all: list[LifecycleEvent] = []
        """Every event recorded, in publication order."""
        self._cursor = 0
        self._notifier = Notifier()
        self._unsubscribe = node.events.subscribe(self._record)

    def _record(self, event: LifecycleEvent) -> None:
        self.all.append(event)
        self._notifier.notify()

    def of(self, matcher: Matcher) -> list[LifecycleEvent]:
        """Every recorded event that matches, in order."""
        return [event for event in self.all if matches(matcher, event, template=True)]

    def _find(self, matcher: Matcher) -> int | None:
        for index in range(self._cursor, len(self.all)):
            if matches(matcher, self.all[index], template=True):
                return index
        return None

    @expectation
    async def expect(self, matcher: Matcher, within: float = 3.0) -> LifecycleEvent:
        """Return the first matching event after the last one expected; wait for it if needed.

        Raises AssertionError, listing the events seen, if none arrives within
        ``within`` seconds of node-clock time.
        """
        within = check_within("within", within)
        clock = self.node.clock
        found = await wait_until(
            clock, lambda: self._find(matcher) is not None, within, self._notifier.changed
        )
        index = self._find(matcher)
        if not found or index is None:
            seen = self.all[self._cursor :]
            shown = "\n".join(f"  {event!r}" for event in seen[-SHOWN_IN_FAILURES:]) or "  (none)"
            raise AssertionError(
                f"expected an event {describe(matcher, template=True)} within {within}s of "
                f"{clock_kind(clock)} time; events since the last expectation:\n{shown}"
            )
        self._cursor = index + 1
        return self.all[index]

    @expectation
    async def expect_no_event(self, matcher: Matcher, within: float = 0.1) -> None:
        """Assert that no matching event arrives (after the last one expected) within ``within``."""
        within = check_within("within", within)
        clock = self.node.clock
        if await wait_until(clock, lambda: self._find(matcher) is not None, within, self._notifier.changed):
            index = self._find(matcher)
            assert index is not None
            raise AssertionError(
                f"expected no event {describe(matcher, template=True)} for {within}s, "
                f"but got {self.all[index]!r}"
            )

    def close(self) -> None:
        """Stop recording (idempotent); what was recorded stays readable."""
        self._unsubscribe()
