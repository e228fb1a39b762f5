"""Schema evolution: a journal written before its event types changed replays as the current types.

``fixtures/orders_v1.db`` was written by garrison before schema evolution existed (see
``fixtures/make_v1_journal.py``): stream ``orders``, seqs 1-4, of

    OrderPlaced(order_id: str, qty: int, price: float)   tag "OrderPlaced"
    OrderCancelled(order_id: str)                         tag "OrderCancelled"

    1 OrderPlaced("o-1", 3, 101.5)   2 OrderPlaced("o-2", 5, 99.25)
    3 OrderCancelled("o-1")          4 OrderPlaced("o-3", 2, 100.0)

Each test replays a copy of it through EventSourcedActor recovery after the types evolved.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison import ActorStartError, EventDecodeError, InvalidConfig, Node
from garrison.persistence import EventCodec, EventSourcedActor, SqliteJournal, Upcaster, replay_events

FIXTURE = Path(__file__).parent / "fixtures" / "orders_v1.db"
STREAM = "orders"
ASK = 5.0


def open_journal(path: Path) -> SqliteJournal:
    """The journal on ``path``, upgraded explicitly (``migrate=True``) if its file format is
    older than this garrison's: the fixture keeps the format it was written in."""
    return SqliteJournal(path, migrate=True)


@pytest.fixture
def v1_journal(tmp_path: Path) -> Path:
    """A copy of the committed v1 file (opening it may upgrade it; the original stays as it was)."""
    copy = tmp_path / "orders.db"
    shutil.copyfile(FIXTURE, copy)
    return copy


class Get(msgspec.Struct, frozen=True):
    pass


class Persist(msgspec.Struct, frozen=True):
    event: Any


class Book(EventSourcedActor[dict[str, tuple[Any, ...]]]):
    """Open orders by id: ``(quantity, price, *new fields)``. Subclasses declare the types."""

    persistence_id = STREAM

    def initial_state(self) -> dict[str, tuple[Any, ...]]:
        return {}

    def apply(self, state: dict[str, tuple[Any, ...]], event: Any) -> dict[str, tuple[Any, ...]]:
        fields = msgspec.structs.asdict(event)
        order_id = fields.pop("order_id")
        if not fields:  # a cancellation
            return {key: value for key, value in state.items() if key != order_id}
        return {**state, order_id: tuple(fields.values())}

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Persist):
            await self.persist(message.event)
        return self.state, self.last_seq


async def recovered(path: Path, actor: type[Book], *then: Any) -> tuple[dict[str, tuple[Any, ...]], int]:
    """The state and seq ``actor`` recovers from ``path`` (after persisting ``then``)."""
    async with Node("t", journal=open_journal(path), handle_signals=False) as node:
        ref = await node.spawn(actor, name="book")
        for event in then:
            await ref.ask(Persist(event), timeout=ASK)
        state, seq = await ref.ask(Get(), timeout=ASK)
        return state, seq


# -- a type gains a field with a default: nothing to register ------------------------------------------


class PlacedWithVenue(msgspec.Struct, frozen=True, tag="OrderPlaced"):
    order_id: str
    qty: int
    price: float
    venue: str = "XNAS"


class OrderCancelled(msgspec.Struct, frozen=True, tag=True):
    order_id: str


class BookWithVenue(Book):
    events = (PlacedWithVenue, OrderCancelled)


async def test_stored_events_replay_after_their_type_gains_a_field_with_a_default(v1_journal: Path) -> None:
    assert await recovered(v1_journal, BookWithVenue) == (
        {"o-2": (5, 99.25, "XNAS"), "o-3": (2, 100.0, "XNAS")},
        4,
    )
    await recovered(v1_journal, BookWithVenue, PlacedWithVenue("o-4", 1, 98.0, "XLON"))
    state, seq = await recovered(v1_journal, BookWithVenue)
    assert (state["o-2"], state["o-4"], seq) == ((5, 99.25, "XNAS"), (1, 98.0, "XLON"), 5)


# -- a field is renamed: a new version (tag) and an upcaster from the old one ----------------------------


class OrderPlacedV2(msgspec.Struct, frozen=True, tag="OrderPlaced.v2"):
    order_id: str
    quantity: int
    price: float


def rename_qty(fields: dict[str, Any]) -> dict[str, Any]:
    fields["quantity"] = fields.pop("qty")
    return fields


class BookV2(Book):
    events = (OrderPlacedV2, OrderCancelled)
    upcasters = (Upcaster("OrderPlaced", to=OrderPlacedV2, upcast=rename_qty),)


