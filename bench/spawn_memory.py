"""spawn rate and memory per idle actor, each variant in a fresh subprocess.

- garrison: ``await node.spawn(Idle, name=f"a{i}")`` 10,000 times; Idle does nothing;
- asyncio tasks: 10,000 bare tasks, each awaiting its own future;
- pykka: 1,000 ``ThreadingActor``s (a thread each), started and waited for
  until every ``on_start`` has run.

Each child process imports what it needs, warms up, collects garbage,
reads its resident set size (RSS), starts the actors, collects again and
reads RSS again: memory per actor is the RSS growth divided by the count.
A subprocess per variant and per round keeps one variant's heap out of the
next one's figures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench._harness import interleave, paired_ratio, summary, target

# Not resolved: a checkout reached through a symlink runs its children from the same tree.
REPO_ROOT = Path(__file__).absolute().parent.parent
KIB = 1024


def resident_bytes() -> int:
    """This process's resident set size now (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB


def _settled_rss() -> int:
    gc.collect()
    return resident_bytes()


async def _garrison(count: int) -> dict[str, float]:
    from bench._harness import quiet_logs
    from garrison import Actor, Node

    quiet_logs()

    class Idle(Actor):
        pass

    async with Node("bench", handle_signals=False) as node:
        warm = await node.spawn(Idle, name="warm-up")
        await node.stop(warm)
        before = _settled_rss()
        started = time.perf_counter()
        for i in range(count):
            await node.spawn(Idle, name=f"a{i}")
        elapsed = time.perf_counter() - started
        after = _settled_rss()
        return _figures(count, elapsed, before, after)


async def _asyncio_tasks(count: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()

    async def idle(future: asyncio.Future[None]) -> None:
        await future

    warm = loop.create_future()
    warm_task = loop.create_task(idle(warm))
    await asyncio.sleep(0)
    warm.set_result(None)
    await warm_task
    futures: list[asyncio.Future[None]] = []
    tasks: list[asyncio.Task[None]] = []
    before = _settled_rss()
    started = time.perf_counter()
    for _ in range(count):
        future = loop.create_future()
        futures.append(future)
        tasks.append(loop.create_task(idle(future)))
    await asyncio.sleep(0)  # every task runs up to its await
    elapsed = time.perf_counter() - started
    after = _settled_rss()
    return _figures(count, elapsed, before, after)


def _pykka(count: int) -> dict[str, float]:
    import pykka

    running = threading.Semaphore(0)

    class Idle(pykka.ThreadingActor):
        def on_start(self) -> None:
            running.release()

    Idle.start().stop()
    running.acquire()
    before = _settled_rss()
    started = time.perf_counter()
    for _ in range(count):
        Idle.start()
    for _ in range(count):
        running.acquire()
    elapsed = time.perf_counter() - started
    after = _settled_rss()
    return _figures(count, elapsed, before, after)


def _figures(count: int, elapsed: float, before: int, after: int) -> dict[str, float]:
    return {
        "count": count,
        "spawns_per_sec": count / elapsed,
        "bytes_per_actor": (after - before) / count,
        "rss_before_bytes": before,
        "rss_after_bytes": after,
    }


def _child(variant: str, count: int) -> None:
    if variant == "garrison":
        figures = asyncio.run(_garrison(count))
    elif variant == "asyncio_tasks":
        figures = asyncio.run(_asyncio_tasks(count))
    elif variant == "pykka":
        figures = _pykka(count)
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    print(json.dumps(figures), flush=True)
    # Tearing down thousands of actors (and joining 1,000 non-daemon pykka
    # threads) is not what is measured: leave at once.
    os._exit(0)


def measure_in_subprocess(variant: str, count: int) -> dict[str, float]:
    """Run one variant in a fresh interpreter and return its figures."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.spawn_memory", variant, str(count)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{variant} child failed ({completed.returncode}): {completed.stderr.strip()}")
    figures: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures


def run(quick: bool) -> dict[str, Any]:
    actors = 1_000 if quick else 10_000
    pykka_actors = 100 if quick else 1_000
    runs = 3 if quick else 5
    results = interleave(
        {
            "garrison": lambda: measure_in_subprocess("garrison", actors),
            "asyncio_tasks": lambda: measure_in_subprocess("asyncio_tasks", actors),
            "pykka": lambda: measure_in_subprocess("pykka", pykka_actors),
        },
        runs,
    )

    def series(variant: str, figure: str) -> list[float]:
        return [run_figures[figure] for run_figures in results[variant]]

    garrison_bytes = series("garrison", "bytes_per_actor")
    per_actor_kib = summary([value / KIB for value in garrison_bytes], 2)
    return {
        "measures": "actors started per second, and RSS growth per idle actor, in a fresh process per run",
        "params": {"actors": actors, "asyncio_tasks": actors, "pykka_actors": pykka_actors, "runs": runs},
        "figures": {
            "garrison_spawns_per_sec": summary(series("garrison", "spawns_per_sec"), 0),
            "garrison_bytes_per_actor": summary(garrison_bytes, 0),
        },
        "baselines": {
            "asyncio_tasks_spawns_per_sec": summary(series("asyncio_tasks", "spawns_per_sec"), 0),
            "asyncio_tasks_bytes_per_task": summary(series("asyncio_tasks", "bytes_per_actor"), 0),
            "pykka_spawns_per_sec": summary(series("pykka", "spawns_per_sec"), 0),
            "pykka_bytes_per_actor": summary(series("pykka", "bytes_per_actor"), 0),
        },
        "ratios": {
            "garrison_spawn_rate_over_asyncio_tasks": round(
                paired_ratio(series("garrison", "spawns_per_sec"), series("asyncio_tasks", "spawns_per_sec")),
                3,
            ),
            "garrison_spawn_rate_over_pykka": round(
                paired_ratio(series("garrison", "spawns_per_sec"), series("pykka", "spawns_per_sec")), 2
            ),
            "garrison_bytes_over_asyncio_task_bytes": round(
                paired_ratio(garrison_bytes, series("asyncio_tasks", "bytes_per_actor")), 2
            ),
            "pykka_bytes_over_garrison_bytes": round(
                paired_ratio(series("pykka", "bytes_per_actor"), garrison_bytes), 2
            ),
        },
        "targets": {
            "kib_per_idle_actor": target(
                per_actor_kib["median"], "<=", 8.0, f"RSS growth per idle garrison actor, KiB, at {actors}"
            ),
        },
    }


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]))
