"""Risk: every refusal is answered to the proposer with its reason and never reaches intents;
an approved order goes to intents (which answers once it is durable); limits survive a restart."""

from __future__ import annotations

import math

import pytest

from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.intents import INTENTS_STREAM, Intents
from examples.order_routing.node.messages import (
    GetIntentLog,
    OrderAck,
    OrderIntent,
    OrdersRecorded,
    ProposeOrder,
    RecordIntent,
    Snapshot,
    Tick,
    Ticks,
)
from examples.order_routing.node.risk import Risk
from examples.order_routing.protocol import Side
from garrison import ActorRef, ChildSpec, Node, SupervisorSpec
from garrison.actors import Restarted
from garrison.persistence import IntentLog, Journal
from garrison.testing import EventRecorder, Faults, TestProbe
from tests.examples.order_routing.support import StandIn, make_intent

CONFIG = NodeConfig(
    symbols=("ACME", "GLOBEX"), max_order_qty=100, max_position=25, max_notional=5_000.0, price_band=0.05
)


async def start_risk(
    node: Node, journal: Journal, intents: TestProbe, config: NodeConfig = CONFIG
) -> ActorRef:
    """risk, with a stand-in for intents that forwards RecordIntent to ``intents``."""
    log = await IntentLog(journal, INTENTS_STREAM, OrderIntent).open()
    stand_in = ChildSpec("intents", StandIn, args=(intents, {GetIntentLog: log}))
    await node.start(
        SupervisorSpec(
            children=[
                ChildSpec("execution", SupervisorSpec(children=[stand_in])),
                ChildSpec("risk", Risk, args=(config,)),
            ]
        )
    )
    risk = node.lookup("/root/risk")
    await risk.tell(Tick(1, "ACME", 100.0))
    await risk.ask(Snapshot())  # taken: ticks conflate per symbol, a later one would replace it
    return risk


REFUSALS = [
    pytest.param(make_intent(symbol="NOPE"), "unknown symbol: 'NOPE'", id="unknown-symbol"),
    pytest.param(make_intent(qty=0), "qty must be > 0: qty=0", id="zero-qty"),
    pytest.param(make_intent(qty=-5), "qty must be > 0: qty=-5", id="negative-qty"),
    pytest.param(make_intent(qty=101), "qty above max order size: qty=101 > 100", id="above-max-size"),
    pytest.param(make_intent(price=math.nan), "price must be a positive number: price=nan", id="nan-price"),
    pytest.param(make_intent(price=-1.0), "price must be a positive number: price=-1.0", id="negative-price"),
    pytest.param(make_intent(price=math.inf), "price must be a positive number: price=inf", id="inf-price"),
    pytest.param(
        make_intent(price=105.5), "price outside band: price=105.5 vs reference 100.0 ±5%", id="above-band"
    ),
    pytest.param(
        make_intent(price=94.0), "price outside band: price=94.0 vs reference 100.0 ±5%", id="below-band"
    ),
    pytest.param(
        make_intent(symbol="GLOBEX"), "no reference price yet: symbol='GLOBEX'", id="no-reference-price"
    ),
    pytest.param(make_intent(qty=26), "position limit: ACME would be 26", id="position-limit-in-one-order"),
    pytest.param(
        make_intent(qty=26, side=Side.SELL), "position limit: ACME would be -26", id="short-position-limit"
    ),
]


@pytest.mark.parametrize(("intent", "reason"), REFUSALS)
async def test_a_refused_order_is_answered_with_its_reason_and_never_reaches_intents(
    node: Node, probe: TestProbe, journal: Journal, intent: OrderIntent, reason: str
) -> None:
    intents = TestProbe(node, "intents")
    risk = await start_risk(node, journal, intents)

    await risk.tell(ProposeOrder(intent, probe))

    assert await probe.expect(OrderAck) == OrderAck(intent.client_order_id, False, reason)
    await intents.expect_no_message(within=0.5)
    refused = (await risk.ask(Snapshot()))["refused"]
    assert refused == {reason.split(":")[0]: 1}


