"""FIX wire encoding and parsing: typed messages to frames and a byte stream back to messages.

``encode`` writes the standard header in the order strict acceptors require (8, 9, 35, 49, 56,
34, 52, then 43 and 122 on a resend), SendingTime in UTC with milliseconds, BodyLength and
CheckSum. It writes exactly the bytes simplefix writes for the same pairs (``encode_reference``,
its test oracle and the path for UnknownMessage), in one join rather than pair by pair.
``decode`` reads ordinary frames by position and leaves every other to ``decode_reference``.

``FrameReader`` takes bytes as they come off a socket and hands back whole messages. It frames
by BodyLength (9) and checks the CheckSum (10) itself (simplefix's parser checks neither); a
frame that is garbled, cut short of its declared length or has a wrong checksum is dropped and
counted (``dropped``), and reading resumes at the next ``8=FIX``: nothing raises out of
``feed``. A frame whose header is sound but whose body does not fit its message type comes back
as ``InvalidMessage``, for the session to answer with a Reject (35=3). Tags a message type does
not declare are kept in ``Inbound.unknown`` and otherwise ignored.
"""

from __future__ import annotations

import datetime
import functools
import math
import zlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, Union

import msgspec
import simplefix  # type: ignore[import-untyped]
from simplefix.data import RAW_LEN_TAGS  # type: ignore[import-untyped]

from examples.order_routing.fix.errors import FixEncodeError
from examples.order_routing.fix.messages import (
    MESSAGE_TYPES,
    FixMessageBase,
    Header,
    Message,
    SessionRejectReason,
    UnknownMessage,
)

FIX44: Final = "FIX.4.4"
FIX42: Final = "FIX.4.2"
SOH: Final = b"\x01"
MAX_BODY_LENGTH: Final = 1 << 20
"""A BodyLength above this is taken for garbage, not waited for."""
_HEADER_TAGS: Final = frozenset({8, 9, 10, 34, 35, 43, 49, 52, 56, 97, 122})
_RAW_LEN_TAGS: Final = frozenset(int(tag) for tag in RAW_LEN_TAGS)
_START: Final = b"8=FIX"
_RESYNC: Final = b"\x018=FIX"
_ADLER_EXACT: Final = 256


def checksum_of(data: bytes) -> int:
    """The FIX CheckSum (10) of ``data``: the sum of its bytes modulo 256.

    Computed in C with zlib's Adler-32, whose low half is 1 + the sum of the bytes modulo 65521:
    exact for up to 256 bytes (1 + 256 * 255 < 65521), so longer data is taken 256 bytes at a
    time. ``sum(data)`` walks the bytes as Python ints, several times slower for a frame."""
    if len(data) <= _ADLER_EXACT:
        return ((zlib.adler32(data) & 0xFFFF) - 1) & 0xFF
    view = memoryview(data)
    total = 0
    for start in range(0, len(view), _ADLER_EXACT):
        total += (zlib.adler32(view[start : start + _ADLER_EXACT]) & 0xFFFF) - 1
    return total & 0xFF


@functools.lru_cache(maxsize=4)
def _second_text(second: int) -> str:
    moment = datetime.datetime.fromtimestamp(second, datetime.UTC)
    return moment.strftime("%Y%m%d-%H:%M:%S.")


def sending_time(epoch_seconds: float) -> str:
    """UTCTimestamp with milliseconds (``YYYYMMDD-HH:MM:SS.sss``), as FIX 4.4 SendingTime wants it."""
    # Every message is stamped: the date and time of day are formatted once per second, and the
    # microseconds rounded as datetime.fromtimestamp rounds them (half to even, carrying over).
    fraction, whole = math.modf(epoch_seconds)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        micro -= 1_000_000
        whole += 1
    elif micro < 0:
        micro += 1_000_000
        whole -= 1
    return _second_text(int(whole)) + f"{micro // 1000:03d}"


def parse_sending_time(value: str) -> float | None:
    """Epoch seconds of a UTCTimestamp (with or without fractions), or None if it is not one."""
    for layout in ("%Y%m%d-%H:%M:%S.%f", "%Y%m%d-%H:%M:%S"):
        try:
            moment = datetime.datetime.strptime(value, layout)
        except ValueError:
            continue
        return moment.replace(tzinfo=datetime.UTC).timestamp()
    return None


# ---- field conversion ---------------------------------------------------------------------