async def test_stored_events_replay_after_a_field_is_renamed(v1_journal: Path) -> None:
    assert await recovered(v1_journal, BookV2) == ({"o-2": (5, 99.25), "o-3": (2, 100.0)}, 4)

    # Old and new versions in one stream replay together (one packed run of both).
    await recovered(v1_journal, BookV2, OrderPlacedV2("o-4", 7, 98.0))
    assert await recovered(v1_journal, BookV2) == (
        {"o-2": (5, 99.25), "o-3": (2, 100.0), "o-4": (7, 98.0)},
        5,
    )
    codec = EventCodec([OrderPlacedV2, OrderCancelled], upcasters=BookV2.upcasters)
    async with open_journal(v1_journal) as journal:
        events = [
            event async for run in journal.read(STREAM) for event in [codec.decode(run[1], STREAM, run[0])]
        ]
    assert events[0] == OrderPlacedV2("o-1", 3, 101.5)
    assert msgspec.msgpack.decode(codec.encode(events[-1]))["type"] == "OrderPlaced.v2"


# -- a type is renamed: an alias --------------------------------------------------------------------------


class OrderSubmitted(msgspec.Struct, frozen=True, tag=True):
    order_id: str
    qty: int
    price: float


class OrderWithdrawn(msgspec.Struct, frozen=True, tag=True):
    order_id: str


class RenamedBook(Book):
    events = (OrderSubmitted, OrderWithdrawn)
    upcasters = (Upcaster("OrderPlaced", to=OrderSubmitted), Upcaster("OrderCancelled", to=OrderWithdrawn))


async def test_stored_events_replay_after_their_type_is_renamed(v1_journal: Path) -> None:
    assert await recovered(v1_journal, RenamedBook) == ({"o-2": (5, 99.25), "o-3": (2, 100.0)}, 4)


# -- all three, as a chain of versions ------------------------------------------------------------------


class OrderSubmittedV3(msgspec.Struct, frozen=True, tag="OrderSubmitted.v3"):
    order_id: str
    quantity: int
    price: float
    venue: str = "XNAS"


class EvolvedBook(Book):
    """v1 "OrderPlaced" -(rename qty)-> v2 "OrderPlaced.v2" -(alias)-> v3 "OrderSubmitted.v3",
    which also gained ``venue``."""

    events = (OrderSubmittedV3, OrderWithdrawn)
    upcasters = (
        Upcaster("OrderPlaced", to="OrderPlaced.v2", upcast=rename_qty),
        Upcaster("OrderPlaced.v2", to=OrderSubmittedV3),
        Upcaster("OrderCancelled", to=OrderWithdrawn),
    )


async def test_a_chain_of_upcasters_takes_a_v1_event_to_the_current_version(v1_journal: Path) -> None:
    state, seq = await recovered(v1_journal, EvolvedBook, OrderSubmittedV3("o-4", 1, 97.5, "XLON"))
    assert (state, seq) == (
        {"o-2": (5, 99.25, "XNAS"), "o-3": (2, 100.0, "XNAS"), "o-4": (1, 97.5, "XLON")},
        5,
    )
    assert await recovered(v1_journal, EvolvedBook) == (state, 5)


# -- what does not upcast -----------------------------------------------------------------------------


def broken_upcast(fields: dict[str, Any]) -> dict[str, Any]:
    return {"order_id": fields["order_id"], "quantity": fields["quantity"]}  # no "quantity" in v1


class BrokenBook(Book):
    events = (OrderPlacedV2, OrderCancelled)
    upcasters = (Upcaster("OrderPlaced", to=OrderPlacedV2, upcast=broken_upcast),)


async def test_an_upcaster_that_fails_stops_recovery_naming_the_stream_and_seq(v1_journal: Path) -> None:
    async with open_journal(v1_journal) as journal:
        codec = EventCodec([OrderPlacedV2, OrderCancelled], upcasters=BrokenBook.upcasters)
        with pytest.raises(EventDecodeError) as raised:
            async with aclosing(replay_events(journal, STREAM, codec)) as runs:
                async for _ in runs:
                    pass
    assert (raised.value.stream, raised.value.seq, raised.value.problem) == (STREAM, 1, "schema")
    assert "upcasting 'OrderPlaced' to OrderPlacedV2 failed: KeyError" in str(raised.value)

    with pytest.raises(ActorStartError) as failed:
        await recovered(v1_journal, BrokenBook)
    assert isinstance(failed.value.cause, EventDecodeError)
    assert failed.value.cause.seq == 1


async def test_an_old_tag_without_an_upcaster_still_fails_as_before(v1_journal: Path) -> None:
    async with open_journal(v1_journal) as journal:
        codec = EventCodec(
            [OrderSubmitted, OrderCancelled], upcasters=[Upcaster("Elsewhere", to=OrderSubmitted)]
        )
        with pytest.raises(EventDecodeError) as raised:
            async with aclosing(replay_events(journal, STREAM, codec)) as runs:
                async for _ in runs:
                    pass
    assert (raised.value.seq, raised.value.problem) == (1, "schema")