async def test_position_and_notional_limits_count_every_approved_order(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    intents = TestProbe(node, "intents")
    risk = await start_risk(node, journal, intents)
    first, second, third = (make_intent(seq=seq, qty=10) for seq in (1, 2, 3))

    for intent in (first, second):
        await risk.tell(ProposeOrder(intent, probe))
        assert await intents.expect(RecordIntent) == RecordIntent(intent, probe)
    await risk.tell(ProposeOrder(third, probe))
    assert await probe.expect(OrderAck) == OrderAck(
        third.client_order_id, False, "position limit: ACME would be 30"
    )

    # A sell brings the position back, but notional counts what was traded either way.
    sell = make_intent(seq=4, qty=20, side=Side.SELL)
    await risk.tell(ProposeOrder(sell, probe))
    assert await intents.expect(RecordIntent) == RecordIntent(sell, probe)
    big = make_intent(seq=5, qty=20, price=101.0)
    await risk.tell(ProposeOrder(big, probe))
    assert await probe.expect(OrderAck) == OrderAck(big.client_order_id, False, "notional limit: 6020 > 5000")
    await intents.expect_no_message(within=0.1)
    assert await risk.ask(Snapshot()) == {
        "approved": 3,
        "refused": {"position limit": 1, "notional limit": 1},
    }


@pytest.mark.parametrize("price", [math.nan, -100.0, 0.0, math.inf])
async def test_a_bad_tick_never_becomes_a_reference_price(
    node: Node, probe: TestProbe, journal: Journal, price: float
) -> None:
    intents = TestProbe(node, "intents")
    risk = await start_risk(node, journal, intents)

    await risk.tell(Tick(2, "ACME", price))
    intent = make_intent(price=100.0)
    await risk.tell(ProposeOrder(intent, probe))

    assert await intents.expect(RecordIntent) == RecordIntent(intent, probe)
    assert (await risk.ask(Snapshot()))["refused"] == {f"bad tick: price={price!r}": 1}


async def test_an_approved_order_is_answered_by_intents_once_durable_not_by_risk(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    await node.start(
        SupervisorSpec(
            children=[
                ChildSpec("execution", SupervisorSpec(children=[ChildSpec("intents", Intents)])),
                ChildSpec("risk", Risk, args=(CONFIG,)),
            ]
        )
    )
    risk = node.lookup("/root/risk")
    await risk.tell(Tick(1, "ACME", 100.0))
    intent = make_intent(qty=10)

    await risk.tell(ProposeOrder(intent, probe))

    assert await probe.expect(OrdersRecorded) == OrdersRecorded((intent.client_order_id,))
    log = await IntentLog(journal, INTENTS_STREAM, OrderIntent).open()
    assert log.get(intent.client_order_id) is not None
    await probe.expect_no_message(within=0.5)


async def test_limits_hold_across_a_restart_of_risk(
    node: Node, probe: TestProbe, journal: Journal, faults: Faults, events: EventRecorder
) -> None:
    await node.start(
        SupervisorSpec(
            children=[
                ChildSpec("execution", SupervisorSpec(children=[ChildSpec("intents", Intents)])),
                ChildSpec("risk", Risk, args=(CONFIG,)),
            ]
        )
    )
    risk = node.lookup("/root/risk")
    await risk.tell(Tick(1, "ACME", 100.0))
    first = make_intent(seq=1, qty=20)
    await risk.tell(ProposeOrder(first, probe))
    assert await probe.expect(OrdersRecorded) == OrdersRecorded((first.client_order_id,))

    faults.crash(risk, on=Tick)
    await risk.tell(Tick(2, "ACME", 100.0))
    await events.expect(Restarted(path="/root/risk"))
    await risk.tell(Tick(3, "ACME", 100.0))
    second = make_intent(seq=3, qty=10)
    await risk.tell(ProposeOrder(second, probe))

    assert await probe.expect(OrderAck) == OrderAck(
        second.client_order_id, False, "position limit: ACME would be 30"
    )


async def test_a_step_of_ticks_sets_the_latest_good_price_per_symbol_and_counts_the_bad(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    """The feed sends risk a step's ticks in one Ticks message: the last good price of a symbol
    is its reference, and bad ticks are counted, never used."""
    intents = TestProbe(node, "intents")
    risk = await start_risk(node, journal, intents)
    steps = (Tick(2, "ACME", 110.0), Tick(3, "ACME", math.nan), Tick(4, "ACME", 120.0), Tick(5, "ACME", -1.0))
    await risk.tell(Ticks(steps))

    low = make_intent(price=113.0)  # inside the band around 110, outside the one around 120
    await risk.tell(ProposeOrder(low, probe))

    reason = "price outside band: price=113.0 vs reference 120.0 ±5%"
    assert await probe.expect(OrderAck) == OrderAck(low.client_order_id, False, reason)
    refused = (await risk.ask(Snapshot()))["refused"]
    assert refused == {"bad tick: price=nan": 1, "bad tick: price=-1.0": 1, "price outside band": 1}
