"""What RedisJournal adds to the journal contract: entry ids are sequence numbers, appends
are scripts folded into one pipeline, snapshots live beside the stream, and the
durability it is asked to confirm is checked on every append.
"""

from __future__ import annotations

import asyncio
import random
import zlib

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from garrison import InvalidConfig
from garrison._errors import JournalWriteError, SequenceConflict
from garrison.persistence import Journal, RedisJournal
from tests.persistence._model import read_all

from .conftest import StartRedis


@pytest.fixture
async def raw(redis_url: str) -> aioredis.Redis:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_redis_journal_satisfies_the_journal_protocol(redis_journal: RedisJournal) -> None:
    assert isinstance(redis_journal, Journal)


async def test_entry_ids_are_the_sequence_numbers(redis_journal: RedisJournal, raw: aioredis.Redis) -> None:
    await redis_journal.append("orders", [b"a", b"b"], 0)
    await redis_journal.append("orders", [b"c"], 2)

    rows = await raw.xrange(redis_journal.events_key("orders"))

    assert [(entry_id, fields) for entry_id, fields in rows] == [
        (b"1-0", {b"p": b"a", b"c": str(zlib.crc32(b"a")).encode()}),
        (b"2-0", {b"p": b"b", b"c": str(zlib.crc32(b"b")).encode()}),
        (b"3-0", {b"p": b"c", b"c": str(zlib.crc32(b"c")).encode()}),
    ]


async def test_the_server_itself_refuses_an_entry_at_or_below_the_top(
    redis_journal: RedisJournal, raw: aioredis.Redis
) -> None:
    await redis_journal.append("orders", [b"a", b"b"], 0)

    for stale in ("1-0", "2-0"):
        with pytest.raises(redis.exceptions.ResponseError):
            await raw.xadd(redis_journal.events_key("orders"), {"p": b"dup"}, id=stale)

    assert await read_all(redis_journal, "orders") == [(1, b"a"), (2, b"b")]


async def test_an_append_is_on_the_server_when_it_returns(
    redis_journal: RedisJournal, raw: aioredis.Redis
) -> None:
    assert await redis_journal.append("orders", [b"a"], 0) == 1

    assert await raw.xlen(redis_journal.events_key("orders")) == 1


async def test_sequence_numbers_past_2_to_the_47_keep_integer_entry_ids(
    redis_journal: RedisJournal, raw: aioredis.Redis
) -> None:
    """Lua numbers print as 1e+15 unless formatted: such an id would not even parse."""
    far = 10**15
    await raw.hset(redis_journal.meta_key("far"), "highest", far)

    assert await redis_journal.append("far", [b"x", b"y"], far) == far + 2

    assert [entry_id for entry_id, _ in await raw.xrange(redis_journal.events_key("far"))] == [
        f"{far + 1}-0".encode(),
        f"{far + 2}-0".encode(),
    ]
    assert await redis_journal.highest_seq("far") == far + 2
    assert await read_all(redis_journal, "far") == [(far + 1, b"x"), (far + 2, b"y")]


async def test_concurrent_appends_share_one_pipeline(redis_journal: RedisJournal) -> None:
    commits_before = redis_journal.commits

    results = await asyncio.gather(*(redis_journal.append(f"s{i}", [b"x"], 0) for i in range(100)))

    assert results == [1] * 100
    assert redis_journal.commits - commits_before <= 3
    assert redis_journal.stats()["appends"] == 100


async def test_stats_count_latency_and_batch_sizes(redis_journal: RedisJournal) -> None:
    await asyncio.gather(*(redis_journal.append(f"s{i}", [b"x"], 0) for i in range(10)))

    stats = redis_journal.stats()
    assert sum(count for _, count in stats["latency_buckets"]) == 10
    assert stats["latency_sum"] > 0
    assert sum(count for _, count in stats["batch_buckets"]) == stats["commits"] >= 1


async def test_snapshots_live_beside_the_stream_under_its_hash_tag(
    redis_journal: RedisJournal, raw: aioredis.Redis
) -> None:
    await redis_journal.append("acct", [b"e"], 0)
    await redis_journal.save_snapshot("acct", 1, b"state@1")

    keys = sorted([key.decode() async for key in raw.scan_iter(match=f"{redis_journal.namespace}:{{*")])

    assert keys == [f"{redis_journal.namespace}:{{acct}}:events", f"{redis_journal.namespace}:{{acct}}:meta"]
    assert await raw.hget(keys[1], "snapshot") == b"state@1"
    assert await redis_journal.load_snapshot("acct") == (1, b"state@1")


async def test_a_bad_url_or_read_batch_is_rejected_naming_the_field() -> None:
    with pytest.raises(InvalidConfig) as caught:
        RedisJournal("http://127.0.0.1:6379")
    assert caught.value.field == "url"
    with pytest.raises(InvalidConfig) as caught:
        RedisJournal("redis://127.0.0.1:6379/0", read_batch=0)
    assert caught.value.field == "read_batch"


