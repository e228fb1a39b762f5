"""What watching the runtime costs: tell throughput with the loop guard, and with the guard
plus the metrics endpoint under a scraper, against a node with neither; interleaved in one run.

The workload is the one of ``tell_throughput``: one producer awaiting
``ref.tell(i)``, one counting actor, capacity 1000. The variants:

- ``off``: ``Node(guard=None)``: no lag monitor, no watchdog thread;
- ``guard``: ``Node(guard=LoopGuard())``: the defaults a node runs with
  (monitor task every 100 ms, watchdog thread sampling every 20 ms);
- ``guard_metrics``: the guard plus ``metrics_port=0``, with a thread in
  this process fetching ``/metrics`` every 100 ms throughout the run.

The scraper is a thread of the measured process (a bare-socket client, so
that what is measured is the endpoint, not urllib), and competes for the
GIL as an external Prometheus would not: its figure is an upper bound. Targets
use wall-clock rates (the guard's and server's threads cost the loop GIL
time, which the loop thread's CPU time would not show); CPU-time rates of
the loop's thread are reported beside them.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from bench._harness import interleave, paired_ratio, quiet_logs, summary, target
from bench.tell_throughput import CAPACITY, Counter
from garrison import MailboxConfig, Node
from garrison.observe import LoopGuard

SCRAPE_INTERVAL = 0.1
TARGET_COST = 0.05


class Run(NamedTuple):
    """One timed run: messages per second of wall-clock and of loop-thread CPU time."""

    wall: float
    cpu: float
    scrapes: int
    """Successful /metrics fetches while the clock ran (0 without metrics)."""


class Scraper:
    """Fetches /metrics every ``interval`` on a thread of its own until stopped."""

    def __init__(self, address: tuple[str, int], interval: float = SCRAPE_INTERVAL) -> None:
        self._address = address
        self._interval = interval
        self._stop = threading.Event()
        self.scrapes = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="bench-scraper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Blocks until the thread ends: call it off the node's loop (a scrape needs that loop)."""
        self._stop.set()
        self._thread.join(timeout=10.0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                ok = self._scrape().startswith(b"HTTP/1.0 200 ")
            except OSError:
                ok = False
            if ok:
                self.scrapes += 1
            else:
                self.failures += 1

    def _scrape(self) -> bytes:
        # A bare socket, as cheap as a client can be: what is measured is the
        # endpoint's cost, not urllib's (an external Prometheus pays its own).
        with socket.create_connection(self._address, timeout=5.0) as connection:
            connection.sendall(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


async def _tell(messages: int, guard: LoopGuard | None, metrics: bool) -> Run:
    mailbox = MailboxConfig(capacity=CAPACITY)
    options: dict[str, Any] = {"guard": guard, "metrics_port": 0 if metrics else None}
    async with Node("bench", handle_signals=False, **options) as node:
        done = asyncio.Event()
        ref = await node.spawn(Counter, name="counter", args=(messages, done), mailbox=mailbox)
        scraper = Scraper(node.metrics_address) if node.metrics_address is not None else None
        if scraper is not None:
            scraper.start()
        try:
            wall_started, cpu_started = time.perf_counter(), time.thread_time()
            for i in range(messages):
                await ref.tell(i)
            await done.wait()
            wall = time.perf_counter() - wall_started
            cpu = time.thread_time() - cpu_started
        finally:
            if scraper is not None:
                await asyncio.to_thread(scraper.stop)
        if scraper is not None and scraper.failures:
            raise RuntimeError(f"{scraper.failures} scrapes of /metrics failed")
    return Run(messages / wall, messages / max(cpu, 1e-9), scraper.scrapes if scraper else 0)


def tell_rate(messages: int, guard: LoopGuard | None, metrics: bool = False) -> Run:
    """One run on a fresh loop and node."""
    return asyncio.run(_tell(messages, guard, metrics))


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    messages = 50_000 if quick else 200_000
    # Variants this close need many rounds to separate from noise.
    runs = 5 if quick else 11
    guard = LoopGuard()
    variants: dict[str, Callable[[], Run]] = {
        "off": lambda: tell_rate(messages, None),
        "guard": lambda: tell_rate(messages, guard),
        "guard_metrics": lambda: tell_rate(messages, guard, metrics=True),
    }
    for variant in variants.values():
        variant()  # warm-up: imports, code caches, the first loop and server
    results = interleave(variants, runs)
    wall = {name: [result.wall for result in rounds] for name, rounds in results.items()}
    cpu = {name: [result.cpu for result in rounds] for name, rounds in results.items()}
    guard_ratio = paired_ratio(wall["guard"], wall["off"])
    metrics_ratio = paired_ratio(wall["guard_metrics"], wall["off"])
    return {
        "measures": "tell throughput with the loop guard / guard + scraped metrics vs neither; "
        "cost = 1 - variant/off (wall-clock)",
        "params": {
            "messages": messages,
            "capacity": CAPACITY,
            "runs": runs,
            "guard": {"interval": guard.interval, "stall_timeout": guard.stall_timeout},
            "scrape_interval": SCRAPE_INTERVAL,
        },
        "figures": {
            "guard_msgs_per_sec": summary(wall["guard"], 0),
            "guard_metrics_msgs_per_sec": summary(wall["guard_metrics"], 0),
            "guard_msgs_per_cpu_sec": summary(cpu["guard"], 0),
            "guard_metrics_msgs_per_cpu_sec": summary(cpu["guard_metrics"], 0),
            "scrapes_per_run": [result.scrapes for result in results["guard_metrics"]],
        },
        "baselines": {
            "off_msgs_per_sec": summary(wall["off"], 0),
            "off_msgs_per_cpu_sec": summary(cpu["off"], 0),
        },
        "ratios": {
            "guard_over_off": round(guard_ratio, 3),
            "guard_metrics_over_off": round(metrics_ratio, 3),
            "guard_over_off_cpu": round(paired_ratio(cpu["guard"], cpu["off"]), 3),
            "guard_metrics_over_off_cpu": round(paired_ratio(cpu["guard_metrics"], cpu["off"]), 3),
        },
        "targets": {
            "guard_cost": target(
                1.0 - guard_ratio, "<=", TARGET_COST, "fraction of tell throughput lost to the loop guard"
            ),
            "guard_and_metrics_cost": target(
                1.0 - metrics_ratio,
                "<=",
                TARGET_COST,
                "fraction of tell throughput lost to the guard plus /metrics scraped every 100 ms",
            ),
        },
    }
