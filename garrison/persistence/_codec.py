"""Events and snapshots: msgspec Structs as msgpack, with a type tag, validated on encode and decode.

Every encode proves its round trip before anything is written: the encoded
bytes are decoded again by the very decoder replay uses and compared with the
value. That is the check that matters (what replay will read, with msgspec's
own strictness and constraints) and the cheapest one msgspec offers: one
C-level decode, about the cost of the encode. The comparison catches a value
that decodes as another (a list where the type says tuple, a string where it
says datetime); it is skipped for types whose fields are all plain scalars,
where a value that decodes reads back equal. Only a value that fails is
walked field by field to name the culprit (``_roundtrip``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import msgspec

from garrison._errors import DecodeProblem, EventDecodeError, InvalidConfig
from garrison.persistence._roundtrip import invalid_event, same
from garrison.persistence._upcast import Chain, Upcaster, chains

# TypeError: a stored payload that is not bytes at all (a TEXT or INTEGER value
# written into the row by something other than the journal). UnicodeDecodeError:
# a string field whose bytes are not UTF-8 (msgspec raises it as it is).
_UNDECODABLE = (msgspec.DecodeError, msgspec.ValidationError, TypeError, UnicodeDecodeError)
_MAX_PACKED = 2**32 - 1  # the count field of a msgpack array32 header
# What msgspec's encoder raises for a value it cannot encode (an unsupported type, an int out of range).
_UNENCODABLE = (TypeError, ValueError, OverflowError, msgspec.MsgspecError)
_encode_stored = msgspec.msgpack.Encoder().encode
_decode_stored = msgspec.msgpack.Decoder().decode


_SCALARS = frozenset({str, int, float, bool, bytes, type(None)})


def _flat(event_type: type[msgspec.Struct]) -> bool:
    """Whether every field is a plain scalar: then an event that decodes back reads back
    equal (a value of another type does not decode), and the comparison is skipped."""
    return all(field.type in _SCALARS for field in msgspec.structs.fields(event_type))


class _NotUpcast(Exception):
    """The stored event is not of a tag any upcaster reads."""


class _UpcastFailed(ValueError):
    """An event of an upcast tag did not become its registered type."""


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
    ``encode`` proves the event decodes back as itself, or raises
    InvalidEvent naming the field.

    ``upcasters`` read stored events of older versions (older tags) as the
    registered types; events of the registered tags decode as fast as
    without them.
    """

    def __init__(
        self, event_types: Sequence[type[msgspec.Struct]], *, upcasters: Sequence[Upcaster] = ()
    ) -> None:
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
        self._compared = frozenset(event_type for event_type in types if not _flat(event_type))
        self._encoder = msgspec.msgpack.Encoder()
        union: Any = types[0] if len(types) == 1 else Union[types]  # noqa: UP007
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(union)
        self._packed_decoder: msgspec.msgpack.Decoder[list[Any]] = msgspec.msgpack.Decoder(list[union])
        self.upcasters = tuple(upcasters)
        self._chains: dict[Any, Chain] = chains(self.upcasters, tags)
        self._tag_fields = tuple(dict.fromkeys(t.__struct_config__.tag_field for t in types))
        self._raw_packed: msgspec.msgpack.Decoder[list[msgspec.Raw]] = msgspec.msgpack.Decoder(
            list[msgspec.Raw]
        )

    def encode(self, event: Any, stream: str = "") -> bytes:
        """Encode one event, proven to decode back as itself.

        Raises InvalidConfig for a type that was not registered, InvalidEvent
        (naming the type, the field and its value) for an event that would
        not read back as it is: either way nothing is encoded.
        """
        event_type = type(event)
        if event_type not in self._known:
            raise InvalidConfig(
                "event",
                event_type.__qualname__,
                f"is not a registered event type of {stream or 'this codec'}: "
                f"add it to the events list ({', '.join(t.__qualname__ for t in self.types)})",
            )
        try:
            payload = self._encoder.encode(event)
        except _UNENCODABLE as error:
            raise invalid_event(event, event_type, event_type.__qualname__, "unencodable") from error
        try:
            read_back = self._decoder.decode(payload)
        except _UNDECODABLE as error:
            raise invalid_event(event, event_type, event_type.__qualname__, "invalid") from error
        if event_type in self._compared and read_back != event and not same(read_back, event):
            raise invalid_event(event, event_type, event_type.__qualname__, "changed", read_back)
        return payload

    def decode(self, payload: bytes, stream: str, seq: int) -> Any:
        """Decode one stored event (upcast if it is of an older tag); raises EventDecodeError
        naming stream and seq."""
        try:
            return self._decoder.decode(payload)
        except _UNDECODABLE as error:
            if self._chains:
                try:
                    return self._upcast(payload)
                except _UpcastFailed as failed:
                    raise EventDecodeError(stream, seq, failed, "schema") from failed.__cause__
                except _NotUpcast:
                    pass
            raise EventDecodeError(stream, seq, error, _problem(payload, error)) from error

    def decode_rows(self, rows: Sequence[tuple[int, bytes]], stream: str) -> list[Any]:
        """Decode a batch of ``(seq, payload)`` rows in order (the replay fast path)."""
        decode = self._decoder.decode
        try:
            return [decode(payload) for _, payload in rows]
        except _UNDECODABLE:
            return [self.decode(payload, stream, seq) for seq, payload in rows]

    def _upcast(self, payload: bytes | msgspec.Raw) -> Any:
        """The stored event of an older tag, as its registered type. Raises _NotUpcast if it
        is of no tag an upcaster reads, _UpcastFailed if its chain does not yield one."""
        try:
            stored = _decode_stored(payload)
        except _UNDECODABLE:
            raise _NotUpcast from None
        chain, fields = self._chain_of(stored)
        target = chain.target
        config = target.__struct_config__
        try:
            for upcast in chain.steps:
                if upcast is not None:
                    if not isinstance(fields, dict):
                        raise TypeError(f"{target.__qualname__} is array_like: its fields have no names")
                    fields = upcast(dict(fields))
                    if not isinstance(fields, dict):
                        raise TypeError(f"the upcaster returned {type(fields).__name__}, not a dict")
            if isinstance(fields, dict):
                current: Any = {**fields, config.tag_field: config.tag}
            else:
                current = [config.tag, *fields]
            return self._decoder.decode(_encode_stored(current))
        except Exception as error:
            raise _UpcastFailed(
                f"upcasting {chain.tag!r} to {target.__qualname__} failed: {type(error).__name__}: {error}"
            ) from error

    def _chain_of(self, stored: Any) -> tuple[Chain, dict[str, Any] | list[Any]]:
        """The chain of a stored event's tag, and its fields without the tag."""
        if type(stored) is dict:
            for field in self._tag_fields:
                tag = stored.get(field)
                chain = self._chains.get(tag) if isinstance(tag, (str, int)) else None
                if chain is not None:
                    return chain, {key: value for key, value in stored.items() if key != field}
        elif type(stored) is list and stored and isinstance(stored[0], (str, int)):
            chain = self._chains.get(stored[0])
            if chain is not None:
                return chain, stored[1:]
        raise _NotUpcast

    def decode_packed(self, payloads: bytes, count: int) -> list[Any] | None:
        """Decode ``count`` events stored back to back in ``payloads``, in one call.

        Returns the events, exactly ``count`` of them, in order; or None if
        ``payloads`` is not exactly ``count`` registered events: then decode
        the rows one by one (``decode_rows``) to learn which event is bad.
        """
        if count < 1 or count > _MAX_PACKED:
            return None
        packed = b"\xdd" + count.to_bytes(4, "big") + payloads
        try:
            events: list[Any] = self._packed_decoder.decode(packed)
        except _UNDECODABLE:
            return self._decode_packed_upcasting(packed) if self._chains else None
        return events

    def _decode_packed_upcasting(self, packed: bytes) -> list[Any] | None:
        """A packed run with events of older tags: each event decoded on its own, upcast if
        it must be; None if one does not decode either way (the rows tell which)."""
        try:
            raws = self._raw_packed.decode(packed)
        except _UNDECODABLE:
            return None
        decode = self._decoder.decode
        events: list[Any] = []
        for raw in raws:
            try:
                events.append(decode(raw))
            except _UNDECODABLE:
                try:
                    events.append(self._upcast(raw))
                except (_NotUpcast, _UpcastFailed):
                    return None
        return events


class StateCodec:
    """Snapshots: any msgspec-encodable state type, validated on decode."""

    def __init__(self, state_type: Any) -> None:
        self.state_type = state_type
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(state_type)

    def encode(self, state: Any) -> bytes:
        """Encode a state, proven to decode back as itself; raises InvalidEvent (naming the
        field and its value) for one that would not, and nothing is encoded."""
        name = f"snapshot of {getattr(self.state_type, '__qualname__', self.state_type)}"
        try:
            payload = self._encoder.encode(state)
        except _UNENCODABLE as error:
            raise invalid_event(state, self.state_type, name, "unencodable") from error
        try:
            read_back = self._decoder.decode(payload)
        except _UNDECODABLE as error:
            raise invalid_event(state, self.state_type, name, "invalid") from error
        if read_back != state and not same(read_back, state):
            raise invalid_event(state, self.state_type, name, "changed", read_back)
        return payload

    def decode(self, payload: bytes, stream: str, seq: int) -> Any:
        try:
            return self._decoder.decode(payload)
        except _UNDECODABLE as error:
            raise EventDecodeError(stream, seq, error, _problem(payload, error)) from error
