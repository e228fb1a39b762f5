"""tell throughput: one producer, one consumer, a bounded queue of 1000 between them.

- garrison: ``await ref.tell(i)`` to an actor whose async ``on_receive``
  counts and sets an ``asyncio.Event`` at the last message;
- asyncio.Queue: the raw pair, ``await q.put(i)`` / ``await q.get()`` on an
  ``asyncio.Queue(maxsize=1000)``, the consumer counting inline;
- pykka: ``actor_ref.tell(i)`` from the main thread to a ``ThreadingActor``
  whose ``on_receive`` counts and sets a ``threading.Event`` at the last one.

The clock runs from the first send to the last message handled. Each run
gives two rates: per second of wall-clock time, and per second of CPU time
(of the loop's thread for the asyncio variants, of the whole process for
pykka, whose two threads share the work). Between single-threaded asyncio
variants the CPU rate is what the targets use: it is the same figure on an
idle machine, and on a shared one it leaves out the time other processes
took the CPU away. Against pykka the wall-clock rate is used: a threaded
actor's cost includes the waits of crossing threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, NamedTuple

import pykka

from bench._harness import interleave, paired_ratio, quiet_logs, summary, target
from garrison import Actor, MailboxConfig, Node

CAPACITY = 1000


class Rate(NamedTuple):
    """Messages per second of one run."""

    wall: float
    """Per second of wall-clock time."""
    cpu: float
    """Per second of CPU time: the loop's thread (asyncio variants) or the process (pykka)."""


class _Stopwatch:
    """Wall-clock and CPU time together; ``rate(count)`` reads both."""

    def __init__(self, cpu_clock: Any = time.thread_time) -> None:
        self._cpu_clock = cpu_clock
        self._wall = time.perf_counter()
        self._cpu = cpu_clock()

    def rate(self, count: int) -> Rate:
        cpu = self._cpu_clock() - self._cpu
        wall = time.perf_counter() - self._wall
        return Rate(count / wall, count / max(cpu, 1e-9))


class Counter(Actor):
    """Counts messages; sets ``done`` when the ``total``-th arrives."""

    def __init__(self, total: int, done: asyncio.Event) -> None:
        self.total = total
        self.count = 0
        self.done = done

    async def on_receive(self, message: Any) -> None:
        self.count += 1
        if self.count == self.total:
            self.done.set()


async def _garrison_tell(messages: int, mailbox: MailboxConfig) -> Rate:
    async with Node("bench", handle_signals=False) as node:
        done = asyncio.Event()
        ref = await node.spawn(Counter, name="counter", args=(messages, done), mailbox=mailbox)
        stopwatch = _Stopwatch()
        for i in range(messages):
            await ref.tell(i)
        await done.wait()
        return stopwatch.rate(messages)


def garrison_tell_rate(messages: int, mailbox: MailboxConfig) -> Rate:
    """Messages per second through one garrison actor, on a fresh loop and node."""
    return asyncio.run(_garrison_tell(messages, mailbox))


async def _queue_tell(messages: int) -> Rate:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=CAPACITY)
    done = asyncio.Event()

    async def consume() -> None:
        count = 0
        while True:
            await queue.get()
            count += 1
            if count == messages:
                done.set()
                return

    consumer = asyncio.create_task(consume())
    stopwatch = _Stopwatch()
    for i in range(messages):
        await queue.put(i)
    await done.wait()
    rate = stopwatch.rate(messages)
    await consumer
    return rate


def queue_tell_rate(messages: int) -> Rate:
    """Messages per second through a raw asyncio.Queue producer/consumer pair."""
    return asyncio.run(_queue_tell(messages))


class PykkaCounter(pykka.ThreadingActor):
    def __init__(self, total: int, done: threading.Event) -> None:
        super().__init__()
        self.total = total
        self.count = 0
        self.done = done

    def on_receive(self, message: Any) -> None:
        self.count += 1
        if self.count == self.total:
            self.done.set()


def pykka_tell_rate(messages: int) -> Rate:
    """Messages per second told from the main thread to one pykka ThreadingActor."""
    done = threading.Event()
    actor_ref = PykkaCounter.start(messages, done)
    try:
        stopwatch = _Stopwatch(time.process_time)
        for i in range(messages):
            actor_ref.tell(i)
        done.wait()
        return stopwatch.rate(messages)
    finally:
        actor_ref.stop()


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    messages = 20_000 if quick else 200_000
    # pykka is ~10x slower; fewer messages keep its runs as short as ours.
    pykka_messages = messages // 4
    runs = 3 if quick else 9
    mailbox = MailboxConfig(capacity=CAPACITY)
    # Warm-up: imports, code caches and the first loop are off the clock.
    garrison_tell_rate(2_000, mailbox)
    queue_tell_rate(2_000)
    pykka_tell_rate(2_000)
    rates = interleave(
        {
            "garrison": lambda: garrison_tell_rate(messages, mailbox),
            "asyncio_queue": lambda: queue_tell_rate(messages),
            "pykka": lambda: pykka_tell_rate(pykka_messages),
        },
        runs,
    )
    wall = {name: [rate.wall for rate in runs_of] for name, runs_of in rates.items()}
    cpu = {name: [rate.cpu for rate in runs_of] for name, runs_of in rates.items()}
    vs_queue = paired_ratio(cpu["garrison"], cpu["asyncio_queue"])
    vs_pykka = paired_ratio(wall["garrison"], wall["pykka"])
    return {
        "measures": "messages per second, one producer to one consumer, bounded at 1000",
        "params": {
            "messages": messages,
            "pykka_messages": pykka_messages,
            "capacity": CAPACITY,
            "runs": runs,
            "mailbox_metrics": mailbox.metrics,
            "mailbox_throughput": mailbox.throughput,
        },
        "figures": {
            "garrison_msgs_per_sec": summary(wall["garrison"], 0),
            "garrison_msgs_per_cpu_sec": summary(cpu["garrison"], 0),
        },
        "baselines": {
            "asyncio_queue_msgs_per_sec": summary(wall["asyncio_queue"], 0),
            "asyncio_queue_msgs_per_cpu_sec": summary(cpu["asyncio_queue"], 0),
            "pykka_msgs_per_sec": summary(wall["pykka"], 0),
            "pykka_msgs_per_cpu_sec": summary(cpu["pykka"], 0),
        },
        "ratios": {
            "garrison_over_asyncio_queue": round(vs_queue, 3),
            "garrison_over_asyncio_queue_wall_clock": round(
                paired_ratio(wall["garrison"], wall["asyncio_queue"]), 3
            ),
            "garrison_over_pykka": round(vs_pykka, 2),
            "garrison_over_pykka_cpu": round(paired_ratio(cpu["garrison"], cpu["pykka"]), 2),
        },
        "targets": {
            "vs_asyncio_queue": target(
                vs_queue, ">=", 1.2, "garrison tell rate / raw asyncio.Queue rate, per CPU second"
            ),
            "vs_pykka": target(
                vs_pykka, ">=", 8.0, "garrison tell rate / pykka tell rate, per wall-clock second"
            ),
        },
    }
