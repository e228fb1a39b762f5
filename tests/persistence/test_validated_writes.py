"""Validated writes: an event, snapshot or intent payload that would not read back as written
raises InvalidEvent naming its type, field and value, and nothing reaches the journal."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import garrison
import garrison.persistence
from garrison import InvalidConfig, InvalidEvent, Node
from garrison.persistence import EventCodec, EventSourcedActor, IntentLog, SqliteJournal, StateCodec

ASK = 5.0
NONNEGATIVE = Annotated[float, msgspec.Meta(ge=0)]


class Line(msgspec.Struct, frozen=True):
    sku: str
    qty: int


class OrderPlaced(msgspec.Struct, frozen=True, tag=True):
    order_id: str
    qty: int
    price: NONNEGATIVE = 0.0
    lines: tuple[Line, ...] = ()
    limit: float = 0.0
    tags: tuple[str, ...] = ()


CODEC = EventCodec([OrderPlaced])


def invalid(event: Any, codec: EventCodec = CODEC) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as raised:
        codec.encode(event, "orders")
    return raised.value


# -- the codec --------------------------------------------------------------------------------


def test_a_field_of_the_wrong_type_is_named_with_its_value() -> None:
    error = invalid(OrderPlaced("o-1", "ten"))  # type: ignore[arg-type]

    assert (error.event_type, error.field, error.value, error.problem) == (
        "OrderPlaced",
        "qty",
        "ten",
        "invalid",
    )
    assert error.expected == "int"
    assert isinstance(error, InvalidConfig)
    assert str(error).startswith(
        "OrderPlaced.qty='ten' does not decode as its declared type: expected int; nothing was written"
    )


def test_a_wrong_type_nested_in_a_struct_in_a_sequence_is_named_by_its_path() -> None:
    error = invalid(OrderPlaced("o-1", 1, lines=(Line("a", 1), Line("b", "2"))))  # type: ignore[arg-type]

    assert (error.field, error.value, error.problem, error.expected) == (
        "lines[1].qty",
        "2",
        "invalid",
        "int",
    )
    assert str(error).startswith("OrderPlaced.lines[1].qty='2' does not decode")


class Amended(msgspec.Struct, frozen=True, tag=True):
    side: Literal["buy", "sell"] | None = None
    lines: list[Line] | None = None
    by_venue: dict[str, list[Line]] = {}


@pytest.mark.parametrize(
    ("event", "field", "value"),
    [
        (Amended(side="hold"), "side", "hold"),  # type: ignore[arg-type]
        (Amended(lines=[Line("a", 1), Line("b", "x")]), "lines[1].qty", "x"),  # type: ignore[arg-type]
        (Amended(by_venue={"XNAS": [Line("a", "y")]}), "by_venue['XNAS'][0].qty", "y"),  # type: ignore[arg-type]
    ],
)
def test_wrong_values_inside_optionals_literals_and_dicts_are_named_by_their_path(
    event: Amended, field: str, value: Any
) -> None:
    error = invalid(event, EventCodec([Amended]))
    assert (error.event_type, error.field, error.value, error.problem) == ("Amended", field, value, "invalid")


def test_nan_is_refused_where_the_schema_forbids_it_and_kept_where_it_does_not() -> None:
    error = invalid(OrderPlaced("o-1", 1, price=math.nan))
    assert (error.field, error.problem) == ("price", "invalid")
    assert math.isnan(error.value)

    payload = CODEC.encode(OrderPlaced("o-1", 1, limit=math.nan))
    assert math.isnan(CODEC.decode(payload, "orders", 1).limit)


def test_a_value_that_reads_back_as_another_is_refused_with_what_replay_would_read() -> None:
    error = invalid(OrderPlaced("o-1", 1, tags=["vip"]))  # type: ignore[arg-type]

    assert (error.field, error.value, error.problem, error.read_back) == (
        "tags",
        ["vip"],
        "changed",
        ("vip",),
    )
    assert str(error).startswith("OrderPlaced.tags=['vip'] reads back as ('vip',)")


def test_a_value_msgpack_cannot_encode_is_refused() -> None:
    marker = object()
    error = invalid(OrderPlaced("o-1", 1, lines=(marker,)))  # type: ignore[arg-type]
    assert (error.field, error.value, error.problem) == ("lines[0]", marker, "unencodable")

    too_big = invalid(OrderPlaced("o-1", 2**70))
    assert (too_big.field, too_big.problem) == ("qty", "unencodable")


def test_a_snapshot_state_that_would_not_read_back_is_refused() -> None:
    codec = StateCodec(dict[str, int])
    with pytest.raises(InvalidEvent) as raised:
        codec.encode({"o-1": 3, "o-2": "three"})

    assert (raised.value.field, raised.value.value, raised.value.problem) == ("['o-2']", "three", "invalid")
    assert raised.value.event_type == "snapshot of dict"
    assert codec.decode(codec.encode({"o-1": 3}), "orders", 1) == {"o-1": 3}


def test_invalid_event_is_exported_by_both_packages() -> None:
    assert garrison.InvalidEvent is InvalidEvent is garrison.persistence.InvalidEvent
    assert "InvalidEvent" in garrison.__all__
    assert "InvalidEvent" in garrison.persistence.__all__


FIELDS = {"order_id": st.text(max_size=8), "qty": st.integers(-(2**63), 2**63 - 1)}
WRONG = st.one_of(st.binary(max_size=4), st.lists(st.integers(), max_size=2), st.none(), st.floats())


@settings(max_examples=60, deadline=None)
@given(
    order_id=FIELDS["order_id"], qty=FIELDS["qty"], wrong=WRONG, field=st.sampled_from(["order_id", "qty"])
)
def test_right_values_always_round_trip_and_one_wrong_field_is_always_named(
    order_id: str, qty: int, wrong: Any, field: str
) -> None:
    right = OrderPlaced(order_id, qty)
    assert CODEC.decode(CODEC.encode(right), "orders", 1) == right

    bad = msgspec.structs.replace(right, **{field: wrong})
    error = invalid(bad)
    assert error.field == field
    assert error.value is wrong or (isinstance(wrong, float) and math.isnan(wrong))


# -- persist: nothing written, the actor keeps running ---------------------------------------------


class Book(msgspec.Struct, frozen=True):
    orders: int = 0
    quantity: int = 0


class Place(msgspec.Struct, frozen=True):
    event: Any


class Get(msgspec.Struct, frozen=True):
    pass


class Orders(EventSourcedActor[Book]):
    events = (OrderPlaced,)
    persistence_id = "orders"

    def initial_state(self) -> Book:
        return Book()

    def apply(self, state: Book, event: Any) -> Book:
        return Book(state.orders + 1, state.quantity + event.qty)

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Place):
            await self.persist(message.event)
        return self.state, self.last_seq


async def test_persist_of_an_invalid_event_raises_to_the_asker_writes_nothing_and_the_actor_answers(
    journal_path: Path,
) -> None:
    journal = SqliteJournal(journal_path)
    async with Node("t", journal=journal, handle_signals=False) as node:
        ref = await node.spawn(Orders, name="orders")
        assert await ref.ask(Place(OrderPlaced("o-1", 2)), timeout=ASK) == (Book(1, 2), 1)

        with pytest.raises(InvalidEvent) as raised:
            await ref.ask(Place(OrderPlaced("o-2", "ten")), timeout=ASK)  # type: ignore[arg-type]
        assert (raised.value.event_type, raised.value.field, raised.value.value) == (
            "OrderPlaced",
            "qty",
            "ten",
        )
        with pytest.raises(InvalidEvent) as nested:
            await ref.ask(Place(OrderPlaced("o-3", 1, lines=(Line("a", "1"),))), timeout=ASK)  # type: ignore[arg-type]
        assert nested.value.field == "lines[0].qty"

        assert await journal.highest_seq("orders") == 1
        assert await ref.ask(Get(), timeout=ASK) == (Book(1, 2), 1)
        assert await ref.ask(Place(OrderPlaced("o-4", 3)), timeout=ASK) == (Book(2, 5), 2)

    async with Node("t", journal=SqliteJournal(journal_path), handle_signals=False) as node:
        ref = await node.spawn(Orders, name="orders")
        assert await ref.ask(Get(), timeout=ASK) == (Book(2, 5), 2)


class Exposure(msgspec.Struct, frozen=True):
    total: int = 0


class SnapshottingOrders(EventSourcedActor[Exposure]):
    """Its apply turns the total into a float when a price has cents: a state its snapshot
    type cannot hold."""

    events = (OrderPlaced,)
    persistence_id = "exposure"
    snapshot_every = 1

    def initial_state(self) -> Exposure:
        return Exposure()

    def apply(self, state: Exposure, event: Any) -> Exposure:
        value = event.qty * event.price
        return Exposure(state.total + (int(value) if value.is_integer() else value))

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Place):
            await self.persist(message.event)
        return self.state, self.last_seq


async def test_a_snapshot_that_would_not_read_back_is_not_saved_and_the_actor_keeps_running(
    journal_path: Path,
) -> None:
    journal = SqliteJournal(journal_path)
    async with Node("t", journal=journal, handle_signals=False) as node:
        ref = await node.spawn(SnapshottingOrders, name="exposure")
        assert await ref.ask(Place(OrderPlaced("o-1", 2, price=5.0)), timeout=ASK) == (Exposure(10), 1)
        assert await journal.load_snapshot("exposure") is not None

        state, seq = await ref.ask(Place(OrderPlaced("o-2", 1, price=0.5)), timeout=ASK)
        assert (state.total, seq) == (10.5, 2)  # the event is durable, its snapshot is not
        snapshot = await journal.load_snapshot("exposure")
        assert snapshot is not None and snapshot[0] == 1
        assert await ref.ask(Get(), timeout=ASK) == (state, 2)


# -- the intent log -----------------------------------------------------------------------------------


async def test_an_intent_payload_with_a_wrong_field_is_named_and_nothing_is_written(
    journal: SqliteJournal,
) -> None:
    log = await IntentLog(journal, "intents", Line).open()
    with pytest.raises(InvalidEvent) as raised:
        await log.record("i-1", Line("a", "ten"))  # type: ignore[arg-type]

    assert (raised.value.field, raised.value.value, raised.value.problem) == ("payload.qty", "ten", "invalid")
    assert await journal.highest_seq("intents") == 0
    assert (await log.record("i-1", Line("a", 10))).payload == Line("a", 10)
