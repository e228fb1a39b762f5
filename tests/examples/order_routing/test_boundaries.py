"""The contract at each async boundary of the node (README, "Contracts at every async boundary"),
pinned by killing the consumer at that point. Manual clock, a real SqliteJournal; stand-ins
(forwarding to probes) take the place of whatever is outside the boundary under test.

Row 5 (executor -> broker) needs a real broker: test_broker_boundaries.py.
"""

from __future__ import annotations

import msgspec
import pytest

from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.executor import Executor
from examples.order_routing.node.feed import TICKS_STREAM, Feed
from examples.order_routing.node.intents import Intents
from examples.order_routing.node.messages import (
    BrokerInfo,
    Fills,
    GetBrokerInfo,
    GetIntentLog,
    IntentReady,
    Lookup,
    OrderIntent,
    OrdersRecorded,
    ProposeOrder,
    RecordIntent,
    Snapshot,
    Submit,
    SubscribeFills,
    Tick,
    Ticks,
)
from examples.order_routing.node.positions import Positions
from examples.order_routing.node.risk import Risk
from examples.order_routing.node.strategies import StrategyLauncher
from examples.order_routing.protocol import Fill, OrderAccepted, OrderStatus
from garrison import ChildSpec, DynamicSupervisorSpec, MailboxConfig, Node, Strategy, SupervisorSpec
from garrison.actors import Restarted
from garrison.persistence import IntentLog, IntentState, Journal, client_order_id
from garrison.testing import EventRecorder, Faults, NodeGuard, TestProbe
from tests.examples.order_routing.support import (
    FAST,
    StandIn,
    durable_intents,
    expect_recorded,
    intent_events,
    make_intent,
    seed_intents,
)
from tests.examples.order_routing.test_executor import (
    LOOKUP_LAG,
    answer_not_found_until_submitted,
    state_becomes,
)

STRATEGY = "/root/market/strategies/momentum"
_decode_tick = msgspec.msgpack.Decoder(Tick).decode


def execution_group(gateway: TestProbe, *, positions: bool = False) -> ChildSpec:
    """gateway (stand-in) -> intents -> executor [-> positions], rest_for_one as in the node."""
    children = [
        ChildSpec("gateway", StandIn, args=(gateway, {GetBrokerInfo: BrokerInfo(LOOKUP_LAG, "none")})),
        ChildSpec("intents", Intents),
        ChildSpec("executor", Executor, args=(FAST,)),
    ]
    if positions:
        children.append(ChildSpec("positions", Positions))
    return ChildSpec("execution", SupervisorSpec(strategy=Strategy.REST_FOR_ONE, children=children))


async def records_of(journal: Journal, cid: str) -> int:
    """How many IntentRecorded events the journal holds for ``cid``."""
    count = 0
    for payload in await intent_events(journal):
        event = msgspec.msgpack.decode(payload)
        if isinstance(event, dict) and event.get("type") == "garrison.intent.recorded":
            count += event.get("id") == cid
    return count


# -- 1. feed -> strategies ------------------------------------------------------------------


def market_tree(risk: TestProbe) -> SupervisorSpec:
    config = NodeConfig(symbols=("ACME",), strategies=("momentum",), tick_rate=100.0, burst_factor=1.0)
    market = SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        children=[
            ChildSpec("feed", Feed, args=(config,)),
            ChildSpec("strategies", DynamicSupervisorSpec()),
            ChildSpec("launcher", StrategyLauncher, args=(config,)),
        ],
    )
    return SupervisorSpec(
        children=[
            ChildSpec("risk", StandIn, args=(risk,), kwargs={"ignore": (Tick, Ticks)}),
            ChildSpec("market", market),
        ]
    )


async def proposals_until(probe: TestProbe, count: int) -> list[OrderIntent]:
    return [(await probe.expect(ProposeOrder, within=5.0)).intent for _ in range(count)]


