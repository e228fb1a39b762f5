"""Several nodes sharing the intents: what an executor does with an intent the consumer group
hands it (a new one, or one a dead executor held), under its lease. Manual clock; a real
SqliteJournal; the group is a fake that hands over the journal's own entries and records acks
and renewals; a stand-in at /root/execution/gateway forwards to a probe."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.intents import INTENTS_STREAM
from examples.order_routing.node.messages import (
    BrokerInfo,
    GetBrokerInfo,
    Lookup,
    OrderIntent,
    OrdersDone,
    Submit,
)
from examples.order_routing.node.shared_work import SharedExecutor, TakeOver, take_over
from examples.order_routing.protocol import OrderAccepted, OrderStatus
from garrison import ActorRef, ChildSpec, Node, Strategy, SupervisorSpec
from garrison.persistence import Delivery, IntentLog, IntentState, Journal
from garrison.testing import TestProbe
from tests.examples.order_routing.support import (
    StandIn,
    durable_intents,
    durable_state,
    make_intent,
    seed_intents,
)
from tests.examples.order_routing.test_executor import state_becomes

LOOKUP_LAG = 0.2
CONFIG = NodeConfig(role="executor", member="b", claim_idle=2.0, lookup_margin=0.5, lookup_retry=0.25)
TRUSTED_AFTER = LOOKUP_LAG + CONFIG.lookup_margin
LEASE = CONFIG.claim_idle / 2
"""How long after the read that delivered it (or the last renewal) an executor may send an intent."""


class FakeGroup:
    """The consumer group as one executor sees it: the test hands it entries of the journal;
    acks and renewals are recorded; entries in ``lost`` were claimed by another consumer."""

    def __init__(self) -> None:
        self.waiting: list[Delivery] = []
        self.arrived = asyncio.Event()
        self.acked: list[int] = []
        self.lost: set[int] = set()
        self.renewals = 0
        self.reclaimed = 0

    async def ensure_group(self, from_seq: int = 0) -> None:
        return None

    async def read(self, *, block: float | None = None) -> list[Delivery]:
        if not self.waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), block)
        self.arrived.clear()
        handed, self.waiting = self.waiting, []
        self.reclaimed += sum(delivery.delivery_count > 1 for delivery in handed)
        return handed

    async def ack(self, *seqs: int) -> int:
        self.acked.extend(seqs)
        return len(seqs)

    async def renew(self, *seqs: int) -> set[int]:
        self.renewals += 1
        return {seq for seq in seqs if seq not in self.lost}

    def hand(self, *deliveries: Delivery) -> None:
        self.waiting.extend(deliveries)
        self.arrived.set()


@pytest.fixture
def group() -> FakeGroup:
    return FakeGroup()


async def entries(journal: Journal) -> list[tuple[int, bytes]]:
    """The intents stream as stored: (seq, event), records and moves."""
    return [row async for row in journal.read(INTENTS_STREAM)]


async def record_entry(journal: Journal, intent: OrderIntent, delivery_count: int = 1) -> Delivery:
    """The entry that recorded ``intent``, as the group delivers it."""
    rows = await entries(journal)
    seq = next(
        seq for seq, event in rows if b"recorded" in event and intent.client_order_id.encode() in event
    )
    return Delivery(INTENTS_STREAM, seq, dict(rows)[seq], delivery_count)


def execution(
    probe: ActorRef, group: FakeGroup, config: NodeConfig = CONFIG, seen: Any = None
) -> SupervisorSpec:
    """gateway (stand-in) -> executor, as on an executor-only node."""
    gateway = ChildSpec(
        "gateway", StandIn, args=(probe, {GetBrokerInfo: BrokerInfo(LOOKUP_LAG, "none")}, seen)
    )
    executor = ChildSpec("executor", SharedExecutor, args=(config, lambda node, config: group))
    return SupervisorSpec(
        children=[
            ChildSpec(
                "execution", SupervisorSpec(strategy=Strategy.REST_FOR_ONE, children=[gateway, executor])
            )
        ]
    )


def executor_of(node: Node) -> ActorRef:
    return node.lookup("/root/execution/executor")


async def acked(node: Node, group: FakeGroup, seq: int, within: float = 2.0) -> None:
    """Wait (virtual time, bounded) until the group has the entry acked."""
    deadline = node.clock.now() + within
    while seq not in group.acked:
        assert node.clock.now() < deadline, f"entry {seq} not acked within {within}s: {group.acked}"
        await node.clock.advance(0.05)  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)  # journal writes happen off the virtual clock


async def drain(probe: TestProbe, node: Node, cid: str, quiet: float) -> list[Any]:
    """Every message until none comes for ``quiet`` seconds (bounded: 100); each Lookup of
    ``cid`` is answered 'not found'."""
    messages = []
    for answer in range(100):
        try:
            message = await probe.receive(within=quiet)
        except AssertionError:
            return messages
        messages.append(message)
        if message == Lookup(cid):
            await executor_of(node).tell(OrderStatus(answer + 2, cid, found=False))
    raise AssertionError(f"still receiving after 100 messages: {messages[-3:]}")


# -- the decision --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (IntentState.RECORDED, TakeOver.SEND),
        (IntentState.SENDING, TakeOver.LOOK_UP),
        (IntentState.UNKNOWN, TakeOver.LOOK_UP),
        (IntentState.ACKED, TakeOver.SETTLED),
        (IntentState.REJECTED, TakeOver.SETTLED),
        (IntentState.DONE, TakeOver.SETTLED),
    ],
)
def test_take_over_is_the_single_nodes_restart_rule(state: IntentState, action: TakeOver) -> None:
    assert take_over(state) is action


# -- what it does with what it is handed ------------------------------------------------


async def test_a_new_intent_is_marked_sending_durably_then_submitted_with_its_lease_end(
    node: Node, probe: TestProbe, journal: Journal, group: FakeGroup
) -> None:
    intent = make_intent(seq=1)
    await seed_intents(journal, (intent, ()))
    seen: dict[str, IntentState | None] = {}

    async def note(message: object) -> None:
        if isinstance(message, Submit):
            for intent in message.intents:
                seen[intent.client_order_id] = await durable_state(journal, intent.client_order_id)

    await node.start(execution(probe, group, seen=note))
    handed_at = node.clock.now()
    entry = await record_entry(journal, intent)
    group.hand(entry)

    submit = await probe.expect(Submit)
    assert submit.intents == (intent,)
    assert seen[intent.client_order_id] is IntentState.SENDING, "the Submit left before SENDING was durable"
    assert handed_at < submit.not_after <= node.clock.now() + LEASE
    await executor_of(node).tell(OrderAccepted(intent.client_order_id, "B-1"))
    await state_becomes(journal, intent.client_order_id, IntentState.ACKED)
    await acked(node, group, entry.seq)  # settled: nothing left to send


@pytest.mark.parametrize("state", [IntentState.SENDING, IntentState.UNKNOWN])
async def test_an_intent_a_dead_executor_held_in_the_dead_zone_is_looked_up_before_any_resend(
    node: Node, probe: TestProbe, journal: Journal, group: FakeGroup, state: IntentState
) -> None:
    intent = make_intent(seq=2)
    path = (IntentState.SENDING,) if state is IntentState.SENDING else (IntentState.SENDING, state)
    await seed_intents(journal, (intent, path))
    await node.start(execution(probe, group))
    group.hand(await record_entry(journal, intent, delivery_count=2))  # reclaimed from the dead one
    taken_at = node.clock.now()

    lookups = 0
    while isinstance(message := await probe.expect((Lookup, Submit), within=5.0), Lookup):
        lookups += 1
        await executor_of(node).tell(OrderStatus(lookups, intent.client_order_id, found=False))
    submitted_at = node.clock.now()

    # "Not found" counts only from the take-over on: the dead one's lease ended before it.
    assert lookups >= 2
    assert submitted_at - taken_at >= TRUSTED_AFTER
    assert message.intents == (intent,)
    await state_becomes(journal, intent.client_order_id, IntentState.SENDING)
    assert (await durable_intents(journal))[intent.client_order_id].attempts == 2


async def test_an_intent_taken_over_and_found_at_the_broker_is_never_sent_again(
    node: Node, probe: TestProbe, journal: Journal, group: FakeGroup
) -> None:
    intent = make_intent(seq=3)
    await seed_intents(journal, (intent, (IntentState.SENDING,)))
    await node.start(execution(probe, group))
    entry = await record_entry(journal, intent, delivery_count=2)
    group.hand(entry)

    assert await probe.expect(Lookup) == Lookup(intent.client_order_id)
    await executor_of(node).tell(
        OrderStatus(1, intent.client_order_id, found=True, state="accepted", order_id="B-1", qty=10)
    )

    await state_becomes(journal, intent.client_order_id, IntentState.ACKED)
    await acked(node, group, entry.seq)
    await probe.expect_no_message(within=TRUSTED_AFTER + 3 * CONFIG.lookup_retry)
    assert (await durable_intents(journal))[intent.client_order_id].attempts == 1


@pytest.mark.parametrize("state", [IntentState.ACKED, IntentState.REJECTED, IntentState.DONE])
async def test_a_settled_intent_handed_over_is_acked_and_nothing_is_sent(
    node: Node, probe: TestProbe, journal: Journal, group: FakeGroup, state: IntentState
) -> None:
    intent = make_intent(seq=4)
    await seed_intents(journal, (intent, (IntentState.SENDING, state)))
    await node.start(execution(probe, group))
    entry = await record_entry(journal, intent, delivery_count=3)
    group.hand(entry)

    await acked(node, group, entry.seq)
    await probe.expect_no_message(within=2.0)
    assert await durable_state(journal, intent.client_order_id) is state


async def test_the_other_events_of_the_stream_are_acked_as_they_come_and_are_no_work(
    node: Node, probe: TestProbe, journal: Journal, group: FakeGroup
) -> None:
    intent = make_intent(seq=5)
    await seed_intents(journal, (intent, (IntentState.SENDING,)))
    record = await record_entry(journal, intent)
    moves = [
        Delivery(INTENTS_STREAM, seq, event) for seq, event in await entries(journal) if seq != record.seq
    ]
    await node.start(execution(probe, group))

    group.hand(*moves)

    await acked(node, group, moves[-1].seq)
    assert group.acked == [move.seq for move in moves]
    await probe.expect_no_message(within=1.0)


async def test_an_intent_another_executor_claimed_is_never_sent_from_here(
    node: Node, probe: TestProbe, journal: Journal, group: FakeGroup
) -> None:
    intent = make_intent(seq=6)
    await seed_intents(journal, (intent, (IntentState.SENDING,)))
    await node.start(execution(probe, group))
    entry = await record_entry(journal, intent, delivery_count=2)
    group.hand(entry)
    assert await probe.expect(Lookup) == Lookup(intent.client_order_id)
    # This executor goes silent (its renewals fail): another one claims the entry.
    group.lost.add(entry.seq)

    await executor_of(node).tell(OrderStatus(1, intent.client_order_id, found=False))
    later = await drain(probe, node, intent.client_order_id, quiet=TRUSTED_AFTER + 2.0)

    # Well past the point where a 'not found' would be trusted: no resend from here.
    assert all(isinstance(message, Lookup) for message in later), later
    assert node.clock.now() > TRUSTED_AFTER
    assert group.renewals >= 1
    assert entry.seq not in group.acked
    assert (await durable_intents(journal))[intent.client_order_id].attempts == 1


async def test_a_submit_past_the_lease_is_not_handed_to_the_gateway(
    node: Node, probe: TestProbe, journal: Journal, group: FakeGroup
) -> None:
    """An executor that stood still past its lease (its renewals failing) does not send what it
    was about to send: another executor may own the intent by now."""
    intent = make_intent(seq=7)
    await seed_intents(journal, (intent, ()))
    await node.start(execution(probe, group))
    entry = await record_entry(journal, intent)
    group.lost.add(entry.seq)
    # The executor is in its read when the loop stands still past the lease the read began;
    # then the entry arrives.
    await node.clock.advance(LEASE + 0.1)  # type: ignore[attr-defined]
    group.hand(entry)

    later = await drain(probe, node, intent.client_order_id, quiet=3.0)

    assert not group.waiting, "the executor never read the entry it was handed"
    # It may ask the broker about it (harmless), never send it.
    assert all(isinstance(message, Lookup) for message in later), later
    assert (await durable_intents(journal))[intent.client_order_id].attempts <= 1
    assert entry.seq not in group.acked


async def test_a_fill_for_an_intent_another_node_recorded_and_sent_finishes_it_on_the_full_node(
    node: Node, probe: TestProbe, journal: Journal, group: FakeGroup
) -> None:
    """The full node owns positions, so it moves every filled order to DONE, including ones its
    view of the log has not seen yet (recorded and sent by other writers since it started)."""
    await node.start(execution(probe, group, config=NodeConfig(role="full", member="a")))
    intent = make_intent(seq=8)
    other_node = await IntentLog(journal, INTENTS_STREAM, OrderIntent).open()
    await other_node.record(intent.client_order_id, intent)
    await other_node.move(intent.client_order_id, IntentState.SENDING)
    await other_node.move(intent.client_order_id, IntentState.ACKED)

    await executor_of(node).tell(OrdersDone([intent.client_order_id]))

    await state_becomes(journal, intent.client_order_id, IntentState.DONE)
