"""EventCodec and StateCodec: msgpack with a type tag, validated on decode, errors name stream and seq."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison import InvalidConfig
from garrison._errors import EventDecodeError
from garrison.persistence import EventCodec, StateCodec

from ._model import Balance, Deposited, Renamed, Withdrawn, assert_decode_error


class Untagged(msgspec.Struct, frozen=True):
    amount: int


class OtherDeposited(msgspec.Struct, frozen=True, tag="Deposited"):
    amount: int


class Unregistered(msgspec.Struct, frozen=True, tag=True):
    amount: int


CODEC = EventCodec([Deposited, Withdrawn, Renamed])


def test_an_event_is_msgpack_carrying_its_type_tag() -> None:
    payload = CODEC.encode(Deposited(5))

    assert msgspec.msgpack.decode(payload) == {"type": "Deposited", "amount": 5}
    assert CODEC.decode(payload, "acct", 1) == Deposited(5)


def test_each_registered_type_decodes_back_to_itself() -> None:
    events = [Deposited(1), Withdrawn(2), Renamed("ada")]

    assert [CODEC.decode(CODEC.encode(e), "acct", i) for i, e in enumerate(events, 1)] == events


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(Deposited, st.integers(-(2**63), 2**64 - 1)),
            st.builds(Withdrawn, st.integers(-(2**63), 2**64 - 1)),
            st.builds(Renamed, st.text()),
        ),
        max_size=30,
    )
)
def test_decode_rows_returns_exactly_the_events_encoded(events: list[Any]) -> None:
    rows = [(seq, CODEC.encode(event)) for seq, event in enumerate(events, start=1)]

    assert CODEC.decode_rows(rows, "acct") == events


def test_encoding_an_unregistered_type_names_it_and_the_registered_ones() -> None:
    with pytest.raises(InvalidConfig, match="Unregistered") as caught:
        CODEC.encode(Unregistered(1), "acct")

    assert "Deposited, Withdrawn, Renamed" in str(caught.value)
    assert "acct" in str(caught.value)


@pytest.mark.parametrize(
    ("types", "match"),
    [
        ([], "at least one event type"),
        ([Untagged], "need a type tag"),
        ([dict], "msgspec.Struct subclasses"),
        ([Deposited, OtherDeposited], "already used by Deposited"),
    ],
)
def test_a_bad_set_of_event_types_is_refused_when_the_codec_is_built(types: list[Any], match: str) -> None:
    with pytest.raises(InvalidConfig, match=match):
        EventCodec(types)


def test_an_unknown_tag_is_an_error_naming_stream_and_seq() -> None:
    payload = msgspec.msgpack.encode(Unregistered(3))

    with pytest.raises(EventDecodeError) as caught:
        CODEC.decode(payload, "acct-9", 41)

    assert_decode_error(caught.value, "acct-9", 41, "schema")
    assert isinstance(caught.value.cause, msgspec.ValidationError)


def test_a_field_of_the_wrong_type_is_an_error_naming_stream_and_seq() -> None:
    payload = msgspec.msgpack.encode({"type": "Deposited", "amount": "five"})

    with pytest.raises(EventDecodeError) as caught:
        CODEC.decode(payload, "acct", 7)

    assert_decode_error(caught.value, "acct", 7, "schema")


def test_a_missing_field_is_an_error() -> None:
    with pytest.raises(EventDecodeError) as caught:
        CODEC.decode(msgspec.msgpack.encode({"type": "Withdrawn"}), "acct", 2)

    assert_decode_error(caught.value, "acct", 2, "schema")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",
        b"\xff\xfe garbage",
        CODEC.encode(Deposited(1))[:-1],
        CODEC.encode(Deposited(1)) + b"\x00",
        b"\x82\xa4type\xa7Renamed\xa5owner\xa2\xff\xfe",  # a string that is not UTF-8
    ],
)
def test_bytes_that_are_not_msgpack_are_an_error(payload: bytes) -> None:
    with pytest.raises(EventDecodeError) as caught:
        CODEC.decode(payload, "acct", 3)

    assert_decode_error(caught.value, "acct", 3, "malformed")


@pytest.mark.parametrize("payload", ["a text value", 42, None])
def test_a_stored_value_that_is_not_bytes_is_an_error_too(payload: Any) -> None:
    """SQLite gives back TEXT or INTEGER if something other than the journal wrote the row."""
    with pytest.raises(EventDecodeError) as caught:
        CODEC.decode(payload, "acct", 5)

    assert_decode_error(caught.value, "acct", 5, "not-bytes")


def test_decode_rows_names_the_first_bad_row_not_the_batch() -> None:
    rows = [(seq, CODEC.encode(Deposited(seq))) for seq in range(10, 20)]
    rows[4] = (14, b"\xc1")
    rows[7] = (17, "not bytes")  # type: ignore[assignment]

    with pytest.raises(EventDecodeError) as caught:
        CODEC.decode_rows(rows, "acct")

    assert_decode_error(caught.value, "acct", 14, "malformed")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(Deposited, st.integers(-(2**63), 2**64 - 1)),
            st.builds(Renamed, st.text()),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_decode_packed_returns_exactly_the_events_encoded_back_to_back(events: list[Any]) -> None:
    payloads = b"".join(CODEC.encode(event) for event in events)

    assert CODEC.decode_packed(payloads, len(events)) == events


@pytest.mark.parametrize(
    ("payloads", "count"),
    [
        (CODEC.encode(Deposited(1)) * 3, 2),  # more events than counted
        (CODEC.encode(Deposited(1)) * 3, 4),  # fewer
        (CODEC.encode(Deposited(1)) + b"\xc1", 2),
        (CODEC.encode(Deposited(1)) + msgspec.msgpack.encode(Unregistered(2)), 2),
        (CODEC.encode(Deposited(1)) + CODEC.encode(Deposited(2))[:-1], 2),
        (b"", 0),
    ],
)
def test_decode_packed_gives_none_unless_the_bytes_are_exactly_count_events(
    payloads: bytes, count: int
) -> None:
    assert CODEC.decode_packed(payloads, count) is None


def test_a_snapshot_decodes_back_and_a_bad_one_names_stream_and_seq() -> None:
    codec = StateCodec(Balance)
    state = Balance(balance=12, operations=3, owner="ada")

    assert codec.decode(codec.encode(state), "acct", 3) == state
    with pytest.raises(EventDecodeError) as caught:
        codec.decode(msgspec.msgpack.encode({"balance": "a lot"}), "acct", 3)
    assert_decode_error(caught.value, "acct", 3, "schema")
    with pytest.raises(EventDecodeError):
        codec.decode(b"\xc1", "acct", 3)