async def test_feed_to_strategies_a_tick_the_strategy_died_on_is_never_proposed_again(
    node: Node, probe: TestProbe, journal: Journal, faults: Faults, events: EventRecorder
) -> None:
    """Row 1: in-process, at most once. The tick is durable before any strategy sees it; the
    strategy rebuilds its indicators from the stream, not from a redelivery."""
    await node.start(market_tree(probe))
    crash = faults.crash(node.lookup(STRATEGY), on=Tick, nth=6)
    before = await proposals_until(probe, 3)
    await events.expect(Restarted(path=STRATEGY), within=5.0)
    after = await proposals_until(probe, 10)

    crashed = [letter.message for letter in node.dead_letters.recent() if letter.error is not None]
    assert crash.fired == 1 and len(crashed) == 1 and isinstance(crashed[0], Tick)
    proposed = [intent.signal_seq for intent in before + after]
    assert crashed[0].seq not in proposed
    assert proposed == sorted(set(proposed)), "a tick was proposed twice or out of order"
    assert all(i.client_order_id == client_order_id("momentum", i.signal_seq) for i in before + after)
    # Every tick a strategy acted on is in the durable stream, under its own seq.
    durable = {seq: _decode_tick(payload) async for seq, payload in journal.read(TICKS_STREAM)}
    assert all(durable[i.signal_seq].price == i.price for i in before + after)


async def test_feed_to_strategies_a_restarted_feed_never_reuses_a_tick_seq(
    node: Node, probe: TestProbe, journal: Journal, faults: Faults, events: EventRecorder
) -> None:
    """Row 1, producer side: tick seqs (and so client order ids) continue from the durable stream."""
    await node.start(market_tree(probe))
    faults.crash(node.lookup("/root/market/feed"), nth=30)
    await events.expect(Restarted(path="/root/market/feed"), within=5.0)
    await events.expect(Restarted(path="/root/market/launcher"))  # rest_for_one: strategies start again
    proposals = await proposals_until(probe, 40)
    while probe.pending:
        proposals.append((await probe.expect(ProposeOrder, within=0)).intent)

    seqs = [intent.signal_seq for intent in proposals]
    assert len(seqs) == len(set(seqs))
    ticks = [(seq, _decode_tick(payload)) async for seq, payload in journal.read(TICKS_STREAM)]
    assert len(ticks) > 30
    assert all(seq == tick.seq for seq, tick in ticks)


# -- 2. strategies -> risk ---------------------------------------------------------------------


def risk_tree(intents: TestProbe, log: IntentLog[OrderIntent], config: NodeConfig) -> SupervisorSpec:
    stand_in = ChildSpec("intents", StandIn, args=(intents, {GetIntentLog: log}))
    return SupervisorSpec(
        children=[
            ChildSpec("execution", SupervisorSpec(children=[stand_in])),
            ChildSpec("risk", Risk, args=(config,)),
        ]
    )


async def test_strategies_to_risk_a_proposal_risk_died_on_is_lost_and_a_reproposal_is_the_same_intent(
    node: Node, probe: TestProbe, journal: Journal, faults: Faults, events: EventRecorder
) -> None:
    """Row 2: in-process, at most once; no answer for a proposal risk died on, nothing recorded.
    Proposing again (the same tick) carries the same client order id."""
    intents = TestProbe(node, "intents")
    log = await IntentLog(journal, "intents", OrderIntent).open()
    await node.start(risk_tree(intents, log, NodeConfig()))
    risk = node.lookup("/root/risk")
    await risk.tell(Tick(1, "ACME", 100.0))
    intent = make_intent(seq=1)
    faults.crash(risk, on=ProposeOrder)

    await risk.tell(ProposeOrder(intent, probe))
    await events.expect(Restarted(path="/root/risk"))
    await probe.expect_no_message(within=1.0)
    await intents.expect_no_message(within=0.1)

    await risk.tell(Tick(2, "ACME", 100.0))  # reference prices are in memory: the feed refreshes them
    await risk.tell(ProposeOrder(make_intent(seq=1), probe))
    assert await intents.expect(RecordIntent) == RecordIntent(intent, probe)


