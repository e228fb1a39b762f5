"""The Redis journal's checksums, schema version, quarantine and migration, on a real server."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from garrison._errors import InvalidConfig, JournalCorrupt
from garrison.persistence import RedisJournal
from tests.persistence._model import read_all


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_changed_entry_fails_its_checksum_naming_stream_and_seq(
    redis_journal: RedisJournal, raw: aioredis.Redis
) -> None:
    await redis_journal.append("orders", [b"a", b"b", b"c"], 0)
    key = redis_journal.events_key("orders")
    # Entries cannot be edited in place: rebuild the stream with entry 2's payload changed.
    await raw.delete(key)
    for seq, payload in ((1, b"a"), (2, b"B"), (3, b"c")):
        original = {1: b"a", 2: b"b", 3: b"c"}[seq]
        await raw.xadd(key, {"p": payload, "c": zlib.crc32(original)}, id=f"{seq}-0")

    with pytest.raises(JournalCorrupt) as caught:
        await read_all(redis_journal, "orders")
    problems = [problem async for problem in redis_journal.verify()]

    assert (caught.value.stream, caught.value.seq) == ("orders", 2)
    assert (caught.value.expected, caught.value.found) == (zlib.crc32(b"b"), zlib.crc32(b"B"))
    assert [(problem.kind, problem.stream, problem.seq) for problem in problems] == [
        ("checksum", "orders", 2)
    ]


async def test_a_changed_snapshot_fails_its_checksum(
    redis_journal: RedisJournal, raw: aioredis.Redis
) -> None:
    await redis_journal.append("acct", [b"e"], 0)
    await redis_journal.save_snapshot("acct", 1, b"state@1")
    await raw.hset(redis_journal.meta_key("acct"), "snapshot", b"state@2")

    with pytest.raises(JournalCorrupt) as caught:
        await redis_journal.load_snapshot("acct")

    assert (caught.value.stream, caught.value.seq) == ("acct", 1)


async def test_a_changed_snapshot_seq_fails_its_checksum(
    redis_journal: RedisJournal, raw: aioredis.Redis
) -> None:
    """The seq is under the snapshot's checksum: read as of seq 2, it would replay from the
    wrong event."""
    await redis_journal.append("acct", [b"e", b"f"], 0)
    await redis_journal.save_snapshot("acct", 1, b"state@1")
    await raw.hset(redis_journal.meta_key("acct"), "snapshot_seq", 2)

    with pytest.raises(JournalCorrupt) as caught:
        await redis_journal.load_snapshot("acct")

    assert (caught.value.stream, caught.value.seq) == ("acct", 2)


async def test_a_snapshot_checksummed_before_the_seq_was_covered_still_loads(
    redis_journal: RedisJournal, raw: aioredis.Redis
) -> None:
    await redis_journal.append("acct", [b"e"], 0)
    await redis_journal.save_snapshot("acct", 1, b"state@1")
    await raw.hset(redis_journal.meta_key("acct"), "snapshot_crc", zlib.crc32(b"state@1"))

    assert await redis_journal.load_snapshot("acct") == (1, b"state@1")


async def test_a_quarantined_entry_is_skipped_kept_listed_and_restorable(redis_journal: RedisJournal) -> None:
    await redis_journal.append("orders", [b"a", b"b", b"c"], 0)

    set_aside = await redis_journal.quarantine("orders", 2, "operator: bad price")

    assert (set_aside.stream, set_aside.seq, set_aside.payload) == ("orders", 2, b"b")
    assert await read_all(redis_journal, "orders") == [(1, b"a"), (3, b"c")]
    assert [(event.seq, event.reason) for event in await redis_journal.quarantined("orders")] == [
        (2, "operator: bad price")
    ]
    assert await redis_journal.highest_seq("orders") == 3
    (summary,) = await redis_journal.streams()
    assert (summary.stream, summary.events, summary.highest_seq, summary.quarantined) == ("orders", 3, 3, 1)

    await redis_journal.restore("orders", 2)
    assert await read_all(redis_journal, "orders") == [(1, b"a"), (2, b"b"), (3, b"c")]
    with pytest.raises(InvalidConfig) as caught:
        await redis_journal.quarantine("orders", 9, "no such event")
    assert caught.value.field == "seq"


async def test_a_key_of_the_wrong_type_is_a_named_error_and_is_left_alone(
    redis_journal: RedisJournal, raw: aioredis.Redis
) -> None:
    key = redis_journal.events_key("orders")
    await raw.set(key, "not a stream")

    with pytest.raises(JournalCorrupt, match="not of the type") as caught:
        await read_all(redis_journal, "orders")
    problems = [problem async for problem in redis_journal.verify()]

    assert "orders" in caught.value.problem
    assert await raw.get(key) == b"not a stream"
    assert [problem.kind for problem in problems] == ["key-type"]


async def test_a_schema_key_of_another_program_or_a_newer_version_is_refused(
    redis_url: str, namespace: str, raw: aioredis.Redis
) -> None:
    await raw.set(f"{namespace}:schema", "99")
    with pytest.raises(JournalCorrupt, match="newer garrison"):
        await RedisJournal(redis_url, namespace=namespace).open()

    await raw.delete(f"{namespace}:schema")
    await raw.lpush(f"{namespace}:schema", "x")
    with pytest.raises(JournalCorrupt, match="not of the type"):
        await RedisJournal(redis_url, namespace=namespace).open()
    assert await raw.type(f"{namespace}:schema") == b"list"


async def test_a_version_1_namespace_is_refused_until_migrated_then_reads_with_checksums(
    redis_url: str, namespace: str, raw: aioredis.Redis
) -> None:
    """Keys as garrison wrote them before checksums: entries with only ``p``, no schema key."""
    events = f"{namespace}:{{orders}}:events"
    meta = f"{namespace}:{{orders}}:meta"
    for seq in range(1, 6):
        await raw.xadd(events, {"p": f"o{seq}".encode()}, id=f"{seq}-0")
    await raw.hset(meta, mapping={"highest": 5, "snapshot_seq": 2, "snapshot": b"s@2"})
    await raw.xgroup_create(events, "fills", id="3-0")

    with pytest.raises(JournalCorrupt, match="garrison journal migrate"):
        await RedisJournal(redis_url, namespace=namespace).open()
    assert await raw.exists(f"{namespace}:schema") == 0

    async with RedisJournal(redis_url, namespace=namespace, migrate=True):
        pass

    async with RedisJournal(redis_url, namespace=namespace) as journal:
        assert await read_all(journal, "orders") == [(seq, f"o{seq}".encode()) for seq in range(1, 6)]
        assert await journal.load_snapshot("orders") == (2, b"s@2")
        assert [problem async for problem in journal.verify()] == []
        assert await journal.append("orders", [b"o6"], 5) == 6
    (group,) = await raw.xinfo_groups(events)
    assert (group["name"], group["last-delivered-id"]) == (b"fills", b"3-0")
