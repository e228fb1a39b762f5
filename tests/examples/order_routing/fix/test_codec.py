"""The FIX codec: header order, BodyLength and CheckSum, streaming, damage, unknown tags, FIX 4.2."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from examples.order_routing.fix.codec import (
    FIX42,
    FIX44,
    FrameReader,
    Inbound,
    InvalidMessage,
    Parsed,
    checksum_of,
    decode,
    decode_reference,
    encode,
    encode_reference,
    sending_time,
)
from examples.order_routing.fix.errors import FixEncodeError
from examples.order_routing.fix.messages import (
    ExecType,
    ExecutionReport,
    Heartbeat,
    Logon,
    NewOrderSingle,
    OrderCancelRequest,
    OrderStatusRequest,
    OrdStatus,
    OrdType,
    SessionRejectReason,
    Side,
    UnknownMessage,
)
from tests.examples.order_routing.fix.support import T0, frame, pairs, wire

ORDER = NewOrderSingle(
    cl_ord_id="i-42",
    symbol="ACME",
    side=Side.BUY,
    order_qty=100,
    ord_type=OrdType.LIMIT,
    transact_time=sending_time(T0),
    price=12.5,
)

# A Logon as the FIX 4.4 specification's examples write it, BodyLength and CheckSum by hand.
RECORDED_LOGON = wire(
    "8=FIX.4.4|9=64|35=A|49=VENUE|56=NODE|34=1|52=20251206-05:46:40.000|98=0|108=30|10=158|"
)


def test_header_fields_come_first_and_in_the_order_strict_acceptors_require() -> None:
    raw = frame(ORDER, 7, sender="NODE", target="VENUE", at=T0 + 0.25)
    tags = [tag for tag, _ in pairs(raw)]
    assert tags[:7] == [8, 9, 35, 49, 56, 34, 52]
    assert tags[-1] == 10
    values = dict(pairs(raw))
    assert values[8] == "FIX.4.4" and values[35] == "D" and values[34] == "7"
    assert values[52] == "20251206-05:46:40.250"
    assert re.fullmatch(r"\d{8}-\d{2}:\d{2}:\d{2}\.\d{3}", values[52])


def test_body_length_and_checksum_are_those_of_the_bytes_sent() -> None:
    raw = frame(ORDER, 7)
    body_start = raw.index(b"\x01", raw.index(b"9=")) + 1
    checksum_at = raw.rindex(b"10=")
    assert int(dict(pairs(raw))[9]) == checksum_at - body_start
    assert int(dict(pairs(raw))[10]) == sum(raw[:checksum_at]) % 256
    assert raw.endswith(b"\x01") and len(dict(pairs(raw))[10]) == 3


def test_a_recorded_logon_parses_into_its_header_and_typed_message() -> None:
    [parsed] = FrameReader().feed(RECORDED_LOGON)
    assert isinstance(parsed, Inbound)
    assert parsed.message == Logon(heart_bt_int=30, encrypt_method=0)
    assert (parsed.header.sender_comp_id, parsed.header.target_comp_id, parsed.header.msg_seq_num) == (
        "VENUE",
        "NODE",
        1,
    )
    assert parsed.header.sending_time == "20251206-05:46:40.000"


def test_a_frame_split_across_reads_is_buffered_until_it_is_whole() -> None:
    reader = FrameReader()
    raw = frame(ORDER, 3) + frame(Heartbeat(), 4)
    got = []
    for index in range(len(raw)):
        got += reader.feed(raw[index : index + 1])
    assert [p.header.msg_seq_num for p in got] == [3, 4]
    assert reader.dropped == 0 and reader.buffered == 0


def test_a_wrong_checksum_drops_that_frame_counts_it_and_reads_on() -> None:
    good = frame(Heartbeat(), 2)
    damaged = frame(ORDER, 1).replace(b"ACME", b"ACMF")
    reader = FrameReader()
    parsed = reader.feed(damaged + good)
    assert [p.header.msg_seq_num for p in parsed] == [2]
    assert reader.dropped == 1
    assert reader.last_drop_reason == "wrong CheckSum"


def test_garbage_and_a_garbled_frame_are_dropped_and_counted_and_the_next_frame_is_read() -> None:
    good = frame(Heartbeat(), 5)
    garbled = b"8=FIX.4.4\x019=zz\x0135=0\x01"
    reader = FrameReader()
    parsed = reader.feed(b"\x00\xffnoise" + garbled + good)
    assert [p.header.msg_seq_num for p in parsed] == [5]
    assert reader.dropped == 2


def test_a_body_length_that_overruns_into_the_next_frame_drops_only_the_short_frame() -> None:
    short = wire("8=FIX.4.4|9=500|35=0|49=VENUE|56=NODE|34=1|52=20251206-05:46:40.000|10=000|")
    reader = FrameReader()
    parsed = reader.feed(short + frame(Heartbeat(), 2))
    assert [p.header.msg_seq_num for p in parsed] == [2]
    assert reader.dropped == 1


def test_unknown_tags_are_kept_apart_and_do_not_change_the_message() -> None:
    raw = frame(ORDER, 9)
    with_extra = raw.replace(b"\x0155=ACME\x01", b"\x0155=ACME\x015001=desk-7\x01")
    with_extra = _refresh_trailer(with_extra)
    [parsed] = FrameReader().feed(with_extra)
    assert isinstance(parsed, Inbound)
    assert parsed.message == ORDER
    assert parsed.unknown == ((5001, "desk-7"),)


def test_an_unknown_message_type_parses_as_unknown_message() -> None:
    raw = frame(UnknownMessage(msg_type="AE", fields=((571, "r-1"),)), 4)
    [parsed] = FrameReader().feed(raw)
    assert isinstance(parsed, Inbound)
    assert parsed.message == UnknownMessage(msg_type="AE", fields=((571, "r-1"),))


def test_a_missing_required_field_comes_back_as_invalid_message_naming_the_tag() -> None:
    raw = _refresh_trailer(frame(ORDER, 6).replace(b"\x0155=ACME", b""))
    [parsed] = FrameReader().feed(raw)
    assert isinstance(parsed, InvalidMessage)
    assert parsed.header.msg_seq_num == 6
    assert parsed.ref_tag_id == 55
    assert parsed.session_reject_reason == SessionRejectReason.REQUIRED_TAG_MISSING


def test_a_value_of_the_wrong_type_comes_back_as_invalid_message() -> None:
    raw = _refresh_trailer(frame(ORDER, 6).replace(b"\x0138=100", b"\x0138=lots"))
    [parsed] = FrameReader().feed(raw)
    assert isinstance(parsed, InvalidMessage)
    assert parsed.ref_tag_id == 38
    assert parsed.session_reject_reason == SessionRejectReason.INCORRECT_DATA_FORMAT
    assert "'lots'" in parsed.reason


def test_fix_4_2_begin_string_is_written_and_read() -> None:
    report = ExecutionReport(
        order_id="o-1",
        exec_id="e-1",
        exec_type=ExecType.PARTIAL_FILL,
        ord_status=OrdStatus.PARTIALLY_FILLED,
        symbol="ACME",
        side=Side.SELL,
        leaves_qty=60,
        cum_qty=40,
        avg_px=12.5,
        cl_ord_id="i-42",
        last_qty=40,
        last_px=12.5,
        exec_trans_type="0",
    )
    raw = frame(report, 2, begin_string=FIX42)
    assert raw.startswith(b"8=FIX.4.2\x019=")
    [parsed] = FrameReader().feed(raw)
    assert isinstance(parsed, Inbound)
    assert parsed.header.begin_string == FIX42
    assert parsed.message == report


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("symbol", "", "is empty"),
        ("symbol", "A\x01B", "holds the SOH delimiter"),
        ("price", float("nan"), "finite"),
    ],
)
def test_a_field_no_acceptor_would_take_is_refused_naming_it(field: str, value: object, problem: str) -> None:
    bad = ORDER.__class__(**{**{f: getattr(ORDER, f) for f in ORDER.__struct_fields__}, field: value})
    with pytest.raises(FixEncodeError, match=f"field {field}=.*{problem}") as caught:
        frame(bad, 1)
    assert caught.value.field == field and caught.value.msg_type == "D"


def _refresh_trailer(raw: bytes) -> bytes:
    """Recompute BodyLength and CheckSum of a frame edited by a test."""
    body_start = raw.index(b"\x01", raw.index(b"9=")) + 1
    body = raw[body_start : raw.rindex(b"10=")]
    head = raw[: raw.index(b"9=")] + b"9=" + str(len(body)).encode() + b"\x01" + body
    return head + b"10=" + f"{sum(head) % 256:03d}".encode() + b"\x01"


# ---- properties ---------------------------------------------------------------------------

texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x01"), min_size=1, max_size=20
)
quantities = st.integers(min_value=0, max_value=10**12)
prices = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)

orders = st.builds(
    NewOrderSingle,
    cl_ord_id=texts,
    symbol=texts,
    side=st.sampled_from([Side.BUY, Side.SELL]),
    order_qty=quantities,
    ord_type=st.sampled_from([OrdType.LIMIT, OrdType.MARKET]),
    transact_time=texts,
    price=st.none() | prices,
    time_in_force=st.none() | texts,
    account=st.none() | texts,
)
reports = st.builds(
    ExecutionReport,
    order_id=texts,
    exec_id=texts,
    exec_type=st.sampled_from([ExecType.NEW, ExecType.TRADE, ExecType.CANCELED]),
    ord_status=st.sampled_from([OrdStatus.NEW, OrdStatus.FILLED]),
    symbol=texts,
    side=st.sampled_from([Side.BUY, Side.SELL]),
    leaves_qty=quantities,
    cum_qty=quantities,
    avg_px=prices,
    cl_ord_id=st.none() | texts,
    last_qty=st.none() | quantities,
    last_px=st.none() | prices,
    text=st.none() | texts,
)


@settings(max_examples=200, deadline=None)
@given(message=orders | reports, seq=st.integers(min_value=1, max_value=2**31), chunk=st.integers(1, 64))
def test_any_message_round_trips_through_encode_and_a_chunked_parse(
    message: NewOrderSingle | ExecutionReport, seq: int, chunk: int
) -> None:
    raw = frame(message, seq)
    reader = FrameReader()
    parsed = []
    for start in range(0, len(raw), chunk):
        parsed += reader.feed(raw[start : start + chunk])
    assert len(parsed) == 1 and isinstance(parsed[0], Inbound)
    assert parsed[0].message == message
    assert parsed[0].header.msg_seq_num == seq
    assert parsed[0].header.begin_string == FIX44
    assert reader.dropped == 0


@settings(max_examples=300, deadline=None)
@given(garbage=st.lists(st.binary(max_size=80) | st.sampled_from([b"8=FIX.4.4\x01", b"9=", b"10=", b"\x01"])))
def test_random_bytes_never_raise_and_a_good_frame_after_them_is_still_read(garbage: list[bytes]) -> None:
    reader = FrameReader()
    for piece in garbage:
        reader.feed(piece)
    # Whatever was buffered, a burst of good frames resynchronises the reader.
    got = reader.feed(frame(Heartbeat(), 1) * 3)
    assert any(isinstance(p, Inbound) and p.header.msg_seq_num == 1 for p in got)


def test_a_report_with_an_infinite_quantity_is_invalid_not_a_crash() -> None:
    report = frame(ExecutionReport("o", "e", "0", "0", "ACME", "1", leaves_qty=1, cum_qty=0, avg_px=0.0), 3)
    [parsed] = FrameReader().feed(_refresh_trailer(report.replace(b"\x01151=1\x01", b"\x01151=inf\x01")))
    assert isinstance(parsed, InvalidMessage)
    assert parsed.ref_tag_id == 151
    assert parsed.session_reject_reason == SessionRejectReason.INCORRECT_DATA_FORMAT


# ---- the fast paths against the plain ones --------------------------------------------------

status_requests = st.builds(
    OrderStatusRequest,
    cl_ord_id=texts,
    symbol=texts,
    side=st.sampled_from([Side.BUY, Side.SELL]),
    order_id=st.none() | texts,
    ord_status_req_id=st.none() | texts,
)
cancels = st.builds(
    OrderCancelRequest,
    orig_cl_ord_id=texts,
    cl_ord_id=texts,
    symbol=texts,
    side=st.sampled_from([Side.BUY, Side.SELL]),
    transact_time=texts,
    order_qty=st.none() | quantities,
)
heartbeats = st.builds(Heartbeat, test_req_id=st.none() | texts)
logons = st.builds(Logon, heart_bt_int=st.integers(0, 3600), reset_seq_num_flag=st.none() | st.booleans())
any_message = orders | reports | status_requests | cancels | heartbeats | logons


@settings(max_examples=300, deadline=None)
@given(
    message=any_message,
    seq=st.integers(min_value=1, max_value=2**31),
    begin_string=st.sampled_from([FIX44, FIX42]),
    sender=texts,
    stamp=texts,
    poss_dup=st.booleans(),
    orig=st.none() | texts,
)
def test_encode_writes_exactly_the_bytes_simplefix_writes_for_any_message(
    message: Any, seq: int, begin_string: str, sender: str, stamp: str, poss_dup: bool, orig: str | None
) -> None:
    header: dict[str, Any] = {
        "begin_string": begin_string,
        "sender_comp_id": sender,
        "target_comp_id": "VENUE",
        "msg_seq_num": seq,
        "sending_time_text": stamp,
        "poss_dup": poss_dup,
        "orig_sending_time": orig,
    }
    assert encode(message, **header) == encode_reference(message, **header)


def _outcome(read: Callable[[bytes], Parsed], raw: bytes) -> object:
    try:
        return read(raw)
    except Exception as error:  # both readers must fail the same way
        return (type(error), str(error))


def _reframe(fields: list[tuple[str, str]]) -> bytes:
    body = "".join(f"{tag}={value}\x01" for tag, value in fields).encode()
    head = b"8=FIX.4.4\x019=" + str(len(body)).encode() + b"\x01" + body
    return head + b"10=" + f"{sum(head) % 256:03d}".encode() + b"\x01"


# Known tags, header tags, raw-data tags, an unknown tag, and tags no reader should take as given.
edit_tags = st.sampled_from(
    ["11", "14", "17", "38", "44", "54", "150", "151", "34", "35", "49", "52", "43", "122", "97", "10"]
) | st.sampled_from(["95", "96", "5001", "011", "", "x", "-3", "\u0661\u0661"])
edit_values = st.sampled_from(["", "Y", "N", "5", "5.0", "1e3", "inf", "nan", "a=b", "lots", "\xe9"]) | texts


@settings(max_examples=400, deadline=None)
@given(
    message=any_message,
    inserts=st.lists(st.tuples(st.integers(0, 40), edit_tags, edit_values), max_size=3),
    removes=st.lists(st.integers(0, 40), max_size=2),
)
def test_decode_reads_every_frame_as_the_plain_reader_does(
    message: Any, inserts: list[tuple[int, str, str]], removes: list[int]
) -> None:
    fields = [(str(tag), value) for tag, value in pairs(frame(message, 7))][2:-1]
    for at in removes:
        if fields:
            del fields[at % len(fields)]
    for at, tag, value in inserts:
        fields.insert(at % (len(fields) + 1), (tag, value))
    raw = _reframe(fields)
    assert _outcome(decode, raw) == _outcome(decode_reference, raw)


@settings(max_examples=500, deadline=None)
@given(epoch=st.floats(min_value=0, max_value=4_102_444_800) | st.integers(0, 4_102_444_800).map(float))
def test_sending_time_is_the_utc_time_datetime_gives_to_the_millisecond(epoch: float) -> None:
    assert sending_time(epoch) == _datetime_text(epoch)
    # Just below a whole second: the rounded microseconds carry into the next second.
    assert sending_time(epoch + 0.9999996) == _datetime_text(epoch + 0.9999996)


def _datetime_text(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y%m%d-%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


@given(data=st.binary(max_size=2000) | st.integers(0, 1000).map(lambda size: b"\xff" * size))
def test_checksum_of_is_the_byte_sum_modulo_256(data: bytes) -> None:
    assert checksum_of(data) == sum(data) % 256


@pytest.mark.parametrize("size", [255, 256, 257, 512, 513])
def test_checksum_of_the_largest_byte_sums_around_its_slice_size(size: int) -> None:
    assert checksum_of(b"\xff" * size) == (255 * size) % 256
