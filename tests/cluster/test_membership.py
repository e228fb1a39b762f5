"""Membership: leases, the members view, MemberUp/MemberDown on the bus, a node out of the cluster."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from garrison import Actor, InvalidConfig, Node
from garrison.cluster import Cluster, MemberDown, MemberUp
from garrison.cluster._keys import cluster_key
from garrison.testing import TestProbe
from tests.cluster.conftest import make_node, refresh


def _events(probe: TestProbe) -> list[Any]:
    while probe.pending:
        probe.received.append(probe.slot.mailbox.take()[0])
    return probe.received


async def test_two_nodes_see_each_other_as_members(join: Any) -> None:
    a: Cluster = await join("a")
    b: Cluster = await join("b")
    assert [member.node_id for member in b.members()] == ["a", "b"]
    await refresh(a)
    assert [member.node_id for member in a.members()] == ["a", "b"]
    assert a.node.cluster is a
    assert a.is_up("b") and not a.is_up("c")


async def test_member_up_and_down_are_published_on_the_bus(join: Any) -> None:
    a: Cluster = await join("a")
    probe = TestProbe(a.node)
    a.node.bus.subscribe(probe, MemberUp)
    a.node.bus.subscribe(probe, MemberDown)
    b: Cluster = await join("b")
    await refresh(a)
    up = _events(probe)
    assert up == [MemberUp(a.name, b.member)]
    await b.node.shutdown()
    await refresh(a)
    down = _events(probe)[1:]
    assert down == [MemberDown(a.name, b.member, "left")]
    assert [member.node_id for member in a.members()] == ["a"]


async def test_a_node_whose_lease_expires_is_down_for_the_others(join: Any) -> None:
    a: Cluster = await join("a", lease_ttl=0.3, refresh_interval=0.1)
    b: Cluster = await join("b", lease_ttl=0.3, refresh_interval=0.1)
    probe = TestProbe(a.node)
    a.node.bus.subscribe(probe, MemberDown)

    # b's clock never moves again: it stops refreshing, and its lease expires in Redis.
    async def b_is_gone() -> bool:
        await refresh(a)
        return not a.is_up("b")

    for _ in range(100):
        if await b_is_gone():
            break
    assert [member.node_id for member in a.members()] == ["a"]
    assert _events(probe) == [MemberDown(a.name, b.member, "left")]


async def test_a_node_that_finds_its_lease_gone_considers_itself_out(join: Any, redis_url: str) -> None:
    await join("a")
    b: Cluster = await join("b")
    reasons: list[str] = []
    b.on_self_down(reasons.append)
    probe = TestProbe(b.node)
    b.node.bus.subscribe(probe, MemberDown)
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.hdel(cluster_key(b.name, "leases"), "b")
    finally:
        await client.aclose()
    await refresh(b)
    assert b.self_down.is_set()
    assert reasons == ["its lease expired or was taken before it could be refreshed"]
    assert b.members() == []
    events = _events(probe)
    assert [event.member.node_id for event in events] == ["a", "b"]
    assert events[1].reason.startswith("this node is out")
    # It stays out: later rounds do not bring it back.
    await b.node.clock.advance(5.0)  # type: ignore[attr-defined]
    assert b.members() == []


async def test_a_node_out_of_the_cluster_sees_refresh_failures_longer_than_the_ttl(join: Any) -> None:
    b: Cluster = await join("b", lease_ttl=1.0, refresh_interval=0.5)
    # Its lease rounds now go to a port nobody listens on: every refresh fails.
    unreachable = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    b.membership._script = unreachable.register_script("return 1")
    await refresh(b)
    assert not b.self_down.is_set()  # failing for 0.5 s < lease_ttl
    await refresh(b)
    await refresh(b)
    assert b.self_down.is_set()
    assert b.membership.refresh_failures >= 2


async def test_a_second_live_node_with_the_same_id_is_refused(join: Any) -> None:
    await join("a", lease_ttl=30.0, refresh_interval=10.0)
    with pytest.raises(InvalidConfig) as refused:  # waits out its own lease_ttl + refresh_interval
        await join("a-again", node_id="a", lease_ttl=0.2, refresh_interval=0.1)
    assert refused.value.field == "node_id"
    assert refused.value.value == "a"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"lease_ttl": 1.0, "refresh_interval": 1.0}, "refresh_interval"),
        ({"name": "with:colon"}, "name"),
        ({"node_id": "{tag}"}, "node_id"),
        ({"read_count": 0}, "read_count"),
    ],
)
async def test_bad_join_arguments_name_the_field(
    redis_url: str, cluster_name: str, options: dict[str, Any], field: str
) -> None:
    options.setdefault("name", cluster_name)
    async with make_node("a") as node:
        with pytest.raises(InvalidConfig) as refused:
            await Cluster.join(node, redis_url, **options)
        assert refused.value.field == field
        assert node.cluster is None


async def test_joining_outside_a_running_node_is_refused(redis_url: str) -> None:
    from garrison import NodeNotRunning

    with pytest.raises(NodeNotRunning):
        await Cluster.join(Node("idle", handle_signals=False), redis_url)


async def test_leaving_deletes_the_lease_the_inbox_and_the_names(join: Any, redis_url: str) -> None:
    a: Cluster = await join("a")
    b: Cluster = await join("b")
    recorder = await b.node.spawn(_Idle, name="idle")
    await b.register("idle", recorder)
    client = aioredis.Redis.from_url(redis_url)
    try:
        pattern = f"garrison:cluster:{{{a.name}*"
        keys = sorted([key.decode() async for key in client.scan_iter(match=pattern)])
        assert keys == sorted(
            [cluster_key(a.name, "inbox", node) for node in ("a", "b")]
            + [cluster_key(a.name, "leases"), cluster_key(a.name, "names")]
        )
        await b.node.shutdown()
        await a.node.shutdown()
        assert [key async for key in client.scan_iter(match=pattern)] == []
    finally:
        await client.aclose()


class _Idle(Actor):
    pass
