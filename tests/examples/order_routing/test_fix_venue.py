"""Orders over FIX: the node's FIX gateway against the broker simulator's FIX acceptor, in process
(real TCP on 127.0.0.1, real SQLite journal, real time: the broker runs on the loop's clock), and
the mapping between the intent log's orders and FIX messages. Every wait is bounded.

Each intent reaches the venue exactly once and its fills reach positions exactly once, through
lost replies (looked up with OrderStatusRequest, 35=H), a venue that refuses 35=H (held, never
re-sent blind), sequence gaps, PossDup duplicates and garbled frames (recovered by the session's
resend), and a gateway that stops with an order persisted and never written."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from examples.order_routing.broker import BrokerServer, duplicates, load_orders
from examples.order_routing.broker.fix_reports import ReportWriter
from examples.order_routing.fix.codec import FrameReader, Inbound, encode, sending_time
from examples.order_routing.fix.messages import ExecType, ExecutionReport, OrdStatus
from examples.order_routing.fix.session import Step
from examples.order_routing.fix.store import SeqSent, SessionState, TargetAdvanced
from examples.order_routing.harness.verdict import judge
from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.fix.gateway import FixGateway, replay_from
from examples.order_routing.node.fix.orders import (
    SEQUENCE_SPACE,
    answer_of,
    cancel_request,
    fill_number,
    new_order_single,
)
from examples.order_routing.node.messages import OrderClosed, OrderIntent, Snapshot
from examples.order_routing.node.tree import build_spec
from examples.order_routing.protocol import (
    CancelResult,
    Fill,
    NewOrder,
    OrderAccepted,
    OrderRejected,
    OrderState,
    OrderStatus,
    Side,
)
from garrison import Node
from garrison.persistence import IntentState, Journal
from garrison.testing import InjectedFault, NodeGuard, TestProbe
from tests.examples.order_routing.support import durable_intents, make_intent
from tests.examples.order_routing.test_broker_boundaries import StartBroker, record, settled
from tests.examples.order_routing.test_broker_boundaries import garrison_clock as real_clock
from tests.examples.order_routing.test_broker_boundaries import start_broker as broker_starter

garrison_clock = real_clock
start_broker = broker_starter

WAIT = 20.0
"""Real seconds a test waits for the node to get somewhere."""
CLIENT = "ROUTER1"


def fix_config(broker: BrokerServer, **changes: Any) -> NodeConfig:
    settings: dict[str, Any] = {
        "broker_port": broker.port,
        "feed": False,
        "ack_timeout": 0.3,
        "lookup_margin": 0.1,
        "lookup_retry": 0.05,
        "venue": "fix",
        "fix_sender_comp_id": CLIENT,
        "fix_heartbeat_interval": 1,
        "fix_lookup_lag": broker.config.lookup_lag,
    }
    return NodeConfig(**(settings | changes))


async def fix_broker(start_broker: StartBroker, **settings: Any) -> BrokerServer:
    return await start_broker(venue="fix", **settings)


async def snapshot(node: Node, path: str) -> dict[str, Any]:
    answer: dict[str, Any] = await node.lookup(path).ask(Snapshot())
    return answer


async def assert_exactly_once_over_fix(
    node: Node, journal: Journal, broker: BrokerServer, intents: list[OrderIntent]
) -> None:
    """Every intent DONE, at the broker exactly once, and the fills at the node those at the broker."""
    assert set((await settled(journal, intents)).values()) == {IntentState.DONE}
    orders = await asyncio.to_thread(load_orders, broker.config.store_path)
    assert sorted(o.client_order_id for o in orders) == sorted(i.client_order_id for i in intents)
    assert all(o.client_id == CLIENT for o in orders)
    assert await asyncio.to_thread(duplicates, broker.config.store_path) == []
    for _ in range(int(WAIT / 0.05)):
        if (await snapshot(node, paths.POSITIONS))["fills"] >= broker.stats.fills:
            break
        await asyncio.sleep(0.05)
    verdict = await judge(journal, str(broker.config.store_path), CLIENT)
    assert verdict.passed, "\n".join(verdict.lines())
    assert verdict.fills_at_node == verdict.fills_at_broker == broker.stats.fills > 0


async def test_orders_over_fix_are_placed_once_and_every_partial_fill_reaches_positions(
    node: Node, probe: TestProbe, journal: Journal, start_broker: StartBroker
) -> None:
    broker = await fix_broker(start_broker, partial_fills=True)
    await node.start(build_spec(fix_config(broker)))
    assert "garbled_frames" in await snapshot(node, paths.GATEWAY)  # the FIX gateway's counters
    intents = [make_intent(seq=seq, qty=7) for seq in range(1, 21)]

    await record(node, probe, intents)
    await assert_exactly_once_over_fix(node, journal, broker, intents)

    gateway = await snapshot(node, paths.GATEWAY)
    assert gateway["orders"] == len(intents) and gateway["connects"] == 1
    assert broker.stats.fills > len(intents)  # some came in parts


async def test_replies_lost_over_fix_are_found_by_order_status_request_and_never_resent(
    node: Node, probe: TestProbe, journal: Journal, start_broker: StartBroker
) -> None:
    broker = await fix_broker(start_broker, drop_reply_rate=1.0, fill_delay_ms=1000.0)
    await node.start(build_spec(fix_config(broker)))
    intents = [make_intent(seq=seq) for seq in range(1, 6)]

    await record(node, probe, intents)
    await assert_exactly_once_over_fix(node, journal, broker, intents)

    executor = await snapshot(node, paths.EXECUTOR)
    assert executor["resent"] == 0 and executor["lookups"] >= len(intents)
    assert broker.stats.queries >= len(intents) and broker.stats.replies_dropped == len(intents)


async def test_a_venue_refusing_order_status_requests_holds_orders_in_doubt_and_never_resends_them(
    node: Node, probe: TestProbe, journal: Journal, start_broker: StartBroker
) -> None:
    """No ack, and 35=H answered with 35=j: the node stops asking, keeps the orders UNKNOWN (never
    a resend on a guess), and the fills the venue sends later settle them."""
    broker = await fix_broker(
        start_broker, drop_reply_rate=1.0, fill_delay_ms=2000.0, fix_reject_status_requests=True
    )
    await node.start(build_spec(fix_config(broker)))
    intents = [make_intent(seq=seq) for seq in range(1, 6)]

    await record(node, probe, intents)
    for _ in range(int(WAIT / 0.05)):
        gateway = await snapshot(node, paths.GATEWAY)
        if gateway["business_rejects"] >= 1 and gateway["lookups_refused"] >= 1:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the 35=j never came back: {gateway}")
    executor = await snapshot(node, paths.EXECUTOR)
    assert executor["in_doubt"] == len(intents) and executor["resent"] == 0

    await assert_exactly_once_over_fix(node, journal, broker, intents)
    assert (await snapshot(node, paths.EXECUTOR))["resent"] == 0
    after = await snapshot(node, paths.GATEWAY)
    # The requests already on the wire were answered 35=j; none went out after the first.
    assert after["lookups"] == gateway["lookups"] <= len(intents)
    assert after["lookups_refused"] > gateway["lookups_refused"]


async def test_sequence_gaps_possdup_copies_and_garbled_frames_lose_and_double_nothing(
    node: Node, probe: TestProbe, journal: Journal, start_broker: StartBroker
) -> None:
    broker = await fix_broker(
        start_broker, partial_fills=True, fix_gap_rate=0.2, fix_duplicate_rate=0.2, garbage_rate=0.2
    )
    await node.start(build_spec(fix_config(broker)))
    intents = [make_intent(seq=seq, qty=5) for seq in range(1, 31)]

    await record(node, probe, intents)
    await assert_exactly_once_over_fix(node, journal, broker, intents)

    gateway = await snapshot(node, paths.GATEWAY)
    assert broker.stats.fix_gaps > 0 and gateway["gaps"] > 0
    assert broker.stats.fix_duplicates > 0
    assert broker.stats.garbage_sent > 0 and gateway["garbled_frames"] > 0
    assert gateway["disconnects"] == 0  # every one of them recovered inside the session


async def test_a_restarted_gateway_logs_on_with_its_stored_sequence_numbers_and_misses_no_fill(
    node: Node, probe: TestProbe, journal: Journal, node_guard: NodeGuard, start_broker: StartBroker
) -> None:
    """The gateway crashes between orders (and execution restarts, rest_for_one): the next logon
    continues the stored sequence numbers (no ResetSeqNumFlag on a restart) and the orders of
    both incarnations are placed once."""
    broker = await fix_broker(start_broker, fill_delay_ms=300.0)
    await node.start(build_spec(fix_config(broker), gateway=CrashableFixGateway))
    first = [make_intent(seq=seq) for seq in range(1, 6)]
    await record(node, probe, first)
    await settled(journal, first)
    before = await snapshot(node, paths.GATEWAY)

    node_guard.allow_crashes(paths.GATEWAY, InjectedFault)
    await node.lookup(paths.GATEWAY).tell(Crash())
    for _ in range(int(WAIT / 0.05)):
        if node.restart_counts.get(paths.GATEWAY, 0) >= 1:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the gateway did not restart")
    second = [make_intent(seq=seq) for seq in range(6, 11)]
    await record(node, probe, second)
    await assert_exactly_once_over_fix(node, journal, broker, first + second)
    client = next(iter(broker_sessions(broker)))
    assert client.session.next_target_seq > before["orders"] + 1  # the numbering went on
    assert not client.session.state.period_start  # never reset


def gateway_dying_before_write() -> type[FixGateway]:
    """A FIX gateway that crashes once, at its first write holding an order: after the session
    numbered and persisted it, before any byte of it reached the socket (the dead zone of FIX)."""
    died = [False]

    class GatewayDyingBeforeWrite(FixGateway):
        def write_frames(self, frames: list[tuple[bytes, float, bool]]) -> None:
            if not died[0] and any(order for _, _, order in frames):
                died[0] = True
                raise InjectedFault("killed between the session's persist and the socket write")
            super().write_frames(frames)

    return GatewayDyingBeforeWrite


async def test_an_order_persisted_and_never_written_is_resent_as_possdup_when_the_venue_asks_for_it(
    node: Node, probe: TestProbe, journal: Journal, node_guard: NodeGuard, start_broker: StartBroker
) -> None:
    broker = await fix_broker(start_broker)
    node_guard.allow_crashes(paths.GATEWAY, InjectedFault)
    await node.start(build_spec(fix_config(broker), gateway=gateway_dying_before_write()))
    intents = [make_intent(seq=seq) for seq in range(1, 6)]

    await record(node, probe, intents)
    await assert_exactly_once_over_fix(node, journal, broker, intents)
    assert node.restart_counts[paths.GATEWAY] == 1
    assert (await snapshot(node, paths.EXECUTOR))["expired_on_resend"] == 0


async def test_an_order_persisted_and_never_written_is_gap_filled_and_expired_when_too_old_to_resend(
    node: Node, probe: TestProbe, journal: Journal, node_guard: NodeGuard, start_broker: StartBroker
) -> None:
    """With fix_resend_max_age=0 every order the venue asks for again is too old: the session
    gap-fills it, and its intent is EXPIRED (never at the venue, never sent again)."""
    broker = await fix_broker(start_broker)
    node_guard.allow_crashes(paths.GATEWAY, InjectedFault)
    config = fix_config(broker, fix_resend_max_age=0.0)
    await node.start(build_spec(config, gateway=gateway_dying_before_write()))
    intents = [make_intent(seq=seq) for seq in range(1, 6)]

    await record(node, probe, intents)
    states: dict[str, IntentState] = {}
    for _ in range(int(WAIT / 0.05)):
        states = {cid: intent.state for cid, intent in (await durable_intents(journal)).items()}
        if all(state in (IntentState.DONE, IntentState.EXPIRED) for state in states.values()):
            break
        await asyncio.sleep(0.05)
    expired = {cid for cid, state in states.items() if state is IntentState.EXPIRED}
    assert expired, states  # the orders of the write that never happened
    at_venue = {o.client_order_id for o in await asyncio.to_thread(load_orders, broker.config.store_path)}
    assert at_venue == set(states) - expired
    assert (await snapshot(node, paths.GATEWAY))["resends_expired"] == len(expired)
    assert (await snapshot(node, paths.EXECUTOR))["expired_on_resend"] == len(expired)
    verdict = await judge(journal, str(broker.config.store_path), CLIENT)
    assert verdict.passed and verdict.expired == len(expired), "\n".join(verdict.lines())


class Crash(msgspec.Struct, frozen=True):
    """Test -> gateway: crash."""


class CrashableFixGateway(FixGateway):
    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Crash):
            raise InjectedFault("the test crashed the gateway")
        return await super().on_receive(message)


def broker_sessions(broker: BrokerServer) -> list[Any]:
    return list(broker.fix_clients.values())


# -- the mapping ------------------------------------------------------------------------------


def through_the_wire(report: ExecutionReport, seq: int = 7) -> tuple[ExecutionReport, int]:
    frame = encode(
        report, begin_string="FIX.4.4", sender_comp_id="SIMBROKER", target_comp_id=CLIENT,
        msg_seq_num=seq, sending_time_text=sending_time(1_765_000_000.0),
    )  # fmt: skip
    (parsed,) = FrameReader().feed(frame)
    assert isinstance(parsed, Inbound) and isinstance(parsed.message, ExecutionReport)
    return parsed.message, parsed.header.msg_seq_num


@pytest.mark.parametrize(
    "answer",
    [
        OrderAccepted("s-1", "sim-1"),
        OrderRejected("s-1", "simulated venue reject"),
        OrderRejected("s-1", "duplicate client_order_id 's-1'", duplicate=True),
        Fill(9, "s-1", "sim-1", "ACME", Side.SELL, 4, 101.25, 6),
        Fill(9, "s-1", "sim-1", "ACME", Side.SELL, 10, 101.25, 0),
        OrderStatus(3, "s-1", found=False),
        OrderStatus(4, "s-1", True, OrderState.PARTIALLY_FILLED, "sim-1", 4, 10),
        OrderStatus(5, "s-1", True, OrderState.FILLED, "sim-1", 10, 10),
    ],
)
def test_every_venue_answer_survives_the_trip_through_an_execution_report(answer: Any) -> None:
    """The simulator's ExecutionReport for an answer, encoded, parsed and mapped by the node, is
    that answer again (a fill numbered by its report's MsgSeqNum)."""
    writer = ReportWriter("FIX.4.4")
    writer.remember(NewOrder("s-1", "ACME", Side.SELL, 10, 101.25))
    report, seq = through_the_wire(writer.report(answer))  # type: ignore[arg-type]
    mapped = answer_of(report, fill_number(3, seq))
    if isinstance(answer, Fill):
        assert mapped == msgspec.structs.replace(answer, fill_seq=3 * SEQUENCE_SPACE + seq)
    else:
        assert mapped == answer


def test_a_cancel_or_expiry_from_the_venue_closes_the_order_and_other_reports_settle_nothing() -> None:
    base = ExecutionReport(
        order_id="V1", exec_id="E1", exec_type=ExecType.CANCELED, ord_status=OrdStatus.CANCELED,
        symbol="ACME", side="1", leaves_qty=0, cum_qty=3, avg_px=10.0, cl_ord_id="s-1", text="end of day",
    )  # fmt: skip
    assert answer_of(base, 1) == OrderClosed("s-1", "end of day")
    assert answer_of(replace(base, exec_type=ExecType.PENDING_NEW), 1) is None
    assert answer_of(replace(base, cl_ord_id=None), 1) is None  # no ClOrdID: not one of ours
    status = replace(base, exec_type=ExecType.ORDER_STATUS, ord_status=OrdStatus.REJECTED, ord_rej_reason=0)
    assert isinstance(answer_of(status, 1), OrderRejected)  # found, and refused by the venue


def replace(report: ExecutionReport, **changes: Any) -> ExecutionReport:
    return msgspec.structs.replace(report, **changes)


def test_a_cancel_names_the_intents_order_and_the_venues_cancel_report_closes_it() -> None:
    intent = make_intent(seq=4)
    cancel = cancel_request(intent, "cxl-1", "20261207-20:00:00.000")
    assert cancel.orig_cl_ord_id == intent.client_order_id
    assert (cancel.cl_ord_id, cancel.symbol, cancel.order_qty) == ("cxl-1", "ACME", intent.qty)
    writer = ReportWriter("FIX.4.4")
    writer.remember(NewOrder(intent.client_order_id, intent.symbol, intent.side, intent.qty, intent.price))
    report, seq = through_the_wire(writer.report(CancelResult(intent.client_order_id, cancelled=True)))  # type: ignore[arg-type]
    closed = answer_of(report, seq)
    assert isinstance(closed, OrderClosed) and closed.client_order_id == intent.client_order_id


def test_new_order_single_carries_the_intents_deterministic_id_as_clordid() -> None:
    intent = make_intent(seq=3)
    message = new_order_single(intent, "20261207-20:00:00.000")
    assert message.cl_ord_id == intent.client_order_id
    assert (message.symbol, message.side, message.order_qty, message.price) == (
        intent.symbol, "1" if intent.side is Side.BUY else "2", intent.qty, intent.price,
    )  # fmt: skip
    assert (message.ord_type, message.time_in_force) == ("2", "0")


def test_each_connection_asks_again_for_what_follows_the_last_fill_positions_took() -> None:
    state = SessionState(next_sender_seq=40, next_target_seq=90, period_start=60.0 * 1000)
    assert replay_from(state, fill_number(1000, 70)).next_target_seq == 71
    assert replay_from(state, fill_number(1000, 95)).next_target_seq == 90  # never raised
    assert replay_from(state, fill_number(999, 500)).next_target_seq == 1  # an earlier session day
    assert replay_from(state, 0).next_target_seq == 1  # no fill taken yet
    assert state.next_target_seq == 90  # the durable state is left alone


def test_a_read_that_only_advances_the_inbound_seq_goes_with_the_next_persist_or_tick() -> None:
    """Inbound progress is an upper bound on each connection's replay point (replay_from), so a
    read of reports alone is no journal append of its own; outbound frames still go in order,
    each after the records before it."""
    gateway = FixGateway(NodeConfig(venue="fix", fix_sender_comp_id=CLIENT))

    def queued() -> list[list[Any]]:
        return [step.records + step.outbound for step, _ in gateway.steps]

    gateway.take(Step(records=[TargetAdvanced(5)]))
    gateway.take(Step(records=[TargetAdvanced(9)]))
    gateway.take(Step())  # a read of PossDup copies only: nothing at all
    assert queued() == [] and not gateway.steps_ready.is_set()

    gateway.take(Step(outbound=[b"order"], records=[SeqSent(3)]), [(1.0, True)])
    assert queued() == [[TargetAdvanced(9)], [SeqSent(3), b"order"]]  # the latest progress, first
    assert gateway.steps_ready.is_set()

    gateway.steps = []
    gateway.take(Step(records=[TargetAdvanced(12)]))
    gateway.take(Step(), flush=True)  # a tick with nothing to send: the progress goes now
    assert queued() == [[TargetAdvanced(12)]]
    gateway.take(Step(), flush=True)
    assert queued() == [[TargetAdvanced(12)]]  # nothing held: nothing more


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"venue": "smoke-signals"}, "venue"),
        ({"venue": "fix", "role": "full", "member": "m1"}, "role"),
        ({"fix_sender_comp_id": ""}, "fix_sender_comp_id"),
        ({"fix_target_comp_id": "A=B"}, "fix_target_comp_id"),
        ({"fix_begin_string": "FIX.5.0"}, "fix_begin_string"),
        ({"fix_heartbeat_interval": 0}, "fix_heartbeat_interval"),
        ({"fix_session_start": "25:61"}, "fix_session_start"),
        ({"fix_session_timezone": "Mars/Olympus"}, "fix_session_timezone"),
        ({"fix_reset_policy": "hourly"}, "fix_reset_policy"),
        ({"fix_resend_max_age": -1.0}, "fix_resend_max_age"),
    ],
)
def test_a_bad_fix_setting_is_refused_naming_the_setting_and_its_value(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{field}=") as refused:
        NodeConfig(**changes)
    assert repr(changes[field]) in str(refused.value)
