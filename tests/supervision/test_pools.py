"""Pools: N identical routees under one supervisor, and the PoolRef that routes to them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison import (
    ActorStopped,
    Backoff,
    ChildSpec,
    DeadLetter,
    InvalidConfig,
    InvalidSpec,
    MailboxConfig,
    MailboxFull,
    ManualClock,
    MessageDropped,
    Node,
    Overflow,
    PoolRef,
    PoolSpec,
    Restart,
    Routing,
    SupervisorSpec,
)
from garrison.supervision._pool import RouteKey, _key_bytes, _Ring, stable_hash

from ._support import Crash, Finish, Journal, Ping, Work, Worker, drive


class Order(msgspec.Struct, frozen=True):
    """A message with a routing key: the routee records (its name, symbol, serial)."""

    symbol: str
    serial: int = 0


class Routee(Worker):
    """A worker that also records which routee got each Order."""

    def __init__(self, journal: Journal, seen: list[tuple[str, str]]) -> None:
        super().__init__(journal)
        self.seen = seen

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Order):
            self.seen.append((self.name, message.symbol))
            return self.name
        return await super().on_receive(message)


def by_symbol(message: Any) -> str:
    assert isinstance(message, Order)
    return message.symbol


def pool_spec(journal: Journal, seen: list[tuple[str, str]], **options: Any) -> PoolSpec:
    options.setdefault("size", 3)
    return PoolSpec(Routee, args=(journal, seen), **options)


async def start_pool(node: Node, spec: PoolSpec) -> PoolRef:
    """The pool as a child of a root supervisor that tolerates it giving up a few times."""
    await node.start(SupervisorSpec(intensity=5, children=[ChildSpec("workers", spec)]))
    return PoolRef(node.lookup("/root/workers"))


async def names_of(pool: PoolRef, count: int) -> list[str]:
    return [(await pool.ask(Ping()))[0] for _ in range(count)]


# -- round-robin ---------------------------------------------------------------------


async def test_round_robin_sends_to_each_routee_in_turn(node: Node) -> None:
    pool = await start_pool(node, pool_spec(Journal(), []))
    assert [ref.path for ref in pool.routees()] == [
        "/root/workers/routee-0",
        "/root/workers/routee-1",
        "/root/workers/routee-2",
    ]
    assert await names_of(pool, 6) == ["routee-0", "routee-1", "routee-2"] * 2


async def test_two_pool_refs_to_one_pool_share_its_rotation(node: Node) -> None:
    first = await start_pool(node, pool_spec(Journal(), []))
    second = PoolRef(node.lookup("/root/workers"))
    assert [
        (await first.ask(Ping()))[0],
        (await second.ask(Ping()))[0],
        (await first.ask(Ping()))[0],
    ] == ["routee-0", "routee-1", "routee-2"]


async def test_round_robin_skips_a_crashed_routee_until_it_is_restarted(
    node: Node, clock: ManualClock
) -> None:
    journal, seen = Journal(), []
    spec = pool_spec(journal, seen, backoff=Backoff(initial=1.0, max=1.0, jitter=0.0))
    pool = await start_pool(node, spec)
    crashed = pool.routees()[1]
    await crashed.tell(Crash())
    await clock.advance(0)  # it crashed; its restart waits 1 s of backoff
    for symbol in ("a", "b", "c", "d"):
        await pool.tell(Order(symbol))
    await clock.advance(0)
    routed = {symbol: name for name, symbol in seen}
    assert routed == {"a": "routee-0", "b": "routee-2", "c": "routee-0", "d": "routee-2"}
    assert crashed.mailbox_metrics().depth == 0  # nothing was queued on the routee that was down
    await clock.advance(1.0)
    assert ("start", "routee-1") in journal.entries[-1:]
    assert set(await names_of(pool, 3)) == {"routee-0", "routee-1", "routee-2"}


async def test_a_message_sent_while_every_routee_is_down_waits_for_the_next_incarnation(
    node: Node, clock: ManualClock
) -> None:
    journal, seen = Journal(), []
    spec = pool_spec(journal, seen, size=2, backoff=Backoff(initial=1.0, max=1.0, jitter=0.0))
    pool = await start_pool(node, spec)
    for routee in pool.routees():
        await routee.tell(Crash())
    await clock.advance(0)
    letters: list[DeadLetter] = []
    node.dead_letters.subscribe(letters.append)
    await pool.tell(Order("kept"))
    await clock.advance(0)
    assert seen == []
    await clock.advance(1.0)
    assert seen == [("routee-0", "kept")]
    assert letters == []


# -- smallest mailbox ---------------------------------------------------------------


async def test_smallest_mailbox_picks_the_routee_with_fewest_queued_messages(
    node: Node, clock: ManualClock
) -> None:
    seen: list[tuple[str, str]] = []
    pool = await start_pool(node, pool_spec(Journal(), seen, routing=Routing.SMALLEST_MAILBOX))
    first, second, third = pool.routees()
    # Each routee busy for 10 s, with 2, 1 and 0 messages queued behind that.
    for routee, queued in ((first, 2), (second, 1), (third, 0)):
        await routee.tell(Work(10.0))
        for _ in range(queued):
            await routee.tell(Order("behind"))
    await clock.advance(0)
    for symbol in ("a", "b", "c", "d"):
        pool.tell_nowait(Order(symbol))
    await drive(clock, clock.advance(10.0), within=20.0)
    routed = {symbol: name for name, symbol in seen if symbol != "behind"}
    # queued 2,1,0 -> a to the third (2,1,1) -> b to the second, the first of the equals (2,2,1)
    # -> c to the third (2,2,2) -> d to the first, first of equals.
    assert routed == {"a": "routee-2", "b": "routee-1", "c": "routee-2", "d": "routee-0"}


async def test_smallest_mailbox_skips_a_down_routee_even_with_an_empty_mailbox(
    node: Node, clock: ManualClock
) -> None:
    seen: list[tuple[str, str]] = []
    spec = pool_spec(
        Journal(),
        seen,
        size=2,
        routing=Routing.SMALLEST_MAILBOX,
        backoff=Backoff(initial=1.0, max=1.0, jitter=0.0),
    )
    pool = await start_pool(node, spec)
    first, second = pool.routees()
    await first.tell(Crash())
    await second.tell(Work(5.0))
    await second.tell(Order("behind"))
    await clock.advance(0)
    await pool.tell(Order("a"))
    await drive(clock, clock.advance(5.0), within=10.0)
    assert ("routee-1", "a") in seen
    assert ("routee-0", "a") not in seen


# -- consistent hash ----------------------------------------------------------------

SYMBOLS = [f"SYM{index}" for index in range(40)]


async def owners(pool: PoolRef, symbols: list[str]) -> dict[str, str]:
    return {symbol: await pool.ask(Order(symbol)) for symbol in symbols}


async def test_consistent_hash_sends_one_key_to_one_routee_and_spreads_keys(node: Node) -> None:
    spec = pool_spec(Journal(), [], size=4, routing=Routing.CONSISTENT_HASH, key=by_symbol)
    pool = await start_pool(node, spec)
    first = await owners(pool, SYMBOLS)
    assert await owners(pool, SYMBOLS) == first
    assert set(first.values()) == {"routee-0", "routee-1", "routee-2", "routee-3"}


async def test_consistent_hash_is_stable_across_processes_and_runs(node: Node) -> None:
    # Pinned: Python's salted hash() would move these between runs.
    spec = pool_spec(Journal(), [], size=4, routing=Routing.CONSISTENT_HASH, key=by_symbol)
    pool = await start_pool(node, spec)
    assert await owners(pool, ["AAPL", "MSFT", "NVDA", "TSLA"]) == PINNED_OWNERS


PINNED_OWNERS = {"AAPL": "routee-3", "MSFT": "routee-3", "NVDA": "routee-2", "TSLA": "routee-1"}


async def test_a_key_maps_to_the_same_routee_across_that_routees_restart(
    node: Node, clock: ManualClock
) -> None:
    journal, seen = Journal(), []
    spec = pool_spec(
        journal,
        seen,
        size=4,
        routing=Routing.CONSISTENT_HASH,
        key=by_symbol,
        backoff=Backoff(initial=1.0, max=1.0, jitter=0.0),
    )
    pool = await start_pool(node, spec)
    before = await owners(pool, SYMBOLS)
    crashed = node.lookup("/root/workers/routee-1")
    await crashed.tell(Crash())
    await clock.advance(0)
    during = await owners(pool, SYMBOLS)
    # While it is down only its keys move, and only to the others.
    assert {symbol for symbol in SYMBOLS if during[symbol] != before[symbol]} == {
        symbol for symbol in SYMBOLS if before[symbol] == "routee-1"
    }
    assert "routee-1" not in during.values()
    await clock.advance(1.0)
    assert journal.entries[-1] == ("start", "routee-1")
    assert await owners(pool, SYMBOLS) == before


async def test_a_key_function_returning_another_type_is_refused_at_the_sender(node: Node) -> None:
    spec = pool_spec(Journal(), [], routing=Routing.CONSISTENT_HASH, key=lambda message: 1.5)
    pool = await start_pool(node, spec)
    with pytest.raises(InvalidConfig, match=r"key\(message\)=1\.5 is invalid: PoolSpec.key must return"):
        await pool.tell(Order("X"))


# -- broadcast ----------------------------------------------------------------------


async def test_broadcast_routing_tells_every_routee_and_asks_one_in_turn(
    node: Node, clock: ManualClock
) -> None:
    seen: list[tuple[str, str]] = []
    pool = await start_pool(node, pool_spec(Journal(), seen, routing=Routing.BROADCAST))
    await pool.tell(Order("all"))
    pool.tell_nowait(Order("again"))
    pool.tell(Order("unawaited"))  # as with an ActorRef, a mailbox with room takes it at once
    await clock.advance(0)
    assert sorted(seen) == sorted(
        (f"routee-{index}", symbol) for index in range(3) for symbol in ("all", "again", "unawaited")
    )
    assert await names_of(pool, 3) == ["routee-0", "routee-1", "routee-2"]


async def test_broadcast_reaches_a_down_routee_on_its_next_incarnation(
    node: Node, clock: ManualClock
) -> None:
    seen: list[tuple[str, str]] = []
    spec = pool_spec(Journal(), seen, backoff=Backoff(initial=1.0, max=1.0, jitter=0.0))
    pool = await start_pool(node, spec)
    await pool.routees()[2].tell(Crash())
    await clock.advance(0)
    await pool.broadcast(Order("news"))
    await clock.advance(0)
    assert sorted(seen) == [("routee-0", "news"), ("routee-1", "news")]
    await clock.advance(1.0)
    assert sorted(seen) == [("routee-0", "news"), ("routee-1", "news"), ("routee-2", "news")]


# -- resize ---------------------------------------------------------------------------


async def test_resize_grows_and_shrinks_the_pool(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    pool = await start_pool(node, pool_spec(journal, [], size=2))
    await pool.resize(4)
    assert [ref.name for ref in pool.routees()] == ["routee-0", "routee-1", "routee-2", "routee-3"]
    assert set(await names_of(pool, 4)) == {"routee-0", "routee-1", "routee-2", "routee-3"}
    removed = pool.routees()[3]
    await drive(clock, pool.resize(1), within=60.0)
    assert [ref.name for ref in pool.routees()] == ["routee-0"]
    assert not removed.is_alive
    assert ("stop", "routee-3") in journal.entries
    assert await names_of(pool, 2) == ["routee-0", "routee-0"]
    assert [row.id for row in await node.supervisor("/root/workers").which_children()] == ["routee-0"]


async def test_resize_moves_only_the_keys_of_added_or_removed_routees(node: Node, clock: ManualClock) -> None:
    spec = pool_spec(Journal(), [], size=3, routing=Routing.CONSISTENT_HASH, key=by_symbol)
    pool = await start_pool(node, spec)
    before = await owners(pool, SYMBOLS)
    await pool.resize(4)
    grown = await owners(pool, SYMBOLS)
    assert {symbol for symbol in SYMBOLS if grown[symbol] != before[symbol]} == {
        symbol for symbol in SYMBOLS if grown[symbol] == "routee-3"
    }
    await drive(clock, pool.resize(3), within=60.0)
    assert await owners(pool, SYMBOLS) == before


async def test_resize_refuses_a_size_below_one(node: Node) -> None:
    pool = await start_pool(node, pool_spec(Journal(), []))
    with pytest.raises(InvalidConfig, match="size=0 is invalid: must be an int >= 1"):
        await pool.resize(0)


# -- no routee, a stopped pool, the pool's own restart ------------------------------------


async def test_with_no_routee_left_a_tell_is_dead_lettered_and_an_ask_raises(
    node: Node, clock: ManualClock
) -> None:
    spec = pool_spec(Journal(), [], size=2, restart=Restart.TEMPORARY)
    pool = await start_pool(node, spec)
    for routee in pool.routees():
        await routee.tell(Finish())
    await clock.advance(0)
    assert pool.routees() == []
    letters: list[DeadLetter] = []
    node.dead_letters.subscribe(letters.append)
    await pool.tell(Order("lost"))
    with pytest.raises(MessageDropped, match="/root/workers has no routee"):
        await pool.ask(Order("asked"))
    assert [(letter.message, letter.recipient, letter.kind) for letter in letters] == [
        (Order("lost"), "/root/workers", "unroutable"),
        (Order("asked"), "/root/workers", "unroutable"),
    ]


async def test_a_stopped_pool_raises_actor_stopped(node: Node, clock: ManualClock) -> None:
    pool = await PoolRef.spawn(node, pool_spec(Journal(), []), name="workers")
    await drive(clock, node.stop(pool.ref), within=60.0)
    assert not pool.is_alive
    with pytest.raises(ActorStopped):
        await pool.tell(Order("late"))
    with pytest.raises(ActorStopped):
        await pool.ask(Order("late"))


async def test_a_pool_restarted_by_its_supervisor_routes_to_its_new_routees(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    pool = await start_pool(node, pool_spec(journal, [], size=2, intensity=0))
    old = pool.routees()
    await old[0].tell(Crash())  # intensity 0: the pool gives up, its parent restarts it
    await clock.advance(0)
    assert all(ref.is_alive for ref in old)  # refs name paths: they outlive their pool's restart
    new = pool.routees()
    assert [ref.path for ref in new] == [ref.path for ref in old]
    assert all(ref.is_alive for ref in new)
    assert await names_of(pool, 2) == ["routee-0", "routee-1"]


async def test_a_pool_spawned_directly_and_as_the_root(node: Node) -> None:
    spawned = await PoolRef.spawn(node, pool_spec(Journal(), [], size=2), name="pool")
    assert spawned.path == "/pool"
    assert await names_of(spawned, 2) == ["routee-0", "routee-1"]
    root = PoolRef(await node.start(pool_spec(Journal(), [], size=2), name="root"))
    assert [ref.path for ref in root.routees()] == ["/root/routee-0", "/root/routee-1"]
    assert await names_of(root, 2) == ["routee-0", "routee-1"]


async def test_node_tree_shows_the_pool_and_its_routees(node: Node) -> None:
    await start_pool(node, pool_spec(Journal(), [], size=2))
    (root,) = node.tree()
    (workers,) = root["children"]
    assert (workers["name"], workers["kind"]) == ("workers", "supervisor")
    assert [child["name"] for child in workers["children"]] == ["routee-0", "routee-1"]


# -- specs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field", "value", "expected"),
    [
        ({"size": 0}, "size", 0, "must be an int >= 1"),
        ({"size": "3"}, "size", "3", "must be an int >= 1"),
        ({"routing": "round_robin"}, "routing", "round_robin", "must be a garrison.Routing member"),
        ({"routing": Routing.CONSISTENT_HASH}, "key", None, "needs key=a function of the message"),
        ({"key": by_symbol}, "key", by_symbol, "only Routing.CONSISTENT_HASH uses a key"),
        ({"virtual_nodes": 0}, "virtual_nodes", 0, "must be an int >= 1"),
        ({"intensity": -1}, "intensity", -1, "must be an int >= 0"),
    ],
)
def test_a_bad_pool_spec_names_the_field_and_value(
    options: dict[str, Any], field: str, value: object, expected: str
) -> None:
    options.setdefault("size", 3)
    with pytest.raises(InvalidSpec, match=expected) as caught:
        PoolSpec(Routee, **options)
    assert (caught.value.field, caught.value.value) == (field, value)


def test_a_pool_spec_of_something_other_than_an_actor_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="actor_class=<class 'int'> is invalid: must be an Actor subclass"):
        PoolSpec(int, size=2)  # type: ignore[arg-type]


async def test_a_pool_ref_of_an_actor_that_is_not_a_pool_is_refused(node: Node) -> None:
    ref = await node.spawn(Worker, name="solo", args=(Journal(),))
    with pytest.raises(InvalidConfig, match="must be the ref of a pool"):
        PoolRef(ref)


async def test_broadcast_tries_every_routee_then_raises_the_first_refusal(
    node: Node, clock: ManualClock
) -> None:
    seen: list[tuple[str, str]] = []
    reject = MailboxConfig(capacity=1, overflow=Overflow.REJECT)
    pool = await start_pool(node, pool_spec(Journal(), seen, mailbox=reject))
    first = pool.routees()[0]
    await first.tell(Work(10.0))
    await clock.advance(0)
    await first.tell(Order("fill"))  # busy for 10 s with one queued: full
    with pytest.raises(MailboxFull) as caught:
        await pool.broadcast(Order("news"))
    assert caught.value.path == "/root/workers/routee-0"
    await drive(clock, clock.advance(10.0), within=20.0)
    assert sorted(seen) == [
        ("routee-0", "fill"),
        ("routee-1", "news"),
        ("routee-2", "news"),
    ]


# -- the ring, as a property ------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=2, max_value=8),
    removed=st.integers(min_value=0, max_value=7),
    keys=st.lists(st.text(max_size=12) | st.binary(max_size=12) | st.integers(), max_size=30),
)
def test_removing_a_routee_from_the_ring_moves_only_its_keys_to_the_next_routee(
    size: int, removed: int, keys: list[RouteKey]
) -> None:
    names = [f"routee-{index}" for index in range(size)]
    gone = names[removed % size]
    ring = _Ring(names, virtual_nodes=16)
    smaller = _Ring([name for name in names if name != gone], virtual_nodes=16)
    for key in keys:
        point = stable_hash(_key_bytes(key))
        order = list(ring.walk(point))
        assert sorted(order) == sorted(names)  # every routee once, the key's owner first
        expected = order[1] if order[0] == gone else order[0]
        assert next(smaller.walk(point)) == expected
