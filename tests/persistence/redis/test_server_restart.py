"""A Redis server restarted (SHUTDOWN, then started again on the same data) keeps everything
the journal acknowledged: events, snapshots, consumer offsets, and the consumer groups'
pending entries, which are delivered again after the restart.
"""

from __future__ import annotations

import asyncio

from garrison._errors import JournalWriteError
from garrison.persistence import Ack, DurableStream, RedisConsumer, RedisJournal

from .conftest import StartRedis


async def test_acknowledged_appends_snapshots_and_group_state_survive_a_server_restart(
    start_redis: StartRedis,
) -> None:
    server = await start_redis()
    async with RedisJournal(server.url, namespace="app") as journal:
        orders = DurableStream(journal, "orders")
        for i in range(1, 51):
            await orders.append(f"o{i}".encode())
        await journal.append("account", [b"deposit", b"withdraw"], 0)
        await journal.save_snapshot("account", 2, b"balance=0")
        await journal.append("effects", [b"e1"], 0, acks=[Ack("orders", "ledger", 7)])
        consumer = RedisConsumer(journal, "orders", "executors", "w1", batch=10)
        await consumer.ensure_group()
        delivered = await consumer.read()
        await consumer.ack(*(d.seq for d in delivered[:4]))  # 5-10 stay pending

    await server.shutdown()
    assert not server.running
    await server.start()

    async with RedisJournal(server.url, namespace="app") as journal:
        assert [row async for row in journal.read("orders")] == [(i, f"o{i}".encode()) for i in range(1, 51)]
        assert await journal.highest_seq("orders") == 50
        assert await journal.load_snapshot("account") == (2, b"balance=0")
        assert await journal.acked_seq("orders", "ledger") == 7
        restarted = RedisConsumer(journal, "orders", "executors", "w1", batch=10)
        assert [(d.seq, d.delivery_count) for d in await restarted.read()] == [(s, 2) for s in range(5, 11)]
        assert [d.seq for d in await restarted.read()] == list(range(11, 21))
        assert await restarted.lag() == 46
        # The stream goes on where it was: the server still refuses a stale append.
        assert await journal.append("orders", [b"o51"], 50) == 51
    assert server.starts == 2


async def test_a_group_commit_to_a_dead_server_gives_up_within_one_ambiguity_timeout(
    start_redis: StartRedis,
) -> None:
    """ambiguity_timeout bounds how long appends keep reconnecting, for a whole group commit:
    not that much again for every append of the group."""
    server = await start_redis()
    async with RedisJournal(server.url, namespace="app", ambiguity_timeout=0.5) as journal:
        await journal.append("warm", [b"w"], 0)
        await server.kill()
        appends = [journal.append(f"s{i}", [b"e"], 0) for i in range(20)]
        # Twenty appends at 0.5 s each would take 10 s; the group's one bound, about 0.5 s.
        async with asyncio.timeout(5.0):
            outcomes = await asyncio.gather(*appends, return_exceptions=True)
    assert len(outcomes) == 20
    for outcome in outcomes:
        assert isinstance(outcome, JournalWriteError), outcome
    assert not server.running
