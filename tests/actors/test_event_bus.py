"""node.bus: publish/subscribe through each subscriber's own bounded mailbox."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from garrison import (
    Actor,
    ActorStopped,
    ChildSpec,
    ExitReason,
    InvalidConfig,
    LifecycleEvent,
    MailboxConfig,
    ManualClock,
    Node,
    Overflow,
    PoolRef,
    PoolSpec,
    Restart,
    Routing,
    Started,
    Stopped,
    SupervisorSpec,
)
from tests.actors.helpers import Gated, Recorder, dead_letters_to


class Fill(msgspec.Struct, frozen=True):
    symbol: str


class PartialFill(Fill, frozen=True):
    remaining: int


class Quote(msgspec.Struct, frozen=True):
    symbol: str


async def settle(ref: Any) -> None:
    """Every message told to ``ref`` so far has been handled (an ask queues behind them)."""
    await ref.ask("settled?")


async def test_subscribers_of_a_class_receive_it_and_its_subclasses(node: Node) -> None:
    fills: list[Any] = []
    partials: list[Any] = []
    fill_ref = await node.spawn(Recorder, args=(fills,), name="fills")
    partial_ref = await node.spawn(Recorder, args=(partials,), name="partials")
    node.bus.subscribe(fill_ref, Fill)
    node.bus.subscribe(partial_ref, PartialFill)
    assert node.bus.publish(Fill("ES")) == 1
    assert node.bus.publish(PartialFill("NQ", 3)) == 2
    assert node.bus.publish(Quote("ES")) == 0
    await settle(fill_ref)
    await settle(partial_ref)
    assert fills == [Fill("ES"), PartialFill("NQ", 3), "settled?"]
    assert partials == [PartialFill("NQ", 3), "settled?"]


async def test_a_subscriber_of_a_class_and_its_base_gets_a_message_once(node: Node) -> None:
    seen: list[Any] = []
    ref = await node.spawn(Recorder, args=(seen,))
    node.bus.subscribe(ref, Fill)
    node.bus.subscribe(ref, PartialFill)
    node.bus.subscribe(ref, Fill)
    assert node.bus.publish(PartialFill("ES", 1)) == 1
    await settle(ref)
    assert seen == [PartialFill("ES", 1), "settled?"]


async def test_named_topics_reach_only_their_subscribers(node: Node) -> None:
    risk: list[Any] = []
    ops: list[Any] = []
    risk_ref = await node.spawn(Recorder, args=(risk,), name="risk")
    ops_ref = await node.spawn(Recorder, args=(ops,), name="ops")
    node.bus.subscribe(risk_ref, "limits")
    node.bus.subscribe(ops_ref, "alerts")
    node.bus.subscribe(ops_ref, Fill)
    assert node.bus.publish(Fill("ES"), topic="limits") == 1
    assert node.bus.publish("halt", topic="alerts") == 1
    await settle(risk_ref)
    await settle(ops_ref)
    assert risk == [Fill("ES"), "settled?"]
    assert ops == ["halt", "settled?"]


async def test_unsubscribe_stops_delivery_per_topic_or_altogether(node: Node) -> None:
    seen: list[Any] = []
    ref = await node.spawn(Recorder, args=(seen,))
    node.bus.subscribe(ref, Fill)
    node.bus.subscribe(ref, "alerts")
    node.bus.unsubscribe(ref, Fill)
    assert node.bus.publish(Fill("ES")) == 0
    assert node.bus.publish("a", topic="alerts") == 1
    node.bus.unsubscribe(ref)
    assert node.bus.publish("b", topic="alerts") == 0
    assert node.bus.subscribers("alerts") == []
    node.bus.unsubscribe(ref, "never-subscribed")


async def test_a_full_subscriber_never_blocks_the_publisher_and_its_miss_is_a_dead_letter(
    node: Node,
) -> None:
    gate = asyncio.Event()
    slow_seen: list[Any] = []
    fast_seen: list[Any] = []
    slow = await node.spawn(
        Gated, args=(gate, slow_seen), name="slow", mailbox=MailboxConfig(capacity=1)
    )
    fast = await node.spawn(Recorder, args=(fast_seen,), name="fast")
    node.bus.subscribe(slow, Fill)
    node.bus.subscribe(fast, Fill)
    try:
        node.bus.publish(Fill("0"))
        await asyncio.sleep(0)  # slow takes the first and waits at its gate
        delivered = [node.bus.publish(Fill(str(n))) for n in range(1, 4)]
        assert delivered == [2, 1, 1]  # slow has room for one more, then refuses
        letters = dead_letters_to(node, "/slow")
        assert [letter.message for letter in letters] == [Fill("2"), Fill("3")]
        assert {letter.kind for letter in letters} == {"overflow"}
        assert all("event bus" in letter.reason for letter in letters)
    finally:
        gate.set()
    await settle(fast)
    assert fast_seen[:4] == [Fill(str(n)) for n in range(4)]


async def test_a_subscriber_with_a_drop_policy_applies_it(node: Node, clock: ManualClock) -> None:
    gate = asyncio.Event()
    seen: list[Any] = []
    config = MailboxConfig(capacity=1, overflow=Overflow.DROP_OLDEST)
    ref = await node.spawn(Gated, args=(gate, seen), name="latest", mailbox=config)
    node.bus.subscribe(ref, Quote)
    try:
        node.bus.publish(Quote("first"))
        await asyncio.sleep(0)  # in flight at the gate
        for symbol in ("a", "b", "c"):
            node.bus.publish(Quote(symbol))
    finally:
        gate.set()
    await clock.advance(0.0)  # lets the loop run until nothing is ready
    assert seen == [Quote("first"), Quote("c")]
    assert [letter.message for letter in dead_letters_to(node, "/latest")] == [Quote("a"), Quote("b")]


async def test_a_subscriber_that_stops_is_removed(node: Node) -> None:
    seen: list[Any] = []
    ref = await node.spawn(Recorder, args=(seen,))
    node.bus.subscribe(ref, Fill)
    node.bus.subscribe(ref, "alerts")
    await node.stop(ref)
    assert node.bus.subscribers(Fill) == []
    assert node.bus.subscribers("alerts") == []
    assert node.bus.publish(Fill("ES")) == 0
    assert dead_letters_to(node, ref.path) == []
    with pytest.raises(ActorStopped):
        node.bus.subscribe(ref, Fill)


async def test_subscriptions_survive_a_supervised_restart(node: Node, clock: ManualClock) -> None:
    seen: list[Any] = []
    await node.start(SupervisorSpec(children=[ChildSpec("sub", Recorder, args=(seen,))]), name="sup")
    ref = node.lookup("/sup/sub")
    node.bus.subscribe(ref, Fill)
    ref.slot.kill(ExitReason.failure(RuntimeError("killed on purpose"), "test"))
    await clock.advance(0.0)
    assert ref.slot.incarnation == 2
    assert node.bus.publish(Fill("ES")) == 1
    await settle(ref)
    assert seen == [Fill("ES"), "settled?"]


async def test_subscriptions_survive_an_ancestors_restart(node: Node, clock: ManualClock) -> None:
    seen: list[Any] = []
    middle = SupervisorSpec(children=[ChildSpec("sub", Recorder, args=(seen,))])
    await node.start(SupervisorSpec(children=[ChildSpec("mid", middle)]), name="top")
    ref = node.lookup("/top/mid/sub")
    node.bus.subscribe(ref, Fill)
    first_slot = ref.slot
    node.lookup("/top/mid").slot.kill(ExitReason.failure(RuntimeError("killed on purpose"), "test"))
    await clock.advance(0.0)
    assert ref.slot is not first_slot and ref.is_alive
    assert node.bus.publish(Fill("ES")) == 1
    await settle(ref)
    assert seen == [Fill("ES"), "settled?"]


async def test_a_subscriber_that_dies_with_its_ancestor_is_removed_without_a_dead_letter(
    node: Node, clock: ManualClock
) -> None:
    middle = SupervisorSpec(children=[ChildSpec("sub", Recorder, args=([],))])
    await node.start(SupervisorSpec(children=[ChildSpec("mid", middle)]), name="top")
    ref = node.lookup("/top/mid/sub")
    node.bus.subscribe(ref, Fill)
    await node.stop(node.lookup("/top"))
    assert not ref.is_alive
    assert node.bus.subscribers(Fill) == []
    assert node.bus.publish(Fill("ES")) == 0
    assert [letter for letter in node.dead_letters.recent() if letter.kind == "stopped"] == []


@pytest.mark.parametrize("restart", [Restart.TEMPORARY, Restart.PERMANENT])
async def test_a_subscriber_is_removed_exactly_when_its_ref_dies_after_its_parent_crashes(
    node: Node, clock: ManualClock, restart: Restart
) -> None:
    # The parent crashes: its children's refs wait for its next incarnation. TEMPORARY: none
    # comes, the refs die and the subscription goes; PERMANENT: they live on, and so does it.
    middle = SupervisorSpec(children=[ChildSpec("sub", Recorder, args=([],))])
    await node.start(SupervisorSpec(children=[ChildSpec("mid", middle, restart=restart)]), name="top")
    ref = node.lookup("/top/mid/sub")
    node.bus.subscribe(ref, Fill)
    node.lookup("/top/mid").slot.kill(ExitReason.failure(RuntimeError("killed on purpose"), "test"))
    await clock.advance(0.0)
    assert ref.is_alive is (restart is Restart.PERMANENT)
    assert node.bus.subscribers(Fill) == ([ref] if ref.is_alive else [])


class Named(Actor):
    """Records (its name, message)."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    async def on_receive(self, message: Any) -> Any:
        self.seen.append((self.ctx.self_ref.name, message))


