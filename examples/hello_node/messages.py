"""The messages of hello_node: nouns are facts, imperatives are commands.

Messages are frozen msgspec Structs: immutable once sent, cheap to build,
and ready to cross a process boundary or a journal if they ever need to.
"""

from __future__ import annotations

import msgspec

# -- producer -> slow consumer (BACKPRESSURE) ------------------------------


class ProduceNext(msgspec.Struct, frozen=True):
    """The producer's note to itself: send one more job."""


class ProcessJob(msgspec.Struct, frozen=True):
    seq: int


class GetBackpressureReport(msgspec.Struct, frozen=True):
    """Ask the producer how long it has waited for the consumer."""


class BackpressureReport(msgspec.Struct, frozen=True):
    jobs_sent: int
    waited_seconds: float
    longest_wait_seconds: float


# -- price feed -> price board (CONFLATE) ----------------------------------


class PublishTicks(msgspec.Struct, frozen=True):
    """The feed's note to itself: publish one tick per symbol."""


class Tick(msgspec.Struct, frozen=True):
    symbol: str
    price: float
    seq: int


class GetPrices(msgspec.Struct, frozen=True):
    pass


class Prices(msgspec.Struct, frozen=True):
    latest: dict[str, float]
    ticks_applied: int


# -- order desk (REJECT, ask, a crash) -------------------------------------


class PlaceOrder(msgspec.Struct, frozen=True):
    symbol: str
    quantity: int


class OrderAccepted(msgspec.Struct, frozen=True):
    order_id: int
    symbol: str
    quantity: int


class ReconcileBook(msgspec.Struct, frozen=True):
    """A slow command: the desk checks every order it holds."""


class BookReconciled(msgspec.Struct, frozen=True):
    orders: int


# -- overseer (watch) ------------------------------------------------------


class ListTerminations(msgspec.Struct, frozen=True):
    """Ask the overseer which watched actors it has seen terminate."""
