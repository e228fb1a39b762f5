"""Fixtures for the cluster tests: two nodes in this process joined to one real redis-server.

Each test gets a cluster name of its own; its keys are deleted afterwards.
Lease refreshes run on each node's ManualClock (``refresh(cluster)`` steps
it); what Redis does (TTL expiry, stream reads) takes real time, so waits on
it are bounded by ``eventually``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest
import redis.asyncio as aioredis

from garrison import ManualClock, Node
from garrison.cluster import Cluster
from tests.persistence.redis._server import delete_namespace, shared_redis_url, unique_namespace

WITHIN = 5.0
"""Real seconds any wait on Redis may take before the test fails."""


class Ping(msgspec.Struct, frozen=True):
    n: int


class Pong(msgspec.Struct, frozen=True):
    n: int


class Unregistered(msgspec.Struct, frozen=True):
    text: str


MESSAGE_TYPES = (Ping, Pong)


async def eventually(ready: Callable[[], bool], what: str, within: float = WITHIN) -> None:
    """Wait (real time, bounded) until ``ready()``; fail naming ``what`` otherwise."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while not ready():
        if loop.time() >= give_up:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.005)


async def refresh(cluster: Cluster) -> None:
    """Step the node's clock by one refresh interval and wait for that lease round to finish."""
    clock = cluster.node.clock
    assert isinstance(clock, ManualClock)
    before = cluster.membership.rounds
    await clock.advance(cluster.membership.refresh_interval)
    await eventually(lambda: cluster.membership.rounds > before, f"a lease round of {cluster.node_id}")


@pytest.fixture
def redis_url() -> str:
    return shared_redis_url()


@pytest.fixture
async def cluster_name(redis_url: str) -> AsyncIterator[str]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    yield name
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"garrison:cluster:{{{name}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def make_node(name: str) -> Node:
    return Node(name, clock=ManualClock(), handle_signals=False, guard=None)


@pytest.fixture
async def join(redis_url: str, cluster_name: str) -> AsyncIterator[Callable[..., object]]:
    """``await join("a", lease_ttl=..., ...)``: a running node joined to the test's cluster; every
    node is shut down (leaving the cluster) when the test ends."""
    nodes: list[Node] = []

    async def start(node_name: str, **options: object) -> Cluster:
        node = make_node(node_name)
        await node.__aenter__()
        nodes.append(node)
        options.setdefault("message_types", MESSAGE_TYPES)
        return await Cluster.join(node, redis_url, name=cluster_name, **options)  # type: ignore[arg-type]

    try:
        yield start
    finally:
        for node in reversed(nodes):
            await node.shutdown()


@pytest.fixture
async def namespace(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A key prefix of this test's own on the shared server; its keys are deleted afterwards."""
    name = unique_namespace(request.node.name[:40])
    yield name
    await delete_namespace(redis_url, name)
