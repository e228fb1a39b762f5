"""The cluster on a real 3-master Redis Cluster: membership, remote tell/ask/watch, registered
names, leaving, and the singleton with its fenced journal.

The same behaviour as on one server (the other files of tests/cluster); here it is checked
that every script's keys are declared and in one slot, and that the per-node inboxes, which
live in slots of their own, are reached through a cluster client.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from garrison import ExitKind, ManualClock, Node, Terminated
from garrison.cluster import Cluster, ClusterConnection, RedisSingletons, RemoteRef
from garrison.cluster._keys import cluster_key
from garrison.cluster._singleton import singleton_keys
from garrison.persistence import RedisConnection, RedisJournal
from garrison.testing import TestProbe
from tests.cluster._actors import Recorder
from tests.cluster.conftest import MESSAGE_TYPES, Ping, Pong, eventually, refresh
from tests.cluster.test_singleton import ASK, MARGIN, REFRESH, SINGLETON, TTL, spec, state_of, until
from tests.persistence._model import Deposit, Get
from tests.persistence.redis._server import delete_namespace, unique_namespace

pytestmark = pytest.mark.redis_cluster


@pytest.fixture
def cluster_url(redis_cluster: Any) -> str:
    return str(redis_cluster.url)


async def _keys(url: str, pattern: str) -> list[str]:
    client: Any = RedisCluster.from_url(url)
    try:
        return sorted([key.decode() async for key in client.scan_iter(match=pattern)])
    finally:
        await client.aclose()


@pytest.fixture
async def cluster_name(cluster_url: str) -> AsyncIterator[str]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    yield name
    client: Any = RedisCluster.from_url(cluster_url)
    try:
        for key in await _keys(cluster_url, f"garrison:cluster:{{{name}*"):
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture
async def join(cluster_url: str, cluster_name: str) -> AsyncIterator[Callable[..., Any]]:
    """``await join("a", **options)``: a running node joined to the test's cluster through a
    ``ClusterConnection(cluster=True)``; shut down when the test ends."""
    nodes: list[Node] = []

    async def start(node_name: str, **options: Any) -> Cluster:
        node = Node(node_name, clock=ManualClock(), handle_signals=False, guard=None)
        await node.__aenter__()
        nodes.append(node)
        options.setdefault("message_types", MESSAGE_TYPES)
        connection = ClusterConnection(cluster_url, cluster=True)
        return await Cluster.join(node, connection, name=cluster_name, **options)

    try:
        yield start
    finally:
        for node in reversed(nodes):
            await node.shutdown()


async def two(join: Callable[..., Any], **options: Any) -> tuple[Cluster, Cluster]:
    a: Cluster = await join("a", **options)
    b: Cluster = await join("b", **options)
    await refresh(a)
    return a, b


def test_the_membership_keys_share_a_slot_and_the_inboxes_spread() -> None:
    name = "prod"
    assert key_slot(cluster_key(name, "leases").encode()) == key_slot(cluster_key(name, "names").encode())
    inboxes = {key_slot(cluster_key(name, "inbox", node).encode()) for node in ("a", "b", "c", "d")}
    assert len(inboxes) > 1


async def test_members_see_each_other_and_one_whose_lease_expires_goes_down(join: Any) -> None:
    # a's lease outlives any slowness of this test; b's lapses half a second after its last renewal.
    a: Cluster = await join("a", lease_ttl=10.0, refresh_interval=0.1)
    b: Cluster = await join("b", lease_ttl=0.5, refresh_interval=0.1)
    await refresh(a)
    assert [member.node_id for member in a.members()] == ["a", "b"]
    assert [member.node_id for member in b.members()] == ["a", "b"]
    # b's clock stands still: it stops renewing, and its lease's deadline passes on the server.
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 5.0
    while a.is_up("b") and loop.time() < give_up:
        await asyncio.sleep(0.05)
        await refresh(a)
    assert [member.node_id for member in a.members()] == ["a"]
    assert not a.self_down.is_set()


async def test_a_node_whose_lease_is_gone_considers_itself_out(join: Any, cluster_url: str) -> None:
    await join("a")
    b: Cluster = await join("b")
    client: Any = RedisCluster.from_url(cluster_url)
    try:
        await client.hdel(cluster_key(b.name, "leases"), "b")
    finally:
        await client.aclose()
    await refresh(b)
    assert b.self_down.is_set()
    assert b.members() == []


async def test_tell_ask_and_registered_names_cross_the_redis_cluster(join: Any) -> None:
    a, b = await two(join)
    seen: list[Any] = []
    recorder = await b.node.spawn(Recorder, name="recorder", args=(seen,))
    await b.register("recorder", recorder)
    found = await a.whereis("recorder")
    assert isinstance(found, RemoteRef) and (found.node_id, found.path) == ("b", "/recorder")
    await found.tell(Ping(1))
    assert await a.ref("b", "/recorder").ask(Ping(2), timeout=5.0) == Pong(2)
    await eventually(lambda: len(seen) == 2, "two messages at /recorder")
    assert seen == [Ping(1), Ping(2)]
    # And back: b asks a.
    await a.node.spawn(Recorder, name="back", args=([],))
    assert await b.ref("a", "/back").ask(Ping(3), timeout=5.0) == Pong(3)


async def test_watching_an_actor_across_the_redis_cluster_delivers_terminated(join: Any) -> None:
    a, b = await two(join)
    recorder = await b.node.spawn(Recorder, name="recorder", args=([],))
    probe = TestProbe(a.node)
    ref = a.ref("b", "/recorder")
    probe.slot.watch(ref)
    await ref.ask(Ping(1), timeout=5.0)
    await b.node.stop(recorder)
    mailbox = probe.slot.mailbox
    await eventually(lambda: any(isinstance(each, Terminated) for each in mailbox.system), "a Terminated")
    terminated = next(each for each in mailbox.system if isinstance(each, Terminated))
    assert terminated.reason.kind is ExitKind.SHUTDOWN


async def test_a_cluster_client_given_by_the_caller_is_used_and_left_open(
    cluster_url: str, cluster_name: str
) -> None:
    client: Any = RedisCluster.from_url(cluster_url)
    try:
        async with Node("a", clock=ManualClock(), handle_signals=False, guard=None) as node:
            cluster = await Cluster.join(node, client, name=cluster_name, message_types=MESSAGE_TYPES)
            await node.spawn(Recorder, name="self", args=([],))
            assert await cluster.ref("a", "/self").ask(Ping(4), timeout=5.0) == Pong(4)
        assert await client.ping()  # the node left; the caller's client is still open
    finally:
        await client.aclose()


async def test_leaving_deletes_every_key_of_the_node(join: Any, cluster_url: str) -> None:
    a, b = await two(join)
    recorder = await b.node.spawn(Recorder, name="recorder", args=([],))
    await b.register("recorder", recorder)
    pattern = f"garrison:cluster:{{{a.name}*"
    assert await _keys(cluster_url, pattern) == sorted(
        [cluster_key(a.name, "inbox", node) for node in ("a", "b")]
        + [cluster_key(a.name, "leases"), cluster_key(a.name, "names")]
    )
    await b.node.shutdown()
    await a.node.shutdown()
    assert await _keys(cluster_url, pattern) == []


# -- the singleton and its fenced journal on the Redis Cluster --------------------------------


@pytest.fixture
async def namespace(cluster_url: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    name = unique_namespace(request.node.name[:40])
    yield name
    await delete_namespace(cluster_url, name, cluster=True)


def singleton_node(name: str, url: str, namespace: str) -> tuple[Node, ManualClock]:
    clock = ManualClock()
    singletons = RedisSingletons(
        url, namespace=namespace, node_id=name, ttl=TTL, refresh=REFRESH, safety_margin=MARGIN, cluster=True
    )
    journal = RedisJournal(RedisConnection(url=url, cluster=True), namespace=namespace)
    node = Node(name, clock=clock, handle_signals=False, guard=None, journal=journal, singletons=singletons)
    return node, clock


async def test_the_singleton_runs_once_and_is_taken_over_with_its_state(
    cluster_url: str, namespace: str
) -> None:
    b, clock_b = singleton_node("b", cluster_url, namespace)
    async with b:
        a, _ = singleton_node("a", cluster_url, namespace)
        async with a:
            await a.start(spec())
            await until(lambda: state_of(a, SINGLETON) == "running")
            await a.lookup(SINGLETON).ask(Deposit(5), timeout=ASK)
            assert isinstance(a.singletons, RedisSingletons)
            first = a.singletons.owned()[SINGLETON]
            await b.start(spec())
            await clock_b.advance(REFRESH)
            assert state_of(b, SINGLETON) == "standby"
        await until(lambda: state_of(b, SINGLETON) == "running", clock=clock_b, step=REFRESH)
        assert isinstance(b.singletons, RedisSingletons)
        assert b.singletons.owned()[SINGLETON] > first
        balance, seq = await b.lookup(SINGLETON).ask(Get(), timeout=ASK)
        assert (balance.balance, seq) == (5, 1)
    lease, token = singleton_keys(namespace, SINGLETON)
    assert key_slot(lease.encode()) == key_slot(token.encode())
