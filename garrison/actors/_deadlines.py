"""Ask timeouts without a loop timer per ask."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from garrison._clock import Cancellable, Clock
from garrison._errors import AskTimeout

Entry = tuple[float, "asyncio.Future[Any]", str, Any]
"""(deadline on the node clock, reply future, actor path, message)."""

MIN_SWEEP = 64


class _Lane:
    __slots__ = ("entries", "sweep_at", "timer")

    def __init__(self) -> None:
        self.entries: deque[Entry] = deque()
        self.timer: Cancellable | None = None
        self.sweep_at = MIN_SWEEP


class AskDeadlines:
    """Fails each pending ask with AskTimeout once its timeout has passed on the node clock.

    Asks made with the same timeout fall due in the order they were made
    (the clock never goes back), so each distinct timeout keeps a FIFO with
    one timer armed for its head, where a loop timer per ask would cost more
    to schedule and cancel than the rest of a local round trip. Answered
    asks leave lazily: from the head as new asks arrive, and in a sweep
    whenever a FIFO has doubled since the last one, so it holds at most
    about twice the asks outstanding.
    """

    __slots__ = ("_clock", "_lanes")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lanes: dict[float, _Lane] = {}

    def add(self, reply: asyncio.Future[Any], timeout: float, path: str, message: Any) -> None:
        """Fail ``reply`` with AskTimeout ``timeout`` seconds from now unless it is done by then."""
        lane = self._lanes.get(timeout)
        if lane is None:
            lane = self._lanes[timeout] = _Lane()
        entries = lane.entries
        while entries and entries[0][1].done():
            entries.popleft()
        entries.append((self._clock.now() + timeout, reply, path, message))
        if lane.timer is None:
            lane.timer = self._clock.call_later(timeout, self._expire, timeout)
        elif len(entries) >= lane.sweep_at:
            lane.entries = deque(entry for entry in entries if not entry[1].done())
            lane.sweep_at = max(MIN_SWEEP, 2 * len(lane.entries))

    def _expire(self, timeout: float) -> None:
        lane = self._lanes[timeout]
        lane.timer = None
        entries = lane.entries
        now = self._clock.now()
        while entries:
            deadline, reply, path, message = entries[0]
            if not reply.done():
                if deadline > now:
                    lane.timer = self._clock.call_later(deadline - now, self._expire, timeout)
                    return
                reply.set_exception(AskTimeout(path, timeout, type(message).__name__))
            entries.popleft()
        del self._lanes[timeout]
