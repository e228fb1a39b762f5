"""Watching the event loop itself: lag monitor, culprit sampler, stall watchdog.

Supervision inside the loop cannot save a loop that is itself blocked, so
this part measures *real* time, not the node's clock:

- the **lag monitor** is a task that sleeps ``interval`` and records how late
  it woke (p50/p99/max over a window, and a cumulative histogram);
- the **watchdog thread** notices when the loop has not ticked for a while,
  samples which task is running (actors run as tasks named after their
  path, so no per-message bookkeeping is needed), and after
  ``stall_timeout`` dumps every thread's stack with faulthandler, logs the
  running actor, and optionally ends the process with ``STALL_EXIT_CODE``.
"""

from __future__ import annotations

import asyncio
import faulthandler
import math
import os
import tempfile
import threading
import time
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from garrison._exitcodes import ExitCode
from garrison._validate import check_count, check_seconds

if TYPE_CHECKING:
    from loguru import Logger

STALL_EXIT_CODE = ExitCode.STALLED
"""Exit code of a process the stall watchdog ended (so a process supervisor restarts it)."""

LAG_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


@dataclass(frozen=True, slots=True)
class LoopGuard:
    """How a node watches its own loop (real time, not the node clock).

    ``interval``: how often the lag monitor wakes. ``warn_after``: lag that
    logs a warning naming the actor that was running. ``stall_timeout``:
    seconds without a tick before the watchdog dumps every stack (None: no
    watchdog dump). ``exit_on_stall``: then also end the process with
    STALL_EXIT_CODE. ``window``: samples kept for p50/p99/max.
    """

    interval: float = 0.1
    warn_after: float = 0.1
    stall_timeout: float | None = 10.0
    exit_on_stall: bool = False
    window: int = 600

    def __post_init__(self) -> None:
        check_seconds("LoopGuard.interval", self.interval)
        check_seconds("LoopGuard.warn_after", self.warn_after)
        check_seconds("LoopGuard.stall_timeout", self.stall_timeout, allow_none=True)
        check_count("LoopGuard.window", self.window)


@dataclass(frozen=True, slots=True)
class LagStats:
    """Loop lag over the recent window, and since start."""

    samples: int
    p50: float
    p99: float
    max: float
    max_ever: float
    buckets: tuple[tuple[float, int], ...]
    """Histogram since start (not windowed): (upper bound, count in that bucket alone),
    last bound +inf. Prometheus wants running totals: add them up in bound order."""
    sum: float
    count: int


def _task_path(task: asyncio.Task[object] | None) -> str | None:
    if task is None:
        return None
    name = task.get_name()
    return name.removeprefix("garrison:") if name.startswith("garrison:") else f"task {name}"


class LoopMonitor:
    """The lag monitor task plus the watchdog thread of one node."""

    def __init__(self, guard: LoopGuard, logger: Logger, node_name: str) -> None:
        self.guard = guard
        self._logger = logger
        self._node_name = node_name
        self.last_tick = time.monotonic()
        """time.monotonic() of the monitor's last wake-up: health reads it from any thread."""
        self.stalls = 0
        self._recent: deque[float] = deque(maxlen=guard.window)
        self._counts = [0] * (len(LAG_BUCKETS) + 1)
        self._sum = 0.0
        self._max_ever = 0.0
        self._culprit: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.last_tick = time.monotonic()
        self._task = self._loop.create_task(self._run(), name="garrison-loop-monitor")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, name=f"garrison-watchdog-{self._node_name}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
            self._thread = None

    # -- in the loop ------------------------------------------------------------

    async def _run(self) -> None:
        interval = self.guard.interval
        while True:
            expected = time.monotonic() + interval
            await asyncio.sleep(interval)
            now = time.monotonic()
            self.last_tick = now
            self.record(max(0.0, now - expected))

    def record(self, lag: float) -> None:
        self._recent.append(lag)
        self._counts[bisect_left(LAG_BUCKETS, lag)] += 1
        self._sum += lag
        self._max_ever = max(self._max_ever, lag)
        culprit, self._culprit = self._culprit, None
        if lag >= self.guard.warn_after:
            self._logger.warning(
                "event loop of node {node} was blocked for {lag:.3f}s; running: {actor}",
                node=self._node_name,
                lag=lag,
                actor=culprit or "unknown (no actor seen running)",
                blocked_actor=culprit,
            )

    def stats(self) -> LagStats:
        recent = sorted(self._recent)
        count = len(recent)

        def quantile(q: float) -> float:
            # Nearest rank: the smallest sample with at least q of the window at or below it.
            rank = math.ceil(round(q * count, 9))
            return recent[min(count, max(rank, 1)) - 1] if count else 0.0

        bounds = (*LAG_BUCKETS, float("inf"))
        return LagStats(
            samples=count,
            p50=quantile(0.5),
            p99=quantile(0.99),
            max=recent[-1] if recent else 0.0,
            max_ever=self._max_ever,
            buckets=tuple(zip(bounds, self._counts, strict=True)),
            sum=self._sum,
            count=sum(self._counts),
        )

    # -- in the watchdog thread ------------------------------------------------------

    def _watch(self) -> None:
        guard = self.guard
        sample_every = min(guard.interval / 2, 0.02)
        blocked_after = guard.interval * 1.5 + sample_every
        dumped_for: float | None = None
        pause = sample_every
        while not self._stop.wait(pause):
            tick = self.last_tick
            silent_for = time.monotonic() - tick
            if silent_for < blocked_after:
                # The loop ticks: sleep until a stall could have begun, not a sample
                # period. Each wake-up takes the GIL from the loop's thread.
                pause = blocked_after - silent_for
                continue
            pause = sample_every
            loop = self._loop
            if loop is None or loop.is_closed():
                return  # it will never tick again: nothing left to watch
            if not loop.is_running():
                continue  # stopped between run_until_complete calls: idle, not stalled
            running = _task_path(asyncio.current_task(loop))
            if running is not None and self._culprit is None:
                self._culprit = running
            if guard.stall_timeout is not None and silent_for >= guard.stall_timeout and dumped_for != tick:
                dumped_for = tick
                self.stalls += 1
                self._dump(silent_for, running)
                if guard.exit_on_stall:
                    self._logger.critical(
                        "node {node}: ending the process (exit code {code}) so it is restarted",
                        node=self._node_name,
                        code=STALL_EXIT_CODE,
                    )
                    os._exit(STALL_EXIT_CODE)

    def _dump(self, silent_for: float, running: str | None) -> None:
        with tempfile.TemporaryFile(mode="w+") as sink:
            faulthandler.dump_traceback(file=sink, all_threads=True)
            sink.seek(0)
            stacks = sink.read()
        self._logger.error(
            "event loop of node {node} has not ticked for {silent:.1f}s; running actor: {actor}\n{stacks}",
            node=self._node_name,
            silent=silent_for,
            actor=running or "unknown",
            stacks=stacks,
            blocked_actor=running,
        )
