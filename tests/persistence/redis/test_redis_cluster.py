"""RedisJournal and RedisConsumer on a local 3-master Redis Cluster (``redis_cluster``).

What a cluster changes: a script or MULTI may touch one slot only. Every key
of a stream carries the stream's hash tag (one slot per stream, names built
once); one group commit over streams of many slots runs as one script per
slot; an append may ack only streams of its own slot (streams named with one
``{tag}`` share it); a dead letter to a stream of another slot is written in
two steps that never write it twice. The journal contract suite and the
consumer-group tests run here too (``make_journal``, ``each_redis_journal``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from garrison import InvalidConfig
from garrison._errors import JournalCorrupt
from garrison.persistence import (
    Ack,
    DurableStream,
    RedisConnection,
    RedisConsumer,
    RedisJournal,
    trim_to_snapshot,
)
from garrison.persistence import _redis_scripts as scripts
from garrison.persistence._checksum import checksum

from ._server import delete_namespace, unique_namespace

pytestmark = pytest.mark.redis_cluster


@pytest.fixture
async def journal(redis_cluster: Any, request: pytest.FixtureRequest) -> AsyncIterator[RedisJournal]:
    """An open RedisJournal on the local cluster, in a namespace of this test's own."""
    name = unique_namespace(request.node.name[:40])
    try:
        async with RedisJournal(
            RedisConnection(url=redis_cluster.url, cluster=True), namespace=name
        ) as opened:
            yield opened
    finally:
        await delete_namespace(redis_cluster.url, name, cluster=True)


async def test_a_streams_keys_share_its_slot_and_streams_of_one_hash_tag_share_theirs(
    journal: RedisJournal,
) -> None:
    keys = journal.stream_keys("orders")
    client = journal.client()

    assert {client.keyslot(key) for key in keys[:5]} == {keys.slot}  # events .. fence
    assert keys.fence == journal.fence_key("orders")
    assert journal.stream_keys("orders") is keys  # built once, not per append
    assert journal.stream_keys("{desk-1}.orders").slot == journal.stream_keys("{desk-1}.fills").slot
    with pytest.raises(InvalidConfig) as caught:
        journal.stream_keys("}odd")
    assert caught.value.field == "stream"


async def test_one_group_commit_over_streams_on_every_master_commits_each_append(
    journal: RedisJournal,
) -> None:
    streams = [f"account-{i}" for i in range(60)]
    nodes = {journal.client().get_node_from_key(journal.events_key(stream)).name for stream in streams}
    assert len(nodes) == 3  # the batch spans all three masters

    highest = await asyncio.gather(*(journal.append(stream, [b"a", b"b"], 0) for stream in streams))
    again = await asyncio.gather(*(journal.append(stream, [b"c"], 2) for stream in streams))

    assert highest == [2] * 60
    assert again == [3] * 60
    for stream in streams[::7]:
        assert [payload async for _, payload in journal.read(stream)] == [b"a", b"b", b"c"]
    assert journal.commits < 120  # grouped: not one round trip per append


async def test_an_append_acks_a_stream_of_its_own_hash_tag_and_refuses_one_of_another_slot(
    journal: RedisJournal,
) -> None:
    await journal.append("{flow}.in", [b"i1", b"i2"], 0)
    await journal.append("elsewhere", [b"e1"], 0)
    assert journal.stream_keys("elsewhere").slot != journal.stream_keys("{flow}.out").slot

    assert await journal.append("{flow}.out", [b"o1"], 0, acks=[Ack("{flow}.in", "workers", 2)]) == 1
    with pytest.raises(InvalidConfig) as caught:
        await journal.append("{flow}.out", [b"o2"], 1, acks=[Ack("elsewhere", "workers", 1)])

    assert caught.value.field == "acks"
    assert caught.value.value == "elsewhere"
    assert await journal.acked_seq("{flow}.in", "workers") == 2
    assert await journal.acked_seq("elsewhere", "workers") == 0
    assert await journal.highest_seq("{flow}.out") == 1  # the refused append wrote nothing


async def test_a_dead_letter_to_another_slot_is_written_once_even_after_a_crash_between_its_two_steps(
    journal: RedisJournal,
) -> None:
    orders = DurableStream(journal, "orders")
    await orders.append(b"poison")
    reader = RedisConsumer(journal, "orders", "executors", "a", claim_idle=0.05, max_deliveries=1)
    assert journal.stream_keys("orders").slot != journal.stream_keys(reader.dead_letter_stream).slot
    await reader.ensure_group()
    [first] = await reader.read()
    # A consumer that wrote the dead letter, then died before its XACK: the first step alone.
    dead = journal.stream_keys(reader.dead_letter_stream)
    written = await journal.client().register_script(scripts.DEAD_LETTER_APPEND)(
        keys=[dead.events, dead.meta],
        args=[
            "executors",
            "1-0",
            b"poison",
            "crashed",
            "orders",
            1,
            2,
            checksum(b"poison"),
            "dead-letter:orders:executors:1",
        ],
    )
    assert written == 1

    await asyncio.sleep(0.1)  # past claim_idle (real time: the server measures idleness)
    assert await reader.read() == []  # delivered a second time: dead-lettered, not handed out

    dead_letters = [payload async for _, payload in journal.read(reader.dead_letter_stream)]
    assert dead_letters == [b"poison"]
    assert first.payload == b"poison"
    assert await reader.lag() == 0
    assert reader.dead_lettered == 0  # this consumer found it written already