async def test_opening_a_journal_on_a_server_that_is_not_there_says_so() -> None:
    from ._server import free_port

    port = free_port()
    journal = RedisJournal(f"redis://127.0.0.1:{port}/0", socket_timeout=1.0)
    with pytest.raises(ConnectionError, match=f"cannot reach Redis at redis://127.0.0.1:{port}"):
        await journal.open()


async def test_appends_go_on_after_the_server_forgets_its_scripts(start_redis: StartRedis) -> None:
    server = await start_redis()
    async with RedisJournal(server.url, namespace="t") as journal:
        await journal.append("s", [b"1"], 0)
        raw = aioredis.Redis.from_url(server.url)
        try:
            await raw.script_flush()
        finally:
            await raw.aclose()

        assert await asyncio.gather(journal.append("s", [b"2"], 1), journal.append("t", [b"1"], 0)) == [2, 1]
        assert await read_all(journal, "s") == [(1, b"1"), (2, b"2")]


# -- durability: confirm_aof --------------------------------------------------------------------


async def test_confirm_aof_refuses_to_open_on_a_server_that_may_lose_acknowledged_appends(
    start_redis: StartRedis,
) -> None:
    server = await start_redis(appendfsync="everysec")
    journal = RedisJournal(server.url, confirm_aof=True)

    with pytest.raises(InvalidConfig) as caught:
        await journal.open()

    assert caught.value.field == "confirm_aof"
    assert "appendfsync always" in str(caught.value)
    async with RedisJournal(server.url) as unconfirmed:  # without confirm_aof it opens
        assert await unconfirmed.append("s", [b"x"], 0) == 1


async def test_confirm_aof_checks_every_append_not_only_the_opening(start_redis: StartRedis) -> None:
    """Redis 7.0 has no WAITAOF: each commit re-reads the fsync policy in the same pipeline."""
    server = await start_redis()
    raw = aioredis.Redis.from_url(server.url)
    try:
        async with RedisJournal(server.url, namespace="t", confirm_aof=True) as journal:
            assert await journal.append("s", [b"1"], 0) == 1

            await raw.config_set("appendfsync", "everysec")
            with pytest.raises(JournalWriteError, match="appendfsync"):
                await journal.append("s", [b"2"], 1)
            # Written but not confirmed durable: the error says so, a read shows it.
            assert await journal.highest_seq("s") == 2

            await raw.config_set("appendfsync", "always")
            assert await journal.append("s", [b"3"], 2) == 3
            with pytest.raises(SequenceConflict):
                await journal.append("s", [b"3 again"], 2)
    finally:
        await raw.aclose()


async def test_an_append_that_fails_on_the_server_fails_alone_in_its_group_commit(
    redis_journal: RedisJournal, raw: aioredis.Redis
) -> None:
    await raw.set(redis_journal.events_key("broken"), "not a stream")
    await raw.hset(redis_journal.meta_key("broken"), "highest", 0)

    outcomes = await asyncio.gather(
        redis_journal.append("before", [b"x"], 0),
        redis_journal.append("broken", [b"x"], 0),
        redis_journal.append("after", [b"x", b"y"], 0),
        return_exceptions=True,
    )

    assert outcomes[0] == 1 and outcomes[2] == 2
    failed = outcomes[1]
    assert isinstance(failed, JournalWriteError) and failed.stream == "broken"
    # The append script's refusal of that one append, carried as its own cause.
    assert isinstance(failed.cause, RuntimeError)
    assert str(failed).startswith("append to stream 'broken' failed: RuntimeError: ")
    assert await redis_journal.highest_seq("broken") == 0


async def test_a_group_commit_larger_than_one_script_is_split_and_every_append_lands(
    redis_journal: RedisJournal,
) -> None:
    from garrison.persistence._redis import MAX_APPENDS_PER_SCRIPT

    count = MAX_APPENDS_PER_SCRIPT * 2 + 7
    commits_before = redis_journal.commits

    results = await asyncio.gather(*(redis_journal.append(f"s{i}", [b"x", b"y"], 0) for i in range(count)))

    assert results == [2] * count
    assert redis_journal.commits - commits_before <= 3
    assert [await redis_journal.highest_seq(f"s{i}") for i in (0, count // 2, count - 1)] == [2, 2, 2]


async def test_a_task_reading_in_a_loop_ends_when_cancelled_at_any_moment(
    redis_journal: RedisJournal,
) -> None:
    """An actor recovering from the journal must stop when it is stopped, wherever the
    cancellation lands; redis-py has been seen to swallow it mid-command."""
    await redis_journal.append("orders", [b"o"] * 50, 0)
    await redis_journal.save_snapshot("orders", 10, b"state")
    rng = random.Random(11)
    for round_ in range(30):

        async def reads() -> None:
            while True:
                await redis_journal.load_snapshot("orders")
                await redis_journal.highest_seq("orders")
                await redis_journal.acked_seq("orders", "g")
                async for _ in redis_journal.read_batches("orders"):
                    pass

        task = asyncio.ensure_future(reads())
        await asyncio.sleep(rng.uniform(0.0, 0.02))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2.0)
        assert done, f"round {round_}: the cancelled reader is still running"
        assert task.cancelled()
