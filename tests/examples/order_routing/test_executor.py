"""The executor's decision table: what it does with each intent state it finds after a restart,
and with each answer the broker gives (or does not give). Manual clock; a real SqliteJournal;
a stand-in at /root/execution/gateway forwards what the executor sends to a probe."""

from __future__ import annotations

import asyncio

import pytest

from examples.order_routing.node.executor import Executor
from examples.order_routing.node.intents import Intents
from examples.order_routing.node.messages import (
    BrokerInfo,
    BrokerReplies,
    GetBrokerInfo,
    IntentReady,
    Lookup,
    OrderIntent,
    OrdersDone,
    OrdersRecorded,
    RecordIntent,
    Submit,
)
from examples.order_routing.protocol import OrderAccepted, OrderRejected, OrderStatus
from garrison import ActorRef, ChildSpec, ManualClock, Node, Strategy, SupervisorSpec
from garrison.persistence import IntentState, Journal
from garrison.testing import TestProbe
from tests.examples.order_routing.support import (
    FAST,
    StandIn,
    durable_intents,
    durable_state,
    make_intent,
    seed_intents,
)

LOOKUP_LAG = 0.2
TRUSTED_AFTER = LOOKUP_LAG + FAST.lookup_margin
"""How long after the send could have happened a 'not found' is reliable."""
REAL_WAIT = 5.0
"""Real seconds a test waits for a journal write it cannot otherwise await."""


def execution(probe: ActorRef, journal: Journal | None = None, seen: dict[str, IntentState] | None = None):
    """gateway (stand-in) -> intents -> executor, as in the node's execution group (without positions)."""

    async def note_durable_state(message: object) -> None:
        if isinstance(message, Submit) and journal is not None and seen is not None:
            for intent in message.intents:
                cid = intent.client_order_id
                seen[cid] = await durable_state(journal, cid)  # type: ignore[assignment]

    gateway = ChildSpec(
        "gateway",
        StandIn,
        args=(probe, {GetBrokerInfo: BrokerInfo(LOOKUP_LAG, "none")}, note_durable_state),
    )
    group = SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        children=[gateway, ChildSpec("intents", Intents), ChildSpec("executor", Executor, args=(FAST,))],
    )
    return SupervisorSpec(children=[ChildSpec("execution", group)])


def executor_of(node: Node) -> ActorRef:
    return node.lookup("/root/execution/executor")


async def state_becomes(journal: Journal, cid: str, state: IntentState) -> None:
    """Wait (bounded, real time: journal I/O) until the journal holds ``cid`` in ``state``."""
    current = None
    for _ in range(int(REAL_WAIT / 0.01)):
        current = await durable_state(journal, cid)
        if current is state:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"intent {cid} is {current} in the journal after {REAL_WAIT}s, not {state}")


async def answer_not_found_until_submitted(probe: TestProbe, node: Node, cid: str) -> tuple[int, float]:
    """Answer every Lookup of ``cid`` with 'not found' until a Submit comes; (lookups, time of the Submit)."""
    for lookups in range(100):
        message = await probe.expect((Lookup, Submit), within=5.0)
        if isinstance(message, Submit):
            assert [intent.client_order_id for intent in message.intents] == [cid]
            return lookups, node.clock.now()
        assert message == Lookup(cid)
        await executor_of(node).tell(OrderStatus(lookups + 1, cid, found=False))
    raise AssertionError("no Submit after 100 look-ups")


# -- what it finds at start ------------------------------------------------------------


