"""The cluster singleton: one node runs a ``singleton=True`` child, the others stand by; the
lease carries a strictly increasing fencing token, and a stale owner's writes are refused.

Two nodes share one Redis in one process, each on its own ManualClock (its own sense of
time: freezing one node is not advancing its clock). A lease expiring on the server is
simulated by deleting its key, as Redis would once its TTL has passed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis

from garrison import Actor, ChildSpec, InvalidConfig, InvalidSpec, ManualClock, Node, Restart, SupervisorSpec
from garrison.cluster import Cluster, RedisSingletons
from garrison.cluster._keys import cluster_key
from garrison.cluster._singleton import singleton_keys
from garrison.persistence import Fenced, PersistFailed, RedisJournal
from garrison.supervision import DynamicSupervisorSpec
from tests.cluster.conftest import refresh
from tests.persistence._model import Account, Deposit, Get

ASK = 5.0
TTL, REFRESH, MARGIN = 3.0, 1.0, 0.5
SINGLETON = "/root/acct"


class _Idle(Actor):
    pass


def spec() -> SupervisorSpec:
    return SupervisorSpec(
        children=[ChildSpec("acct", Account, singleton=True), ChildSpec("plain", Account, args=("plain",))],
        intensity=5,
        period=60.0,
    )


@asynccontextmanager
async def cluster_node(name: str, url: str, namespace: str) -> AsyncIterator[tuple[Node, ManualClock]]:
    clock = ManualClock()
    singletons = RedisSingletons(
        url, namespace=namespace, node_id=name, ttl=TTL, refresh=REFRESH, safety_margin=MARGIN
    )
    node = Node(
        name,
        clock=clock,
        handle_signals=False,
        guard=None,
        journal=RedisJournal(url, namespace=namespace),
        singletons=singletons,
    )
    async with node:
        yield node, clock


async def until(predicate: Callable[[], Any], *, clock: ManualClock | None = None, step: float = 0.0) -> None:
    """Wait (bounded, 5 s real) for ``predicate``; Redis replies need real time, the clock only
    moves by ``step`` per look."""
    async with asyncio.timeout(5.0):
        while not predicate():
            if clock is not None and step:
                await clock.advance(step)
            await asyncio.sleep(0.005)


def state_of(node: Node, path: str) -> str:
    def find(rows: list[dict[str, Any]]) -> str | None:
        for row in rows:
            if row["path"] == path:
                return str(row["state"])
            found = find(row["children"])
            if found is not None:
                return found
        return None

    return find(node.tree()) or "absent"


async def lease_value(url: str, namespace: str) -> bytes | None:
    client = aioredis.Redis.from_url(url)
    try:
        value: bytes | None = await client.get(singleton_keys(namespace, SINGLETON)[0])
        return value
    finally:
        await client.aclose()


async def expire_lease(url: str, namespace: str) -> None:
    """What the server does once the lease's TTL has passed without a refresh."""
    client = aioredis.Redis.from_url(url)
    try:
        await client.delete(singleton_keys(namespace, SINGLETON)[0])
    finally:
        await client.aclose()


async def pause_redis(url: str, milliseconds: int) -> None:
    """Redis serves no client for ``milliseconds`` (real time): replies sent meanwhile wait."""
    client = aioredis.Redis.from_url(url)
    try:
        await client.execute_command("CLIENT", "PAUSE", milliseconds, "ALL")
    finally:
        await client.aclose()


def owned(node: Node) -> dict[str, int]:
    assert isinstance(node.singletons, RedisSingletons)
    return node.singletons.owned()


async def test_one_node_runs_the_singleton_and_the_other_stands_by(redis_url: str, namespace: str) -> None:
    async with (
        cluster_node("a", redis_url, namespace) as (a, _),
        cluster_node("b", redis_url, namespace) as (b, clock_b),
    ):
        await a.start(spec())
        await until(lambda: state_of(a, SINGLETON) == "running")
        await b.start(spec())
        await clock_b.advance(2 * REFRESH)
        assert state_of(b, SINGLETON) == "standby"
        assert state_of(b, "/root/plain") == "running"  # only the singleton child stands by
        rows = await b.supervisor("/root").which_children()
        assert [(row.id, row.state) for row in rows] == [("acct", "standby"), ("plain", "running")]
        assert list(owned(a)) == [SINGLETON] and owned(b) == {}
        value = await lease_value(redis_url, namespace)
        assert value is not None and value.startswith(b"a:")


