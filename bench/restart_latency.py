"""restart latency: from a child raising to the restarted child having answered its next ask.

- garrison: a root supervisor (ONE_FOR_ONE, an intensity too large to reach)
  with one child; each round sends ``tell(CRASH)`` then ``ask(i)``: the
  handler raises, the supervisor builds a fresh instance in the same slot
  (``on_start`` again), and the ask, queued behind the crash, is answered by
  the new instance. Lifecycle events are published (one subscriber counts
  them) and logged as in production: a loguru file sink on a temporary file,
  INFO level, the CLI's settings (``backtrace=False, diagnose=False``). A
  supervised crash writes one ERROR record; the first 10 of a child per
  minute carry its traceback (``Node(crash_traceback_limit=10)``), the later
  ones in a crash loop do not (the production default; see docs/operations.md).
- respawn (the baseline): the hand-rolled asyncio version, a task serving an
  ``asyncio.Queue`` of ``(message, future)``; a done callback creates a fresh
  task on the same queue when it ends with an exception.
- respawn_logged: the same, its done callback also logging the exception with
  its traceback to the same file sink: what a hand-rolled supervisor that
  logs its crashes costs, so the ratio to it is the runtime's own overhead.

The clock starts in the handler, just before ``raise``, and stops when the
ask returns. Each run gives p50 and p99 in microseconds over every crash of
the run; figures are medians over runs. The targets hold the wall-clock
figures; the same interval is also read on the loop thread's CPU clock
(``time.thread_time_ns``), which leaves out the time other processes held the
CPU: on a shared machine the wall-clock p99 mostly measures them.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loguru import logger

from bench._harness import interleave, paired_ratio, percentile, quiet_logs, summary, target
from garrison import Actor, ChildSpec, LifecycleEvent, Node, Strategy, SupervisorSpec

CRASH = "crash"
WARM_UP_CRASHES = 200
UNREACHABLE_INTENSITY = 10**9

LOG_LINE = "{time:HH:mm:ss.SSS} {level: <7} {extra[who]} {message}\n{exception}"


def _line_format(record: Any) -> str:
    extra = record["extra"]
    extra["who"] = extra.get("actor") or extra.get("node") or "bench"
    return LOG_LINE


@contextmanager
def production_log_file() -> Iterator[Path]:
    """A loguru file sink on a temporary file, set up as the CLI sets up its sink; removed after."""
    descriptor, name = tempfile.mkstemp(prefix="garrison-bench-", suffix=".log")
    os.close(descriptor)
    path = Path(name)
    sink = logger.add(path, level="INFO", format=_line_format, backtrace=False, diagnose=False)
    try:
        yield path
    finally:
        logger.remove(sink)
        path.unlink(missing_ok=True)


class Boom(Exception):
    """What the benchmarked children raise."""


Stamp = tuple[int, int]
"""(perf_counter_ns, thread_time_ns) when a child raised."""


def stamp() -> Stamp:
    return time.perf_counter_ns(), time.thread_time_ns()


class Crashy(Actor):
    """Raises on CRASH (stamping the time in ``raised``), answers anything else with itself."""

    def __init__(self, raised: list[Stamp]) -> None:
        self.raised = raised

    async def on_receive(self, message: Any) -> Any:
        if message == CRASH:
            self.raised.append(stamp())
            raise Boom("crashed on purpose")
        return message


Latencies = dict[str, float]


def percentiles(nanoseconds: list[int]) -> Latencies:
    nanoseconds.sort()
    return {
        "p50": percentile(nanoseconds, 0.50) / 1000.0,
        "p99": percentile(nanoseconds, 0.99) / 1000.0,
    }


async def _time_restarts(
    crash: Callable[[], Awaitable[None]],
    ask: Callable[[int], Awaitable[Any]],
    raised: list[Stamp],
    crashes: int,
) -> Latencies:
    wall, cpu = [], []
    for i in range(WARM_UP_CRASHES + crashes):
        await crash()
        answer = await ask(i)
        ended_wall, ended_cpu = stamp()
        assert answer == i, f"the restarted child answered {answer!r} to {i!r}"
        if i >= WARM_UP_CRASHES:
            raised_wall, raised_cpu = raised[-1]
            wall.append(ended_wall - raised_wall)
            cpu.append(ended_cpu - raised_cpu)
    assert len(raised) == WARM_UP_CRASHES + crashes, "every round must have crashed once"
    cpu_figures = percentiles(cpu)
    return {**percentiles(wall), "cpu_p50": cpu_figures["p50"], "cpu_p99": cpu_figures["p99"]}


async def _garrison(crashes: int) -> Latencies:
    raised: list[Stamp] = []
    events = [0]

    def count(_: LifecycleEvent) -> None:
        events[0] += 1

    async with Node("bench", handle_signals=False) as node:
        node.events.subscribe(count)
        await node.start(
            SupervisorSpec(
                strategy=Strategy.ONE_FOR_ONE,
                intensity=UNREACHABLE_INTENSITY,
                period=1.0,
                children=[ChildSpec("worker", Crashy, args=(raised,))],
            )
        )
        ref = node.lookup("/root/worker")
        latencies = await _time_restarts(lambda: ref.tell(CRASH), ref.ask, raised, crashes)
        restarts = (await node.supervisor("/root").which_children())[0].restarts
        assert restarts == WARM_UP_CRASHES + crashes, f"{restarts} restarts"
        assert events[0] >= 3 * restarts  # Failed, Started, Restarted per crash
    return latencies


def garrison_restarts(crashes: int) -> Latencies:
    """p50/p99 µs from raise to the restarted child's answer, on a fresh loop."""
    return asyncio.run(_garrison(crashes))


