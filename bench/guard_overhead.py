"""What watching the runtime costs: tell throughput with the loop guard, and with the guard
plus the metrics endpoint under a scraper, against a node with neither; interleaved in one run.

The workload is the one of ``tell_throughput``: one producer awaiting
``ref.tell(i)``, one counting actor, capacity 1000. The variants:

- ``off``: ``Node(guard=None)``: no lag monitor, no watchdog thread;
- ``guard``: ``Node(guard=LoopGuard())``: the defaults a node runs with
  (monitor task every 100 ms; the watchdog thread wakes about as often);
- ``guard_metrics``: the guard plus ``metrics_port=0``, with a thread in
  this process fetching ``/metrics`` every 100 ms throughout the run;
- ``guard_metrics_external``: the same, scraped from another process, as
  Prometheus would (and 150 times more often than its default 15 s).

Both scrapers are bare-socket clients, so what is measured is the endpoint,
not urllib. The in-process one also competes with the loop for the GIL,
which an external scraper does not: its figure is an upper bound.

The process is pinned to one CPU while it measures (see ``_pinned``), and
each run is timed twice over: wall-clock, and CPU time of the whole process
(every thread: loop, watchdog, HTTP server, in-process scraper). Targets use
the CPU rates: they count every cycle the guard and the endpoint cost, and
leave out the time other processes held the pinned CPU, which otherwise
swings a ratio by 10% either way on a shared machine. The wall-clock ratios
are reported beside them (suffix ``_wall_clock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

from bench._harness import interleave, paired_ratio, quiet_logs, summary, target
from bench.tell_throughput import CAPACITY, Counter
from garrison import MailboxConfig, Node
from garrison.observe import LoopGuard

SCRAPE_INTERVAL = 0.1
TARGET_COST = 0.05


class Run(NamedTuple):
    """One timed run: messages per second of wall-clock and of process CPU time."""

    wall: float
    cpu: float
    scrapes: int
    """Successful /metrics fetches while the clock ran (0 without metrics)."""


REQUEST = b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n"

EXTERNAL_SCRAPER = f"""
import socket, sys, time
host, port, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
print("up", flush=True)
while True:
    time.sleep(interval)
    try:
        with socket.create_connection((host, port), timeout=5.0) as connection:
            connection.sendall({REQUEST!r})
            answer = b"".join(iter(lambda: connection.recv(65536), b""))
        ok = answer.startswith((b"HTTP/1.0 200 ", b"HTTP/1.1 200 "))
    except OSError:
        ok = False
    sys.stdout.write("." if ok else "x")
    sys.stdout.flush()
"""


def _fetch(address: tuple[str, int]) -> bytes:
    with socket.create_connection(address, timeout=5.0) as connection:
        connection.sendall(REQUEST)
        return b"".join(iter(lambda: connection.recv(65536), b""))


class Scraper(Protocol):
    def start(self) -> None: ...

    def stop(self) -> tuple[int, int]:
        """Stop scraping; (scrapes, failures). Blocks: call it off the node's loop."""
        ...


class ThreadScraper:
    """Fetches /metrics every ``interval`` on a thread of this process."""

    def __init__(self, address: tuple[str, int], interval: float = SCRAPE_INTERVAL) -> None:
        self._address = address
        self._interval = interval
        self._stop = threading.Event()
        self._scrapes = 0
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="bench-scraper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> tuple[int, int]:
        self._stop.set()
        self._thread.join(timeout=10.0)
        return self._scrapes, self._failures

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                ok = _fetch(self._address).startswith((b"HTTP/1.0 200 ", b"HTTP/1.1 200 "))
            except OSError:
                ok = False
            if ok:
                self._scrapes += 1
            else:
                self._failures += 1


class ProcessScraper:
    """Fetches /metrics every ``interval`` from a child process."""

    def __init__(self, address: tuple[str, int], interval: float = SCRAPE_INTERVAL) -> None:
        self._argv = [sys.executable, "-c", EXTERNAL_SCRAPER, address[0], str(address[1]), str(interval)]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        process = subprocess.Popen(self._argv, stdout=subprocess.PIPE)
        self._process = process
        # Off the CPU the measured process is pinned to, as a Prometheus would be.
        others = set(range(os.cpu_count() or 1)) - _affinity()
        if others:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(process.pid, others)
        assert process.stdout is not None
        if process.stdout.readline() != b"up\n":
            self.stop()
            raise RuntimeError("the scraper process did not start")

    def stop(self) -> tuple[int, int]:
        process = self._process
        if process is None:
            return 0, 0
        process.kill()
        output, _ = process.communicate(timeout=10.0)
        return output.count(b"."), output.count(b"x")


SCRAPERS: dict[str, Callable[[tuple[str, int]], Scraper]] = {
    "thread": ThreadScraper,
    "process": ProcessScraper,
}


