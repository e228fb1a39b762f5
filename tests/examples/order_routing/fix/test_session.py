"""The FIX 4.4 session layer against message sequences written from the specification."""

from __future__ import annotations

import datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from examples.order_routing.fix.codec import sending_time
from examples.order_routing.fix.errors import FixConfigError, FixEncodeError, SessionNotActive
from examples.order_routing.fix.messages import (
    BusinessMessageReject,
    ExecType,
    ExecutionReport,
    Heartbeat,
    Logon,
    Logout,
    NewOrderSingle,
    OrdStatus,
    OrdType,
    Reject,
    ResendRequest,
    SequenceReset,
    Side,
    UnknownMessage,
)
from examples.order_routing.fix.messages import (
    TestRequest as FixTestRequest,
)
from examples.order_routing.fix.session import (
    BusinessRejected,
    FixSession,
    GapDetected,
    InvalidReceived,
    LoggedOn,
    LoggedOut,
    LogonRejected,
    MsgSeqNumTooLow,
    Received,
    RejectReceived,
    ResendExpired,
    Role,
    SessionConfig,
    SessionEnded,
    Status,
)
from examples.order_routing.fix.store import AppSent, SeqSent, SessionState, TargetAdvanced
from tests.examples.order_routing.fix.support import T0, fields, frame, msg_types


def order(cl_ord_id: str) -> NewOrderSingle:
    return NewOrderSingle(
        cl_ord_id=cl_ord_id,
        symbol="ACME",
        side=Side.BUY,
        order_qty=10,
        ord_type=OrdType.LIMIT,
        transact_time=sending_time(T0),
        price=12.5,
    )


def fill(exec_id: str) -> ExecutionReport:
    return ExecutionReport(
        order_id="o-1",
        exec_id=exec_id,
        exec_type=ExecType.TRADE,
        ord_status=OrdStatus.FILLED,
        symbol="ACME",
        side=Side.BUY,
        leaves_qty=0,
        cum_qty=10,
        avg_px=12.5,
        cl_ord_id="i-1",
        last_qty=10,
        last_px=12.5,
    )


def initiator(**settings: object) -> FixSession:
    return FixSession(SessionConfig("NODE", "VENUE", **settings))  # type: ignore[arg-type]


def logged_on(session: FixSession, *, now: float = T0) -> FixSession:
    session.connected(now)
    step = session.receive_bytes(frame(Logon(heart_bt_int=30), session.next_target_seq, at=now), now)
    assert any(isinstance(e, LoggedOn) for e in step.events)
    return session


# ---- logon --------------------------------------------------------------------------------


def test_the_initiator_logs_on_with_heartbeat_interval_and_no_reset_by_default() -> None:
    session = initiator(heartbeat_interval=20)
    step = session.connected(T0)
    [logon] = step.outbound
    values = fields(logon)
    assert (values[35], values[34], values[49], values[56], values[98], values[108]) == (
        "A",
        "1",
        "NODE",
        "VENUE",
        "0",
        "20",
    )
    assert 141 not in values
    assert step.records == [SeqSent(1)]
    assert session.status is Status.LOGON_SENT


def test_the_acceptors_logon_activates_the_session_and_its_seq_is_recorded() -> None:
    session = initiator()
    session.connected(T0)
    step = session.receive_bytes(frame(Logon(heart_bt_int=30), 1), T0)
    assert step.events == [LoggedOn(heartbeat_interval=30, reset=False)]
    assert step.records == [TargetAdvanced(2)]
    assert session.active


def test_an_acceptor_answers_a_logon_with_its_own_and_echoes_a_reset() -> None:
    acceptor = FixSession(SessionConfig("VENUE", "NODE", role=Role.ACCEPTOR))
    acceptor.connected(T0)
    step = acceptor.receive_bytes(
        frame(Logon(heart_bt_int=15, reset_seq_num_flag=True), 1, sender="NODE", target="VENUE"), T0
    )
    [answer] = step.outbound
    assert (fields(answer)[35], fields(answer)[108], fields(answer)[141], fields(answer)[34]) == (
        "A",
        "15",
        "Y",
        "1",
    )
    assert step.events == [LoggedOn(heartbeat_interval=15, reset=True)]


