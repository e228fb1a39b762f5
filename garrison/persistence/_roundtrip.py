"""Why a value does not read back as written: the field to blame, found after the fact.

The codecs prove every write with one decode of the encoded bytes (and one
comparison); only when that fails does this module walk the value, field by
field and item by item, to name the innermost part that does not survive its
own round trip through its declared type.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec

from garrison._errors import InvalidEvent, InvalidEventProblem

_UNENCODABLE = (TypeError, ValueError, OverflowError, msgspec.MsgspecError)
_INVALID = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError)
_SEQUENCES = (list, tuple, set, frozenset)
_encode = msgspec.msgpack.Encoder().encode


def same(a: Any, b: Any) -> bool:
    """Equal as replay would see it: ``==``, except that NaN equals NaN (msgpack keeps it)."""
    if a is b:
        return True
    if type(a) is float and type(b) is float:
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, msgspec.Struct):
        return type(a) is type(b) and all(
            same(x, y) for x, y in zip(msgspec.structs.astuple(a), msgspec.structs.astuple(b), strict=True)
        )
    if type(a) in (list, tuple) and type(b) is type(a):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(same(value, b[key]) for key, value in a.items())
    try:
        return bool(a == b)
    except Exception:
        return False


def invalid_event(
    value: Any,
    annotation: Any,
    type_name: str,
    whole: InvalidEventProblem,
    read_back: Any = None,
    *,
    path: str = "",
) -> InvalidEvent:
    """The InvalidEvent for ``value`` (of ``annotation``, at ``path``), which did not
    round-trip whole (for the reason ``whole``).

    Names its innermost part that does not round-trip alone; if every part
    does (the whole failed for a reason of its own), the value as a whole.
    """
    fault = _locate_inside(value, annotation, path)
    if fault is None:
        fault = _Fault(path, value, annotation, whole, read_back)
    return fault.error(type_name)


def invalid_payload(value: Any, annotation: Any, type_name: str, error: BaseException) -> InvalidEvent:
    """The InvalidEvent for a payload that raised ``error`` on its way through encode and
    decode (the intent log's payloads, at the path ``payload``)."""
    whole: InvalidEventProblem = "invalid" if isinstance(error, _INVALID) else "unencodable"
    return invalid_event(value, annotation, type_name, whole, path="payload")


class _Fault:
    __slots__ = ("annotation", "path", "problem", "read_back", "value")

    def __init__(
        self, path: str, value: Any, annotation: Any, problem: InvalidEventProblem, read_back: Any = None
    ) -> None:
        self.path = path
        self.value = value
        self.annotation = annotation
        self.problem = problem
        self.read_back = read_back

    def error(self, type_name: str) -> InvalidEvent:
        return InvalidEvent(
            type_name, self.path, self.value, self.problem, _type_name(self.annotation), self.read_back
        )


def _check(value: Any, annotation: Any, path: str) -> _Fault | None:
    """A fault if ``value`` does not round-trip alone as ``annotation``; None if it does or
    if that cannot be told (an annotation msgspec cannot decode on its own)."""
    try:
        encoded = _encode(value)
    except _UNENCODABLE:
        return _Fault(path, value, annotation, "unencodable")
    try:
        read_back = msgspec.msgpack.decode(encoded, type=annotation)
    except _INVALID:
        return _Fault(path, value, annotation, "invalid")
    except Exception:
        return None
    if not same(read_back, value):
        return _Fault(path, value, annotation, "changed", read_back)
    return None


def _locate(value: Any, annotation: Any, path: str) -> _Fault | None:
    fault = _check(value, annotation, path)
    if fault is None:
        return None
    return _locate_inside(value, annotation, path) or fault


def _locate_inside(value: Any, annotation: Any, path: str) -> _Fault | None:
    """The innermost faulty part of a Struct, a sequence or a dict, else None."""
    if isinstance(value, msgspec.Struct):
        for field in msgspec.structs.fields(type(value)):
            name = field.name
            fault = _locate(getattr(value, name), field.type, f"{path}.{name}" if path else name)
            if fault is not None:
                return fault
        return None
    annotation = _matching(annotation, value)
    origin = get_origin(annotation)
    args = get_args(annotation)
    if isinstance(value, _SEQUENCES) and origin in _SEQUENCES and args:
        fixed = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
        for index, item in enumerate(value):
            if fixed and index >= len(args):
                return None
            fault = _locate(item, args[index] if fixed else args[0], f"{path}[{index}]")
            if fault is not None:
                return fault
    elif isinstance(value, Mapping) and origin is dict and len(args) == 2:
        for key, item in value.items():
            fault = _locate(key, args[0], f"{path}[{key!r}]") or _locate(item, args[1], f"{path}[{key!r}]")
            if fault is not None:
                return fault
    return None


def _matching(annotation: Any, value: Any) -> Any:
    """``annotation`` without Annotated, and of a union the member ``value``'s type fits."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        for member in get_args(annotation):
            member = _matching(member, value)
            kind = get_origin(member) or member
            if isinstance(kind, type) and isinstance(value, kind):
                return member
    return annotation


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")