async def _tell(messages: int, guard: LoopGuard | None, scraper_kind: str | None) -> Run:
    mailbox = MailboxConfig(capacity=CAPACITY)
    options: dict[str, Any] = {"guard": guard, "metrics_port": None if scraper_kind is None else 0}
    async with Node("bench", handle_signals=False, **options) as node:
        done = asyncio.Event()
        ref = await node.spawn(Counter, name="counter", args=(messages, done), mailbox=mailbox)
        scraper: Scraper | None = None
        if scraper_kind is not None:
            assert node.metrics_address is not None
            scraper = SCRAPERS[scraper_kind](node.metrics_address)
            await asyncio.to_thread(scraper.start)
        scrapes = failures = 0
        try:
            wall_started, cpu_started = time.perf_counter(), time.process_time()
            for i in range(messages):
                await ref.tell(i)
            await done.wait()
            wall = time.perf_counter() - wall_started
            cpu = time.process_time() - cpu_started
        finally:
            if scraper is not None:
                scrapes, failures = await asyncio.to_thread(scraper.stop)
        if failures:
            raise RuntimeError(f"{failures} scrapes of /metrics failed")
    return Run(messages / wall, messages / max(cpu, 1e-9), scrapes)


def tell_rate(messages: int, guard: LoopGuard | None, scraper: str | None = None) -> Run:
    """One run on a fresh loop and node; ``scraper``: None (no metrics), "thread" or "process"."""
    return asyncio.run(_tell(messages, guard, scraper))


def _affinity() -> set[int]:
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()


@contextlib.contextmanager
def _pinned() -> Iterator[int | None]:
    """Pin this process to one CPU while measuring (restored after); yields it, or None.

    Unpinned, the scheduler moves the loop's thread between CPUs and a run
    comes out 30% slower or faster at random. Pinned, the guard's and the
    server's threads also take their CPU time from the loop's CPU: the cost
    measured is the full one.
    """
    before = _affinity()
    if not before:
        yield None
        return
    cpu = max(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def run(quick: bool) -> dict[str, Any]:
    with _pinned() as cpu:
        result = _measure(quick)
    result["params"]["pinned_to_cpu"] = cpu
    return result


def _measure(quick: bool) -> dict[str, Any]:
    quiet_logs()
    messages = 50_000 if quick else 200_000
    # Variants this close need many rounds to separate from noise.
    runs = 5 if quick else 11
    guard = LoopGuard()
    variants: dict[str, Callable[[], Run]] = {
        "off": lambda: tell_rate(messages, None),
        "guard": lambda: tell_rate(messages, guard),
        "guard_metrics": lambda: tell_rate(messages, guard, "thread"),
        "guard_metrics_external": lambda: tell_rate(messages, guard, "process"),
    }
    for variant in variants.values():
        variant()  # warm-up: imports, code caches, the first loop and server
    results = interleave(variants, runs)
    wall = {name: [result.wall for result in rounds] for name, rounds in results.items()}
    cpu = {name: [result.cpu for result in rounds] for name, rounds in results.items()}
    measured = [name for name in variants if name != "off"]
    ratios = {name: paired_ratio(cpu[name], cpu["off"]) for name in measured}
    meanings = {
        "guard": "the loop guard",
        "guard_metrics": "the guard plus /metrics scraped every 100 ms by a thread of this process",
        "guard_metrics_external": "the guard plus /metrics scraped every 100 ms from another process",
    }
    return {
        "measures": "tell throughput with the loop guard, and with scraped metrics, vs neither; "
        "cost = 1 - variant/off (per process CPU second, pinned to one CPU)",
        "params": {
            "messages": messages,
            "capacity": CAPACITY,
            "runs": runs,
            "guard": {"interval": guard.interval, "stall_timeout": guard.stall_timeout},
            "scrape_interval": SCRAPE_INTERVAL,
        },
        "figures": {
            **{f"{name}_msgs_per_sec": summary(wall[name], 0) for name in measured},
            **{f"{name}_msgs_per_cpu_sec": summary(cpu[name], 0) for name in measured},
            "scrapes_per_run": {
                name: [result.scrapes for result in results[name]]
                for name in ("guard_metrics", "guard_metrics_external")
            },
        },
        "baselines": {
            "off_msgs_per_sec": summary(wall["off"], 0),
            "off_msgs_per_cpu_sec": summary(cpu["off"], 0),
        },
        "ratios": {
            **{f"{name}_over_off": round(ratios[name], 3) for name in measured},
            **{
                f"{name}_over_off_wall_clock": round(paired_ratio(wall[name], wall["off"]), 3)
                for name in measured
            },
        },
        "targets": {
            f"{name}_cost": target(
                1.0 - ratios[name],
                "<=",
                TARGET_COST,
                f"fraction of tell throughput (per CPU second) lost to {meanings[name]}",
            )
            for name in measured
        },
    }