async def test_the_standby_takes_over_when_the_owner_stops_with_a_higher_token(
    redis_url: str, namespace: str
) -> None:
    async with cluster_node("b", redis_url, namespace) as (b, clock_b):
        async with cluster_node("a", redis_url, namespace) as (a, _):
            await a.start(spec())
            await until(lambda: state_of(a, SINGLETON) == "running")
            await a.lookup(SINGLETON).ask(Deposit(5), timeout=ASK)
            first = owned(a)[SINGLETON]
            await b.start(spec())
            await clock_b.advance(REFRESH)
            assert state_of(b, SINGLETON) == "standby"
        # a stopped: its singleton first, then its lease was released.
        await until(lambda: state_of(b, SINGLETON) == "running", clock=clock_b, step=REFRESH)
        assert owned(b)[SINGLETON] > first
        balance, seq = await b.lookup(SINGLETON).ask(Get(), timeout=ASK)
        assert (balance.balance, seq) == (5, 1)  # it recovered what the old owner wrote


async def test_a_stale_owner_that_was_frozen_past_its_lease_has_its_write_fenced_and_stands_by(
    redis_url: str, namespace: str
) -> None:
    async with (
        cluster_node("a", redis_url, namespace) as (a, _),
        cluster_node("b", redis_url, namespace) as (b, clock_b),
    ):
        await a.start(spec())
        await until(lambda: state_of(a, SINGLETON) == "running")
        stale = a.lookup(SINGLETON)
        await stale.ask(Deposit(1), timeout=ASK)
        await b.start(spec())
        # a is frozen (its clock stands still, no refresh is sent) and its lease expires.
        await expire_lease(redis_url, namespace)
        await until(lambda: state_of(b, SINGLETON) == "running", clock=clock_b, step=REFRESH)
        assert owned(b)[SINGLETON] > owned(a)[SINGLETON]
        await b.lookup(SINGLETON).ask(Deposit(10), timeout=ASK)
        # a wakes up and writes: refused, and its singleton stops instead of restarting.
        with pytest.raises(PersistFailed) as refused:
            await stale.ask(Deposit(1000), timeout=ASK)
        assert isinstance(refused.value.cause, Fenced)
        assert refused.value.cause.token < refused.value.cause.highest
        await until(lambda: state_of(a, SINGLETON) == "standby")
        assert owned(a) == {}
        assert a.restart_counts[SINGLETON] == 0
        balance, seq = await b.lookup(SINGLETON).ask(Get(), timeout=ASK)
        assert (balance.balance, seq) == (11, 2)  # the stale write never landed
        assert state_of(a, "/root/plain") == "running"


async def test_a_node_out_of_the_cluster_stops_its_singleton_at_once_and_never_claims_it_again(
    redis_url: str, namespace: str, cluster_name: str
) -> None:
    async with (
        cluster_node("a", redis_url, namespace) as (a, clock_a),
        cluster_node("b", redis_url, namespace) as (b, clock_b),
    ):
        cluster_a = await Cluster.join(a, redis_url, name=cluster_name)
        await Cluster.join(b, redis_url, name=cluster_name)
        await a.start(spec())
        await until(lambda: state_of(a, SINGLETON) == "running")
        await b.start(spec())
        await clock_b.advance(REFRESH)
        assert state_of(b, SINGLETON) == "standby"
        # a's membership lease is gone (it froze past it, or someone removed it): a is out.
        client = aioredis.Redis.from_url(redis_url)
        try:
            await client.hdel(cluster_key(cluster_name, "leases"), "a")
        finally:
            await client.aclose()
        await refresh(cluster_a)
        assert cluster_a.self_down.is_set()
        # Its singleton stopped then, not a singleton lease later, and its lease was given back.
        await until(lambda: state_of(a, SINGLETON) == "standby")
        assert owned(a) == {}
        assert state_of(a, "/root/plain") == "running"
        await until(lambda: state_of(b, SINGLETON) == "running", clock=clock_b, step=REFRESH)
        # Once out, a never takes it again, even once b is gone and its lease free.
        await b.shutdown()
        assert await lease_value(redis_url, namespace) is None
        for _ in range(3):
            await clock_a.advance(TTL)
            await asyncio.sleep(0.05)
        assert state_of(a, SINGLETON) == "standby"
        assert await lease_value(redis_url, namespace) is None


async def test_an_owner_that_cannot_refresh_in_time_stops_its_singleton_before_the_ttl(
    redis_url: str, namespace: str
) -> None:
    async with cluster_node("a", redis_url, namespace) as (a, clock_a):
        await a.start(spec())
        await until(lambda: state_of(a, SINGLETON) == "running")
        # Redis answers no one for a while: no refresh can land while a's clock runs on.
        await pause_redis(redis_url, 300)
        await clock_a.advance(TTL - MARGIN - 0.01)
        assert state_of(a, SINGLETON) == "running"
        await clock_a.advance(0.01)
        assert state_of(a, SINGLETON) == "standby"
        assert owned(a) == {}
        # Its own lease key, not refreshed, is left to expire: it is not deleted early.
        await asyncio.sleep(0.3)
        assert await lease_value(redis_url, namespace) is not None