def test_a_first_message_that_is_not_a_logon_is_refused_with_a_logout() -> None:
    acceptor = FixSession(SessionConfig("VENUE", "NODE", role=Role.ACCEPTOR))
    acceptor.connected(T0)
    step = acceptor.receive_bytes(frame(Heartbeat(), 1, sender="NODE", target="VENUE"), T0)
    assert msg_types(step.outbound) == ["5"]
    assert step.disconnect
    assert isinstance(step.error, LogonRejected)


def test_wrong_comp_ids_are_refused_naming_them() -> None:
    session = initiator()
    session.connected(T0)
    step = session.receive_bytes(frame(Logon(heart_bt_int=30), 1, sender="OTHER"), T0)
    assert step.disconnect
    assert "'OTHER'" in str(step.error)


def test_a_logout_answering_our_logon_is_a_named_logon_failure() -> None:
    session = initiator()
    session.connected(T0)
    step = session.receive_bytes(frame(Logout(text="unknown CompID"), 1), T0)
    assert step.disconnect and isinstance(step.error, LogonRejected)
    assert "unknown CompID" in str(step.error)


def test_sending_before_logon_raises_session_not_active() -> None:
    session = initiator()
    session.connected(T0)
    with pytest.raises(SessionNotActive, match="logon_sent"):
        session.send(order("i-1"), T0)


# ---- heartbeats -----------------------------------------------------------------------------


def test_a_heartbeat_goes_out_after_an_interval_without_sending() -> None:
    session = logged_on(initiator(heartbeat_interval=30))
    assert session.tick(T0 + 29).outbound == []
    session.receive_bytes(frame(Heartbeat(), 2, at=T0 + 29), T0 + 29)
    assert msg_types(session.tick(T0 + 30).outbound) == ["0"]


def test_silence_sends_a_test_request_and_no_answer_disconnects() -> None:
    session = logged_on(initiator(heartbeat_interval=30))
    step = session.tick(T0 + 36)
    assert msg_types(step.outbound) == ["1"]  # the TestRequest counts as sending
    test_id = fields(step.outbound[0])[112]
    assert session.tick(T0 + 60).disconnect is False
    step = session.tick(T0 + 66)
    assert step.disconnect
    assert any(isinstance(e, SessionEnded) and test_id in e.reason for e in step.events)


def test_a_heartbeat_answering_the_test_request_keeps_the_session() -> None:
    session = logged_on(initiator(heartbeat_interval=30))
    test_id = fields(session.tick(T0 + 36).outbound[0])[112]
    session.receive_bytes(frame(Heartbeat(test_req_id=test_id), 2, at=T0 + 37), T0 + 37)
    assert not session.tick(T0 + 67).disconnect
    assert session.active


def test_a_test_request_is_answered_with_a_heartbeat_carrying_its_id() -> None:
    session = logged_on(initiator())
    step = session.receive_bytes(frame(FixTestRequest(test_req_id="ping-9"), 2), T0)
    [answer] = step.outbound
    assert (fields(answer)[35], fields(answer)[112]) == ("0", "ping-9")


# ---- application messages and rejects -------------------------------------------------------


def test_an_application_message_is_delivered_and_its_seq_recorded_after_it() -> None:
    session = logged_on(initiator())
    step = session.receive_bytes(frame(fill("e-1"), 2), T0)
    [event] = step.events
    assert isinstance(event, Received) and event.message == fill("e-1") and not event.possible_duplicate
    assert step.records == [TargetAdvanced(3)]


def test_send_takes_the_next_seq_and_hands_the_frame_to_persist_first() -> None:
    session = logged_on(initiator())
    step = session.send(order("i-1"), T0 + 1)
    [raw] = step.outbound
    assert fields(raw)[34] == "2" and fields(raw)[11] == "i-1"
    assert step.records == [AppSent(2, "D", raw, T0 + 1)]
    assert session.next_sender_seq == 3


def test_reject_and_business_message_reject_become_typed_events() -> None:
    session = logged_on(initiator())
    reject = Reject(ref_seq_num=2, text="bad", session_reject_reason=5)
    business = BusinessMessageReject(ref_msg_type="H", business_reject_reason=3, ref_seq_num=3)
    step = session.receive_bytes(frame(reject, 2) + frame(business, 3), T0)
    assert step.events == [RejectReceived(reject), BusinessRejected(business, possible_duplicate=False)]


