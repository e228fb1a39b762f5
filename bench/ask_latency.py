"""ask round trip: one caller asking one responder, one request at a time.

- garrison: ``await ref.ask(i)`` (default timeout) to an actor whose
  ``on_receive`` returns the message; ``garrison_no_timeout`` is the same with
  ``timeout=None``, to show what the ask timer costs;
- raw asyncio: ``await q.put((i, future))`` on an ``asyncio.Queue(maxsize=1000)``
  served by a task that sets each future's result, then ``await future``;
- pykka: ``actor_ref.ask(i)`` blocking from the main thread to a
  ``ThreadingActor`` whose ``on_receive`` returns the message.

Every round trip is timed on its own; each run gives p50 and p99 in
microseconds, and the figures are medians over runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pykka

from bench._harness import interleave, paired_ratio, percentile, quiet_logs, summary, target
from garrison import Actor, MailboxConfig, Node

CAPACITY = 1000
WARM_UP_ASKS = 200

Latencies = dict[str, float]


def _percentiles(nanoseconds: list[int]) -> Latencies:
    nanoseconds.sort()
    return {
        "p50": percentile(nanoseconds, 0.50) / 1000.0,
        "p99": percentile(nanoseconds, 0.99) / 1000.0,
    }


async def _time_asks(ask: Callable[[int], Awaitable[Any]], asks: int) -> Latencies:
    for i in range(WARM_UP_ASKS):
        await ask(i)
    clock = time.perf_counter_ns
    nanoseconds = []
    for i in range(asks):
        started = clock()
        await ask(i)
        nanoseconds.append(clock() - started)
    return _percentiles(nanoseconds)


class Echo(Actor):
    async def on_receive(self, message: Any) -> Any:
        return message


async def _garrison_ask(asks: int, timeout: float | None) -> Latencies:
    async with Node("bench", handle_signals=False) as node:
        ref = await node.spawn(Echo, name="echo", mailbox=MailboxConfig(capacity=CAPACITY))
        if timeout is None:
            return await _time_asks(lambda i: ref.ask(i, timeout=None), asks)
        return await _time_asks(ref.ask, asks)


def garrison_ask(asks: int, timeout: float | None = 5.0) -> Latencies:
    """p50/p99 microseconds of sequential asks to one garrison actor, on a fresh loop."""
    return asyncio.run(_garrison_ask(asks, timeout))


async def _raw_ask(asks: int) -> Latencies:
    loop = asyncio.get_running_loop()
    requests: asyncio.Queue[tuple[int, asyncio.Future[int]]] = asyncio.Queue(maxsize=CAPACITY)

    async def serve() -> None:
        while True:
            message, reply = await requests.get()
            reply.set_result(message)

    server = asyncio.create_task(serve())

    async def ask(message: int) -> int:
        reply: asyncio.Future[int] = loop.create_future()
        await requests.put((message, reply))
        return await reply

    try:
        return await _time_asks(ask, asks)
    finally:
        server.cancel()


def raw_ask(asks: int) -> Latencies:
    """p50/p99 microseconds of sequential (message, future) requests over an asyncio.Queue."""
    return asyncio.run(_raw_ask(asks))


class PykkaEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


def pykka_ask(asks: int) -> Latencies:
    """p50/p99 microseconds of blocking asks from the main thread to a pykka ThreadingActor."""
    actor_ref = PykkaEcho.start()
    try:
        for i in range(WARM_UP_ASKS):
            actor_ref.ask(i)
        clock = time.perf_counter_ns
        nanoseconds = []
        for i in range(asks):
            started = clock()
            actor_ref.ask(i)
            nanoseconds.append(clock() - started)
    finally:
        actor_ref.stop()
    return _percentiles(nanoseconds)


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    asks = 2_000 if quick else 20_000
    # A pykka round trip crosses two threads and is ~10x slower: fewer asks, as short a run.
    pykka_asks = asks // 5
    runs = 3 if quick else 7
    garrison_ask(500)
    raw_ask(500)
    pykka_ask(100)
    latencies = interleave(
        {
            "garrison": lambda: garrison_ask(asks),
            "garrison_no_timeout": lambda: garrison_ask(asks, timeout=None),
            "raw_asyncio": lambda: raw_ask(asks),
            "pykka": lambda: pykka_ask(pykka_asks),
        },
        runs,
    )

    def series(variant: str, quantile: str) -> list[float]:
        return [run_figures[quantile] for run_figures in latencies[variant]]

    vs_raw = paired_ratio(series("garrison", "p50"), series("raw_asyncio", "p50"))
    pykka_over_ours = paired_ratio(series("pykka", "p50"), series("garrison", "p50"))
    return {
        "measures": "round-trip latency of sequential asks in microseconds: p50 and p99 per run, medians",
        "params": {"asks": asks, "pykka_asks": pykka_asks, "capacity": CAPACITY, "runs": runs},
        "figures": {
            "garrison_p50_us": summary(series("garrison", "p50"), 2),
            "garrison_p99_us": summary(series("garrison", "p99"), 2),
            "garrison_no_timeout_p50_us": summary(series("garrison_no_timeout", "p50"), 2),
            "garrison_no_timeout_p99_us": summary(series("garrison_no_timeout", "p99"), 2),
        },
        "baselines": {
            "raw_asyncio_p50_us": summary(series("raw_asyncio", "p50"), 2),
            "raw_asyncio_p99_us": summary(series("raw_asyncio", "p99"), 2),
            "pykka_p50_us": summary(series("pykka", "p50"), 2),
            "pykka_p99_us": summary(series("pykka", "p99"), 2),
        },
        "ratios": {
            "garrison_p50_over_raw_asyncio_p50": round(vs_raw, 3),
            "garrison_p99_over_raw_asyncio_p99": round(
                paired_ratio(series("garrison", "p99"), series("raw_asyncio", "p99")), 3
            ),
            "garrison_no_timeout_p50_over_raw_asyncio_p50": round(
                paired_ratio(series("garrison_no_timeout", "p50"), series("raw_asyncio", "p50")), 3
            ),
            "pykka_p50_over_garrison_p50": round(pykka_over_ours, 2),
        },
        "targets": {
            "p50_vs_raw_asyncio": target(vs_raw, "<=", 1.5, "garrison ask p50 / raw asyncio p50"),
            "p50_vs_pykka": target(
                pykka_over_ours, ">=", 10.0, "pykka ask p50 / garrison ask p50 (how many times faster)"
            ),
        },
    }
