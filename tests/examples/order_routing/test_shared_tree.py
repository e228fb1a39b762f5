"""An executor-only node's broker session, against a real broker simulator (in-process, real
TCP, real time): the gateway writes no order past the lease end its Submit carries, and the
session (which counts no fills) is welcomed without asking for a replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.order_routing.broker import BrokerConfig, BrokerServer, DedupeMode, load_orders
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.gateway import Gateway
from examples.order_routing.node.messages import BrokerInfo, BrokerReplies, Snapshot, Submit
from examples.order_routing.node.shared_tree import FillSink, build_shared_spec
from examples.order_routing.protocol import OrderAccepted
from garrison import ChildSpec, MonotonicClock, Node, Strategy, SupervisorSpec
from garrison.testing import TestProbe
from tests.examples.order_routing.support import StandIn, make_intent


@pytest.fixture
def garrison_clock() -> MonotonicClock:
    """Real time for the node: the broker runs on the loop's clock."""
    return MonotonicClock()


async def test_the_gateway_writes_no_order_past_the_lease_end_of_its_submit(
    node: Node, probe: TestProbe, tmp_path: Path
) -> None:
    store = tmp_path / "broker.db"
    settings = BrokerConfig(store_path=store, dedupe=DedupeMode.NONE, lookup_lag=0.05, seed=5)
    async with BrokerServer(settings) as broker:
        config = NodeConfig(broker_port=broker.port, role="executor", member="b")
        execution = SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            children=[
                ChildSpec("gateway", Gateway, args=(config,)),
                ChildSpec("executor", StandIn, args=(probe,)),
                ChildSpec("fills", FillSink, args=(config,)),
            ],
        )
        await node.start(SupervisorSpec(children=[ChildSpec("execution", execution)]))
        await probe.expect(BrokerInfo, within=5.0)  # welcomed without a fill subscription of its own
        gateway = node.lookup("/root/execution/gateway")
        late, in_time = make_intent(seq=1), make_intent(seq=2)

        now = node.clock.now()
        await gateway.tell(Submit((late,), not_after=now - 0.001))
        await gateway.tell(Submit((in_time,), not_after=now + 30.0))

        replies = await probe.expect(BrokerReplies, within=5.0)
        assert [type(reply) for reply in replies.replies] == [OrderAccepted]
        assert replies.replies[0].client_order_id == in_time.client_order_id
        assert [order.client_order_id for order in load_orders(store)] == [in_time.client_order_id]
        assert (await gateway.ask(Snapshot()))["expired"] == 1
        await node.supervisor("/root").terminate_child("execution")  # before the broker stops


def test_an_executor_node_runs_a_gateway_an_executor_and_a_fill_sink_only() -> None:
    spec = build_shared_spec(NodeConfig(role="executor", member="b"))
    execution = next(child.start for child in spec.children if child.id == "execution")
    assert isinstance(execution, SupervisorSpec)
    assert [child.id for child in spec.children] == ["persistence", "execution"]
    assert [child.id for child in execution.children] == ["gateway", "executor", "fills"]


def test_a_full_node_is_the_single_nodes_tree_with_the_shared_executor() -> None:
    from examples.order_routing.node.shared_work import SharedExecutor
    from examples.order_routing.node.tree import build_spec

    config = NodeConfig(role="full", member="a")
    single, full = build_spec(config), build_shared_spec(config)
    assert [child.id for child in full.children] == [child.id for child in single.children]
    execution = next(child.start for child in full.children if child.id == "execution")
    assert isinstance(execution, SupervisorSpec)
    executor = next(child for child in execution.children if child.id == "executor")
    assert executor.start is SharedExecutor
