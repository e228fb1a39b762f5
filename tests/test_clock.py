"""The injectable clock: virtual time that moves only when told, and real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from garrison import Actor, Clock, InvalidConfig, ManualClock, MonotonicClock, Node
from garrison._clock import Cancellable


async def test_manual_clock_stands_still_until_advanced() -> None:
    clock = ManualClock(start=100.0)
    assert clock.now() == 100.0
    await asyncio.sleep(0)
    assert clock.now() == 100.0
    await clock.advance(2.5)
    assert clock.now() == 102.5


async def test_manual_clock_fires_due_timers_in_deadline_order_with_now_at_each_deadline() -> None:
    clock = ManualClock()
    fired: list[tuple[str, float]] = []
    clock.call_later(3.0, lambda: fired.append(("c", clock.now())))
    clock.call_later(1.0, lambda: fired.append(("a", clock.now())))
    clock.call_later(2.0, lambda: fired.append(("b", clock.now())))
    await clock.advance(10.0)
    assert fired == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.now() == 10.0


async def test_manual_clock_fires_timers_with_equal_deadlines_in_scheduling_order() -> None:
    clock = ManualClock()
    fired: list[int] = []
    for index in range(5):
        clock.call_later(1.0, fired.append, index)
    await clock.advance(1.0)
    assert fired == [0, 1, 2, 3, 4]


async def test_manual_clock_does_not_fire_timers_beyond_the_target() -> None:
    clock = ManualClock()
    fired: list[str] = []
    clock.call_later(1.0, fired.append, "due")
    clock.call_later(1.5, fired.append, "later")
    await clock.advance(1.0)
    assert fired == ["due"]
    assert clock.pending_timers == 1
    assert clock.next_deadline() == 1.5
    await clock.advance(0.5)
    assert fired == ["due", "later"]
    assert clock.next_deadline() is None


async def test_manual_clock_cancelled_timer_never_fires() -> None:
    clock = ManualClock()
    fired: list[str] = []
    handle = clock.call_later(1.0, fired.append, "cancelled")
    clock.call_later(2.0, fired.append, "kept")
    handle.cancel()
    assert clock.pending_timers == 1
    await clock.advance(5.0)
    assert fired == ["kept"]


async def test_manual_clock_fires_a_timer_scheduled_by_a_timer_within_the_same_advance() -> None:
    clock = ManualClock()
    fired: list[float] = []

    def first() -> None:
        fired.append(clock.now())
        clock.call_later(1.0, lambda: fired.append(clock.now()))

    clock.call_later(1.0, first)
    await clock.advance(2.0)
    assert fired == [1.0, 2.0]


async def test_manual_clock_lets_the_loop_run_work_a_timer_wakes_before_the_next_timer() -> None:
    clock = ManualClock()
    order: list[str] = []
    woken = asyncio.Event()

    async def sleeper() -> None:
        await woken.wait()
        order.append("task ran")

    task = asyncio.create_task(sleeper())
    clock.call_later(1.0, woken.set)
    clock.call_later(2.0, order.append, "second timer")
    await clock.advance(2.0)
    assert order == ["task ran", "second timer"]
    await task


async def test_manual_clock_advance_zero_fires_timers_due_now() -> None:
    clock = ManualClock()
    fired: list[str] = []
    clock.call_later(0.0, fired.append, "now")
    clock.call_later(-1.0, fired.append, "negative delay counts as now")
    await clock.advance(0)
    assert fired == ["now", "negative delay counts as now"]


async def test_manual_clock_refuses_to_go_backwards() -> None:
    clock = ManualClock()
    with pytest.raises(InvalidConfig) as raised:
        await clock.advance(-1.0)
    assert raised.value.field == "seconds"
    assert "seconds=-1.0" in str(raised.value)
    assert clock.now() == 0.0


async def test_manual_clock_sleep_returns_only_once_virtual_time_reaches_it() -> None:
    clock = ManualClock()
    task = asyncio.create_task(clock.sleep(5.0))
    await clock.advance(4.9)
    assert not task.done()
    await clock.advance(0.1)
    assert task.done()
    await task


async def test_manual_clock_cancelled_sleep_leaves_no_live_timer() -> None:
    clock = ManualClock()
    task = asyncio.create_task(clock.sleep(5.0))
    await asyncio.sleep(0)
    assert clock.pending_timers == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending_timers == 0


async def test_manual_clock_run_until_idle_fires_every_timer_within_the_limit() -> None:
    clock = ManualClock()
    fired: list[float] = []
    for delay in (1.0, 30.0, 7200.0):
        clock.call_later(delay, lambda: fired.append(clock.now()))
    await clock.run_until_idle(max_seconds=100.0)
    assert fired == [1.0, 30.0]
    assert clock.now() == 30.0


async def test_monotonic_clock_reads_real_time_and_fires_real_timers() -> None:
    clock = MonotonicClock()
    before = clock.now()
    fired = asyncio.Event()
    clock.call_later(0.0, fired.set)
    await asyncio.wait_for(fired.wait(), timeout=5.0)
    await asyncio.wait_for(clock.sleep(0.0), timeout=5.0)
    assert clock.now() >= before


class LoopClock(Clock):
    """A clock of a user's own: only ``now`` and ``call_later``, as Clock asks."""

    def __init__(self) -> None:
        self.now = time.monotonic

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Cancellable:
        return asyncio.get_running_loop().call_later(delay, callback, *args)


class Echo(Actor):
    async def on_receive(self, message: Any) -> Any:
        return message


async def test_a_clock_of_your_own_runs_actors_with_real_time_slices() -> None:
    assert LoopClock().slice_time is time.perf_counter
    async with Node("own-clock", clock=LoopClock(), handle_signals=False) as node:
        echo = await node.spawn(Echo, name="echo")
        assert await echo.ask("hi", timeout=5.0) == "hi"