def test_a_malformed_message_is_rejected_with_35_3_and_skipped() -> None:
    session = logged_on(initiator())
    raw = frame(fill("e-1"), 2).replace(b"\x01151=0", b"\x01151=none")
    raw = _retrailer(raw)
    step = session.receive_bytes(raw, T0)
    [reject] = step.outbound
    assert (fields(reject)[35], fields(reject)[45], fields(reject)[371], fields(reject)[373]) == (
        "3",
        "2",
        "151",
        "6",
    )
    assert isinstance(step.events[0], InvalidReceived)
    assert session.next_target_seq == 3


def test_an_unsupported_message_type_is_answered_with_a_business_reject() -> None:
    session = logged_on(initiator())
    step = session.receive_bytes(frame(UnknownMessage(msg_type="AE"), 2), T0)
    [answer] = step.outbound
    assert (fields(answer)[35], fields(answer)[372], fields(answer)[380]) == ("j", "AE", "3")


# ---- sequence numbers -----------------------------------------------------------------------


def test_a_seq_too_low_without_poss_dup_logs_out_with_a_named_error() -> None:
    session = logged_on(initiator())
    session.receive_bytes(frame(Heartbeat(), 2), T0)
    step = session.receive_bytes(frame(Heartbeat(), 2), T0)
    [logout] = step.outbound
    assert fields(logout)[35] == "5"
    assert fields(logout)[58] == "MsgSeqNum too low, expecting 3 but received 2"
    assert isinstance(step.error, MsgSeqNumTooLow)
    assert (step.error.expected, step.error.received) == (3, 2)
    assert step.disconnect and session.status is Status.DISCONNECTED


def test_poss_dup_duplicates_below_the_expected_seq_are_ignored() -> None:
    session = logged_on(initiator())
    session.receive_bytes(frame(fill("e-1"), 2), T0)
    again = frame(fill("e-1"), 2, at=T0 + 5, poss_dup=True, orig_sending_time=sending_time(T0))
    step = session.receive_bytes(again, T0 + 5)
    assert step.events == [] and step.outbound == []
    assert session.duplicates_ignored == 1 and session.active


def test_a_seq_too_high_asks_for_a_resend_and_delivers_in_order_once_the_gap_is_filled() -> None:
    session = logged_on(initiator())
    step = session.receive_bytes(frame(fill("e-4"), 4) + frame(fill("e-5"), 5), T0)
    [request] = step.outbound
    assert (fields(request)[35], fields(request)[7], fields(request)[16]) == ("2", "2", "0")
    assert step.events == [GapDetected(expected=2, received=4)]
    assert session.next_target_seq == 2
    # The venue re-sends 2 (PossDup) and gap-fills 3 (an admin message); 4 and 5 come from the queue.
    resent = frame(fill("e-2"), 2, at=T0 + 1, poss_dup=True, orig_sending_time=sending_time(T0))
    gap_fill = frame(
        SequenceReset(new_seq_no=4, gap_fill_flag=True),
        3,
        at=T0 + 1,
        poss_dup=True,
        orig_sending_time=sending_time(T0 + 1),
    )
    step = session.receive_bytes(resent + gap_fill, T0 + 1)
    delivered = [(e.message.exec_id, e.possible_duplicate) for e in step.events if isinstance(e, Received)]
    assert delivered == [("e-2", True), ("e-4", False), ("e-5", False)]
    assert step.records == [TargetAdvanced(6)]
    assert session.next_target_seq == 6


def test_a_sequence_reset_reset_moves_the_expected_seq_whatever_its_own_seq() -> None:
    session = logged_on(initiator())
    step = session.receive_bytes(frame(SequenceReset(new_seq_no=10), 99), T0)
    assert session.next_target_seq == 10 and step.records == [TargetAdvanced(10)]
    step = session.receive_bytes(frame(SequenceReset(new_seq_no=5), 1), T0)
    assert msg_types(step.outbound) == ["3"]
    assert fields(step.outbound[0])[373] == "5"
    assert session.next_target_seq == 10


