"""restart storm: 100 children crash at once under one supervisor.

- garrison: a root supervisor (ONE_FOR_ONE, an intensity too large to reach)
  with 100 children. A storm tells every child CRASH, then asks every child
  (each ask queued behind its crash, so the restarted instance answers it);
  the storm is over when the last answer is in. Events published and logged
  to a file sink as in ``restart_latency`` (100 ERROR records per storm).
- respawn (the baseline): 100 hand-rolled respawning tasks (see
  ``restart_latency.Respawner``), logging each crash to the same sink.

Two figures per storm: the time from the first crash sent to the last answer,
and the event loop's worst lag during it, measured as asyncio programs see
it: a task that sleeps 1 ms in a loop and records how late it wakes. Each
run is several storms on one node; its figures are the median storm time and
the worst lag of the run; the reported figures are medians over runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from bench._harness import interleave, paired_ratio, quiet_logs, summary
from bench.restart_latency import (
    CRASH,
    UNREACHABLE_INTENSITY,
    Crashy,
    Respawner,
    Stamp,
    production_log_file,
)
from garrison import ChildSpec, Node, Strategy, SupervisorSpec

CHILDREN = 100
LAG_TICK = 0.001


class Storm(NamedTuple):
    milliseconds: float
    """From the first crash sent to the last restarted child's answer."""
    max_lag_ms: float
    """The worst lateness of a 1 ms sleep during the storm."""


class LagProbe:
    """A task that sleeps LAG_TICK in a loop and keeps the worst lateness since ``reset``."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        clock = time.perf_counter
        while True:
            expected = clock() + LAG_TICK
            await asyncio.sleep(LAG_TICK)
            self.worst = max(self.worst, clock() - expected)

    def reset(self) -> None:
        self.worst = 0.0

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _storms(
    storms: int,
    crash_all: Callable[[], Awaitable[None]],
    ask_all: Callable[[int], Awaitable[list[Any]]],
) -> list[Storm]:
    probe = LagProbe()
    results = []
    try:
        await asyncio.sleep(0.01)  # the probe's first ticks, before any storm
        for round_index in range(storms + 1):
            await asyncio.sleep(0.005)  # let the probe tick on a quiet loop
            probe.reset()
            started = time.perf_counter()
            await crash_all()
            answers = await ask_all(round_index)
            elapsed = time.perf_counter() - started
            await asyncio.sleep(LAG_TICK * 2)  # the probe's wake-up that the storm delayed
            assert answers == [round_index] * CHILDREN, "every child must answer after its restart"
            if round_index:  # the first storm warms up
                results.append(Storm(elapsed * 1000.0, probe.worst * 1000.0))
    finally:
        await probe.close()
    return results


def _summarize(storms: list[Storm]) -> Storm:
    ordered = sorted(storm.milliseconds for storm in storms)
    return Storm(ordered[len(ordered) // 2], max(storm.max_lag_ms for storm in storms))


async def _garrison(storms: int) -> Storm:
    raised: list[Stamp] = []
    async with Node("bench", handle_signals=False) as node:
        await node.start(
            SupervisorSpec(
                strategy=Strategy.ONE_FOR_ONE,
                intensity=UNREACHABLE_INTENSITY,
                period=1.0,
                children=[ChildSpec(f"c{index}", Crashy, args=(raised,)) for index in range(CHILDREN)],
            )
        )
        refs = [node.lookup(f"/root/c{index}") for index in range(CHILDREN)]

        async def crash_all() -> None:
            for ref in refs:
                ref.tell_nowait(CRASH)

        async def ask_all(token: int) -> list[Any]:
            return list(await asyncio.gather(*(ref.ask(token) for ref in refs)))

        results = await _storms(storms, crash_all, ask_all)
        rows = await node.supervisor("/root").which_children()
        assert {row.restarts for row in rows} == {storms + 1}, "each child restarted once per storm"
    return _summarize(results)


def garrison_storm(storms: int) -> Storm:
    return asyncio.run(_garrison(storms))


async def _respawn(storms: int) -> Storm:
    raised: list[Stamp] = []
    servers = [Respawner(raised, log=True) for _ in range(CHILDREN)]

    async def crash_all() -> None:
        for server in servers:
            server.requests.put_nowait((CRASH, None))

    async def ask_all(token: int) -> list[Any]:
        return list(await asyncio.gather(*(server.ask(token) for server in servers)))

    try:
        results = await _storms(storms, crash_all, ask_all)
    finally:
        for server in servers:
            server.close()
    assert {server.respawns for server in servers} == {storms + 1}
    return _summarize(results)


def respawn_storm(storms: int) -> Storm:
    return asyncio.run(_respawn(storms))


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    storms = 5 if quick else 10
    runs = 3 if quick else 7
    with production_log_file():
        garrison_storm(2)
        respawn_storm(2)
        results = interleave(
            {"garrison": lambda: garrison_storm(storms), "respawn": lambda: respawn_storm(storms)}, runs
        )

    def series(variant: str, field: str) -> list[float]:
        return [getattr(storm, field) for storm in results[variant]]

    storm_ms = summary(series("garrison", "milliseconds"), 2)
    lag_ms = summary(series("garrison", "max_lag_ms"), 2)
    return {
        "measures": (
            f"{CHILDREN} children crashing at once under one supervisor: milliseconds until all have "
            "answered again, and the worst lateness of a 1 ms sleep meanwhile (medians over runs)"
        ),
        "params": {
            "children": CHILDREN,
            "storms_per_run": storms,
            "runs": runs,
            "strategy": "one_for_one",
            "log_sink": "loguru file sink, INFO, backtrace=False, diagnose=False",
        },
        "figures": {"garrison_storm_ms": storm_ms, "garrison_max_loop_lag_ms": lag_ms},
        "baselines": {
            "respawn_logged_storm_ms": summary(series("respawn", "milliseconds"), 2),
            "respawn_logged_max_loop_lag_ms": summary(series("respawn", "max_lag_ms"), 2),
        },
        "ratios": {
            "garrison_storm_over_respawn_logged_storm": round(
                paired_ratio(series("garrison", "milliseconds"), series("respawn", "milliseconds")), 2
            ),
            "garrison_lag_over_respawn_logged_lag": round(
                paired_ratio(series("garrison", "max_lag_ms"), series("respawn", "max_lag_ms")), 2
            ),
        },
        "targets": {},
    }