async def test_trimming_to_a_snapshot_keeps_what_a_group_has_not_acked(journal: RedisJournal) -> None:
    await journal.append("ledger", [f"e{i}".encode() for i in range(1, 11)], 0)
    reader = RedisConsumer(journal, "ledger", "auditors", "a", batch=6)
    await reader.ensure_group()
    await reader.ack(*[delivery.seq for delivery in await reader.read()])  # 1..6 acked
    await journal.save_snapshot("ledger", 8, b"state@8")

    assert await trim_to_snapshot(journal, "ledger", step=3) == 8

    assert [seq async for seq, _ in journal.read("ledger")] == [7, 8, 9, 10]
    assert await journal.highest_seq("ledger") == 10


async def test_streams_listed_and_verified_across_every_master(journal: RedisJournal) -> None:
    streams = sorted(f"s{i}" for i in range(12))
    for stream in streams:
        await journal.append(stream, [b"x"], 0)

    assert await journal.stream_names() == streams
    assert [problem async for problem in journal.verify()] == []


def key_before_cluster_support(namespace: str, stream: str, kind: str) -> str:
    """The key function as garrison had it before Redis Cluster support, copied here: the
    layout must not move under a namespace already written."""
    return f"{namespace}:{{{stream}}}:{kind}"


@pytest.fixture
async def raw_cluster(redis_cluster: Any) -> AsyncIterator[Any]:
    from redis.asyncio.cluster import RedisCluster

    client = RedisCluster.from_url(redis_cluster.url)
    yield client
    await client.aclose()


@pytest.fixture
async def namespace(redis_cluster: Any, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    name = unique_namespace(request.node.name[:40])
    yield name
    await delete_namespace(redis_cluster.url, name, cluster=True)


async def test_a_namespace_written_before_cluster_support_opens_as_it_is(
    redis_cluster: Any, raw_cluster: Any, namespace: str
) -> None:
    for stream in ("orders", "fills"):
        events = key_before_cluster_support(namespace, stream, "events")
        for seq in (1, 2):
            payload = f"{stream}-{seq}".encode()
            await raw_cluster.xadd(events, {"p": payload, "c": checksum(payload)}, id=f"{seq}-0")
        await raw_cluster.hset(key_before_cluster_support(namespace, stream, "meta"), "highest", 2)
    await raw_cluster.set(f"{namespace}:schema", 2)

    connection = RedisConnection(url=redis_cluster.url, cluster=True)
    async with RedisJournal(connection, namespace=namespace) as journal:
        assert [payload async for _, payload in journal.read("fills")] == [b"fills-1", b"fills-2"]
        assert await journal.append("orders", [b"orders-3"], 2) == 3
        assert journal.events_key("orders") == key_before_cluster_support(namespace, "orders", "events")
        assert await journal.stream_names() == ["fills", "orders"]


async def test_a_version_1_namespace_on_a_cluster_migrates_stream_by_stream(
    redis_cluster: Any, raw_cluster: Any, namespace: str
) -> None:
    """Entries without checksums, as garrison wrote them before schema 2, on every master."""
    streams = [f"account-{i}" for i in range(9)]
    for stream in streams:
        events = key_before_cluster_support(namespace, stream, "events")
        for seq in range(1, 4):
            await raw_cluster.xadd(events, {"p": f"{stream}/{seq}".encode()}, id=f"{seq}-0")
        await raw_cluster.hset(key_before_cluster_support(namespace, stream, "meta"), "highest", 3)
    await raw_cluster.xgroup_create(
        key_before_cluster_support(namespace, "account-0", "events"), "g", id="2-0"
    )
    connection = RedisConnection(url=redis_cluster.url, cluster=True)

    with pytest.raises(JournalCorrupt, match="garrison journal migrate"):
        await RedisJournal(connection, namespace=namespace).open()
    async with RedisJournal(connection, namespace=namespace, migrate=True):
        pass

    async with RedisJournal(connection, namespace=namespace) as journal:
        assert [problem async for problem in journal.verify()] == []
        for stream in streams:
            assert [payload async for _, payload in journal.read(stream)] == [
                f"{stream}/{seq}".encode() for seq in range(1, 4)
            ]
        reader = RedisConsumer(journal, "account-0", "g", "a")
        assert [delivery.seq for delivery in await reader.read()] == [3]


def test_garrison_journal_reads_a_cluster_namespace_named_by_the_node_config(
    redis_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from garrison.cli import main

    namespace = unique_namespace("journal-cli-cluster")
    config = tmp_path / "node.toml"
    config.write_text(f'[journal]\nurl = "{redis_cluster.url}"\ncluster = true\n')
    for variable in ("GARRISON_JOURNAL_URL", "GARRISON_JOURNAL_URL_FILE", "GARRISON_CONFIG"):
        monkeypatch.delenv(variable, raising=False)

    async def write() -> None:
        connection = RedisConnection(url=redis_cluster.url, cluster=True)
        async with RedisJournal(connection, namespace=namespace) as journal:
            for i in range(6):
                await journal.append(f"account-{i}", [b"x", b"y"], 0)

    try:
        asyncio.run(write())
        assert (
            main(["journal", "list", "-", "--config", str(config), "--namespace", namespace, "--json"]) == 0
        )
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(row["stream"], row["highest_seq"]) for row in rows] == [
            (f"account-{i}", 2) for i in range(6)
        ]
    finally:
        asyncio.run(delete_namespace(redis_cluster.url, namespace, cluster=True))
