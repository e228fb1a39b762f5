"""Row 5 of the contract table, executor -> broker, against a real broker simulator (in-process,
real TCP, dedupe none: a venue that would accept a second order with the same id). The node is
the real tree without its feed; intents are recorded as risk records them. Real time: the broker
runs on the loop's clock, so the node does too (``garrison_clock`` below), and every wait is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from examples.order_routing.broker import BrokerConfig, BrokerServer, DedupeMode, duplicates, load_orders
from examples.order_routing.harness.verdict import judge
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.gateway import Gateway
from examples.order_routing.node.messages import OrderIntent, RecordIntent, Snapshot, Submit
from examples.order_routing.node.tree import build_spec
from garrison import MonotonicClock, Node
from garrison.persistence import IntentState, Journal
from garrison.testing import InjectedFault, NodeGuard, TestProbe
from tests.examples.order_routing.support import durable_intents, expect_recorded, make_intent

SETTLE = 20.0
"""Real seconds a test gives the node to bring every intent to a terminal state."""

StartBroker = Callable[..., Awaitable[BrokerServer]]


@pytest.fixture
def garrison_clock() -> MonotonicClock:
    """Real time for the node: the broker's look-up lag and fill delays are real."""
    return MonotonicClock()


@pytest.fixture
async def start_broker(tmp_path: Path) -> AsyncIterator[StartBroker]:
    """Start broker simulators on 127.0.0.1 (port 0); each is stopped after the test."""
    async with AsyncExitStack() as stack:

        async def start(**settings: Any) -> BrokerServer:
            config = BrokerConfig(
                store_path=tmp_path / "broker.db", dedupe=DedupeMode.NONE, lookup_lag=0.05, seed=5, **settings
            )
            return await stack.enter_async_context(BrokerServer(config))

        yield start


def node_config(broker: BrokerServer) -> NodeConfig:
    return NodeConfig(
        broker_port=broker.port, feed=False, ack_timeout=0.3, lookup_margin=0.1, lookup_retry=0.05
    )


async def record(node: Node, probe: TestProbe, intents: list[OrderIntent]) -> None:
    """Record intents as risk does, and wait for each durable ack."""
    recorder = node.lookup("/root/execution/intents")
    for intent in intents:
        await recorder.tell(RecordIntent(intent, probe))
    acks = await expect_recorded(probe, len(intents), within=5.0)
    assert acks == {intent.client_order_id for intent in intents}


async def settled(journal: Journal, intents: list[OrderIntent]) -> dict[str, IntentState]:
    """Wait (real time, bounded) until every intent is DONE or REJECTED; their states."""
    states: dict[str, IntentState] = {}
    for _ in range(int(SETTLE / 0.05)):
        durable = await durable_intents(journal)
        states = {i.client_order_id: durable[i.client_order_id].state for i in intents}
        if all(state in (IntentState.DONE, IntentState.REJECTED) for state in states.values()):
            return states
        await asyncio.sleep(0.05)
    raise AssertionError(f"not settled after {SETTLE}s: {states}")


async def assert_exactly_once(
    node: Node, journal: Journal, broker: BrokerServer, intents: list[OrderIntent]
) -> None:
    """Each intent is at the broker exactly once, and the node's positions match the broker's fills."""
    assert set((await settled(journal, intents)).values()) == {IntentState.DONE}
    orders = await asyncio.to_thread(load_orders, broker.config.store_path)
    assert sorted(order.client_order_id for order in orders) == sorted(i.client_order_id for i in intents)
    assert await asyncio.to_thread(duplicates, broker.config.store_path) == []
    positions = node.lookup("/root/execution/positions")
    for _ in range(int(SETTLE / 0.05)):
        if (await positions.ask(Snapshot()))["fills"] >= broker.stats.fills:
            break
        await asyncio.sleep(0.05)
    verdict = await judge(journal, str(broker.config.store_path), "router-1")
    assert verdict.passed, "\n".join(verdict.lines())


async def test_executor_to_broker_replies_lost_in_the_dead_zone_are_found_by_look_up_not_resent(
    node: Node, probe: TestProbe, journal: Journal, start_broker: StartBroker
) -> None:
    """Every order is accepted and its reply lost; fills come later than the ack timeout.
    Each send ends UNKNOWN, is looked up, found, and never sent again."""
    broker = await start_broker(drop_reply_rate=1.0, fill_delay_ms=1000.0)
    await node.start(build_spec(node_config(broker)))
    intents = [make_intent(seq=seq) for seq in range(1, 6)]

    await record(node, probe, intents)
    await assert_exactly_once(node, journal, broker, intents)

    executor = await node.lookup("/root/execution/executor").ask(Snapshot())
    assert executor["resent"] == 0 and executor["lookups"] >= len(intents)
    assert broker.stats.replies_dropped == len(intents)


def gateway_killed_after_write(kills: int) -> type[Gateway]:
    """A gateway that dies right after it wrote a NewOrder, before any answer (the dead zone),
    ``kills`` times across its restarts."""
    left = [kills]

    class GatewayKilledAfterWrite(Gateway):
        async def on_receive(self, message: Any) -> Any:
            answer = await super().on_receive(message)
            if isinstance(message, Submit) and self.welcome is not None and left[0] > 0:
                left[0] -= 1
                self.write_outgoing()  # frames of a burst are joined into one write: this one goes now
                raise InjectedFault("killed with an order on the wire")
            return answer

    return GatewayKilledAfterWrite


async def test_executor_to_broker_a_gateway_killed_with_an_order_on_the_wire_never_duplicates_it(
    node: Node,
    probe: TestProbe,
    journal: Journal,
    node_guard: NodeGuard,
    start_broker: StartBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gateway (and, rest_for_one, intents, executor, positions) restarts with orders
    SENDING: the first on the wire, the others still in its mailbox (which survives the restart
    and is written after the next Welcome). The executor looks each one up before any resend."""
    node_guard.allow_crashes("/root/execution/gateway", InjectedFault)
    monkeypatch.setattr("examples.order_routing.node.tree.Gateway", gateway_killed_after_write(1))
    broker = await start_broker()
    await node.start(build_spec(node_config(broker)))
    intents = [make_intent(seq=seq) for seq in range(1, 6)]

    await record(node, probe, intents)
    await assert_exactly_once(node, journal, broker, intents)
    assert node.restart_counts["/root/execution/gateway"] == 1
    assert (await node.lookup("/root/execution/executor").ask(Snapshot()))["resent"] == 0
    # The dead incarnation's connection is closed, not left subscribed to every fill.
    for _ in range(100):
        if len(broker._connections) == 1:
            break
        await asyncio.sleep(0.01)
    assert len(broker._connections) == 1


async def test_executor_to_broker_connections_reset_on_every_order_still_place_each_once(
    node: Node, probe: TestProbe, journal: Journal, start_broker: StartBroker
) -> None:
    """The broker resets the connection after every NewOrder, half of the time before recording
    it and half after: each send is ambiguous, and only look-ups tell which ones happened. The
    gateway reconnects by itself: nothing crashes."""
    broker = await start_broker(reset_rate=1.0)
    await node.start(build_spec(node_config(broker)))
    intents = [make_intent(seq=seq) for seq in range(1, 5)]

    await record(node, probe, intents)
    await assert_exactly_once(node, journal, broker, intents)
    # An order the broker never saw was sent again: more NewOrders than orders, one order each.
    assert broker.stats.connections_reset >= len(intents)
    assert broker.stats.orders_received > len(intents)
    assert sum(node.restart_counts.values()) == 0