def _kind(annotation: Any) -> str:
    text = str(annotation)
    for kind in ("bool", "int", "float", "str"):
        if text == f"<class '{kind}'>" or text.startswith(kind) or text.startswith(f"<class '{kind}'>"):
            return kind
    raise TypeError(f"unsupported FIX field type {annotation!r}")


class _Field(msgspec.Struct, frozen=True):
    name: str
    tag: int
    kind: str
    required: bool


def _layout(cls: type[FixMessageBase]) -> tuple[_Field, ...]:
    infos = {info.name: info for info in msgspec.structs.fields(cls)}
    return tuple(
        _Field(name, tag, _kind(infos[name].type), infos[name].required)
        for name, tag in sorted(cls.TAGS.items(), key=lambda item: item[1])
    )


_LAYOUTS: Final = {cls: _layout(cls) for cls in MESSAGE_TYPES.values()}


def _format_float(msg_type: str, name: str, value: float) -> str:
    if not math.isfinite(value):
        raise FixEncodeError(msg_type, name, value, "is not a finite number")
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    return format(Decimal(text), "f") if "e" in text or "E" in text else text


def _wire_value(msg_type: str, field: _Field, value: Any) -> str:
    kind = field.kind
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise FixEncodeError(msg_type, field.name, value, "is empty or not a string")
        if "\x01" in value:
            raise FixEncodeError(msg_type, field.name, value, "holds the SOH delimiter")
        return value
    if kind == "bool":
        return "Y" if value else "N"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise FixEncodeError(msg_type, field.name, value, "is not an int")
        return str(value)
    return _format_float(msg_type, field.name, float(value))