def test_poss_dup_without_orig_sending_time_is_rejected() -> None:
    session = logged_on(initiator())
    step = session.receive_bytes(frame(fill("e-2"), 2, poss_dup=True), T0)
    assert msg_types(step.outbound) == ["3"]
    assert fields(step.outbound[0])[371] == "122"
    assert not any(isinstance(e, Received) for e in step.events)


# ---- answering a resend request -------------------------------------------------------------


def test_a_resend_request_re_sends_orders_with_poss_dup_and_gap_fills_admin_and_expired_ones() -> None:
    session = logged_on(initiator(resend_max_age=60.0))  # our Logon took seq 1
    session.send(order("i-old"), T0)  # seq 2, will be too old
    session.tick(T0 + 30)  # a heartbeat: seq 3
    sent = session.send(order("i-new"), T0 + 50).outbound[0]  # seq 4
    step = session.receive_bytes(frame(ResendRequest(begin_seq_no=1, end_seq_no=0), 2, at=T0 + 70), T0 + 70)
    assert msg_types(step.outbound) == ["4", "D"]
    gap, resent = (fields(raw) for raw in step.outbound)
    assert (gap[34], gap[36], gap[123], gap[43]) == ("1", "4", "Y", "Y")
    assert (resent[34], resent[43], resent[122], resent[11]) == ("4", "Y", fields(sent)[52], "i-new")
    assert resent[52] == sending_time(T0 + 70)
    [expired] = [e for e in step.events if isinstance(e, ResendExpired)]
    assert (expired.seq, expired.message.cl_ord_id, expired.sent_at) == (2, "i-old", T0)
    assert step.records == [TargetAdvanced(3)]  # resends take no new seq
    assert session.next_sender_seq == 5


def test_a_resend_request_with_a_too_high_seq_is_answered_before_the_gap_is_filled() -> None:
    session = logged_on(initiator())
    session.send(order("i-1"), T0)
    step = session.receive_bytes(frame(ResendRequest(begin_seq_no=2, end_seq_no=2), 5), T0 + 1)
    assert msg_types(step.outbound) == ["D", "2"]
    # When the gap fills, the queued ResendRequest is not answered twice.
    gap_fill = frame(
        SequenceReset(new_seq_no=5, gap_fill_flag=True), 2, poss_dup=True, orig_sending_time=sending_time(T0)
    )
    step = session.receive_bytes(gap_fill, T0 + 2)
    assert step.outbound == []
    assert session.next_target_seq == 6


# ---- logout ---------------------------------------------------------------------------------


def test_a_logout_we_start_ends_on_the_peers_answer() -> None:
    session = logged_on(initiator())
    assert msg_types(session.logout(T0, "end of day").outbound) == ["5"]
    step = session.receive_bytes(frame(Logout(), 2), T0)
    assert step.disconnect and LoggedOut("", by_peer=False) in step.events


def test_a_logout_from_the_peer_is_answered_and_ends_the_session() -> None:
    session = logged_on(initiator())
    step = session.receive_bytes(frame(Logout(text="maintenance"), 2), T0)
    assert msg_types(step.outbound) == ["5"]
    assert step.disconnect and LoggedOut("maintenance", by_peer=True) in step.events


# ---- session schedule ---------------------------------------------------------------------


def test_the_first_logon_of_a_session_period_resets_and_a_restart_within_it_does_not() -> None:
    config = SessionConfig(
        "NODE", "VENUE", session_start=datetime.time(6, 0), session_timezone="Europe/London"
    )
    before_start = datetime.datetime(2025, 12, 8, 5, 59, tzinfo=datetime.UTC).timestamp()
    after_start = before_start + 120
    state = SessionState(
        next_sender_seq=40, next_target_seq=30, period_start=config.period_start(before_start)
    )
    session = FixSession(config, state)
    assert 141 not in fields(session.connected(before_start).outbound[0])
    session.disconnected()
    step = session.connected(after_start)
    assert (fields(step.outbound[0])[141], fields(step.outbound[0])[34]) == ("Y", "1")
    session.disconnected()
    again = session.connected(after_start + 3600)  # a crash restart later that day: no reset
    assert 141 not in fields(again.outbound[0]) and fields(again.outbound[0])[34] == "2"