# -- 3. risk -> intents --------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "durable"), [("before_write", 0), ("after_write", 1)])
async def test_risk_to_intents_a_record_cut_short_is_acked_once_redelivered_and_recorded_once(
    node: Node,
    probe: TestProbe,
    journal: Journal,
    faults: Faults,
    events: EventRecorder,
    node_guard: NodeGuard,
    mode: str,
    durable: int,
) -> None:
    """Row 3: the ack (OrdersRecorded) follows the durable append. Intents dies after the append
    (after_write) or before it: no ack either way; what is durable is sent once; the redelivered
    RecordIntent is acknowledged without a second record."""
    node_guard.allow_crashes("/root/execution/intents", "IntentLogBroken")  # caused by the fault
    gateway = TestProbe(node, "gateway")
    faults.fail_journal(mode=mode, stream="intents")  # before start: the log keeps its journal
    await node.start(SupervisorSpec(children=[execution_group(gateway)]))
    intent = make_intent(seq=7)

    await node.lookup("/root/execution/intents").tell(RecordIntent(intent, probe))
    await events.expect(Restarted(path="/root/execution/intents"))
    await probe.expect_no_message(within=0.5)
    assert await records_of(journal, intent.client_order_id) == durable
    if durable:
        # The restarted executor found it RECORDED in the log: sent, once.
        assert (await gateway.expect(Submit, within=1.0)).intents == (intent,)

    await node.lookup("/root/execution/intents").tell(RecordIntent(intent, probe))
    assert await probe.expect(OrdersRecorded) == OrdersRecorded((intent.client_order_id,))
    assert await records_of(journal, intent.client_order_id) == 1
    if not durable:
        assert (await gateway.expect(Submit, within=1.0)).intents == (intent,)
    await node.lookup("/root/execution/executor").tell(OrderAccepted(intent.client_order_id, "B-7"))
    await gateway.expect_no_message(within=FAST.ack_timeout + 0.5)


# -- 4. intents -> executor ----------------------------------------------------------------------


async def test_intents_to_executor_a_lost_intent_ready_is_found_in_the_durable_log(
    node: Node, probe: TestProbe, journal: Journal, faults: Faults, events: EventRecorder
) -> None:
    """Row 4: IntentReady is only a hint (offered, may be dropped); the log is the truth."""
    gateway = TestProbe(node, "gateway")
    await node.start(SupervisorSpec(children=[execution_group(gateway)]))
    faults.crash(node.lookup("/root/execution/executor"), on=IntentReady)
    intent = make_intent(seq=8)

    await node.lookup("/root/execution/intents").tell(RecordIntent(intent, probe))
    assert await probe.expect(OrdersRecorded) == OrdersRecorded((intent.client_order_id,))
    await events.expect(Restarted(path="/root/execution/executor"))
    assert (await gateway.expect(Submit, within=1.0)).intents == (intent,)
    await gateway.expect_no_message(within=0.5)


async def test_intents_to_executor_killed_between_sending_and_submit_it_looks_up_first(
    node: Node,
    probe: TestProbe,
    journal: Journal,
    faults: Faults,
    events: EventRecorder,
    node_guard: NodeGuard,
) -> None:
    """Row 4: the executor marks SENDING durably, then submits. Cut in between (the mark is
    written but not confirmed), its restart treats the order as possibly sent: look-up first."""
    node_guard.allow_crashes("/root/execution/executor", "IntentLogBroken")  # caused by the fault
    gateway = TestProbe(node, "gateway")
    faults.fail_journal(after=1, mode="after_write", stream="intents")  # the record passes, the mark fails
    await node.start(SupervisorSpec(children=[execution_group(gateway)]))
    intent = make_intent(seq=9)

    await node.lookup("/root/execution/intents").tell(RecordIntent(intent, probe))
    assert await probe.expect(OrdersRecorded) == OrdersRecorded((intent.client_order_id,))
    await events.expect(Restarted(path="/root/execution/executor"))
    assert (await durable_intents(journal))[intent.client_order_id].state is IntentState.SENDING

    lookups, _ = await answer_not_found_until_submitted(gateway, node, intent.client_order_id)
    assert lookups >= 1, "resent without looking it up first"
    assert node.restart_counts["/root/execution/executor"] == 1


