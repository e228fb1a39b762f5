"""Durable streams on Redis: RedisConsumer shares a journal stream among a group's live
consumers (XREADGROUP/XACK), reclaims a dead consumer's entries (XAUTOCLAIM) with their
delivery count, dead-letters an entry delivered too often, reports lag from the server,
and trimming never deletes what a group has not acked.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from garrison import InvalidConfig, Node
from garrison.observe._http import collect_metrics
from garrison.persistence import DurableStream, IntentLog, IntentState, RedisConsumer, RedisJournal
from garrison.testing import ChildProcess

from ._worker import GROUP, INTENTS, ORDERS, Order, OrderExecutor, Venue, intent_id

WORKER = str(Path(__file__).with_name("_worker.py"))


def consumer(journal: RedisJournal, name: str, **options: object) -> RedisConsumer:
    return RedisConsumer(journal, "orders", "executors", name, **options)  # type: ignore[arg-type]


@pytest.fixture
def redis_journal(each_redis_journal: RedisJournal) -> RedisJournal:
    """Every test here runs on a single Redis server and on a Redis Cluster."""
    return each_redis_journal


@pytest.fixture
async def orders(redis_journal: RedisJournal) -> DurableStream:
    stream = DurableStream(redis_journal, "orders")
    await consumer(redis_journal, "setup").ensure_group()
    return stream


async def test_consumers_of_one_group_share_the_entries_each_delivered_once(
    redis_journal: RedisJournal, orders: DurableStream
) -> None:
    await orders.append(*(f"o{i}".encode() for i in range(1, 11)))
    first, second = consumer(redis_journal, "a", batch=4), consumer(redis_journal, "b", batch=4)

    delivered: list[int] = []
    while batch := (await first.read()) + (await second.read()):
        delivered += [delivery.seq for delivery in batch]
        assert all(delivery.delivery_count == 1 for delivery in batch)

    assert sorted(delivered) == list(range(1, 11))
    assert await first.ack(*delivered) == 10
    assert await first.lag() == 0


async def test_a_consumer_restarted_under_its_name_gets_its_unacked_entries_first(
    redis_journal: RedisJournal, orders: DurableStream
) -> None:
    await orders.append(*(f"o{i}".encode() for i in range(1, 6)))
    before = consumer(redis_journal, "a")
    assert [d.seq for d in await before.read()] == [1, 2, 3, 4, 5]
    await before.ack(1, 2)
    await orders.append(b"o6")

    after = consumer(redis_journal, "a")  # the same name, after a crash
    redelivered = await after.read()

    assert [(d.seq, d.payload, d.delivery_count) for d in redelivered] == [
        (3, b"o3", 2),
        (4, b"o4", 2),
        (5, b"o5", 2),
    ]
    assert [(d.seq, d.delivery_count) for d in await after.read()] == [(6, 1)]


async def test_own_unacked_entries_beyond_one_batch_are_read_on_not_read_again(
    redis_journal: RedisJournal, orders: DurableStream
) -> None:
    await orders.append(*(f"o{i}".encode() for i in range(1, 11)))
    await consumer(redis_journal, "a").read()

    restarted = consumer(redis_journal, "a", batch=4)
    batches = [await restarted.read() for _ in range(4)]

    assert [[d.seq for d in batch] for batch in batches] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10], []]
    assert {d.delivery_count for batch in batches for d in batch} == {2}


async def test_a_dead_consumers_entries_are_reclaimed_after_claim_idle_with_their_delivery_count(
    redis_journal: RedisJournal, orders: DurableStream
) -> None:
    await orders.append(b"o1", b"o2", b"o3")
    assert len(await consumer(redis_journal, "dead").read()) == 3  # then it dies, never acking
    live = consumer(redis_journal, "live", claim_idle=0.5)

    assert await live.read() == []  # held for less than claim_idle: the owner may be alive
    await asyncio.sleep(0.55)
    reclaimed = await live.read()

    assert [(d.seq, d.payload, d.delivery_count) for d in reclaimed] == [
        (1, b"o1", 2),
        (2, b"o2", 2),
        (3, b"o3", 2),
    ]
    assert live.reclaimed == 3
    pending = await redis_journal.client().xpending_range(
        redis_journal.events_key("orders"), "executors", min="-", max="+", count=10
    )
    assert {row["consumer"] for row in pending} == {b"live"}
    assert await live.ack(1, 2, 3) == 3
    assert await live.lag() == 0


async def test_renewing_keeps_a_slow_consumers_entries_and_never_takes_back_one_reclaimed(
    redis_journal: RedisJournal, orders: DurableStream
) -> None:
    await orders.append(b"o1", b"o2", b"o3")
    slow = consumer(redis_journal, "slow", claim_idle=0.5)
    live = consumer(redis_journal, "live", claim_idle=0.5)
    assert len(await slow.read()) == 3
    await asyncio.sleep(0.3)
    assert await slow.renew(1, 2) == {1, 2}  # o3 is left to go idle
    await asyncio.sleep(0.3)

    reclaimed = await live.read()

    assert [d.seq for d in reclaimed] == [3]  # o1 and o2 were renewed 0.3 s ago: still held
    assert await slow.renew(1, 2, 3) == {1, 2}  # o3 is live's now, and stays live's
    pending = await redis_journal.client().xpending_range(
        redis_journal.events_key("orders"), "executors", min="-", max="+", count=10
    )
    assert {(row["message_id"], row["consumer"], row["times_delivered"]) for row in pending} == {
        (b"1-0", b"slow", 1),  # renewing does not count as a delivery
        (b"2-0", b"slow", 1),
        (b"3-0", b"live", 2),
    }
    await slow.ack(1, 2)
    assert await slow.renew(1, 2) == set()
    assert await slow.renew() == set()


async def test_a_reader_loop_cancelled_at_any_moment_ends(
    redis_journal: RedisJournal, orders: DurableStream
) -> None:
    """A task that reads in a loop (an actor's reader) must end when cancelled, wherever the
    cancellation lands; redis-py has been seen to swallow it mid-command."""
    reader = consumer(redis_journal, "reader", claim_idle=0.05, batch=5)
    rng = random.Random(7)
    for round_ in range(30):
        if round_ % 3 == 0:
            await orders.append(*(b"o" for _ in range(8)))

        async def loop() -> None:
            while True:
                await reader.read(block=0.05)
                await reader.renew(1, 2, 3)

        task = asyncio.ensure_future(loop())
        await asyncio.sleep(rng.uniform(0.0, 0.06))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2.0)
        assert done, f"round {round_}: the cancelled reader is still running"
        assert task.cancelled()


async def test_reclaiming_reaches_idle_entries_behind_a_long_busy_pending_list(
    redis_journal: RedisJournal, orders: DurableStream
) -> None:
    """One XAUTOCLAIM scans at most 10 x COUNT pending entries: the scan must go on from there."""
    await orders.append(*(f"o{i}".encode() for i in range(1, 66)))
    busy = consumer(redis_journal, "busy", batch=65)
    assert len(await busy.read()) == 65  # pending at a live consumer, not idle
    # The last five belong to a consumer gone quiet 5 s ago.
    await redis_journal.client().xclaim(
        redis_journal.events_key("orders"), "executors", "dead", 0, [f"{s}-0" for s in range(61, 66)],
        idle=5000,
    )  # fmt: skip
    live = consumer(redis_journal, "live", claim_idle=2.0, batch=2)  # one scan: 20 pending entries

    reclaimed: list[int] = []
    for _ in range(20):
        reclaimed += [d.seq for d in await live.read()]
        if len(reclaimed) == 5:
            break

    assert sorted(reclaimed) == [61, 62, 63, 64, 65]


async def test_an_entry_delivered_more_than_max_deliveries_moves_to_the_dead_letter_stream_with_the_reason(
    redis_journal: RedisJournal, orders: DurableStream
) -> None:
    await orders.append(b"poison", b"fine")
    first = consumer(redis_journal, "a", claim_idle=0.05, max_deliveries=2)
    second = consumer(redis_journal, "b", claim_idle=0.05, max_deliveries=2)
    assert [d.seq for d in await first.read()] == [1, 2]
    await first.ack(2)

    await asyncio.sleep(0.06)
    assert [(d.seq, d.delivery_count) for d in await second.read()] == [(1, 2)]
    await asyncio.sleep(0.06)
    assert await first.read() == []  # the third delivery is one too many

    assert first.dead_lettered == 1
    assert await first.lag() == 0  # acked: it no longer blocks the group
    dead = DurableStream(redis_journal, "orders.dead-letters")
    assert [row async for row in redis_journal.read("orders.dead-letters")] == [(1, b"poison")]
    [(entry_id, fields)] = await redis_journal.client().xrange(redis_journal.events_key(dead.name))
    assert entry_id == b"1-0"
    assert fields[b"stream"] == b"orders" and fields[b"seq"] == b"1" and fields[b"group"] == b"executors"
    assert fields[b"reason"] == b"delivered 3 times to group 'executors' without an ack (max_deliveries=2)"
    # A journal stream like any other: it goes on from its highest seq.
    assert await dead.append(b"by hand") == 2


async def test_lag_comes_from_the_server_counting_undelivered_and_unacked_entries_of_every_consumer(
    redis_journal: RedisJournal, orders: DurableStream
) -> None:
    await orders.append(*(f"o{i}".encode() for i in range(1, 11)))
    here = consumer(redis_journal, "a", batch=4)
    assert await here.lag() == 10

    await here.read()
    assert await here.lag() == 10  # four delivered, none acked
    await here.ack(1, 2)
    assert await here.lag() == 8

    async with RedisJournal(redis_journal.connection, namespace=redis_journal.namespace) as elsewhere:
        there = RedisConsumer(elsewhere, "orders", "executors", "b", batch=100)
        await there.ack(*[d.seq for d in await there.read()])
    await here.ack(3, 4)

    assert await here.lag() == 0


async def test_lag_is_exported_as_the_same_metric_as_on_sqlite(
    redis_journal: RedisJournal, orders: DurableStream
) -> None:
    await orders.append(b"a", b"b", b"c")
    reader = consumer(redis_journal, "a")
    await reader.ack((await reader.read())[0].seq)

    async with Node("redis-lag", guard=None, handle_signals=False) as node:
        node.track_consumer_lag(reader)
        families = {family.name: family for family in await collect_metrics(node)}

    [sample] = families["garrison_stream_consumer_lag_entries"].samples
    assert sample.labels == {"stream": "orders", "group": "executors"}
    assert sample.value == 2


async def test_trimming_never_deletes_entries_a_group_has_not_acked(
    redis_journal: RedisJournal, orders: DurableStream
) -> None:
    await orders.append(*(f"o{i}".encode() for i in range(1, 11)))
    fast = consumer(redis_journal, "a")
    await fast.ack(*[d.seq for d in (await fast.read())[:6]])  # all 10 delivered, 1-6 acked
    slow = RedisConsumer(redis_journal, "orders", "audit", "x", batch=3)
    await slow.ensure_group()  # delivered nothing yet

    await redis_journal.delete_events("orders", 10)
    assert len([row async for row in redis_journal.read("orders")]) == 10

    await slow.ack(*[d.seq for d in await slow.read()])  # audit: 1-3 acked, nothing pending
    await redis_journal.delete_events("orders", 10)
    assert [seq async for seq, _ in redis_journal.read("orders")] == list(range(4, 11))

    await slow.read()  # audit: 4-6 pending
    await slow.ack(*[d.seq for d in await slow.read()])  # 7-9 acked around them
    await redis_journal.delete_events("orders", 10)
    assert [seq async for seq, _ in redis_journal.read("orders")] == list(range(4, 11))
    assert await redis_journal.highest_seq("orders") == 10


async def test_invalid_consumer_settings_are_rejected_naming_the_field(redis_journal: RedisJournal) -> None:
    for options, field in (
        ({"claim_idle": 0}, "claim_idle"),
        ({"max_deliveries": 0}, "max_deliveries"),
        ({"batch": 0}, "batch"),
    ):
        with pytest.raises(InvalidConfig) as caught:
            consumer(redis_journal, "a", **options)
        assert caught.value.field == field
    with pytest.raises(InvalidConfig) as caught:
        RedisConsumer(redis_journal, "orders", "", "a")
    assert caught.value.field == "group"


# -- a consumer that crashes between its effect and its ack --------------------------------------


class Crashed(Exception):
    pass


class CrashingVenue(Venue):
    """Sends, then the consumer 'dies' before it can record DONE or ack."""

    async def send(self, orders: object) -> None:
        await super().send(orders)  # type: ignore[arg-type]
        raise Crashed


@pytest.fixture
async def order_stream(redis_journal: RedisJournal) -> AsyncIterator[DurableStream]:
    stream = DurableStream(redis_journal, ORDERS)
    await RedisConsumer(redis_journal, ORDERS, GROUP, "setup").ensure_group()
    yield stream


def encoded_orders(count: int, start: int = 0) -> list[bytes]:
    return [msgspec.msgpack.encode(Order(f"order-{i}", "ACME", i + 1)) for i in range(start, start + count)]


async def test_a_consumer_that_crashes_between_effect_and_ack_has_the_entry_redelivered_and_the_effect_is_not_applied_twice(  # noqa: E501
    redis_journal: RedisJournal, order_stream: DurableStream
) -> None:
    await order_stream.append(*encoded_orders(3))
    venue = Venue(redis_journal)

    async with RedisJournal(redis_journal.connection, namespace=redis_journal.namespace) as doomed_journal:
        doomed = RedisConsumer(doomed_journal, ORDERS, GROUP, "doomed", claim_idle=0.2)
        log = await IntentLog(doomed_journal, INTENTS, Order).open()
        with pytest.raises(Crashed):
            await OrderExecutor(doomed, log, CrashingVenue(doomed_journal)).handle(await doomed.read())
    assert len(await venue.effects()) == 3  # the effects happened; nothing was acked

    survivor = RedisConsumer(redis_journal, ORDERS, GROUP, "survivor", claim_idle=0.2)
    executor = OrderExecutor(survivor, await IntentLog(redis_journal, INTENTS, Order).open(), venue)
    await asyncio.sleep(0.25)
    redelivered = await survivor.read()
    await executor.handle(redelivered)

    assert [(d.seq, d.delivery_count) for d in redelivered] == [(1, 2), (2, 2), (3, 2)]
    assert executor.sent == 0
    assert Counter(await venue.effects()) == {intent_id(Order(f"order-{i}", "ACME", 0)): 1 for i in range(3)}
    log = await IntentLog(redis_journal, INTENTS, Order).open()
    assert {intent.state for intent in log.intents()} == {IntentState.DONE}
    assert await survivor.lag() == 0


async def test_a_worker_killed_right_after_its_effect_leaves_it_to_another_that_does_not_repeat_it(
    redis_journal: RedisJournal, order_stream: DurableStream
) -> None:
    await order_stream.append(*encoded_orders(5))
    venue = Venue(redis_journal)
    cluster = ("--cluster",) if redis_journal.connection.cluster else ()
    argv = (sys.executable, WORKER, redis_journal.url, redis_journal.namespace, *cluster)

    doomed_argv = (*argv, "doomed", "--claim-idle", "0.3", "--die-after-effect")
    async with await ChildProcess.start(*doomed_argv) as doomed:
        assert await doomed.wait(timeout=30) == -9
    assert len(await venue.effects()) == 5

    async with await ChildProcess.start(*argv, "survivor", "--claim-idle", "0.3") as survivor:
        await survivor.wait_for_output("handled 5 reclaimed 5", timeout=30)

    assert sorted(await venue.effects()) == sorted(
        intent_id(Order(f"order-{i}", "ACME", 0)) for i in range(5)
    )
    assert await RedisConsumer(redis_journal, ORDERS, GROUP, "probe").lag() == 0