async def test_a_recorded_intent_is_marked_sending_durably_before_it_is_submitted(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    intent = make_intent(seq=1)
    await seed_intents(journal, (intent, ()))
    seen: dict[str, IntentState] = {}
    await node.start(execution(probe, journal, seen))

    assert (await probe.expect(Submit)).intents == (intent,)
    assert seen[intent.client_order_id] is IntentState.SENDING, "the Submit left before SENDING was durable"
    assert (await durable_intents(journal))[intent.client_order_id].attempts == 1


@pytest.mark.parametrize("state", [IntentState.SENDING, IntentState.UNKNOWN])
async def test_an_intent_in_the_dead_zone_is_looked_up_before_any_resend(
    node: Node, probe: TestProbe, journal: Journal, state: IntentState
) -> None:
    intent = make_intent(seq=2)
    path = (IntentState.SENDING,) if state is IntentState.SENDING else (IntentState.SENDING, state)
    await seed_intents(journal, (intent, path))
    await node.start(execution(probe, journal, {}))
    started = node.clock.now()

    lookups, submitted_at = await answer_not_found_until_submitted(probe, node, intent.client_order_id)

    # Every 'not found' before the broker's look-up lag (plus margin) was asked again, not trusted.
    assert lookups >= 2
    assert submitted_at - started >= TRUSTED_AFTER
    assert submitted_at - started <= TRUSTED_AFTER + FAST.lookup_retry + 2 * Executor.SWEEP_EVERY
    await state_becomes(journal, intent.client_order_id, IntentState.SENDING)
    assert (await durable_intents(journal))[intent.client_order_id].attempts == 2


@pytest.mark.parametrize(
    ("broker_state", "final"),
    [
        ("accepted", IntentState.ACKED),
        ("partially_filled", IntentState.ACKED),
        ("filled", IntentState.DONE),
        ("cancelled", IntentState.DONE),
    ],
)
async def test_an_intent_in_the_dead_zone_found_at_the_broker_is_never_sent_again(
    node: Node, probe: TestProbe, journal: Journal, broker_state: str, final: IntentState
) -> None:
    intent = make_intent(seq=3)
    await seed_intents(journal, (intent, (IntentState.SENDING,)))
    await node.start(execution(probe, journal, {}))

    assert await probe.expect(Lookup) == Lookup(intent.client_order_id)
    await executor_of(node).tell(
        OrderStatus(1, intent.client_order_id, found=True, state=broker_state, order_id="B-1", qty=10)
    )

    await state_becomes(journal, intent.client_order_id, final)
    await probe.expect_no_message(within=TRUSTED_AFTER + 3 * FAST.lookup_retry)
    assert (await durable_intents(journal))[intent.client_order_id].attempts == 1


@pytest.mark.parametrize(("broker_state", "final"), [("filled", IntentState.DONE), ("accepted", None)])
async def test_an_acked_intent_is_looked_up_once_at_start_to_learn_whether_it_is_done(
    node: Node, probe: TestProbe, journal: Journal, broker_state: str, final: IntentState | None
) -> None:
    intent = make_intent(seq=4)
    await seed_intents(journal, (intent, (IntentState.SENDING, IntentState.ACKED)))
    await node.start(execution(probe, journal, {}))

    assert await probe.expect(Lookup) == Lookup(intent.client_order_id)
    await executor_of(node).tell(
        OrderStatus(1, intent.client_order_id, found=True, state=broker_state, order_id="B-1", qty=10)
    )
    if final is not None:
        await state_becomes(journal, intent.client_order_id, final)
    # Live orders finish through positions (OrdersDone), not through polling.
    await probe.expect_no_message(within=1.0)
    assert await durable_state(journal, intent.client_order_id) is (final or IntentState.ACKED)
    await executor_of(node).tell(OrdersDone([intent.client_order_id]))
    await state_becomes(journal, intent.client_order_id, IntentState.DONE)


@pytest.mark.parametrize("state", [IntentState.DONE, IntentState.REJECTED])
async def test_a_terminal_intent_is_left_alone(
    node: Node, probe: TestProbe, journal: Journal, state: IntentState
) -> None:
    intent = make_intent(seq=5)
    await seed_intents(journal, (intent, (IntentState.SENDING, state)))
    await node.start(execution(probe, journal, {}))

    await probe.expect_no_message(within=5.0)
    assert await durable_state(journal, intent.client_order_id) is state


async def test_every_state_at_once_each_intent_gets_its_own_decision(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    recorded, sending, unknown, acked, done = (make_intent(seq=seq) for seq in range(10, 15))
    await seed_intents(
        journal,
        (recorded, ()),
        (sending, (IntentState.SENDING,)),
        (unknown, (IntentState.SENDING, IntentState.UNKNOWN)),
        (acked, (IntentState.SENDING, IntentState.ACKED)),
        (done, (IntentState.SENDING, IntentState.DONE)),
    )
    await node.start(execution(probe, journal, {}))

    first = [await probe.receive(within=1.0) for _ in range(4)]
    assert first[0].intents == (recorded,)
    assert sorted(message.client_order_id for message in first[1:]) == sorted(
        intent.client_order_id for intent in (sending, unknown, acked)
    )
    assert all(isinstance(message, Lookup) for message in first[1:])


# -- what the broker answers (or not) ---------------------------------------------------


async def submitted(node: Node, probe: TestProbe, intent: OrderIntent) -> None:
    """Record ``intent`` through intents, as risk does, and take its Submit off the probe."""
    await node.lookup("/root/execution/intents").tell(RecordIntent(intent, probe))
    assert await probe.expect(OrdersRecorded) == OrdersRecorded((intent.client_order_id,))
    assert (await probe.expect(Submit)).intents == (intent,)


async def test_an_accepted_order_is_acked_and_done_once_positions_says_it_is_filled(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    await node.start(execution(probe, journal, {}))
    intent = make_intent(seq=20)
    await submitted(node, probe, intent)

    await executor_of(node).tell(OrderAccepted(intent.client_order_id, "B-20"))
    await state_becomes(journal, intent.client_order_id, IntentState.ACKED)
    await executor_of(node).tell(OrdersDone([intent.client_order_id]))
    await state_becomes(journal, intent.client_order_id, IntentState.DONE)
    await probe.expect_no_message(within=FAST.ack_timeout + 1.0)


async def test_the_answers_of_one_read_each_settle_their_own_intent(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    """The gateway hands over the answers of one read as one BrokerReplies: each is handled as
    if it came alone, in order, including a refusal as a duplicate (in doubt, never rejected)."""
    await node.start(execution(probe, journal, {}))
    accepted, refused, duplicate = make_intent(seq=40), make_intent(seq=41), make_intent(seq=42)
    for intent in (accepted, refused, duplicate):
        await submitted(node, probe, intent)

    await executor_of(node).tell(
        BrokerReplies(
            [
                OrderAccepted(accepted.client_order_id, "B-40"),
                OrderRejected(refused.client_order_id, "price outside the venue's band"),
                OrderRejected(duplicate.client_order_id, "known id", duplicate=True),
            ]
        )
    )
    await state_becomes(journal, accepted.client_order_id, IntentState.ACKED)
    await state_becomes(journal, refused.client_order_id, IntentState.REJECTED)
    await state_becomes(journal, duplicate.client_order_id, IntentState.UNKNOWN)
    assert await probe.expect(Lookup, within=2.0) == Lookup(duplicate.client_order_id)


async def test_a_duplicate_refusal_is_looked_up_and_never_recorded_as_rejected(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    await node.start(execution(probe, journal, {}))
    intent = make_intent(seq=21)
    await submitted(node, probe, intent)

    await executor_of(node).tell(
        OrderRejected(intent.client_order_id, "duplicate client order id", duplicate=True)
    )
    await state_becomes(journal, intent.client_order_id, IntentState.UNKNOWN)
    assert await probe.expect(Lookup, within=1.0) == Lookup(intent.client_order_id)
    await executor_of(node).tell(
        OrderStatus(1, intent.client_order_id, found=True, state="accepted", order_id="B-21", qty=10)
    )
    await state_becomes(journal, intent.client_order_id, IntentState.ACKED)
    history = [i.state for i in (await durable_intents(journal)).values()]
    assert IntentState.REJECTED not in history


async def test_a_venue_refusal_is_recorded_as_rejected_with_its_reason(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    await node.start(execution(probe, journal, {}))
    intent = make_intent(seq=22)
    await submitted(node, probe, intent)

    await executor_of(node).tell(OrderRejected(intent.client_order_id, "simulated venue reject"))
    await state_becomes(journal, intent.client_order_id, IntentState.REJECTED)
    assert (await durable_intents(journal))[intent.client_order_id].detail == "simulated venue reject"
    await probe.expect_no_message(within=FAST.ack_timeout + 1.0)


async def test_no_answer_within_the_ack_timeout_makes_it_unknown_and_looked_up(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    await node.start(execution(probe, journal, {}))
    intent = make_intent(seq=23)
    await submitted(node, probe, intent)
    sent_at = node.clock.now()

    assert await probe.expect(Lookup, within=FAST.ack_timeout + 1.0) == Lookup(intent.client_order_id)
    assert node.clock.now() - sent_at >= FAST.ack_timeout
    await state_becomes(journal, intent.client_order_id, IntentState.UNKNOWN)
    assert "no answer within" in (await durable_intents(journal))[intent.client_order_id].detail

    # Sent longer ago than the look-up lag: a 'not found' now is reliable, and it is sent again.
    await executor_of(node).tell(OrderStatus(1, intent.client_order_id, found=False))
    assert (await probe.expect(Submit, within=1.0)).intents == (intent,)


async def test_a_late_accept_after_the_timeout_still_acks_the_intent(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    await node.start(execution(probe, journal, {}))
    intent = make_intent(seq=24)
    await submitted(node, probe, intent)
    assert await probe.expect(Lookup, within=FAST.ack_timeout + 1.0) == Lookup(intent.client_order_id)

    await executor_of(node).tell(OrderAccepted(intent.client_order_id, "B-24"))
    await state_becomes(journal, intent.client_order_id, IntentState.ACKED)
    # Settled: no more look-ups and no resend.
    await probe.expect_no_message(within=2.0)


async def test_an_intent_ready_twice_is_submitted_once(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    await node.start(execution(probe, journal, {}))
    intent = make_intent(seq=25)
    await submitted(node, probe, intent)

    await executor_of(node).tell(IntentReady((intent,)))
    await executor_of(node).tell(IntentReady((intent, intent)))
    await executor_of(node).tell(OrderAccepted(intent.client_order_id, "B-25"))
    await probe.expect_no_message(within=1.0)
    assert (await durable_intents(journal))[intent.client_order_id].attempts == 1


async def test_a_welcome_after_start_restarts_the_clock_before_a_not_found_is_trusted(
    node: Node, probe: TestProbe, journal: Journal, clock: ManualClock
) -> None:
    # An order queued in a reconnecting gateway goes out only at its Welcome: a 'not found'
    # is trusted only lookup_lag + margin after that, not after the executor's start.
    intent = make_intent(seq=40)
    await seed_intents(journal, (intent, (IntentState.SENDING,)))
    await node.start(execution(probe, journal, {}))
    await clock.advance(TRUSTED_AFTER / 2)
    welcomed_at = node.clock.now()
    await executor_of(node).tell(BrokerInfo(LOOKUP_LAG, "none"))

    _, submitted_at = await answer_not_found_until_submitted(probe, node, intent.client_order_id)

    assert submitted_at - welcomed_at >= TRUSTED_AFTER