def test_the_end_of_the_session_period_logs_out() -> None:
    config = SessionConfig("NODE", "VENUE", session_start=datetime.time(6, 0))
    start = datetime.datetime(2025, 12, 8, 6, 0, tzinfo=datetime.UTC).timestamp()
    session = logged_on(FixSession(config), now=start + 10)
    step = session.tick(start + 86_400 + 1)
    assert msg_types(step.outbound) == ["5"]
    assert session.status is Status.LOGOUT_SENT


def test_retention_shorter_than_the_resend_window_is_refused() -> None:
    from examples.order_routing.fix.store import Retention

    with pytest.raises(
        FixConfigError, match=r"retention.max_age_seconds=30.0: must be >= resend_max_age"
    ) as caught:
        SessionConfig("NODE", "VENUE", resend_max_age=60.0, retention=Retention(max_age_seconds=30.0))
    assert caught.value.field == "retention.max_age_seconds"
    with pytest.raises(FixConfigError, match=r"retention\.max_messages=0"):
        Retention(max_messages=0)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("sender_comp_id", ""),
        ("heartbeat_interval", 0),
        ("begin_string", "FIX.5.0"),
        ("session_timezone", "Mars/Olympus"),
        ("resend_max_age", -1.0),
    ],
)
def test_a_bad_setting_is_refused_naming_it(setting: str, value: object) -> None:
    settings = {"sender_comp_id": "NODE", "target_comp_id": "VENUE", setting: value}
    with pytest.raises(FixConfigError, match=f"{setting}={value!r}") as caught:
        SessionConfig(**settings)  # type: ignore[arg-type]
    assert caught.value.field == setting


# ---- properties -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=120) | st.sampled_from([b"8=FIX.4.4\x01", b"9=5\x01", b"10=000\x01"]))
)
def test_random_bytes_never_crash_an_active_session(chunks: list[bytes]) -> None:
    session = logged_on(initiator())
    for chunk in chunks:
        session.receive_bytes(chunk, T0)
    assert session.status in (Status.ACTIVE, Status.DISCONNECTED)


def _retrailer(raw: bytes) -> bytes:
    body_start = raw.index(b"\x01", raw.index(b"9=")) + 1
    body = raw[body_start : raw.rindex(b"10=")]
    head = raw[: raw.index(b"9=")] + b"9=" + str(len(body)).encode() + b"\x01" + body
    return head + b"10=" + f"{sum(head) % 256:03d}".encode() + b"\x01"


def test_a_logon_above_the_expected_seq_asks_for_what_was_missed_while_down() -> None:
    session = FixSession(SessionConfig("NODE", "VENUE"), SessionState(next_sender_seq=9, next_target_seq=5))
    session.connected(T0)
    step = session.receive_bytes(frame(Logon(heart_bt_int=30), 8), T0)
    assert LoggedOn(heartbeat_interval=30, reset=False) in step.events
    [request] = step.outbound
    request_fields = fields(request)
    assert [request_fields[tag] for tag in (35, 34, 7, 16)] == ["2", "10", "5", "0"]
    assert session.active and session.next_target_seq == 5
    # The venue re-sends the reports 5..7; the session moves past the venue's Logon (8) by itself.
    resent = b"".join(
        frame(fill(f"e-{seq}"), seq, poss_dup=True, orig_sending_time=sending_time(T0 - 60))
        for seq in (5, 6, 7)
    )
    step = session.receive_bytes(resent, T0 + 1)
    assert [e.message.exec_id for e in step.events if isinstance(e, Received)] == ["e-5", "e-6", "e-7"]
    assert session.next_target_seq == 9 and step.records == [TargetAdvanced(9)]


def test_send_many_takes_consecutive_seqs_in_one_step() -> None:
    session = logged_on(initiator())
    step = session.send_many([order("i-1"), order("i-2"), order("i-3")], T0)
    assert [fields(raw)[34] for raw in step.outbound] == ["2", "3", "4"]
    assert [r.seq for r in step.records if isinstance(r, AppSent)] == [2, 3, 4]
    assert session.next_sender_seq == 5


