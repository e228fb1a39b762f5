"""Several worker processes share one durable stream of order intents through one Redis
consumer group. SIGKILLed at random moments and restarted, again and again, they lose no
order (a dead worker's entries are reclaimed by a live one) and apply no effect twice (each
effect is guarded by the intent log they share).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from garrison.persistence import DurableStream, IntentLog, IntentState, RedisConsumer, RedisJournal
from garrison.testing import ChildProcess

from ._worker import GROUP, INTENTS, ORDERS, Order, Venue, intent_id

WORKER = str(Path(__file__).with_name("_worker.py"))
WORKERS = 3
KILLS = 22
CLAIM_IDLE = 0.5
DRAIN_TIMEOUT = 30.0
PER_TICK = 80
"""Orders appended every 0.1 s: more than the workers take in, so they are always busy and
a kill lands on work in progress."""


class Crew:
    """The worker processes, by slot; a killed one is replaced (same name or a new one)."""

    def __init__(self, argv: tuple[str, ...], rng: random.Random) -> None:
        self.argv = argv
        self.rng = rng
        self.slots: dict[int, ChildProcess] = {}
        self.names: dict[int, str] = {}
        self.retired: list[ChildProcess] = []
        self.started = 0

    async def start(self, slot: int, name: str) -> None:
        self.names[slot] = name
        self.slots[slot] = await ChildProcess.start(*self.argv, name, "--claim-idle", str(CLAIM_IDLE))
        self.started += 1

    async def kill_and_replace(self, slot: int) -> int:
        victim = self.slots[slot]
        status = await victim.kill()
        self.retired.append(victim)
        # Half come back under the dead one's name (it reads its own pending entries
        # first), half under a new name (its entries must be reclaimed by others).
        name = self.names[slot] if self.rng.random() < 0.5 else f"worker-{self.started}"
        await self.start(slot, name)
        return status

    def victim(self) -> int:
        """A random worker, preferring those already at work (a worker still starting up
        holds nothing to lose)."""
        working = [
            slot
            for slot, child in self.slots.items()
            if any(line.startswith("handled") for line in child.output)
        ]
        return self.rng.choice(working or list(self.slots))

    def output(self) -> list[str]:
        return [line for child in (*self.retired, *self.slots.values()) for line in child.output]

    async def aclose(self) -> None:
        for child in (*self.slots.values(), *self.retired):
            await child.aclose()


@pytest.fixture
async def crew(redis_url: str, namespace: str) -> AsyncIterator[Crew]:
    seed = random.randrange(2**32)
    print(f"work-sharing seed: {seed}")
    opened = Crew((sys.executable, WORKER, redis_url, namespace), random.Random(seed))
    try:
        yield opened
    finally:
        await opened.aclose()


async def produce(stream: DurableStream, stop: asyncio.Event, produced: list[Order]) -> None:
    while not stop.is_set():
        orders = [Order(f"order-{len(produced) + i}", "ACME", 1 + i) for i in range(PER_TICK)]
        await stream.append(*(msgspec.msgpack.encode(order) for order in orders))
        produced.extend(orders)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def test_workers_killed_at_random_moments_lose_no_order_and_apply_no_effect_twice(
    redis_journal: RedisJournal, crew: Crew
) -> None:
    stream = DurableStream(redis_journal, ORDERS)
    group = RedisConsumer(redis_journal, ORDERS, GROUP, "observer")
    await group.ensure_group()
    venue = Venue(redis_journal)
    started = time.monotonic()
    for slot in range(WORKERS):
        await crew.start(slot, f"worker-{slot}")
    for child in crew.slots.values():
        await child.wait_for_output("ready", timeout=20)

    produced: list[Order] = []
    stop = asyncio.Event()
    producer = asyncio.ensure_future(produce(stream, stop, produced))
    statuses = []
    try:
        for _ in range(KILLS):
            await asyncio.sleep(crew.rng.uniform(0.1, 0.45))
            statuses.append(await crew.kill_and_replace(crew.victim()))
    finally:
        stop.set()
        await asyncio.wait_for(producer, 10)

    # The survivors drain what is left, reclaiming whatever the dead held.
    for _ in range(int(DRAIN_TIMEOUT / 0.1)):
        if not (lag := await group.lag()):
            break
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - started

    assert statuses == [-9] * KILLS
    assert lag == 0, f"{lag} orders still unacked after {DRAIN_TIMEOUT}s of draining"
    effects = Counter(await venue.effects())
    expected = {intent_id(order) for order in produced}
    assert len(expected) == len(produced) > 200
    assert set(effects) == expected, f"{len(expected - set(effects))} orders never took effect"
    twice = {coid: count for coid, count in effects.items() if count > 1}
    assert not twice, f"{len(twice)} orders took effect more than once"
    pending = await redis_journal.client().xpending(redis_journal.events_key(ORDERS), GROUP)
    assert pending["pending"] == 0
    assert [row async for row in redis_journal.read(f"{ORDERS}.dead-letters")] == []
    log = await IntentLog(redis_journal, INTENTS, Order).open()
    assert {intent.state for intent in log.intents()} == {IntentState.DONE}
    assert len(log) == len(produced)
    resent_after_lookup = sum(intent.attempts > 1 for intent in log.intents())
    found_at_venue = sum(intent.detail == "found at the venue" for intent in log.intents())
    # The kills did hit work in progress: entries a dead worker held were delivered again.
    output = "\n".join(crew.output())
    reclaimed = sum(int(m.group(1)) for m in re.finditer(r"reclaimed (\d+)", output))
    redelivered = sum(int(m.group(1)) for m in re.finditer(r"redelivered (\d+)", output))
    assert redelivered > 0
    print(
        f"{len(produced)} orders, {KILLS} kills, {crew.started} workers started, "
        f"{redelivered} entries delivered again, {reclaimed} of them reclaimed, "
        f"{found_at_venue} found already sent at the venue, "
        f"{resent_after_lookup} sent again after the venue said it never got them, {elapsed:.1f}s"
    )