def _int_text(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        number = float(text)
        if not math.isfinite(number) or number != int(number):
            raise ValueError(text) from None
        return int(number)


def _float_text(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(text)
    return number


def _bool_text(text: str) -> bool:
    if text not in ("Y", "N"):
        raise ValueError(text)
    return text == "Y"


_CONVERTERS: Final[dict[str, Callable[[str], Any] | None]] = {
    "str": None,
    "int": _int_text,
    "float": _float_text,
    "bool": _bool_text,
}


def _field_value(field: _Field, text: str) -> Any:
    """A received field's value; raises ValueError when it is not of the field's type."""
    convert = _CONVERTERS[field.kind]
    return text if convert is None else convert(text)


# ---- encoding -----------------------------------------------------------------------------


def encode_reference(
    message: FixMessageBase,
    *,
    begin_string: str,
    sender_comp_id: str,
    target_comp_id: str,
    msg_seq_num: int,
    sending_time_text: str,
    orig_sending_time: str | None = None,
    poss_dup: bool = False,
) -> bytes:
    """``encode`` written plainly on simplefix, pair by pair: the path for UnknownMessage and the
    reference that ``encode``'s bytes are tested against (they are equal for every message)."""
    frame = simplefix.FixMessage()
    append = frame.append_pair
    append(8, begin_string)
    if isinstance(message, UnknownMessage):
        append(35, message.msg_type)
    else:
        append(35, message.MSG_TYPE)
    append(49, sender_comp_id)
    append(56, target_comp_id)
    append(34, msg_seq_num)
    append(52, sending_time_text)
    if poss_dup:
        append(43, "Y")
    if orig_sending_time is not None:
        append(122, orig_sending_time)
    if isinstance(message, UnknownMessage):
        for tag, text in message.fields:
            append(tag, text)
    else:
        msg_type = message.MSG_TYPE
        for field in _LAYOUTS[type(message)]:
            value = getattr(message, field.name)
            if value is not None:
                append(field.tag, _wire_value(msg_type, field, value))
    return bytes(frame.encode())


_EncodeStep = tuple[int, str, str, _Field]
"""A body field as ``encode`` writes it: its index in the struct, ``"tag="``, its kind, its layout."""


def _encode_plan(cls: type[FixMessageBase]) -> tuple[_EncodeStep, ...]:
    names = list(cls.__struct_fields__)
    return tuple((names.index(field.name), f"{field.tag}=", field.kind, field) for field in _LAYOUTS[cls])


_ENCODE_PLANS: Final = {cls: _encode_plan(cls) for cls in MESSAGE_TYPES.values()}


def encode(
    message: FixMessageBase,
    *,
    begin_string: str,
    sender_comp_id: str,
    target_comp_id: str,
    msg_seq_num: int,
    sending_time_text: str,
    orig_sending_time: str | None = None,
    poss_dup: bool = False,
) -> bytes:
    """One wire frame: header in strict order, ``message``'s fields, BodyLength and CheckSum.

    ``orig_sending_time`` (122) and ``poss_dup`` (43=Y) mark a resend. Raises FixEncodeError for
    a field value no strict acceptor would take (empty, holding SOH, NaN).

    The bytes are those simplefix writes for the same pairs (``encode_reference``, the test
    oracle), built in one join instead of pair by pair: this runs for every order and report.
    """
    plan = _ENCODE_PLANS.get(type(message))
    if plan is None:
        return encode_reference(
            message,
            begin_string=begin_string,
            sender_comp_id=sender_comp_id,
            target_comp_id=target_comp_id,
            msg_seq_num=msg_seq_num,
            sending_time_text=sending_time_text,
            orig_sending_time=orig_sending_time,
            poss_dup=poss_dup,
        )
    msg_type = message.MSG_TYPE
    parts = [
        f"35={msg_type}\x0149={sender_comp_id}\x0156={target_comp_id}"
        f"\x0134={msg_seq_num}\x0152={sending_time_text}"
    ]
    if poss_dup:
        parts.append("43=Y")
    if orig_sending_time is not None:
        parts.append(f"122={orig_sending_time}")
    values = msgspec.structs.astuple(message)
    for index, prefix, kind, field in plan:
        value = values[index]
        if value is None:
            continue
        if kind == "str" and type(value) is str and value and "\x01" not in value:
            parts.append(prefix + value)
        elif kind == "int" and type(value) is int:
            parts.append(prefix + str(value))
        elif kind == "float" and type(value) is float and -1e15 < value < 1e15:
            # _format_float's common case inline (prices, quantities): NaN, inf and exponents
            # take the general path.
            text = str(int(value)) if value.is_integer() else repr(value)
            parts.append(prefix + text if "e" not in text else prefix + _wire_value(msg_type, field, value))
        else:
            parts.append(prefix + _wire_value(msg_type, field, value))
    parts.append("")
    body = "\x01".join(parts).encode()
    head = f"8={begin_string}\x019={len(body)}\x01".encode() + body
    return head + b"10=%03d\x01" % checksum_of(head)


def with_resend_header(frame: bytes, sending_time_text: str) -> bytes:
    """``frame`` (as first sent) again for a resend: same MsgSeqNum and body, PossDupFlag=Y,
    OrigSendingTime = its first SendingTime, SendingTime = ``sending_time_text``."""
    pairs = _split(frame)
    out = simplefix.FixMessage()
    first_sent = ""
    body: list[tuple[int, bytes]] = []
    header: dict[int, bytes] = {}
    for tag, value in pairs:
        if tag in _HEADER_TAGS:
            header.setdefault(tag, value)
        else:
            body.append((tag, value))
    first_sent = header.get(122, header.get(52, b"")).decode()
    out.append_pair(8, header[8])
    out.append_pair(35, header[35])
    out.append_pair(49, header[49])
    out.append_pair(56, header[56])
    out.append_pair(34, header[34])
    out.append_pair(52, sending_time_text)
    out.append_pair(43, "Y")
    out.append_pair(122, first_sent)
    for tag, value in body:
        out.append_pair(tag, value)
    return bytes(out.encode())


# ---- parsing ------------------------------------------------------------------------------


class Inbound(msgspec.Struct, frozen=True):
    """A received message: its header, its typed body, and the tags its type does not declare."""

    header: Header
    message: Message
    unknown: tuple[tuple[int, str], ...] = ()


class InvalidMessage(msgspec.Struct, frozen=True):
    """A frame with a sound header (so a MsgSeqNum to refer to) whose body does not fit its type:
    a required field missing or a value of the wrong type. The session answers with a Reject."""

    header: Header
    reason: str
    ref_tag_id: int | None
    session_reject_reason: int


Parsed = Union[Inbound, InvalidMessage]  # noqa: UP007


class _Garbled(Exception):
    pass


def _split(frame: bytes) -> list[tuple[int, bytes]]:
    """The tag=value pairs of one whole, checked frame. Fields whose values may hold SOH (raw
    data) are left to simplefix's parser, which knows their length tags."""
    pieces = frame.split(SOH)
    pairs: list[tuple[int, bytes]] = []
    for piece in pieces[:-1]:
        tag, sep, value = piece.partition(b"=")
        if not sep:
            raise _Garbled("a field without '='")
        number = int(tag)
        if number in _RAW_LEN_TAGS:
            return _split_with_simplefix(frame)
        pairs.append((number, value))
    return pairs


def _split_with_simplefix(frame: bytes) -> list[tuple[int, bytes]]:
    parser = simplefix.FixParser()
    parser.append_buffer(frame)
    message = parser.get_message()
    if message is None:
        raise _Garbled("simplefix found no whole message")
    return [(int(tag), bytes(value)) for tag, value in message.pairs]


def _header(fields: dict[int, str]) -> Header:
    try:
        return Header(
            begin_string=fields[8],
            msg_type=fields[35],
            sender_comp_id=fields.get(49, ""),
            target_comp_id=fields.get(56, ""),
            msg_seq_num=int(fields[34]),
            sending_time=fields.get(52, ""),
            poss_dup=fields.get(43) == "Y",
            orig_sending_time=fields.get(122),
        )
    except (KeyError, ValueError) as error:
        raise _Garbled(f"header unreadable: {error!r}") from error


def decode_reference(frame: bytes) -> Parsed:
    """``decode`` written plainly, pair by pair: the path for every frame out of the ordinary
    (an unknown MsgType, a repeated tag, raw data, a missing or malformed field) and the
    reference that ``decode``'s result is tested against.

    Raises _Garbled when even the header cannot be read."""
    try:
        pairs = _split(frame)
    except (ValueError, simplefix.errors.ParsingError) as error:
        raise _Garbled(str(error)) from error
    fields: dict[int, str] = {}
    for tag, value in pairs:
        if tag not in fields:
            try:
                fields[tag] = value.decode()
            except UnicodeDecodeError as error:
                raise _Garbled(f"tag {tag} is not UTF-8") from error
    header = _header(fields)
    for tag in (49, 56, 52):
        if not fields.get(tag):
            return InvalidMessage(
                header, f"required header tag {tag} missing", tag, SessionRejectReason.REQUIRED_TAG_MISSING
            )
    cls = MESSAGE_TYPES.get(header.msg_type)
    if cls is None:
        body = tuple((tag, value.decode(errors="replace")) for tag, value in pairs if tag not in _HEADER_TAGS)
        return Inbound(header, UnknownMessage(msg_type=header.msg_type, fields=body))
    values: dict[str, Any] = {}
    for field in _LAYOUTS[cls]:
        text = fields.get(field.tag)
        if text is None:
            if field.required:
                return InvalidMessage(
                    header,
                    f"required tag {field.tag} ({field.name}) missing",
                    field.tag,
                    SessionRejectReason.REQUIRED_TAG_MISSING,
                )
            continue
        try:
            values[field.name] = _field_value(field, text)
        except ValueError:
            return InvalidMessage(
                header,
                f"tag {field.tag} ({field.name}) has value {text!r}, not a {field.kind}",
                field.tag,
                SessionRejectReason.INCORRECT_DATA_FORMAT,
            )
    known = cls.TAGS.values()
    unknown = tuple(
        (tag, fields[tag])
        for tag, _ in pairs
        if tag not in _HEADER_TAGS and tag not in known and tag in fields
    )
    message: Any = cls(**values)
    return Inbound(header, message, unknown)


class _Shape(msgspec.Struct, frozen=True):
    """How to read every frame of one MsgType with the same tags in the same order: where each
    value sits in the frame's ``tag, value, tag, value, ...`` list."""

    cls: type[FixMessageBase]
    header: tuple[int, int, int, int, int, int]
    """Positions of 8, 35, 49, 56, 34, 52."""
    poss_dup: int | None
    orig_sending_time: int | None
    strings: tuple[tuple[str, int], ...]
    converted: tuple[tuple[str, int, Callable[[str], Any]], ...]
    unknown: tuple[tuple[int, int], ...]


_ShapeKey = tuple[str, tuple[str, ...]]
_SHAPES: Final[dict[_ShapeKey, _Shape | None]] = {}
"""Shapes seen so far (None: frames of that shape go to ``decode_reference``). A venue sends a
few dozen; the cache starts over past ``_MAX_SHAPES``, so a peer sending odd tags cannot grow it."""
_MAX_SHAPES: Final = 1024
_HEADER_TEXT_TAGS: Final = frozenset(str(tag) for tag in _HEADER_TAGS)


def _shape(msg_type: str, tags: tuple[str, ...]) -> _Shape | None:
    """The shape of frames with MsgType ``msg_type`` and these tags (the last one the empty
    string after the final SOH), or None when such frames are not ordinary: an unknown
    MsgType, a repeated tag, raw data, a tag that is not a plain number, a field missing."""
    cls = MESSAGE_TYPES.get(msg_type)
    if cls is None or tags[-1] != "" or len(set(tags)) != len(tags):
        return None
    where = {tag: 2 * index + 1 for index, tag in enumerate(tags[:-1])}
    if not {"8", "35", "49", "56", "34", "52"} <= where.keys():
        return None
    strings: list[tuple[str, int]] = []
    converted: list[tuple[str, int, Callable[[str], Any]]] = []
    declared = set(_HEADER_TEXT_TAGS)
    for field in _LAYOUTS[cls]:
        tag = str(field.tag)
        declared.add(tag)
        if tag not in where:
            if field.required:
                return None
            continue
        # A plain int("12") is the common case; what int() refuses ("12.0") goes to the reference.
        convert = int if field.kind == "int" else _CONVERTERS[field.kind]
        if convert is None:
            strings.append((field.name, where[tag]))
        else:
            converted.append((field.name, where[tag], convert))
    unknown: list[tuple[int, int]] = []
    for tag, position in where.items():
        if tag in declared:
            continue
        if not (tag.isascii() and tag.isdigit()) or str(int(tag)) != tag or int(tag) in _RAW_LEN_TAGS:
            return None
        unknown.append((int(tag), position))
    return _Shape(
        cls,
        (where["8"], where["35"], where["49"], where["56"], where["34"], where["52"]),
        where.get("43"),
        where.get("122"),
        tuple(strings),
        tuple(converted),
        tuple(unknown),
    )


def decode(frame: bytes) -> Parsed:
    """One whole frame (already framed and checksum-checked) as a typed message.

    The ordinary frame (MsgType third, a known MsgType, each tag once, every required field
    there and of its type) is read from one split of the whole text, by the positions learnt
    from the first frame of its shape; any other goes to ``decode_reference``, which answers
    for it, so the two agree on every frame (a property test holds them to it).

    Raises _Garbled when even the header cannot be read."""
    try:
        text = frame.decode()
    except UnicodeDecodeError:
        return decode_reference(frame)
    # One split at both delimiters; the count shows whether every field held exactly one "=".
    flat = text.replace("\x01", "=").split("=")
    if len(flat) != 2 * text.count("\x01") + 1 or len(flat) < 6 or flat[4] != "35":
        return decode_reference(frame)
    key = (flat[5], tuple(flat[0::2]))
    try:
        shape = _SHAPES[key]
    except KeyError:
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        shape = _SHAPES[key] = _shape(*key)
    if shape is None:
        return decode_reference(frame)
    begin_at, type_at, sender_at, target_at, seq_at, stamp_at = shape.header
    sender, target, stamp = flat[sender_at], flat[target_at], flat[stamp_at]
    if not sender or not target or not stamp:
        return decode_reference(frame)
    values = {name: flat[position] for name, position in shape.strings}
    try:
        seq = int(flat[seq_at])
        for name, position, convert in shape.converted:
            values[name] = convert(flat[position])
    except ValueError:
        return decode_reference(frame)
    poss_dup, orig_sending_time = shape.poss_dup, shape.orig_sending_time
    header = Header(
        flat[begin_at],
        flat[type_at],
        sender,
        target,
        seq,
        stamp,
        poss_dup is not None and flat[poss_dup] == "Y",
        None if orig_sending_time is None else flat[orig_sending_time],
    )
    unknown = tuple((tag, flat[position]) for tag, position in shape.unknown) if shape.unknown else ()
    message: Any = shape.cls(**values)
    return Inbound(header, message, unknown)


class FrameReader:
    """Whole messages out of a FIX byte stream read in chunks.

    ``feed(chunk)`` returns the messages the bytes so far complete, in order, and keeps a partial
    frame for the next chunk. Garbage between frames, a frame whose BodyLength or CheckSum is
    wrong, and a frame whose header cannot be read are dropped and counted in ``dropped``
    (with the last reason in ``last_drop_reason``); it never raises.
    """

    def __init__(self, *, max_body_length: int = MAX_BODY_LENGTH) -> None:
        self._buffer = bytearray()
        self._max_body_length = max_body_length
        self.dropped = 0
        """Frames (or runs of garbage) dropped since this reader was made."""
        self.last_drop_reason = ""
        self._in_garbage = False

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buffer)

    def _drop(self, reason: str, *, garbage: bool = False) -> None:
        """Count a dropped frame; a run of garbage counts once, however many reads it spans."""
        if garbage and self._in_garbage:
            return
        self.dropped += 1
        self.last_drop_reason = reason
        self._in_garbage = garbage

    def _resync(self, start: int) -> None:
        """Drop everything up to the next frame start after ``start`` (or keep a possible prefix)."""
        buffer = self._buffer
        following = buffer.find(_RESYNC, start + 1)
        if following < 0:
            keep = len(_RESYNC) - 1
            del buffer[: max(start + 1, len(buffer) - keep)]
        else:
            del buffer[: following + 1]

    def _sound_frames(self, out: list[Parsed]) -> None:
        """Read the sound frames at the head of the buffer, back to back, into ``out``, and drop
        their bytes. Stops at the first byte that is anything else (garbage, a damaged or
        incomplete frame, a header that does not decode), for ``feed``'s careful loop to judge:
        the checks are the same, this only saves the per-frame copies of the buffer."""
        data = bytes(self._buffer)
        size = len(data)
        position = 0
        while data.startswith(_START, position):
            begin_end = data.find(SOH, position)
            if begin_end < 0 or not data.startswith(b"9=", begin_end + 1):
                break
            length_end = data.find(SOH, begin_end + 1)
            digits = data[begin_end + 3 : length_end]
            if length_end < 0 or not digits.isdigit():
                break
            body_length = int(digits)
            body_end = length_end + 1 + body_length
            frame_end = body_end + 7
            if body_length > self._max_body_length or frame_end > size:
                break
            checksum = data[body_end + 3 : body_end + 6]
            if not (
                data.startswith(b"10=", body_end)
                and data[frame_end - 1] == 1
                and checksum.isdigit()
                and checksum_of(data[position:body_end]) == int(checksum)
            ):
                break
            try:
                parsed = decode(data[position:frame_end])
            except _Garbled:
                break
            out.append(parsed)
            position = frame_end
        if position:
            self._in_garbage = False
            del self._buffer[:position]

    def feed(self, chunk: bytes) -> list[Parsed]:
        buffer = self._buffer
        buffer += chunk
        out: list[Parsed] = []
        self._sound_frames(out)
        while buffer:
            start = buffer.find(_START)
            if start < 0:
                if len(buffer) >= len(_START):
                    self._drop("bytes that are not a FIX frame", garbage=True)
                    del buffer[: len(buffer) - len(_START) + 1]
                return out
            if start > 0:
                self._drop("bytes before a frame's BeginString", garbage=True)
                del buffer[:start]
            begin_end = buffer.find(SOH)
            if begin_end < 0:
                if len(buffer) > 32:
                    self._drop("a BeginString without an end")
                    self._resync(0)
                    continue
                return out
            length_end = buffer.find(SOH, begin_end + 1)
            if length_end < 0:
                if len(buffer) - begin_end > 16:
                    self._drop("a BodyLength without an end")
                    self._resync(0)
                    continue
                return out
            length_field = bytes(buffer[begin_end + 1 : length_end])
            if not length_field.startswith(b"9=") or not length_field[2:].isdigit():
                self._drop(f"no BodyLength after BeginString: {length_field[:20]!r}")
                self._resync(0)
                continue
            body_length = int(length_field[2:])
            if body_length > self._max_body_length:
                self._drop(f"BodyLength {body_length} above {self._max_body_length}")
                self._resync(0)
                continue
            self._in_garbage = False
            body_end = length_end + 1 + body_length
            frame_end = body_end + 7
            if len(buffer) < frame_end:
                following = buffer.find(_RESYNC, length_end)
                if 0 <= following < body_end - 1:
                    self._drop("a frame cut short by the next frame")
                    del buffer[: following + 1]
                    continue
                return out
            trailer = bytes(buffer[body_end:frame_end])
            if not (trailer.startswith(b"10=") and trailer.endswith(SOH) and trailer[3:6].isdigit()):
                self._drop(f"BodyLength {body_length} does not end at a CheckSum")
                self._resync(0)
                continue
            frame = bytes(buffer[:frame_end])
            del buffer[:frame_end]
            if checksum_of(frame[:body_end]) != int(trailer[3:6]):
                self._drop("wrong CheckSum")
                continue
            try:
                out.append(decode(frame))
            except _Garbled as error:
                self._drop(f"unreadable frame: {error}")
        return out