def test_packed_runs_of_current_and_old_events_decode_in_order_and_a_bad_one_refuses_the_run() -> None:
    codec = EventCodec([OrderPlacedV2, OrderCancelled], upcasters=BookV2.upcasters)
    old = msgspec.msgpack.encode({"type": "OrderPlaced", "order_id": "o-1", "qty": 3, "price": 1.0})
    new = codec.encode(OrderPlacedV2("o-2", 4, 2.0))
    cancelled = codec.encode(OrderCancelled("o-1"))

    assert codec.decode_packed(new + old + cancelled + old, 4) == [
        OrderPlacedV2("o-2", 4, 2.0),
        OrderPlacedV2("o-1", 3, 1.0),
        OrderCancelled("o-1"),
        OrderPlacedV2("o-1", 3, 1.0),
    ]
    unknown = msgspec.msgpack.encode({"type": "Nope", "order_id": "o-1"})
    assert codec.decode_packed(new + unknown, 2) is None
    assert codec.decode_packed(new + old, 3) is None
    with pytest.raises(EventDecodeError) as raised:
        codec.decode_rows([(1, new), (2, old), (3, unknown)], STREAM)
    assert (raised.value.seq, raised.value.problem) == (3, "schema")


V1_ORDER = st.builds(
    lambda order_id, qty, price: {"type": "OrderPlaced", "order_id": order_id, "qty": qty, "price": price},
    st.text(max_size=6),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
)


@settings(max_examples=80, deadline=None)
@given(stored=st.lists(st.tuples(V1_ORDER, st.booleans()), min_size=1, max_size=20))
def test_any_mix_of_old_and_current_events_replays_as_the_current_type_in_order(
    stored: list[tuple[dict[str, Any], bool]],
) -> None:
    codec = EventCodec([OrderPlacedV2, OrderCancelled], upcasters=BookV2.upcasters)
    expected = [OrderPlacedV2(fields["order_id"], fields["qty"], fields["price"]) for fields, _ in stored]
    payloads = [
        codec.encode(current) if as_current else msgspec.msgpack.encode(fields)
        for (fields, as_current), current in zip(stored, expected, strict=True)
    ]

    assert codec.decode_packed(b"".join(payloads), len(payloads)) == expected
    assert codec.decode_rows(list(enumerate(payloads, start=1)), STREAM) == expected


# -- registration errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upcasters", "field", "wording"),
    [
        ([Upcaster("OrderCancelled", to=OrderPlacedV2)], "upcasters[0]", "is the tag of the registered"),
        (
            [Upcaster("OrderPlaced", to=OrderPlacedV2), Upcaster("OrderPlaced", to=OrderPlacedV2)],
            "upcasters[1]",
            "a second upcaster of 'OrderPlaced'",
        ),
        ([Upcaster("OrderPlaced", to=OrderSubmitted)], "upcasters[0]", "which is not in the events list"),
        (
            [Upcaster("OrderPlaced", to="OrderPlaced.v9")],
            "upcasters",
            "is neither a registered event type's tag",
        ),
        (
            [Upcaster("A", to="B"), Upcaster("B", to="A")],
            "upcasters",
            "go round in a cycle",
        ),
        (["OrderPlaced"], "upcasters[0]", "must be a garrison.persistence.Upcaster"),
    ],
)
def test_upcasters_that_cannot_work_are_refused_when_the_codec_is_built(
    upcasters: Sequence[Any], field: str, wording: str
) -> None:
    with pytest.raises(InvalidConfig) as raised:
        EventCodec([OrderPlacedV2, OrderCancelled], upcasters=upcasters)
    assert raised.value.field == field
    assert wording in str(raised.value)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        (("", OrderPlacedV2), "Upcaster.tag"),
        ((None, OrderPlacedV2), "Upcaster.tag"),
        (("OrderPlaced", object), "Upcaster.to"),
        (("OrderPlaced.v2", OrderPlacedV2), "Upcaster.to"),
        (("OrderPlaced", OrderPlacedV2, "rename"), "Upcaster.upcast"),
    ],
)
def test_an_upcaster_with_a_bad_argument_names_it(arguments: tuple[Any, ...], field: str) -> None:
    with pytest.raises(InvalidConfig) as raised:
        Upcaster(*arguments)
    assert raised.value.field == field


def test_an_actor_with_upcasters_that_cannot_work_fails_at_class_definition() -> None:
    with pytest.raises(InvalidConfig) as raised:

        class Wrong(Book):
            events = (OrderPlacedV2,)
            upcasters = (Upcaster("OrderPlaced", to=OrderSubmitted),)

    assert raised.value.field == "upcasters[0]"