def test_send_many_with_one_message_that_cannot_be_encoded_takes_no_seq_and_sends_nothing() -> None:
    # The FIX gateway relies on this: it then sends the batch one by one, leaving the bad one out.
    session = logged_on(initiator())
    bad = msgspec.structs.replace(order("i-2"), symbol="")
    with pytest.raises(FixEncodeError) as caught:
        session.send_many([order("i-1"), bad, order("i-3")], T0)
    assert caught.value.field == "symbol"
    assert session.next_sender_seq == 2
    step = session.send_many([order("i-1"), order("i-3")], T0)
    assert [fields(raw)[34] for raw in step.outbound] == ["2", "3"]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 3)),
        st.tuples(st.just("receive"), st.integers(-1, 3)),
        st.tuples(st.just("resend"), st.integers(1, 10)),
        st.tuples(st.just("tick"), st.integers(0, 90)),
        st.tuples(st.just("reconnect"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops=operations)
def test_replaying_the_records_gives_the_state_the_live_session_has(ops: list[tuple[str, int]]) -> None:
    from examples.order_routing.fix.store import Retention, apply_record

    retention = Retention(max_age_seconds=120.0, max_messages=5)
    config = SessionConfig("NODE", "VENUE", retention=retention, resend_max_age=60.0)
    session = FixSession(config)
    records = []
    now = T0
    peer_seq = 0

    def connect() -> None:
        nonlocal peer_seq
        records.extend(session.connected(now).records)
        peer_seq = session.next_target_seq
        records.extend(session.receive_bytes(frame(Logon(heart_bt_int=30), peer_seq, at=now), now).records)

    connect()
    for op, arg in ops:
        now += 1
        if not session.active:
            connect()
            continue
        if op == "send":
            records.extend(session.send_many([order(f"i-{now}-{k}") for k in range(arg)], now).records)
        elif op == "receive":
            peer_seq = session.next_target_seq + arg  # a duplicate, in order, or a gap
            raw = frame(
                fill(f"e-{peer_seq}"),
                peer_seq,
                at=now,
                poss_dup=arg < 0,
                orig_sending_time=sending_time(now) if arg < 0 else None,
            )
            records.extend(session.receive_bytes(raw, now).records)
        elif op == "resend":
            request = frame(ResendRequest(begin_seq_no=arg, end_seq_no=0), session.next_target_seq, at=now)
            records.extend(session.receive_bytes(request, now).records)
        elif op == "tick":
            now += arg
            records.extend(session.tick(now).records)
        else:
            session.disconnected()
            connect()
    replayed = SessionState()
    for record in records:
        apply_record(replayed, record, retention)
    assert replayed.next_sender_seq == session.next_sender_seq
    assert replayed.next_target_seq == session.next_target_seq
    assert replayed.outbound == session.state.outbound
    assert len(replayed.outbound) <= retention.max_messages


@settings(max_examples=100, deadline=None)
@given(
    traffic=st.lists(st.tuples(st.sampled_from(["order", "report"]), st.booleans()), min_size=1, max_size=30)
)
def test_two_sessions_recover_every_message_in_order_whatever_frames_are_lost(
    traffic: list[tuple[str, bool]],
) -> None:
    node = FixSession(SessionConfig("NODE", "VENUE", resend_max_age=3600.0))
    venue = FixSession(SessionConfig("VENUE", "NODE", role=Role.ACCEPTOR, resend_max_age=3600.0))
    delivered: dict[str, list[str]] = {"NODE": [], "VENUE": []}

    def deliver(frames: list[bytes], to: FixSession) -> None:
        """Hand frames over reliably, and every answer back, until both sides are quiet."""
        pending = [(frames, to)]
        while pending:
            batch, target = pending.pop(0)
            other = venue if target is node else node
            for raw in batch:
                step = target.receive_bytes(raw, T0)
                for event in step.events:
                    if isinstance(event, Received):
                        message = event.message
                        key = message.cl_ord_id if isinstance(message, NewOrderSingle) else message.exec_id
                        delivered[target.config.sender_comp_id].append(str(key))
                if step.outbound:
                    pending.append((step.outbound, other))

    venue.connected(T0)
    deliver(node.connected(T0).outbound, venue)
    assert node.active and venue.active
    sent: dict[str, list[str]] = {"NODE": [], "VENUE": []}
    for index, (kind, lost) in enumerate(traffic):
        sender, receiver = (node, venue) if kind == "order" else (venue, node)
        message = order(f"i-{index}") if kind == "order" else fill(f"e-{index}")
        step = sender.send(message, T0)
        sent[sender.config.sender_comp_id].append(f"i-{index}" if kind == "order" else f"e-{index}")
        if not lost:
            deliver(step.outbound, receiver)
    # Silence makes each side send a TestRequest (never lost): it shows a gap at the end of the traffic.
    for side, other in ((node, venue), (venue, node)):
        step = side.tick(T0 + 40)
        assert "1" in msg_types(step.outbound)
        deliver(step.outbound, other)
    for name, keys in delivered.items():
        received = list(dict.fromkeys(keys))
        peer = "VENUE" if name == "NODE" else "NODE"
        assert received == sent[peer]
    assert node.active and venue.active


def test_a_logon_below_the_expected_seq_is_refused_before_the_session_is_active() -> None:
    session = FixSession(SessionConfig("NODE", "VENUE"), SessionState(next_sender_seq=9, next_target_seq=5))
    session.connected(T0)
    step = session.receive_bytes(frame(Logon(heart_bt_int=30), 3), T0)
    assert not any(isinstance(e, LoggedOn) for e in step.events)
    assert isinstance(step.error, MsgSeqNumTooLow) and (step.error.expected, step.error.received) == (5, 3)
    assert msg_types(step.outbound) == ["5"] and step.disconnect


peer_messages = st.one_of(
    st.builds(Heartbeat, test_req_id=st.none() | st.just("T1")),
    st.builds(FixTestRequest, test_req_id=st.just("x")),
    st.builds(ResendRequest, begin_seq_no=st.integers(0, 50), end_seq_no=st.integers(0, 50)),
    st.builds(SequenceReset, new_seq_no=st.integers(1, 60), gap_fill_flag=st.none() | st.booleans()),
    st.builds(Logon, heart_bt_int=st.integers(0, 60), reset_seq_num_flag=st.none() | st.booleans()),
    st.builds(Logout),
    st.builds(Reject, ref_seq_num=st.integers(1, 50)),
    st.builds(BusinessMessageReject, ref_msg_type=st.just("H"), business_reject_reason=st.integers(0, 9)),
    st.builds(UnknownMessage, msg_type=st.just("ZZ")),
    st.integers(1, 40).map(lambda n: fill(f"e-{n}")),
)
peer_frames = st.builds(
    frame,
    peer_messages,
    st.integers(1, 60),
    sender=st.sampled_from(["VENUE", "VENUE", "VENUE", "OTHER"]),
    poss_dup=st.booleans(),
    orig_sending_time=st.none() | st.just(sending_time(T0)),
)


@settings(max_examples=300, deadline=None)
@given(
    script=st.lists(peer_frames | st.binary(max_size=60), max_size=25),
    role=st.sampled_from([Role.INITIATOR, Role.ACCEPTOR]),
)
def test_any_sequence_of_peer_frames_and_garbage_never_raises_out_of_a_session(
    script: list[bytes], role: Role
) -> None:
    session = FixSession(SessionConfig("NODE", "VENUE", role=role))
    session.connected(T0)
    now = T0
    for raw in script:
        now += 1
        if session.status is Status.DISCONNECTED:
            session.connected(now)
        step = session.receive_bytes(raw, now)
        step.extend(session.tick(now))
        assert session.next_sender_seq >= 1 and session.next_target_seq >= 1
        if session.active:
            session.send(order("i-1"), now)


def test_a_fix_4_2_session_logs_on_in_4_2_and_refuses_a_4_4_peer() -> None:
    from examples.order_routing.fix.codec import FIX42

    session = FixSession(SessionConfig("NODE", "VENUE", begin_string=FIX42))
    [logon] = session.connected(T0).outbound
    assert logon.startswith(b"8=FIX.4.2\x01")
    step = session.receive_bytes(frame(Logon(heart_bt_int=30), 1, begin_string=FIX42), T0)
    assert LoggedOn(heartbeat_interval=30, reset=False) in step.events
    step = session.receive_bytes(frame(Heartbeat(), 2), T0)  # a FIX.4.4 frame on a 4.2 session
    assert step.disconnect and "BeginString 'FIX.4.4'" in str(step.error)
    assert msg_types(step.outbound) == ["5"]
