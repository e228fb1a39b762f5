"""The broker protocol: length-prefixed msgpack frames over TCP.

A frame is a 4-byte big-endian length, then one msgpack-encoded message
(a tagged msgspec Struct). Frames larger than ``MAX_FRAME`` are refused.
Every request the broker cannot parse gets an ``Error`` reply naming what
was wrong; the connection stays open unless the frame boundary is lost.

Client -> broker: Hello, NewOrder, CancelOrder, QueryOrder.
Broker -> client: Welcome, OrderAccepted, OrderRejected, Fill, OrderStatus,
CancelResult, Error.

Fills carry a broker-wide sequence number (``fill_seq``); ``Hello`` asks
for every fill after the one the client has durably applied, so a client
that was away misses none and can drop the ones it has seen.
"""

from __future__ import annotations

import asyncio
import enum
import struct
from typing import Union

import msgspec

MAX_FRAME = 64 * 1024
_HEADER = struct.Struct(">I")


class Side(enum.StrEnum):
    """Each side is also its own text on the wire and in the broker's store (``"buy"``)."""

    BUY = "buy"
    SELL = "sell"


class OrderState(enum.StrEnum):
    """Where an order stands at the venue: what an OrderStatus reports and the broker stores.
    Each state is also its own text on the wire and in the store (``"partially_filled"``)."""

    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"


OPEN_STATES = frozenset({OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED})
"""An order in one of these may still fill, or be cancelled."""
CLOSED_STATES = frozenset({OrderState.FILLED, OrderState.CANCELLED})
"""An order in one of these is finished: nothing more happens to it."""


class Hello(msgspec.Struct, frozen=True, array_like=True, tag="hello"):
    """First frame from a client: who it is and the last fill it has applied."""

    client_id: str
    fills_after: int = 0


class NewOrder(msgspec.Struct, frozen=True, array_like=True, tag="new_order"):
    """Place a limit order; ``client_order_id`` is the client's idempotency key."""

    client_order_id: str
    symbol: str
    side: Side
    qty: int
    price: float


class CancelOrder(msgspec.Struct, frozen=True, array_like=True, tag="cancel_order"):
    client_order_id: str


class QueryOrder(msgspec.Struct, frozen=True, array_like=True, tag="query_order"):
    """Look an order up by client order id (answers may lag acceptance: see Welcome)."""

    client_order_id: str
    request_id: int


class Welcome(msgspec.Struct, frozen=True, array_like=True, tag="welcome"):
    """The broker's answer to Hello, with what clients must know about its lookups.

    ``lookup_lag_seconds``: an accepted order may stay invisible to
    QueryOrder for up to this long, so "not found" is reliable only for an
    order sent longer ago than that. ``dedupe``: always | while-open | none.
    """

    broker_id: str
    lookup_lag_seconds: float
    dedupe: str


class OrderAccepted(msgspec.Struct, frozen=True, array_like=True, tag="order_accepted"):
    client_order_id: str
    order_id: str


class OrderRejected(msgspec.Struct, frozen=True, array_like=True, tag="order_rejected"):
    client_order_id: str
    reason: str
    duplicate: bool = False
    """True when refused because the client order id is already known (dedupe)."""


class Fill(msgspec.Struct, frozen=True, array_like=True, tag="fill"):
    fill_seq: int
    client_order_id: str
    order_id: str
    symbol: str
    side: Side
    qty: int
    price: float
    leaves_qty: int


class OrderStatus(msgspec.Struct, frozen=True, array_like=True, tag="order_status"):
    """Answer to QueryOrder. ``found=False`` may be stale: see Welcome.lookup_lag_seconds."""

    request_id: int
    client_order_id: str
    found: bool
    state: OrderState | None = None
    """Where the order stands (None when not found)."""
    order_id: str = ""
    filled_qty: int = 0
    qty: int = 0


class CancelResult(msgspec.Struct, frozen=True, array_like=True, tag="cancel_result"):
    client_order_id: str
    cancelled: bool
    reason: str = ""


class Error(msgspec.Struct, frozen=True, array_like=True, tag="error"):
    """A request the broker could not take; the reason names what was wrong."""

    reason: str


ClientMessage = Union[Hello, NewOrder, CancelOrder, QueryOrder]  # noqa: UP007
BrokerMessage = Union[Welcome, OrderAccepted, OrderRejected, Fill, OrderStatus, CancelResult, Error]  # noqa: UP007

_encoder = msgspec.msgpack.Encoder()
client_decoder: msgspec.msgpack.Decoder[ClientMessage] = msgspec.msgpack.Decoder(ClientMessage)
broker_decoder: msgspec.msgpack.Decoder[BrokerMessage] = msgspec.msgpack.Decoder(BrokerMessage)


class FrameError(Exception):
    """The byte stream is not valid framing (oversized or truncated): the connection must close."""


def encode_frame(message: msgspec.Struct) -> bytes:
    payload = _encoder.encode(message)
    return _HEADER.pack(len(payload)) + payload


class FrameSplitter:
    """Whole frames out of a byte stream read in chunks (one read for many frames).

    ``split(chunk)`` returns the payloads the bytes so far complete, in order, and
    keeps a partial frame for the next chunk. Raises FrameError for an oversized frame;
    ``end()`` raises it if the stream ended inside a frame.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def split(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += chunk
        size = len(buffer)
        payloads = []
        offset = 0
        while size - offset >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer, offset)
            if length > MAX_FRAME:
                raise FrameError(f"frame of {length} bytes exceeds MAX_FRAME={MAX_FRAME}")
            end = offset + _HEADER.size + length
            if end > size:
                break
            payloads.append(bytes(buffer[offset + _HEADER.size : end]))
            offset = end
        del buffer[:offset]
        return payloads

    def end(self) -> None:
        buffer = self._buffer
        if not buffer:
            return
        if len(buffer) < _HEADER.size:
            raise FrameError(f"stream ended inside a frame header ({len(buffer)} of {_HEADER.size} bytes)")
        (length,) = _HEADER.unpack_from(buffer)
        raise FrameError(f"stream ended inside a frame ({len(buffer) - _HEADER.size} of {length} bytes)")


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame's payload, or None at a clean end of stream.

    Raises FrameError for an oversized frame or a stream cut inside a frame.
    """
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise FrameError(f"stream ended inside a frame header ({len(error.partial)} of 4 bytes)") from error
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes exceeds MAX_FRAME={MAX_FRAME}")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as error:
        raise FrameError(f"stream ended inside a frame ({len(error.partial)} of {length} bytes)") from error