async def test_an_owner_whose_lease_was_taken_stops_at_its_next_refresh(
    redis_url: str, namespace: str
) -> None:
    async with cluster_node("a", redis_url, namespace) as (a, clock_a):
        await a.start(spec())
        await until(lambda: state_of(a, SINGLETON) == "running")
        client = aioredis.Redis.from_url(redis_url)
        try:
            await client.set(singleton_keys(namespace, SINGLETON)[0], b"someone-else#99", px=10_000)
        finally:
            await client.aclose()
        await clock_a.advance(REFRESH)
        await until(lambda: state_of(a, SINGLETON) == "standby")


async def test_tokens_strictly_increase_across_owners_and_a_held_lease_is_not_granted(
    redis_url: str, namespace: str
) -> None:
    coordinator = RedisSingletons(redis_url, namespace=namespace, ttl=TTL, refresh=REFRESH)
    await coordinator.open(ManualClock())
    try:
        tokens = []
        for round_ in range(6):
            owner = f"node-{round_ % 3}:x"
            token, _ = await coordinator.acquire(SINGLETON, owner)
            refused, remaining = await coordinator.acquire(SINGLETON, "intruder:x")
            assert refused == 0 and 0 < remaining <= TTL
            assert not await coordinator.extend(SINGLETON, f"intruder:x#{token}")
            assert await coordinator.extend(SINGLETON, f"{owner}#{token}")
            assert await coordinator.give_up(SINGLETON, f"{owner}#{token}")
            tokens.append(token)
        assert tokens == sorted(set(tokens)) and len(tokens) == 6
    finally:
        await coordinator.close()


async def test_a_whole_tree_runs_as_one_singleton_with_its_paths_unchanged(
    redis_url: str, namespace: str
) -> None:
    tree = SupervisorSpec(
        children=[ChildSpec("acct", Account), ChildSpec("idle", _Idle)],
        intensity=5,
        period=60.0,
        singleton=True,
    )
    async with cluster_node("b", redis_url, namespace) as (b, clock_b):
        async with cluster_node("a", redis_url, namespace) as (a, _):
            await a.start(tree)
            await until(lambda: state_of(a, "/root/idle") == "running")
            await a.lookup("/root/acct").ask(Deposit(3), timeout=ASK)
            await b.start(tree)
            await clock_b.advance(REFRESH)
            assert [state_of(b, path) for path in ("/root", "/root/acct", "/root/idle")] == [
                "running",
                "standby",
                "standby",
            ]
            assert list(owned(a)) == ["/root"]
            # Its persistent actors write fenced with the tree's token.
            client = aioredis.Redis.from_url(redis_url)
            try:
                assert int(await client.get(f"{namespace}:{{account-1}}:fence")) == owned(a)["/root"]
            finally:
                await client.aclose()
        await until(lambda: state_of(b, "/root/idle") == "running", clock=clock_b, step=REFRESH)
        balance, _ = await b.lookup("/root/acct").ask(Get(), timeout=ASK)
        assert balance.balance == 3


async def test_without_a_cluster_a_singleton_child_runs_here() -> None:
    async with Node("solo", clock=ManualClock(), handle_signals=False, guard=None) as node:
        await node.start(SupervisorSpec(children=[ChildSpec("only", _Idle, singleton=True)]))
        assert state_of(node, "/root/only") == "running"


def test_bad_singleton_specs_and_settings_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidSpec) as bad:
        ChildSpec("x", _Idle, singleton="yes")  # type: ignore[arg-type]
    assert bad.value.field == "singleton"
    with pytest.raises(InvalidSpec) as temporary:
        ChildSpec("x", _Idle, singleton=True, restart=Restart.TEMPORARY)
    assert temporary.value.field == "singleton"
    with pytest.raises(InvalidSpec) as dynamic:
        DynamicSupervisorSpec(ChildSpec("x", _Idle, singleton=True))
    assert dynamic.value.field == "singleton"
    with pytest.raises(InvalidConfig) as timing:
        RedisSingletons("redis://127.0.0.1:1/0", ttl=2.0, refresh=1.8)
    assert timing.value.field == "refresh" and "must be below ttl" in str(timing.value)
    with pytest.raises(InvalidConfig) as url:
        RedisSingletons("http://nowhere")
    assert url.value.field == "url"
    with pytest.raises(InvalidConfig) as ttl:
        RedisSingletons("redis://127.0.0.1:1/0", ttl=0)
    assert ttl.value.field == "ttl"