async def test_a_pool_subscribes_and_each_message_goes_to_one_routee(node: Node, clock: ManualClock) -> None:
    seen: list[Any] = []
    workers = PoolSpec(Named, size=2, routing=Routing.ROUND_ROBIN, args=(seen,))
    await node.start(SupervisorSpec(children=[ChildSpec("workers", workers)]), name="sup")
    pool = PoolRef(node.lookup("/sup/workers"))
    node.bus.subscribe(pool, Fill)
    assert [node.bus.publish(Fill(str(n))) for n in range(4)] == [1, 1, 1, 1]
    await clock.advance(0.0)
    by_routee: dict[str, list[Any]] = {}
    for name, message in seen:
        by_routee.setdefault(name, []).append(message)
    assert sorted(len(messages) for messages in by_routee.values()) == [2, 2]
    assert sorted(message.symbol for message in (m for ms in by_routee.values() for m in ms)) == [
        "0", "1", "2", "3"
    ]


def failing_key(message: Any) -> str:
    raise KeyError("no key on purpose")


async def test_a_subscriber_that_raises_on_delivery_costs_the_publisher_nothing(node: Node) -> None:
    workers = PoolSpec(Named, size=2, routing=Routing.CONSISTENT_HASH, key=failing_key, args=([],))
    await node.start(SupervisorSpec(children=[ChildSpec("workers", workers)]), name="sup")
    seen: list[Any] = []
    other = await node.spawn(Recorder, args=(seen,), name="other")
    node.bus.subscribe(PoolRef(node.lookup("/sup/workers")), Fill)
    node.bus.subscribe(other, Fill)
    assert node.bus.publish(Fill("ES")) == 1
    [letter] = dead_letters_to(node, "/sup/workers")
    assert letter.kind == "refused"
    assert isinstance(letter.error, KeyError)
    await settle(other)
    assert seen == [Fill("ES"), "settled?"]


async def test_lifecycle_events_are_published_on_the_bus(node: Node) -> None:
    events: list[Any] = []
    watcher = await node.spawn(Recorder, args=(events,), name="watcher")
    node.bus.subscribe(watcher, LifecycleEvent)
    other = await node.spawn(Recorder, args=([],), name="other")
    await node.stop(other)
    await settle(watcher)
    assert [(type(event), event.path) for event in events[:-1]] == [
        (Started, "/other"),
        (Stopped, "/other"),
    ]


@pytest.mark.parametrize("topic", ["", 42, None, Fill("ES")])
async def test_a_bad_topic_raises_invalid_config(node: Node, topic: Any) -> None:
    ref = await node.spawn(Recorder, args=([],))
    with pytest.raises(InvalidConfig) as raised:
        node.bus.subscribe(ref, topic)
    assert raised.value.field == "topic"


@pytest.mark.parametrize("topic", ["", Fill])
async def test_publishing_under_a_bad_topic_name_raises_invalid_config(node: Node, topic: Any) -> None:
    with pytest.raises(InvalidConfig) as raised:
        node.bus.publish(Fill("ES"), topic=topic)
    assert raised.value.field == "topic"
