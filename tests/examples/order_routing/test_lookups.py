"""Look-ups of orders in doubt: a backoff per order, a global rate cap, and silence while the
venue is unreachable. Manual clock; a real SqliteJournal; a stand-in at /root/execution/gateway
forwards what the executor sends to a probe and answers nothing."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.executor import Executor
from examples.order_routing.node.intents import Intents
from examples.order_routing.node.messages import BrokerInfo, ConnectionLost, GetBrokerInfo, Lookup, Snapshot
from examples.order_routing.protocol import OrderStatus
from garrison import ActorRef, ChildSpec, ManualClock, Node, Strategy, SupervisorSpec
from garrison.persistence import IntentState, Journal
from garrison.testing import TestProbe
from tests.examples.order_routing.support import StandIn, make_intent, seed_intents

CONFIG = NodeConfig(lookup_retry=0.25, lookup_retry_max=4.0, lookup_timeout=1.0, max_lookups_per_second=50.0)


def execution(probe: ActorRef, answers: dict[type, Any] | None = None) -> SupervisorSpec:
    """gateway (stand-in) -> intents -> executor. The stand-in answers GetBrokerInfo from
    ``answers`` (a dict the test may change: None is a gateway without a Welcome)."""
    answers = {GetBrokerInfo: BrokerInfo(0.2, "none")} if answers is None else answers
    gateway = ChildSpec("gateway", StandIn, args=(probe, answers))
    group = SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        children=[gateway, ChildSpec("intents", Intents), ChildSpec("executor", Executor, args=(CONFIG,))],
    )
    return SupervisorSpec(children=[ChildSpec("execution", group)])


async def lookups_during(probe: TestProbe, clock: ManualClock, seconds: float) -> list[tuple[float, Any]]:
    """(time, message) of every Lookup the executor sends in the next ``seconds`` of virtual time."""
    seen: list[tuple[float, Any]] = []
    end = clock.now() + seconds
    while clock.now() < end:
        await clock.advance(0.05)
        for _ in range(10):  # the stand-in's hop to the probe
            await asyncio.sleep(0)
        while probe.pending:
            message = await probe.receive(within=0)
            assert isinstance(message, Lookup), message
            seen.append((clock.now(), message))
    return seen


async def test_an_unanswered_order_is_looked_up_with_a_growing_backoff_not_every_quarter_second(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    intent = make_intent(seq=1)
    await seed_intents(journal, (intent, (IntentState.SENDING,)))
    await node.start(execution(probe))

    times = [at for at, _ in await lookups_during(probe, clock, 20.0)]

    # 0, 0.25, 0.75, 1.75, 3.75, 7.75, 11.75, 15.75, 19.75: the old fixed 0.25 s asked 80 times.
    assert 7 <= len(times) <= 10, times
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(later >= earlier - 2 * Executor.SWEEP_EVERY for earlier, later in itertools.pairwise(gaps)), (
        gaps
    )
    assert max(gaps) <= CONFIG.lookup_retry_max + 2 * Executor.SWEEP_EVERY
    figures = await node.lookup(paths.EXECUTOR).ask(Snapshot())
    assert figures["lookup_timeouts"] >= len(times) - 2
    assert figures["in_doubt"] == 1 and figures["oldest_in_doubt_seconds"] >= 19.0
    metrics = node.metrics.for_actor(paths.EXECUTOR)
    assert metrics.counter("order_lookups", "read back").value == len(times)
    assert metrics.gauge("orders_in_doubt", "read back").value == 1
    assert metrics.gauge("oldest_in_doubt_seconds", "read back").value >= 19.0


async def test_lookups_wait_while_the_venue_is_unreachable_and_resume_on_welcome(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    intent = make_intent(seq=2)
    await seed_intents(journal, (intent, (IntentState.SENDING,)))
    answers: dict[type, Any] = {GetBrokerInfo: BrokerInfo(0.2, "none")}
    await node.start(execution(probe, answers))
    assert await lookups_during(probe, clock, 0.2)
    executor = node.lookup(paths.EXECUTOR)

    answers[GetBrokerInfo] = None  # the gateway, asked again meanwhile, has no Welcome
    await executor.tell(ConnectionLost("connection reset"))
    assert await lookups_during(probe, clock, 30.0) == []
    assert (await executor.ask(Snapshot()))["connected"] is False

    answers[GetBrokerInfo] = BrokerInfo(0.2, "none")
    await executor.tell(BrokerInfo(0.2, "none"))
    again = await lookups_during(probe, clock, 0.3)
    assert [message for _, message in again] == [Lookup(intent.client_order_id)]


async def test_many_orders_in_doubt_are_looked_up_under_the_global_rate_cap(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    intents = [make_intent(seq=seq) for seq in range(100, 300)]
    await seed_intents(journal, *((intent, (IntentState.SENDING,)) for intent in intents))
    await node.start(execution(probe))

    first_second = await lookups_during(probe, clock, 1.0)
    # 50/s, plus the bucket's fifth of a second: never the 200 at once.
    assert 40 <= len(first_second) <= 50 + 10 + 5, len(first_second)
    rest = await lookups_during(probe, clock, 5.0)
    asked = {message.client_order_id for _, message in first_second + rest}
    assert asked == {intent.client_order_id for intent in intents}
    per_second = (len(first_second) + len(rest)) / 6.0
    assert per_second <= 50 + 10


async def test_an_answer_about_an_order_the_node_never_recorded_changes_nothing(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    await node.start(execution(probe))
    executor = node.lookup(paths.EXECUTOR)
    await executor.tell(OrderStatus(7, "not-an-intent-of-ours", found=True, state="filled"))
    await clock.advance(0.2)
    figures = await executor.ask(Snapshot())
    assert figures["unknown_reports"] == 1 and figures["in_doubt"] == 0


async def test_a_lost_welcome_notice_is_made_up_for_by_asking_the_gateway_again(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    """The BrokerInfo the gateway offers on Welcome can meet a full mailbox: the executor asks
    the gateway itself, once a second while it believes the venue unreachable."""
    intent = make_intent(seq=3)
    await seed_intents(journal, (intent, (IntentState.SENDING,)))
    answers: dict[type, Any] = {GetBrokerInfo: None}
    await node.start(execution(probe, answers))
    assert await lookups_during(probe, clock, 3.0) == []

    answers[GetBrokerInfo] = BrokerInfo(0.2, "none")  # connected; its notice never arrives
    asked = await lookups_during(probe, clock, 1.5)
    assert [message for _, message in asked][:1] == [Lookup(intent.client_order_id)]
