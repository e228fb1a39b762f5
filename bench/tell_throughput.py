"""tell throughput: one producer, one consumer, a bounded queue of 1000 between them.

- garrison: ``await ref.tell(i)`` to an actor whose async ``on_receive``
  counts and sets an ``asyncio.Event`` at the last message;
- asyncio.Queue: the raw pair, ``await q.put(i)`` / ``await q.get()`` on an
  ``asyncio.Queue(maxsize=1000)``, the consumer counting inline;
- pykka: ``actor_ref.tell(i)`` from the main thread to a ``ThreadingActor``
  whose ``on_receive`` counts and sets a ``threading.Event`` at the last one.

The clock runs from the first send to the last message handled.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pykka

from bench._harness import interleave, paired_ratio, quiet_logs, summary, target
from garrison import Actor, MailboxConfig, Node

CAPACITY = 1000


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


async def _garrison_tell(messages: int, mailbox: MailboxConfig) -> float:
    async with Node("bench", handle_signals=False) as node:
        done = asyncio.Event()
        ref = await node.spawn(Counter, name="counter", args=(messages, done), mailbox=mailbox)
        started = time.perf_counter()
        for i in range(messages):
            await ref.tell(i)
        await done.wait()
        elapsed = time.perf_counter() - started
    return messages / elapsed


def garrison_tell_rate(messages: int, mailbox: MailboxConfig) -> float:
    """Messages per second through one garrison actor, on a fresh loop and node."""
    return asyncio.run(_garrison_tell(messages, mailbox))


async def _queue_tell(messages: int) -> float:
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
    started = time.perf_counter()
    for i in range(messages):
        await queue.put(i)
    await done.wait()
    elapsed = time.perf_counter() - started
    await consumer
    return messages / elapsed


def queue_tell_rate(messages: int) -> float:
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


def pykka_tell_rate(messages: int) -> float:
    """Messages per second told from the main thread to one pykka ThreadingActor."""
    done = threading.Event()
    actor_ref = PykkaCounter.start(messages, done)
    try:
        started = time.perf_counter()
        for i in range(messages):
            actor_ref.tell(i)
        done.wait()
        elapsed = time.perf_counter() - started
    finally:
        actor_ref.stop()
    return messages / elapsed


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
    vs_queue = paired_ratio(rates["garrison"], rates["asyncio_queue"])
    vs_pykka = paired_ratio(rates["garrison"], rates["pykka"])
    return {
        "measures": "messages per second, one producer to one consumer, bounded at 1000",
        "params": {
            "messages": messages,
            "pykka_messages": pykka_messages,
            "capacity": CAPACITY,
            "runs": runs,
            "mailbox_metrics": mailbox.metrics,
        },
        "figures": {"garrison_msgs_per_sec": summary(rates["garrison"], 0)},
        "baselines": {
            "asyncio_queue_msgs_per_sec": summary(rates["asyncio_queue"], 0),
            "pykka_msgs_per_sec": summary(rates["pykka"], 0),
        },
        "ratios": {
            "garrison_over_asyncio_queue": round(vs_queue, 3),
            "garrison_over_pykka": round(vs_pykka, 2),
        },
        "targets": {
            "vs_asyncio_queue": target(vs_queue, ">=", 1.2, "garrison tell rate / raw asyncio.Queue rate"),
            "vs_pykka": target(vs_pykka, ">=", 8.0, "garrison tell rate / pykka tell rate"),
        },
    }