# -- 6. broker fills -> positions -----------------------------------------------------------------


def a_fill(seq: int, intent: OrderIntent, qty: int, leaves: int) -> Fill:
    return Fill(seq, intent.client_order_id, f"B-{intent.signal_seq}", intent.symbol, intent.side, qty,
                intent.price, leaves)  # fmt: skip


async def test_fills_to_positions_a_fill_seen_twice_is_applied_once(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    """Row 6: duplicates are possible (replay after reconnect); fill_seq drops them, within one
    Fills (the gateway's batch of one read) and across two."""
    gateway = TestProbe(node, "gateway")
    intent = make_intent(seq=30)
    await seed_intents(journal, (intent, (IntentState.SENDING, IntentState.ACKED)))
    await node.start(SupervisorSpec(children=[execution_group(gateway, positions=True)]))
    positions = node.lookup("/root/execution/positions")
    subscription = (await gateway.expect(SubscribeFills)).subscription

    await positions.tell(Fills([a_fill(1, intent, 4, 6), a_fill(1, intent, 4, 6)], subscription))
    await positions.tell(Fills([a_fill(1, intent, 4, 6), a_fill(2, intent, 6, 0)], subscription))
    snapshot = await positions.ask(Snapshot())
    assert snapshot["fills"] == 2 and snapshot["positions"]["ACME"][0] == 10
    await state_becomes(journal, intent.client_order_id, IntentState.DONE)


async def test_fills_to_positions_killed_between_persist_and_order_done_the_executor_reconciles(
    node: Node, probe: TestProbe, journal: Journal, faults: Faults, events: EventRecorder
) -> None:
    """Row 6: the fill is the ack (its fill_seq, durable, is what the next Hello asks after).
    Positions dies with the last fill written but unconfirmed, before telling the executor the
    order is done: nothing is replayed (the fill is durable), and the order still ends DONE."""
    gateway = TestProbe(node, "gateway")
    intent = make_intent(seq=31)
    await seed_intents(journal, (intent, (IntentState.SENDING, IntentState.ACKED)))
    await node.start(SupervisorSpec(children=[execution_group(gateway, positions=True)]))
    first = await gateway.expect(SubscribeFills)
    assert (first.after, first.to) == (0, node.lookup("/root/execution/positions"))
    assert await gateway.expect(Lookup) == Lookup(intent.client_order_id)  # ACKED at start
    await node.lookup("/root/execution/executor").tell(
        OrderStatus(1, intent.client_order_id, found=True, state="accepted", qty=10)
    )
    faults.fail_journal(mode="after_write", stream="positions")

    await node.lookup("/root/execution/positions").tell(Fills([a_fill(1, intent, 10, 0)], first.subscription))
    await events.expect(Restarted(path="/root/execution/positions"))
    again = await gateway.expect(SubscribeFills)
    assert (again.after, again.to) == (1, node.lookup("/root/execution/positions"))
    assert again.subscription != first.subscription, "a restarted positions subscribes under a new number"
    assert (await node.lookup("/root/execution/positions").ask(Snapshot()))["fills"] == 1

    # The OrdersDone was lost with the incarnation: the executor must learn it from the broker.
    assert await gateway.expect(Lookup, within=5.0) == Lookup(intent.client_order_id)
    await node.lookup("/root/execution/executor").tell(
        OrderStatus(2, intent.client_order_id, found=True, state="filled", filled_qty=10, qty=10)
    )
    await state_becomes(journal, intent.client_order_id, IntentState.DONE)


async def test_fills_to_positions_fills_of_the_old_subscription_after_a_restart_are_dropped(
    node: Node, probe: TestProbe, journal: Journal, faults: Faults, events: EventRecorder
) -> None:
    """Row 6: until the gateway handles a restarted positions' new subscription, it forwards what
    the old subscription's connection reads: fills after a gap (the ones lost with the old
    incarnation). Positions takes only fills of its own subscription, so the gap is filled by the
    replay it asked for instead of being skipped as old."""
    gateway = TestProbe(node, "gateway")
    intent = make_intent(seq=32)
    await seed_intents(journal, (intent, (IntentState.SENDING, IntentState.ACKED)))
    await node.start(SupervisorSpec(children=[execution_group(gateway, positions=True)]))
    positions = node.lookup("/root/execution/positions")
    first = await gateway.expect(SubscribeFills)
    assert await gateway.expect(Lookup) == Lookup(intent.client_order_id)  # ACKED at start
    faults.fail_journal(mode="after_write", stream="positions")  # fill 1 is durable, the incarnation ends

    await positions.tell(Fills([a_fill(1, intent, 2, 8)], first.subscription))
    await events.expect(Restarted(path="/root/execution/positions"))
    again = await gateway.expect(SubscribeFills)
    assert again.after == 1
    # Fill 2 was lost with the old incarnation; fill 3 still comes over the old connection.
    await positions.tell(Fills([a_fill(3, intent, 2, 4)], first.subscription))
    await positions.tell(Fills([a_fill(n, intent, 2, 10 - 2 * n) for n in (2, 3, 4, 5)], again.subscription))

    snapshot = await positions.ask(Snapshot())
    assert (snapshot["fills"], snapshot["last_fill_seq"], snapshot["positions"]["ACME"][0]) == (5, 5, 10)


async def test_risk_to_intents_records_are_acknowledged_even_when_the_last_message_is_a_query(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    """Records queued together are acknowledged once the mailbox is empty, whatever came last."""
    gateway = TestProbe(node, "gateway")
    await node.start(SupervisorSpec(children=[execution_group(gateway)]))
    intents = node.lookup("/root/execution/intents")
    first, second = make_intent(seq=40), make_intent(seq=41)

    await intents.tell(RecordIntent(first, probe))
    await intents.tell(RecordIntent(second, probe))
    await intents.ask(Snapshot())

    acks = await expect_recorded(probe, 2, within=0.5)
    assert acks == {first.client_order_id, second.client_order_id}


async def test_intents_to_executor_a_notice_a_full_executor_refused_is_offered_again(
    node: Node, probe: TestProbe, journal: Journal, faults: Faults, node_guard: NodeGuard
) -> None:
    """Row 4: IntentReady is offered, never awaited (two full mailboxes must not deadlock). One the
    executor's full mailbox refused is offered again later, so the intent is still sent."""
    node_guard.allow_dead_letters("/root/execution/executor", IntentReady, reason="not offered")
    gateway = TestProbe(node, "gateway")
    group = execution_group(gateway).start
    assert isinstance(group, SupervisorSpec)
    small = ChildSpec("executor", Executor, args=(FAST,), mailbox=MailboxConfig(capacity=2))
    spec = SupervisorSpec(strategy=Strategy.REST_FOR_ONE, children=[*group.children[:2], small])
    await node.start(SupervisorSpec(children=[ChildSpec("execution", spec)]))
    hang = faults.hang(node.lookup("/root/execution/executor"), on=IntentReady)
    intents = [make_intent(seq=seq) for seq in range(50, 55)]

    for intent in intents:
        await node.lookup("/root/execution/intents").tell(RecordIntent(intent, probe))
        assert await probe.expect(OrdersRecorded, within=0.0) == OrdersRecorded((intent.client_order_id,))
    refused = [letter for letter in node.dead_letters.recent() if isinstance(letter.message, IntentReady)]
    assert refused, "the executor's mailbox never refused a notice: the test proves nothing"
    hang.remove()

    submitted: list[str] = []
    while len(submitted) < len(intents):
        submitted += [intent.client_order_id for intent in (await gateway.expect(Submit, within=2.0)).intents]
    assert sorted(submitted) == sorted(intent.client_order_id for intent in intents)
    await gateway.expect_no_message(within=0.5)
