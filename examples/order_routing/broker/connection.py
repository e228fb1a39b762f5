"""One client connection: framing, the Hello handshake, bad input, and output batching.

Bad input never takes the broker down. A frame that does not decode gets an
``Error`` naming what was wrong and the connection carries on; a frame the
stream cannot be resynchronised after (an oversized length, a stream cut
inside a frame) gets an ``Error`` and then the connection is closed.

Output is coalesced: every frame queued in one loop turn goes out in one
write. When the socket's buffer is past its high-water mark the connection
stops reading requests until it drains, so a client that does not read its
replies cannot make the broker buffer without bound.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import msgspec
from loguru import logger

from ..protocol import (
    MAX_FRAME,
    CancelOrder,
    Error,
    Hello,
    NewOrder,
    QueryOrder,
    client_decoder,
    encode_frame,
)
from .venue import MAX_ID_LENGTH, Venue

_HEADER = struct.Struct(">I")
_REQUESTS: dict[str, type[msgspec.Struct]] = {
    kind.__struct_config__.tag: kind  # type: ignore[misc]
    for kind in (Hello, NewOrder, CancelOrder, QueryOrder)
}
_WRITE_HIGH_WATER = 1 << 20


class BrokerConnection(asyncio.Protocol):
    def __init__(self, venue: Venue, connections: set[BrokerConnection]) -> None:
        self._venue = venue
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._flush_pending = False
        self._client_id: str | None = None
        self._taking_requests = True
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._out.clear()
        self._connections.discard(self)
        if self._client_id is not None:
            self._venue.disconnect(self, self._client_id)

    def data_received(self, data: bytes) -> None:
        if not self._taking_requests:
            return
        buffer = self._buffer
        buffer += data
        offset, size = 0, len(buffer)
        with memoryview(buffer) as view:
            while self._taking_requests and size - offset >= _HEADER.size:
                (length,) = _HEADER.unpack_from(buffer, offset)
                if length > MAX_FRAME:
                    self._venue.stats.bad_frames += 1
                    self.close_with_error(f"frame of {length} bytes exceeds MAX_FRAME={MAX_FRAME}")
                    break
                end = offset + _HEADER.size + length
                if end > size:
                    break
                with view[offset + _HEADER.size : end] as payload:  # released before the buffer shrinks
                    try:
                        self._frame(payload)
                    except Exception as error:  # a bug here must cost one connection, never the broker
                        logger.opt(exception=True).error(
                            "broker failed on a frame from {client}", client=self._client_id or "(no hello)"
                        )
                        self.close_with_error(f"internal error: {error!r}")
                offset = end
        if self._taking_requests:
            del buffer[:offset]
        else:
            buffer.clear()

    def eof_received(self) -> bool:
        buffer = self._buffer
        if self._taking_requests and buffer:
            self._venue.stats.bad_frames += 1
            if len(buffer) < _HEADER.size:
                reason = f"stream ended inside a frame header ({len(buffer)} of {_HEADER.size} bytes)"
            else:
                (length,) = _HEADER.unpack_from(buffer)
                reason = f"stream ended inside a frame ({len(buffer) - _HEADER.size} of {length} bytes)"
            self.send(encode_frame(Error(reason)))
        self._taking_requests = False
        self._flush()
        return False  # the transport closes once what was written has gone out

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    # -- what the venue and the server use --------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Queue a frame; every frame queued in this loop turn is written together."""
        if self._closed:
            return
        self._out.append(frame)
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def hold(self) -> None:
        self._taking_requests = False

    def reset(self) -> None:
        """Abort with a TCP RST: the client sees ECONNRESET, and nothing queued is sent."""
        self._taking_requests = False
        transport = self._transport
        if self._closed or transport is None or transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._out.clear()
        transport.abort()

    def close_with_error(self, reason: str) -> None:
        """Send an Error, then close once it has been written; no further request is read."""
        logger.bind(actor="broker").info(
            "closing connection of {client}: {reason}", client=self._client_id or "(no hello)", reason=reason
        )
        self._taking_requests = False
        self.send(encode_frame(Error(reason)))
        self.close()

    def close(self) -> None:
        self._taking_requests = False
        self._flush()
        if self._transport is not None:
            self._transport.close()

    # -- requests ---------------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_pending = False
        if (
            self._out
            and not self._closed
            and self._transport is not None
            and not self._transport.is_closing()
        ):
            self._transport.write(b"".join(self._out))
        self._out.clear()

    def _frame(self, payload: memoryview) -> None:
        try:
            request = client_decoder.decode(payload)
        except msgspec.DecodeError as error:
            self._venue.stats.bad_frames += 1
            reason = _undecodable(payload, error)
            if self._client_id is None:
                self.close_with_error(reason)
            else:
                self.send(encode_frame(Error(reason)))
            return
        self._request(request)

    def _request(self, request: Hello | NewOrder | CancelOrder | QueryOrder) -> None:
        client_id = self._client_id
        if client_id is None:
            if not isinstance(request, Hello):
                self.close_with_error(f"the first frame must be hello, got {_tag(request)}")
            elif problem := _hello_problem(request):
                self.close_with_error(problem)
            else:
                self._client_id = request.client_id
                self._venue.hello(self, request)
        elif isinstance(request, NewOrder):
            self._venue.new_order(self, client_id, request)
        elif isinstance(request, QueryOrder):
            self._venue.query_order(self, client_id, request)
        elif isinstance(request, CancelOrder):
            self._venue.cancel_order(self, client_id, request)
        else:
            self.send(encode_frame(Error(f"already said hello as client_id {client_id!r}")))


def _hello_problem(hello: Hello) -> str | None:
    if not hello.client_id:
        return "hello.client_id must not be empty"
    if len(hello.client_id) > MAX_ID_LENGTH:
        return f"hello.client_id must be at most {MAX_ID_LENGTH} characters, got {len(hello.client_id)}"
    if hello.fills_after < 0:
        return f"hello.fills_after must be >= 0, got {hello.fills_after}"
    return None


def _tag(message: msgspec.Struct) -> str:
    return str(type(message).__struct_config__.tag)


def _undecodable(payload: memoryview, error: msgspec.DecodeError) -> str:
    """Say what is wrong with a frame in the protocol's terms: the message type and field, not $[i]."""
    try:
        raw = msgspec.msgpack.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return f"frame is not a valid msgpack message: {error}"
    if not (isinstance(raw, list) and raw and isinstance(raw[0], str)):
        return f"frame is not a tagged message [type, fields...]: {error}"
    kind = _REQUESTS.get(raw[0])
    if kind is None:
        return f"unknown message type {raw[0]!r} (expected one of {', '.join(_REQUESTS)})"
    # The first field whose value does not convert to its declared type: found
    # by trying each, not by reading the decoder's own message.
    for field, value in zip(msgspec.structs.fields(kind), raw[1:], strict=False):
        try:
            msgspec.convert(value, field.type)
        except msgspec.ValidationError:
            expected = getattr(field.type, "__name__", str(field.type))
            return f"invalid {raw[0]}.{field.name}: {value!r} is not a valid {expected}"
    return f"invalid {raw[0]}: {error}"