Request = tuple[Any, "asyncio.Future[Any] | None"]


class Respawner:
    """The hand-rolled baseline: one task serving a queue, replaced by a fresh one when it raises."""

    def __init__(self, raised: list[Stamp], *, log: bool) -> None:
        self.raised = raised
        self.log = log
        self.requests: asyncio.Queue[Request] = asyncio.Queue(maxsize=1000)
        self.respawns = 0
        self.task = self._spawn()

    def _spawn(self) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._serve())
        task.add_done_callback(self._ended)
        return task

    async def _serve(self) -> None:
        while True:
            message, reply = await self.requests.get()
            if message == CRASH:
                self.raised.append(stamp())
                raise Boom("crashed on purpose")
            if reply is not None:
                reply.set_result(message)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        if self.log:
            logger.opt(exception=error).error("worker crashed: {error!r}; respawning", error=error)
        self.respawns += 1
        self.task = self._spawn()

    async def crash(self) -> None:
        await self.requests.put((CRASH, None))

    async def ask(self, message: Any) -> Any:
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self.requests.put((message, reply))
        return await reply

    def close(self) -> None:
        self.task.cancel()


async def _respawn(crashes: int, log: bool) -> Latencies:
    raised: list[Stamp] = []
    server = Respawner(raised, log=log)
    try:
        return await _time_restarts(server.crash, server.ask, raised, crashes)
    finally:
        server.close()


def respawn_restarts(crashes: int, log: bool = False) -> Latencies:
    """p50/p99 µs of the hand-rolled respawn, on a fresh loop."""
    return asyncio.run(_respawn(crashes, log))


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    crashes = 1_000 if quick else 2_000
    runs = 3 if quick else 7
    with production_log_file() as log_file:
        garrison_restarts(200)
        respawn_restarts(200)
        respawn_restarts(200, log=True)
        latencies = interleave(
            {
                "garrison": lambda: garrison_restarts(crashes),
                "respawn": lambda: respawn_restarts(crashes),
                "respawn_logged": lambda: respawn_restarts(crashes, log=True),
            },
            runs,
        )
        log_bytes = log_file.stat().st_size

    def series(variant: str, quantile: str) -> list[float]:
        return [figures[quantile] for figures in latencies[variant]]

    p50 = summary(series("garrison", "p50"), 1)
    p99 = summary(series("garrison", "p99"), 1)
    return {
        "measures": (
            "microseconds from a child raising to the restarted child answering its next ask "
            "(p50, p99 per run over every crash; medians over runs)"
        ),
        "params": {
            "crashes_per_run": crashes,
            "warm_up_crashes_per_run": WARM_UP_CRASHES,
            "runs": runs,
            "strategy": "one_for_one",
            "log_sink": "loguru file sink, INFO, backtrace=False, diagnose=False",
            "log_bytes_written": log_bytes,
        },
        "figures": {
            "garrison_p50_us": p50,
            "garrison_p99_us": p99,
            "garrison_cpu_p50_us": summary(series("garrison", "cpu_p50"), 1),
            "garrison_cpu_p99_us": summary(series("garrison", "cpu_p99"), 1),
        },
        "baselines": {
            "respawn_p50_us": summary(series("respawn", "p50"), 1),
            "respawn_p99_us": summary(series("respawn", "p99"), 1),
            "respawn_logged_p50_us": summary(series("respawn_logged", "p50"), 1),
            "respawn_logged_p99_us": summary(series("respawn_logged", "p99"), 1),
            "respawn_logged_cpu_p50_us": summary(series("respawn_logged", "cpu_p50"), 1),
            "respawn_logged_cpu_p99_us": summary(series("respawn_logged", "cpu_p99"), 1),
        },
        "ratios": {
            "garrison_p50_over_respawn_p50": round(
                paired_ratio(series("garrison", "p50"), series("respawn", "p50")), 2
            ),
            "garrison_p50_over_respawn_logged_p50": round(
                paired_ratio(series("garrison", "p50"), series("respawn_logged", "p50")), 2
            ),
            "garrison_p99_over_respawn_logged_p99": round(
                paired_ratio(series("garrison", "p99"), series("respawn_logged", "p99")), 2
            ),
        },
        "targets": {
            "p50": target(p50["median"], "<=", 100.0, "garrison restart latency p50, µs"),
            "p99": target(p99["median"], "<=", 300.0, "garrison restart latency p99, µs"),
        },
    }
