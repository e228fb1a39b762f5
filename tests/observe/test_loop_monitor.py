"""The loop guard: the lag monitor names the actor that blocked the loop, the stall watchdog
dumps every stack (in a child process) and can end the process with STALL_EXIT_CODE.

The guard measures real time on purpose, so these tests block the loop for
real with ``time.sleep`` in a handler: short, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from loguru import logger

from garrison import InvalidConfig, Node
from garrison.observe import LAG_BUCKETS, STALL_EXIT_CODE, LoopGuard, LoopMonitor

from ._blocking_node import STALL_BLOCK_SECONDS, Sleep, Sleeper

if TYPE_CHECKING:
    from loguru import Record

SCRIPT = Path(__file__).with_name("_blocking_node.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def warnings_logged() -> Iterator[list[Record]]:
    """Every loguru record at WARNING or above emitted during the test."""
    records: list[Record] = []
    sink_id = logger.add(lambda message: records.append(message.record), level="WARNING")
    try:
        yield records
    finally:
        logger.remove(sink_id)


def lag_warnings(records: list[Record], naming: str | None = None) -> list[Record]:
    """The lag warnings logged (those naming ``naming`` as the blocker, if given)."""
    return [
        record
        for record in records
        if "was blocked for" in record["message"]
        and (naming is None or record["extra"]["blocked_actor"] == naming)
    ]


async def wait_for_lag_warning(records: list[Record], naming: str, timeout: float = 2.0) -> Record:
    # Filtered by blocker: a busy test machine may add a stray warning of its own.
    deadline = time.monotonic() + timeout
    while not lag_warnings(records, naming):
        assert time.monotonic() < deadline, f"no lag warning naming {naming} within {timeout}s: {records}"
        await asyncio.sleep(0.01)
    [warning] = lag_warnings(records, naming)
    return warning


# -- the lag monitor, live --------------------------------------------------------------


async def test_a_handler_that_sleeps_half_a_second_trips_the_lag_monitor_naming_that_actor(
    warnings_logged: list[Record],
) -> None:
    guard = LoopGuard(interval=0.02, warn_after=0.2, stall_timeout=None)
    async with Node("lagged", guard=guard, handle_signals=False) as node:
        sleeper = await node.spawn(Sleeper, name="sleeper")
        assert await sleeper.ask(Sleep(0.5), timeout=5.0) == "slept"
        warning = await wait_for_lag_warning(warnings_logged, "/sleeper")
        assert node.loop_monitor is not None
        stats = node.loop_monitor.stats()
    assert warning["level"].name == "WARNING"
    assert warning["extra"]["blocked_actor"] == "/sleeper"
    assert warning["extra"]["node"] == "lagged"
    assert "running: /sleeper" in warning["message"]
    # The monitor woke at most one interval after the block began, so it was late by most of it.
    assert 0.4 <= warning["extra"]["lag"] < 2.0
    assert 0.4 <= stats.max <= stats.max_ever


async def test_a_blocking_plain_task_is_named_as_a_task_not_an_actor(
    warnings_logged: list[Record],
) -> None:
    guard = LoopGuard(interval=0.02, warn_after=0.15, stall_timeout=None)
    async with Node("lagged", guard=guard, handle_signals=False):

        async def hog() -> None:
            time.sleep(0.3)  # noqa: ASYNC251 - blocks the loop on purpose

        await asyncio.create_task(hog(), name="hog")
        warning = await wait_for_lag_warning(warnings_logged, "task hog")
    assert "running: task hog" in warning["message"]


async def test_handlers_that_await_instead_of_blocking_log_no_lag_warning(
    warnings_logged: list[Record],
) -> None:
    guard = LoopGuard(interval=0.02, warn_after=0.25, stall_timeout=None)
    async with Node("cooperative", guard=guard, handle_signals=False) as node:

        async def patient() -> None:
            await asyncio.sleep(0.3)

        await asyncio.gather(*(patient() for _ in range(10)))
        assert node.loop_monitor is not None
        stats = node.loop_monitor.stats()
    assert lag_warnings(warnings_logged) == []
    assert stats.samples >= 5  # the monitor ticked all along
    assert stats.max < 0.25


async def test_the_guard_is_on_by_default_and_node_shutdown_stops_its_task_and_thread() -> None:
    async with Node("tidy", handle_signals=False) as node:
        assert node.guard == LoopGuard()
        watchdogs = [t for t in threading.enumerate() if t.name == "garrison-watchdog-tidy"]
        monitors = [t for t in asyncio.all_tasks() if t.get_name() == "garrison-loop-monitor"]
        assert len(watchdogs) == 1 and watchdogs[0].is_alive()
        assert len(monitors) == 1
    assert not watchdogs[0].is_alive()
    assert monitors[0].done()
    assert "garrison-loop-monitor" not in {t.get_name() for t in asyncio.all_tasks()}


async def test_a_node_without_a_guard_runs_no_monitor_and_no_watchdog() -> None:
    async with Node("unguarded", guard=None, handle_signals=False) as node:
        assert node.loop_monitor is None
        assert "garrison-watchdog-unguarded" not in {t.name for t in threading.enumerate()}
        assert "garrison-loop-monitor" not in {t.get_name() for t in asyncio.all_tasks()}
        assert node.health() == (True, "ok")


def test_the_watchdog_reports_no_stall_while_the_loop_is_not_running_and_ends_when_it_closes() -> None:
    loop = asyncio.new_event_loop()
    lags = monitor(interval=0.02, stall_timeout=0.1)

    async def start() -> None:
        lags.start()

    try:
        loop.run_until_complete(start())
        watchdogs = [t for t in threading.enumerate() if t.name == "garrison-watchdog-unit"]
        assert len(watchdogs) == 1
        time.sleep(0.4)  # the loop is stopped, not stalled: nothing is running on it
        assert lags.stalls == 0
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    watchdogs[0].join(timeout=2.0)
    assert not watchdogs[0].is_alive()  # a closed loop will never tick again: nothing to watch
    assert lags.stalls == 0


# -- the lag statistics ------------------------------------------------------------------


def monitor(**guard: Any) -> LoopMonitor:
    return LoopMonitor(LoopGuard(**guard), logger.bind(node="unit", actor=""), "unit")


def test_lag_stats_give_p50_p99_max_over_the_window_and_a_histogram_since_start() -> None:
    lags = monitor(window=4, warn_after=1.0)
    for lag in (0.001, 0.02, 0.003, 0.7, 0.004, 0.006):
        lags.record(lag)
    stats = lags.stats()
    # The window holds the last four: 0.003, 0.7, 0.004, 0.006.
    assert stats.samples == 4
    assert stats.p50 == 0.004
    assert stats.max == 0.7
    assert stats.p99 == 0.7
    assert stats.max_ever == 0.7
    # The histogram and sum cover every sample since start, the window does not bound them.
    assert stats.count == 6
    assert stats.sum == pytest.approx(0.734)
    assert [bound for bound, _ in stats.buckets] == [*LAG_BUCKETS, float("inf")]
    per_bucket = dict(stats.buckets)
    assert per_bucket[0.001] == 1  # an upper bound is inclusive, as Prometheus' "le"
    assert per_bucket[0.005] == 2
    assert per_bucket[0.01] == 1
    assert per_bucket[0.025] == 1
    assert per_bucket[1.0] == 1
    assert sum(per_bucket.values()) == 6


def test_p99_of_a_hundred_samples_is_not_the_single_outlier() -> None:
    lags = monitor(window=100, warn_after=1.0)
    for _ in range(99):
        lags.record(0.001)
    lags.record(0.9)
    stats = lags.stats()
    assert stats.max == 0.9
    assert stats.p99 == 0.001
    assert stats.p50 == 0.001
    lags.record(0.9)  # two outliers in 100 samples: now above the 99th percentile
    assert lags.stats().p99 == 0.9


def test_stats_of_a_monitor_that_never_ticked_are_zero() -> None:
    stats = monitor().stats()
    assert (stats.samples, stats.p50, stats.p99, stats.max, stats.count) == (0, 0.0, 0.0, 0.0, 0)


def test_lag_at_or_over_warn_after_logs_a_warning_even_when_no_actor_was_seen(
    warnings_logged: list[Record],
) -> None:
    lags = monitor(warn_after=0.1)
    lags.record(0.09)
    assert lag_warnings(warnings_logged) == []
    lags.record(0.1)
    [warning] = lag_warnings(warnings_logged)
    assert warning["extra"]["blocked_actor"] is None
    assert "unknown" in warning["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("interval", 0),
        ("interval", True),
        ("warn_after", -0.1),
        ("warn_after", "1"),
        ("stall_timeout", 0),
        ("stall_timeout", False),
        ("window", 0),
        ("window", 1.5),
    ],
)
def test_loop_guard_rejects_bad_settings_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidConfig, match=f"LoopGuard.{field}"):
        LoopGuard(**{field: value})


def test_node_rejects_a_guard_that_is_not_a_loop_guard() -> None:
    with pytest.raises(InvalidConfig, match="guard"):
        Node(guard=0.1)  # type: ignore[arg-type]


# -- the stall watchdog, in a child process ----------------------------------------------


def run_stalling_node(*flags: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "stall", *flags],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30.0,
    )
    return result, time.monotonic() - started


def test_a_handler_blocking_past_the_stall_timeout_makes_the_watchdog_dump_every_stack() -> None:
    result, _ = run_stalling_node()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ready", "woke"]
    errors = result.stderr
    assert "has not ticked for" in errors
    assert "running actor: /sleeper" in errors
    assert "(most recent call first)" in errors  # faulthandler's header
    # The loop thread's stack shows the blocking handler; the watchdog's own thread is dumped too.
    assert "_blocking_node.py" in errors and "in on_receive" in errors
    assert "in _watch" in errors
    # One stall, one dump, although the loop stayed silent for five stall timeouts.
    assert errors.count("has not ticked for") == 1
    # After the stall, the lag monitor still names the actor.
    assert "running: /sleeper" in errors


def test_exit_on_stall_ends_the_process_with_the_stall_exit_code() -> None:
    result, elapsed = run_stalling_node("--exit")
    assert result.returncode == STALL_EXIT_CODE, result.stderr
    assert result.stdout.splitlines() == ["ready"]  # ended before the handler returned
    assert "running actor: /sleeper" in result.stderr
    assert "(most recent call first)" in result.stderr
    assert f"exit code {STALL_EXIT_CODE}" in result.stderr
    assert elapsed < 30.0
    assert STALL_BLOCK_SECONDS > 0.3 * 3  # the block outlasts the stall timeout by far
