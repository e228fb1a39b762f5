"""Injectable time: every timer in the runtime reads the node's clock.

``MonotonicClock`` is real time. ``ManualClock`` is virtual time for tests:
nothing moves until ``await clock.advance(seconds)``, which fires every timer
that falls due, in deadline order, letting the loop settle after each one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol

from garrison._errors import InvalidConfig


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Clock:
    """What the runtime needs from time.

    ``now()`` is monotonic seconds; ``call_later`` schedules a plain callback
    on the running loop; ``sleep`` awaits a delay. All three read the same
    time base.
    """

    now: Callable[[], float]
    slice_time: Callable[[], float] = time.perf_counter
    """What an actor's slice of the loop is measured in, for ``throughput_deadline``:
    real time on a real clock (fairness is about the real loop); a constant on a
    manual clock, so that slices end by message count alone and a seeded test
    replays the same interleaving however fast the machine runs it. A clock of
    your own inherits real time."""

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Cancellable:
        raise NotImplementedError

    async def sleep(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        handle = self.call_later(delay, _resolve, future)
        try:
            await future
        finally:
            handle.cancel()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _no_time() -> float:
    return 0.0


class MonotonicClock(Clock):
    """Real time: ``time.monotonic`` and the running loop's timers."""

    def __init__(self) -> None:
        # The builtin itself, not a method wrapping it: mailboxes call it per message.
        self.now = time.monotonic

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Cancellable:
        return asyncio.get_running_loop().call_later(max(delay, 0.0), callback, *args)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)


class _ManualTimer:
    __slots__ = ("args", "callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock(Clock):
    """Virtual time for tests. Time stands still until :meth:`advance`.

    Timers fire in deadline order (ties in scheduling order), each with
    ``now()`` equal to its deadline, and the loop is allowed to settle after
    each one, so work a timer triggers (a restart, a retry that schedules the
    next timer) happens inside the same ``advance`` when it falls due.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._sequence = itertools.count()
        self.now = self._read
        self.slice_time = _no_time

    def _read(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Cancellable:
        timer = _ManualTimer(self._now + max(delay, 0.0), callback, args)
        heapq.heappush(self._timers, (timer.deadline, next(self._sequence), timer))
        return timer

    @property
    def pending_timers(self) -> int:
        """Timers scheduled and not yet fired or cancelled."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)

    def next_deadline(self) -> float | None:
        """The virtual time of the next live timer, or None when none is scheduled."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    async def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds``, firing every timer that falls due.

        Awaits: the loop runs between timers. Raises InvalidConfig for a
        negative amount (virtual time never goes backwards).
        """
        if seconds < 0:
            raise InvalidConfig("seconds", seconds, "virtual time only moves forward; pass >= 0")
        target = self._now + seconds
        await settle()
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > target:
                break
            _, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, timer.deadline)
            timer.callback(*timer.args)
            await settle()
        self._now = target
        await settle()

    async def run_until_idle(self, max_seconds: float = 3600.0) -> None:
        """Fire timers one after another until none is left within ``max_seconds``."""
        limit = self._now + max_seconds
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > limit:
                return
            await self.advance(deadline - self._now)


async def settle(max_rounds: int = 10_000) -> None:
    """Yield to the loop until it has nothing ready to run (bounded).

    Uses the standard loop's ready queue when it is visible; other loops get a
    fixed number of yields.
    """
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    if ready is None:
        for _ in range(64):
            await asyncio.sleep(0)
        return
    for _ in range(max_rounds):
        await asyncio.sleep(0)
        if not ready:
            return
