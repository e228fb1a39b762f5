"""Bounded progress (#24), the node's side: a backlog intents never lets grow past max_unsettled
(the strategies drop, conflate or wait), a time-to-live past which no order is sent, a send window
bounding the dead zone, and reconciliation that continues where a restart left it. Manual clock;
a real SqliteJournal; stand-ins at the gateway's and risk's paths forward to probes."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import msgspec
import pytest

from examples.order_routing.harness.chaos import progress_notes
from examples.order_routing.harness.verdict import Verdict
from examples.order_routing.node.answers import (
    EXPIRED_AFTER_LOOKUP,
    EXPIRED_BEFORE_SEND,
    EarlierProcesses,
)
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.executor import Executor
from examples.order_routing.node.intents import INTENTS_STREAM, Intents
from examples.order_routing.node.messages import (
    BacklogFull,
    BrokerInfo,
    GetBrokerInfo,
    Lookup,
    OrderIntent,
    OrdersRecorded,
    ProposeOrder,
    RecordIntent,
    Snapshot,
    Submit,
)
from examples.order_routing.node.strategies import Momentum
from examples.order_routing.protocol import OrderAccepted, OrderStatus
from garrison import ActorRef, ChildSpec, ManualClock, Node, Strategy, SupervisorSpec
from garrison.persistence import Intent, IntentLog, IntentState, Journal
from garrison.testing import Faults, TestProbe
from tests.examples.order_routing.support import FAST, StandIn, durable_intents, make_intent

LOOKUP_LAG = 0.2
TRUSTED_AFTER = LOOKUP_LAG + FAST.lookup_margin
REAL_WAIT = 5.0


def bounded(**changes: object) -> NodeConfig:
    return msgspec.structs.replace(FAST, **changes)


def execution(
    gateway: ActorRef,
    config: NodeConfig,
    risk: ActorRef | None = None,
    earlier: EarlierProcesses | None = None,
) -> SupervisorSpec:
    """gateway (stand-in) -> intents -> executor, as in the node, all with ``config``; a stand-in
    for risk when ``risk`` is given (intents hands it what the backlog refused)."""
    group = SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        children=[
            ChildSpec("gateway", StandIn, args=(gateway, {GetBrokerInfo: BrokerInfo(LOOKUP_LAG, "none")})),
            ChildSpec("intents", Intents, args=(config,)),
            ChildSpec("executor", Executor, args=(config,) if earlier is None else (config, earlier)),
        ],
    )
    children = [ChildSpec("execution", group)]
    if risk is not None:
        children.append(ChildSpec("risk", StandIn, args=(risk,)))
    return SupervisorSpec(children=children)


def executor_of(node: Node) -> ActorRef:
    return node.lookup("/root/execution/executor")


async def seed(
    journal: Journal,
    clock: ManualClock,
    ttl: float | None,
    *paths: tuple[OrderIntent, tuple[IntentState, ...]],
) -> None:
    """Intents as an earlier incarnation left them, stamped by ``clock`` with ``ttl``."""
    log = await IntentLog(journal, INTENTS_STREAM, OrderIntent, clock=clock).open()
    for intent, states in paths:
        await log.record(intent.client_order_id, intent, ttl=ttl)
        for state in states:
            await log.move(intent.client_order_id, state, "seeded")


async def becomes(journal: Journal, cid: str, state: IntentState) -> Intent[OrderIntent]:
    """Wait (bounded, real time: journal I/O) until the journal holds ``cid`` in ``state``."""
    current = None
    for _ in range(int(REAL_WAIT / 0.01)):
        current = (await durable_intents(journal)).get(cid)
        if current is not None and current.state is state:
            return current
        await asyncio.sleep(0.01)
    raise AssertionError(f"intent {cid} is {current} in the journal after {REAL_WAIT}s, not {state}")


async def drain(probe: TestProbe) -> list[object]:
    """The messages waiting at ``probe`` now (each is there: no time passes)."""
    messages = []
    while probe.pending:
        messages.append(await probe.receive(within=1.0))
    return messages


async def submitted_ids(probe: TestProbe, within: float) -> list[str]:
    """The client order ids of every Submit the probe gets until ``within`` passes with none."""
    ids: list[str] = []
    while True:
        try:
            message = await probe.expect(Submit, within=within)
        except AssertionError:
            return ids
        ids.extend(intent.client_order_id for intent in message.intents)


# -- the backlog ----------------------------------------------------------------------------------


async def test_intents_records_up_to_max_unsettled_and_hands_the_rest_back_to_strategy_and_risk(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    gateway, risk = TestProbe(node, "gateway-probe"), TestProbe(node, "risk-probe")
    config = bounded(max_unsettled=3, send_window=3)
    await node.start(execution(gateway, config, risk))
    intents = [make_intent(seq=seq) for seq in range(1, 6)]
    for intent in intents:
        await node.lookup("/root/execution/intents").tell(RecordIntent(intent, probe))

    recorded, refused = set(), []
    while len(recorded) + len(refused) < 5:
        message = await probe.expect((OrdersRecorded, BacklogFull), within=REAL_WAIT)
        if isinstance(message, OrdersRecorded):
            recorded.update(message.client_order_ids)
        else:
            assert (message.count, message.bound) == (3, 3)
            refused.extend(message.intents)

    assert recorded == {intent.client_order_id for intent in intents[:3]}
    assert refused == intents[3:]
    # Risk gets them too, to take their exposure back; none of them is in the journal.
    assert (await risk.expect(BacklogFull, within=REAL_WAIT)).intents == tuple(intents[3:])
    assert set(await durable_intents(journal)) == recorded
    snapshot = await node.lookup("/root/execution/intents").ask(Snapshot())
    assert (snapshot["backlog_refused"], snapshot["unsettled"]) == (2, 3)


async def test_a_node_of_several_does_not_bound_its_backlog_by_what_its_own_log_sees_settle(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    """Its executors settle intents in logs of their own: this log would never see room again."""
    config = bounded(max_unsettled=2, send_window=2, role="full", member="a")
    await node.start(SupervisorSpec(children=[ChildSpec("intents", Intents, args=(config,))]))
    intents = [make_intent(seq=seq) for seq in range(1, 5)]
    for intent in intents:
        await node.lookup("/root/intents").tell(RecordIntent(intent, probe))

    recorded: set[str] = set()
    while len(recorded) < 4:
        recorded.update((await probe.expect(OrdersRecorded, within=REAL_WAIT)).client_order_ids)
    assert set(await durable_intents(journal)) == {intent.client_order_id for intent in intents}


async def start_strategy(node: Node, risk: TestProbe, config: NodeConfig) -> ActorRef:
    await node.start(
        SupervisorSpec(
            children=[
                ChildSpec("risk", StandIn, args=(risk,)),
                ChildSpec("momentum", Momentum, args=("momentum", config)),
            ]
        )
    )
    return node.lookup("/root/momentum")


REFUSED = (
    make_intent(seq=1, symbol="ACME"),
    make_intent(seq=2, symbol="ACME"),
    make_intent(seq=3, symbol="GLOBEX"),
)


async def test_a_conflating_strategy_proposes_again_only_the_latest_refused_per_symbol(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    config = bounded(backlog_policy="conflate", intent_ttl=4.0, backlog_retry=0.5)
    strategy = await start_strategy(node, probe, config)
    await strategy.tell(BacklogFull(REFUSED, 10, 10))
    await strategy.ask(Snapshot())
    await clock.advance(0.5)

    again = [await probe.expect(ProposeOrder, within=1.0) for _ in range(2)]
    assert [proposal.intent for proposal in again] == [REFUSED[1], REFUSED[2]]
    # What is left of its ttl, counted from the first refusal (at 0).
    assert [proposal.ttl for proposal in again] == [pytest.approx(4.0 - clock.now())] * 2
    await probe.expect_no_message(within=0.1)
    snapshot = await strategy.ask(Snapshot())
    assert (snapshot["backlog_refused"], snapshot["backlog_conflated"], snapshot["backlog_retried"]) == (
        3,
        1,
        2,
    )

    # Refused again: held again, its first refusal still counting...
    await strategy.tell(BacklogFull((REFUSED[1],), 10, 10))
    await strategy.ask(Snapshot())
    await clock.advance(0.5)
    assert (await probe.expect(ProposeOrder, within=1.0)).ttl == pytest.approx(4.0 - clock.now())
    # ... until its ttl ran out while it was held: then it is dropped, never proposed late.
    await clock.advance(3.8 - clock.now())
    await strategy.tell(BacklogFull((REFUSED[1],), 10, 10))
    await strategy.ask(Snapshot())
    await probe.expect_no_message(within=1.0)
    assert (await strategy.ask(Snapshot()))["backlog_expired_held"] == 1


async def test_a_dropping_strategy_forgets_what_the_backlog_refused(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    strategy = await start_strategy(node, probe, bounded(backlog_policy="drop"))
    await strategy.tell(BacklogFull(REFUSED, 10, 10))
    await strategy.ask(Snapshot())
    await clock.advance(1.0)

    await probe.expect_no_message(within=0.1)
    snapshot = await strategy.ask(Snapshot())
    assert (snapshot["backlog_refused"], snapshot["backlog_dropped"], snapshot["held"]) == (3, 3, 0)


async def test_a_waiting_strategy_proposes_again_in_order_and_gives_up_after_backlog_wait(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    config = bounded(backlog_policy="wait", backlog_wait=1.0, backlog_retry=0.4)
    strategy = await start_strategy(node, probe, config)
    await strategy.tell(BacklogFull(REFUSED, 10, 10))
    await strategy.ask(Snapshot())
    await clock.advance(0.4)
    assert [(await probe.expect(ProposeOrder, within=1.0)).intent for _ in range(3)] == list(REFUSED)

    for _ in range(2):  # still refused: held, and proposed again while within backlog_wait
        await strategy.tell(BacklogFull(REFUSED, 10, 10))
        await strategy.ask(Snapshot())
        await clock.advance(0.4)
        if clock.now() <= 1.0:
            assert len([await probe.expect(ProposeOrder, within=1.0) for _ in range(3)]) == 3
    await probe.expect_no_message(within=0.1)
    assert (await strategy.ask(Snapshot()))["backlog_gave_up"] == 3


# -- time-to-live ---------------------------------------------------------------------------------


async def test_a_recorded_intent_past_its_ttl_is_expired_at_start_and_never_sent(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    late, fresh = make_intent(seq=1), make_intent(seq=2)
    await seed(journal, clock, 1.0, (late, ()))
    await clock.advance(2.0)
    await seed(journal, clock, 1.0, (fresh, ()))
    await node.start(execution(probe, bounded()))

    assert await submitted_ids(probe, within=0.5) == [fresh.client_order_id]
    expired = await becomes(journal, late.client_order_id, IntentState.EXPIRED)
    assert expired.detail == EXPIRED_BEFORE_SEND
    assert expired.attempts == 0
    assert (await executor_of(node).ask(Snapshot()))["expired_before_send"] == 1


async def test_an_intent_that_waits_for_the_send_window_past_its_ttl_is_expired_not_sent(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    config = bounded(send_window=1, intent_ttl=1.0)
    first, second = make_intent(seq=1), make_intent(seq=2)
    await node.start(execution(probe, config))
    proposer = TestProbe(node, "strategy")
    for intent in (first, second):
        await node.lookup("/root/execution/intents").tell(RecordIntent(intent, proposer))
    assert await submitted_ids(probe, within=0.3) == [first.client_order_id]

    await clock.advance(1.0)  # the window is still full: the second one's time runs out waiting
    await clock.advance(Executor.SWEEP_EVERY)
    expired = await becomes(journal, second.client_order_id, IntentState.EXPIRED)
    assert expired.detail == EXPIRED_BEFORE_SEND
    await executor_of(node).tell(OrderAccepted(first.client_order_id, "B-1"))
    await becomes(journal, first.client_order_id, IntentState.ACKED)
    assert await submitted_ids(probe, within=0.3) == []


async def test_a_submit_carries_its_orders_expiry_so_the_gateway_never_writes_one_late(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    await node.start(execution(probe, bounded(intent_ttl=3.0)))
    await clock.advance(1.0)
    proposer = TestProbe(node, "strategy")
    await node.lookup("/root/execution/intents").tell(RecordIntent(make_intent(seq=1), proposer))
    assert (await probe.expect(Submit, within=1.0)).not_after == 4.0


@pytest.mark.parametrize("state", [IntentState.SENDING, IntentState.UNKNOWN])
async def test_an_intent_in_doubt_past_its_ttl_is_expired_once_the_broker_reliably_never_had_it(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock, state: IntentState
) -> None:
    intent = make_intent(seq=1)
    path = (IntentState.SENDING,) if state is IntentState.SENDING else (IntentState.SENDING, state)
    await seed(journal, clock, 1.0, (intent, path))
    await clock.advance(2.0)
    await node.start(execution(probe, bounded()))
    cid = intent.client_order_id

    for asked in range(1, 100):
        message = await probe.expect((Lookup, Submit), within=5.0)
        assert message == Lookup(cid), "an order past its ttl was sent again"
        await executor_of(node).tell(OrderStatus(asked, cid, found=False))
        if clock.now() - 2.0 >= TRUSTED_AFTER:
            break
    expired = await becomes(journal, cid, IntentState.EXPIRED)
    assert expired.detail == EXPIRED_AFTER_LOOKUP
    assert expired.attempts == 1
    await probe.expect_no_message(within=1.0)


async def test_an_intent_in_doubt_past_its_ttl_that_the_broker_has_is_followed_as_usual(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    intent = make_intent(seq=1)
    await seed(journal, clock, 1.0, (intent, (IntentState.SENDING,)))
    await clock.advance(2.0)
    await node.start(execution(probe, bounded()))

    assert await probe.expect(Lookup, within=5.0) == Lookup(intent.client_order_id)
    await executor_of(node).tell(OrderStatus(1, intent.client_order_id, found=True, state="accepted"))
    await becomes(journal, intent.client_order_id, IntentState.ACKED)


# -- the send window ------------------------------------------------------------------------------


async def test_the_send_window_bounds_the_intents_in_sending_and_more_go_as_they_settle(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    config = bounded(send_window=2)
    intents = [make_intent(seq=seq) for seq in range(1, 6)]
    await node.start(execution(probe, config))
    proposer = TestProbe(node, "strategy")
    for intent in intents:
        await node.lookup("/root/execution/intents").tell(RecordIntent(intent, proposer))

    first = await submitted_ids(probe, within=0.3)
    assert first == [intent.client_order_id for intent in intents[:2]]
    snapshot = await executor_of(node).ask(Snapshot())
    assert (snapshot["send_window_used"], snapshot["to_send"]) == (2, 3)

    await executor_of(node).tell(OrderAccepted(first[0], "B-1"))
    assert await submitted_ids(probe, within=0.3) == [intents[2].client_order_id]
    states = {cid: intent.state for cid, intent in (await durable_intents(journal)).items()}
    assert sum(state in (IntentState.SENDING, IntentState.UNKNOWN) for state in states.values()) <= 2


async def test_nothing_is_marked_sending_while_the_gateway_has_no_welcome(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    """A frame would only wait in the gateway: its intent would be in doubt for nothing."""
    intent = make_intent(seq=1)
    await seed(journal, clock, None, (intent, ()))
    group = SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        children=[
            ChildSpec("gateway", StandIn, args=(probe, {GetBrokerInfo: None})),
            ChildSpec("intents", Intents, args=(bounded(),)),
            ChildSpec("executor", Executor, args=(bounded(),)),
        ],
    )
    await node.start(SupervisorSpec(children=[ChildSpec("execution", group)]))

    await probe.expect_no_message(within=0.5)
    assert (await durable_intents(journal))[intent.client_order_id].state is IntentState.RECORDED
    await executor_of(node).tell(BrokerInfo(LOOKUP_LAG, "none"))
    assert (await probe.expect(Submit, within=1.0)).intents == (intent,)


async def test_an_intent_waiting_for_a_welcome_past_its_ttl_is_expired_not_held(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    intent = make_intent(seq=1)
    await seed(journal, clock, 1.0, (intent, ()))
    group = SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        children=[
            ChildSpec("gateway", StandIn, args=(probe, {GetBrokerInfo: None})),
            ChildSpec("intents", Intents, args=(bounded(),)),
            ChildSpec("executor", Executor, args=(bounded(),)),
        ],
    )
    await node.start(SupervisorSpec(children=[ChildSpec("execution", group)]))

    await clock.advance(1.0 + Executor.SWEEP_EVERY)
    expired = await becomes(journal, intent.client_order_id, IntentState.EXPIRED)
    assert expired.detail == EXPIRED_BEFORE_SEND
    await executor_of(node).tell(BrokerInfo(LOOKUP_LAG, "none"))
    await probe.expect_no_message(within=0.5)


# -- reconciliation ------------------------------------------------------------------------------


async def test_reconciliation_continues_where_a_restart_left_it(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock, faults: Faults
) -> None:
    """Each answered look-up is settled durably at once: the next incarnation asks only about
    what the last one did not learn."""
    intents = [make_intent(seq=seq) for seq in range(1, 9)]
    await seed(journal, clock, None, *((intent, (IntentState.SENDING,)) for intent in intents))
    await node.start(execution(probe, bounded(max_lookups_per_second=20.0)))

    answered: list[str] = []
    while len(answered) < 4:  # the first ones, under the look-up cap (4 per sweep at most)
        await clock.advance(Executor.SWEEP_EVERY)
        for message in await drain(probe):
            if isinstance(message, Lookup) and len(answered) < 4:
                answered.append(message.client_order_id)
                status = OrderStatus(len(answered), message.client_order_id, found=True, state="filled")
                await executor_of(node).tell(status)
    for cid in answered:
        await becomes(journal, cid, IntentState.DONE)

    faults.crash(executor_of(node))
    await executor_of(node).tell(Snapshot())
    asked: set[str] = set()
    for _ in range(40):
        await clock.advance(Executor.SWEEP_EVERY)
        for message in await drain(probe):
            if isinstance(message, Lookup):
                asked.add(message.client_order_id)
    assert asked == {intent.client_order_id for intent in intents} - set(answered)


@pytest.mark.parametrize("marked", [False, True])
async def test_an_intent_an_earlier_process_left_in_doubt_counts_not_found_from_that_process(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock, marked: bool
) -> None:
    """A node restarted every second or two must trust its look-ups within one incarnation: an
    intent in doubt that no executor of this process marked SENDING was sent by an earlier
    process, before this one began. One this process marked may still have a frame on its way."""
    intent = make_intent(seq=1)
    await seed(journal, clock, None, (intent, (IntentState.SENDING,)))
    await clock.advance(5.0)
    earlier = EarlierProcesses(written_before=clock.now() - 1.0)
    cid = intent.client_order_id
    if marked:
        earlier.note_marked([cid, "other"], lambda: [cid], bound=10)
    await node.start(execution(probe, bounded(), earlier=earlier))
    # A Welcome after the start does not make its 'not found' wait: no frame of an earlier process
    # can be in this process's gateway.
    await executor_of(node).tell(BrokerInfo(LOOKUP_LAG, "none"))

    assert await probe.expect(Lookup, within=1.0) == Lookup(cid)
    await executor_of(node).tell(OrderStatus(1, cid, found=False))
    if marked:
        assert await probe.expect(Lookup, within=2.0) == Lookup(cid), "trusted before the look-up lag"
    else:
        assert (await probe.expect(Submit, within=0.2)).intents == (intent,)
        assert earlier.marked_here == {cid}


# -- the verdict ----------------------------------------------------------------------------------


def test_the_verdict_explains_expiry_and_fails_on_an_expired_order_at_the_broker() -> None:
    verdict = Verdict(
        expired_before_send=3, expired_after_lookup=2, expired_on_resend=1, positions_match=True
    )
    lines = verdict.lines()
    assert (
        "expired, never sent late: 6 = 3 before send (never sent) + 2 after look-up "
        "(the broker never had them) + 1 on a FIX resend (too old to send again)" in lines
    )
    assert "expired yet at the broker (must be 0): 0  ok" in lines
    assert verdict.passed
    assert not Verdict(expired_at_broker=1, positions_match=True).passed
    assert not Verdict(expired_unexplained=1, positions_match=True).passed


# -- the settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"max_unsettled": 0}, "max_unsettled=0: must be >= 1"),
        ({"send_window": 0}, "send_window=0: must be >= 1"),
        ({"max_unsettled": 10, "send_window": 20}, "send_window=20: must be <= max_unsettled=10"),
        ({"intent_ttl": 0.0}, "intent_ttl=0.0: must be a finite number > 0"),
        ({"backlog_policy": "queue"}, "backlog_policy='queue': must be one of drop, conflate, wait"),
        ({"strategy_backlog_policy": ("momentum=later",)}, "strategy_backlog_policy: momentum='later'"),
        ({"strategy_ttl": ("momentum",)}, "strategy_ttl: 'momentum': must be 'strategy=value'"),
        ({"strategy_ttl": ("momentum=-1",)}, "strategy_ttl: momentum='-1': must be a finite number"),
        ({"strategy_ttl": ("a=1", "a=2")}, "strategy_ttl: 'a' is given twice"),
    ],
)
def test_a_bad_bound_is_refused_naming_the_setting_and_value(changes: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        NodeConfig(**changes)  # type: ignore[arg-type]


def test_each_strategy_gets_its_own_ttl_and_policy_or_the_defaults() -> None:
    config = NodeConfig(
        intent_ttl=10.0, strategy_ttl=("momentum=3",), strategy_backlog_policy=("blast=drop",)
    )
    assert (config.ttl_of("momentum"), config.ttl_of("mean-revert")) == (3.0, 10.0)
    assert (config.policy_of("blast"), config.policy_of("momentum")) == ("drop", "conflate")


def test_the_chaos_run_reads_the_bounds_maxima_and_loop_blocks_from_the_node_log(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_bytes(
        b"old run: progress: unsettled 9999/4096, in doubt 9999/1024 (oldest 99.0s), longest step 99.0 ms"
        b" (x), take-over 99.0 ms\n"
    )
    start = log.stat().st_size
    with open(log, "ab") as file:
        for unsettled, in_doubt, oldest, step, kind in (
            (12, 3, 1.5, 2.5, "_Sweep"),
            (40, 9, 0.5, 7.25, "send"),
        ):
            file.write(
                f"12:00:00 INFO /root/execution/executor progress: unsettled {unsettled}/4096, in doubt "
                f"{in_doubt}/1024 (oldest {oldest}s), to send 0, acked 1, done 1, expired 0 before send + 0 "
                f"after look-up, look-ups 4, longest step {step} ms ({kind}), take-over 1.0 ms\n".encode()
            )
        file.write(
            b"12:00:01 WARNING x event loop of node router-1 was blocked for 0.120s; running: /root/risk\n"
        )
    report = tmp_path / "settle.json"
    report.write_text('{"settled": true, "waited": 2.5}')

    notes = progress_notes(log, start, report, 61.4)

    assert notes == [
        "time to drain (settle run): 2.5 s (drained)",
        "backlog max (unsettled): 40 (max_unsettled 4,096); in doubt max: 9 (send_window 1,024); "
        "oldest in doubt max: 1.5 s (2 progress lines)",
        "executor: longest step 7.2 ms (send), longest take-over at start 1.0 ms (in slices); "
        "loop blocks >= 100 ms: 1, the longest 120 ms; while the executor ran: 0, the longest 0 ms",
        "run length: 61 s",
    ]
