"""What travels between nodes: frames, the message-type registry, and errors carried back.

A frame is one stream entry (field ``f``), msgpack-encoded by msgspec as an
array. Its body is the message, encoded on its own so that a receiver that
does not know the message's type can still read the frame (and dead-letter
the message with reason ``unknown-type``) rather than fail the whole entry.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Iterable
from typing import Any

import msgspec

from garrison import _errors
from garrison._errors import GarrisonError, InvalidConfig, RemoteHandlerError, UnknownMessageType

FRAME_FIELD = b"f"
"""The stream entry's one field: the encoded frame."""

PLAIN = ""
"""The type name of a plain msgpack value (None, bool, int, float, str, bytes, lists, dicts)."""

_PLAIN_TYPES = (type(None), bool, int, float, str, bytes, list, dict, tuple)


class Kind(enum.IntEnum):
    TELL = 0
    ASK = 1
    REPLY = 2
    FAILURE = 3
    WATCH = 4
    TERMINATED = 5


class Frame(msgspec.Struct, frozen=True, array_like=True):
    """One message between nodes. ``to`` is a path on the receiving node (or, for REPLY and
    FAILURE, unused); ``ask_id`` pairs an ask with its answer; ``deadline`` is the asker's wall
    clock time after which nobody waits for the answer (0: none)."""

    kind: Kind
    sender: str
    to: str
    type: str
    body: msgspec.Raw
    ask_id: int = 0
    deadline: float = 0.0


class ErrorInfo(msgspec.Struct, frozen=True, array_like=True):
    """An error carried back to an asker: a garrison error's class name and constructor fields
    (rebuilt on the asking side), or another error's class name and text."""

    type: str
    fields: dict[str, Any] | None
    text: str


class ExitInfo(msgspec.Struct, frozen=True, array_like=True):
    """Why a watched actor stopped: the ExitKind's value and the reason as text."""

    kind: str
    text: str


_encoder = msgspec.msgpack.Encoder()
encode = _encoder.encode
_frame_decoder = msgspec.msgpack.Decoder(Frame)
_error_decoder = msgspec.msgpack.Decoder(ErrorInfo)
_exit_decoder = msgspec.msgpack.Decoder(ExitInfo)
_plain_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder()


def decode_frame(data: bytes) -> Frame:
    """The frame in ``data``; raises msgspec.DecodeError (or ValidationError) if malformed."""
    return _frame_decoder.decode(data)


def decode_error(body: msgspec.Raw) -> ErrorInfo:
    return _error_decoder.decode(body)


def decode_exit(body: msgspec.Raw) -> ExitInfo:
    return _exit_decoder.decode(body)


class MessageTypes:
    """The registry of the message types nodes send each other: a name for each type.

    Each type is a msgspec Struct (or any type msgspec encodes) registered under
    a name (default ``module.QualifiedName``); every node that sends or receives
    it registers it under the same name. Plain msgpack values (None, bool, int,
    float, str, bytes, lists and dicts of them) need no registration.

    >>> import msgspec
    >>> class Ping(msgspec.Struct, frozen=True):
    ...     n: int
    >>> types = MessageTypes()
    >>> types.register(Ping, name="Ping")
    >>> types.name_of(Ping(1))
    'Ping'
    """

    __slots__ = ("_by_name", "_decoders", "_names")

    def __init__(self, types: Iterable[type] = ()) -> None:
        self._by_name: dict[str, type] = {}
        self._names: dict[type, str] = {}
        self._decoders: dict[str, msgspec.msgpack.Decoder[Any]] = {}
        for each in types:
            self.register(each)

    def register(self, message_type: type, *, name: str | None = None) -> None:
        """Register ``message_type`` under ``name`` (default: ``module.QualifiedName``).

        Registering the same pair again does nothing. Raises InvalidConfig for a
        ``message_type`` that is not a class or is a plain type, a name that is not a
        non-empty str, or a name already given to another type.
        """
        if not isinstance(message_type, type) or message_type in _PLAIN_TYPES:
            raise InvalidConfig(
                "message_type",
                message_type,
                "must be a class (a msgspec Struct); plain values need no registration",
            )
        chosen = name if name is not None else f"{message_type.__module__}.{message_type.__qualname__}"
        if not isinstance(chosen, str) or not chosen:
            raise InvalidConfig("name", name, "must be a non-empty str")
        holder = self._by_name.get(chosen)
        if holder is not None and holder is not message_type:
            raise InvalidConfig("name", chosen, f"is already the name of {holder.__qualname__}; pick another")
        self._by_name[chosen] = message_type
        self._names[message_type] = chosen
        self._decoders[chosen] = msgspec.msgpack.Decoder(message_type)

    def name_of(self, message: Any) -> str | None:
        """The registered name of ``message``'s type, ``""`` for a plain value, None if unknown."""
        name = self._names.get(message.__class__)
        if name is not None:
            return name
        return PLAIN if isinstance(message, _PLAIN_TYPES) else None

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        return list(self._by_name)

    def encode_body(self, message: Any, node: str) -> tuple[str, bytes]:
        """(type name, encoded message); raises UnknownMessageType for an unregistered type."""
        name = self.name_of(message)
        if name is None:
            raise UnknownMessageType(_type_name(message), node)
        try:
            return name, encode(message)
        except (TypeError, msgspec.EncodeError) as error:
            raise UnknownMessageType(f"{_type_name(message)} ({error})", node) from None

    def decode_body(self, name: str, body: msgspec.Raw) -> Any:
        """The message; raises KeyError for an unknown name, msgspec errors for a bad body."""
        if name == PLAIN:
            return _plain_decoder.decode(body)
        return self._decoders[name].decode(body)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __repr__(self) -> str:
        return f"<MessageTypes {len(self._by_name)} registered>"


def _type_name(message: Any) -> str:
    kind = message.__class__
    return f"{kind.__module__}.{kind.__qualname__}"


def error_info(error: BaseException) -> ErrorInfo:
    """How ``error`` travels to the asker: a garrison error with its constructor's fields when
    they are plain values (it is raised as itself there), anything else as class name and text."""
    kind = type(error)
    if isinstance(error, GarrisonError) and getattr(_errors, kind.__name__, None) is kind:
        fields: dict[str, Any] = {}
        try:
            parameters = list(inspect.signature(kind.__init__).parameters.values())[1:]
        except (TypeError, ValueError):
            parameters = []
        for parameter in parameters:
            value = getattr(error, parameter.name, inspect.Parameter.empty)
            if value is inspect.Parameter.empty or not isinstance(value, _PLAIN_TYPES):
                break
            fields[parameter.name] = value
        else:
            if parameters:
                return ErrorInfo(kind.__name__, fields, str(error))
    return ErrorInfo(kind.__name__, None, str(error))


def rebuild_error(info: ErrorInfo, node: str, path: str) -> BaseException:
    """The error to raise on the asking side: the garrison error itself when it can be rebuilt,
    else a RemoteHandlerError naming the remote class and text."""
    if info.fields is not None:
        kind = getattr(_errors, info.type, None)
        if isinstance(kind, type) and issubclass(kind, GarrisonError):
            try:
                return kind(**info.fields)
            except Exception:  # another version of garrison there: fall back to the text
                pass
    return RemoteHandlerError(node, path, info.type, info.text)
