"""Events and snapshots: msgspec Structs as msgpack, with a type tag, validated on decode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import msgspec

from garrison._errors import DecodeProblem, EventDecodeError, InvalidConfig

# TypeError: a stored payload that is not bytes at all (a TEXT or INTEGER value
# written into the row by something other than the journal). UnicodeDecodeError:
# a string field whose bytes are not UTF-8 (msgspec raises it as it is).
_UNDECODABLE = (msgspec.DecodeError, msgspec.ValidationError, TypeError, UnicodeDecodeError)
_MAX_PACKED = 2**32 - 1  # the count field of a msgpack array32 header


def _problem(payload: object, error: BaseException) -> DecodeProblem:
    """Why ``payload`` did not decode, by garrison's rule rather than the decoder's wording:
    bytes that are not one whole msgpack value are malformed, whatever the decoder met first."""
    if isinstance(error, TypeError):
        return "not-bytes"
    try:
        msgspec.msgpack.decode(payload)  # type: ignore[call-overload]
    except _UNDECODABLE:
        return "malformed"
    return "schema"


def _check_event_type(event_type: object) -> type[msgspec.Struct]:
    if not (isinstance(event_type, type) and issubclass(event_type, msgspec.Struct)):
        raise InvalidConfig("events", event_type, "event types must be msgspec.Struct subclasses")
    if event_type.__struct_config__.tag is None:
        raise InvalidConfig(
            "events",
            event_type.__qualname__,
            "event types need a type tag: declare "
            f"'class {event_type.__name__}(msgspec.Struct, frozen=True, tag=True)'",
        )
    return event_type


class EventCodec:
    """Encodes the registered event types to msgpack and decodes them back.

    Each Struct carries its tag (``tag=True`` uses the class name), so one
    decoder validates any registered type: an unknown tag or a wrong field
    type raises EventDecodeError naming the stream and sequence number.
    """

    def __init__(self, event_types: Sequence[type[msgspec.Struct]]) -> None:
        types = tuple(_check_event_type(event_type) for event_type in event_types)
        if not types:
            raise InvalidConfig("events", (), "register at least one event type")
        tags: dict[Any, type[msgspec.Struct]] = {}
        for event_type in types:
            tag = event_type.__struct_config__.tag
            if tag in tags and tags[tag] is not event_type:
                raise InvalidConfig(
                    "events",
                    event_type.__qualname__,
                    f"tag {tag!r} is already used by {tags[tag].__qualname__}",
                )
            tags[tag] = event_type
        self.types = types
        self._known = frozenset(types)
        self._encoder = msgspec.msgpack.Encoder()
        union: Any = types[0] if len(types) == 1 else Union[types]  # noqa: UP007
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(union)
        self._packed_decoder: msgspec.msgpack.Decoder[list[Any]] = msgspec.msgpack.Decoder(list[union])

    def encode(self, event: Any, stream: str = "") -> bytes:
        """Encode one event. Raises InvalidConfig for a type that was not registered."""
        if type(event) not in self._known:
            raise InvalidConfig(
                "event",
                type(event).__qualname__,
                f"is not a registered event type of {stream or 'this codec'}: "
                f"add it to the events list ({', '.join(t.__qualname__ for t in self.types)})",
            )
        return self._encoder.encode(event)

    def decode(self, payload: bytes, stream: str, seq: int) -> Any:
        """Decode one stored event; raises EventDecodeError naming stream and seq."""
        try:
            return self._decoder.decode(payload)
        except _UNDECODABLE as error:
            raise EventDecodeError(stream, seq, error, _problem(payload, error)) from error

    def decode_rows(self, rows: Sequence[tuple[int, bytes]], stream: str) -> list[Any]:
        """Decode a batch of ``(seq, payload)`` rows in order (the replay fast path)."""
        decode = self._decoder.decode
        try:
            return [decode(payload) for _, payload in rows]
        except _UNDECODABLE:
            for seq, payload in rows:
                self.decode(payload, stream, seq)
            raise

    def decode_packed(self, payloads: bytes, count: int) -> list[Any] | None:
        """Decode ``count`` events stored back to back in ``payloads``, in one call.

        Returns the events, exactly ``count`` of them, in order; or None if
        ``payloads`` is not exactly ``count`` registered events: then decode
        the rows one by one (``decode_rows``) to learn which event is bad.
        """
        if count < 1 or count > _MAX_PACKED:
            return None
        try:
            events: list[Any] = self._packed_decoder.decode(b"\xdd" + count.to_bytes(4, "big") + payloads)
        except _UNDECODABLE:
            return None
        return events


class StateCodec:
    """Snapshots: any msgspec-encodable state type, validated on decode."""

    def __init__(self, state_type: Any) -> None:
        self.state_type = state_type
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(state_type)

    def encode(self, state: Any) -> bytes:
        return self._encoder.encode(state)

    def decode(self, payload: bytes, stream: str, seq: int) -> Any:
        try:
            return self._decoder.decode(payload)
        except _UNDECODABLE as error:
            raise EventDecodeError(stream, seq, error, _problem(payload, error)) from error
