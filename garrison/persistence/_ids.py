"""Deterministic ids: the same input gives the same id, in every process and every run.

An intent's id is derived from the identity of the input that caused it (a strategy and its
signal's sequence number), never from time or randomness, so a redelivered input names the
same intent. The ids are stored and sent to brokers: the derivation never changes.
"""

from __future__ import annotations

import base64
import hashlib
import re

import msgspec

from garrison._errors import InvalidConfig

_VENUE_SAFE = re.compile(r"^[A-Za-z0-9_-]*$")


def deterministic_id(*parts: str | int, length: int = 32, prefix: str = "") -> str:
    """A stable id derived from the input's identity, fit for venue limits.

    ``deterministic_id("momentum-1", 42)`` is the same string in every process
    and every run: ``prefix`` followed by base64url characters
    (``[A-Za-z0-9_-]``) of a BLAKE2b digest of the parts, ``length``
    characters in all (at most 36, the common client-order-id limit).

    Collision odds: with ``b = 6 * (length - len(prefix))`` bits of digest and
    ``n`` ids, p ≈ n² / 2^(b+1). At the default 32 characters (192 bits),
    a billion ids collide with probability about 1e-40; even 16 characters
    (96 bits) keep a billion ids below 1e-11.
    """
    # One id per order: the checks of the common case cost a few type tests, and the full
    # validation (with its error messages) runs only for an unusual argument.
    if type(length) is not int or type(prefix) is not str or (length, prefix) not in _VALID_SHAPES:
        _check_shape(length, prefix)
    for index, part in enumerate(parts):
        kind = type(part)
        if kind is not str and not (kind is int and -(2**63) <= part < 2**64):  # type: ignore[operator]
            _check_part(index, part)
    if not parts:
        raise InvalidConfig("parts", (), "derive the id from at least one part of the input's identity")
    try:
        encoded = _encode_parts(parts)
    except UnicodeEncodeError:
        for index, part in enumerate(parts):
            _check_part(index, part)
        raise
    text = base64.urlsafe_b64encode(hashlib.blake2b(encoded, digest_size=27).digest()).decode("ascii")
    return prefix + text[: length - len(prefix)]


_VALID_SHAPES: set[tuple[int, str]] = set()
"""(length, prefix) pairs already checked (a handful in any program; bounded anyway)."""
_encode_parts = msgspec.msgpack.Encoder().encode


def _check_shape(length: object, prefix: object) -> None:
    if isinstance(length, bool) or not isinstance(length, int) or not 8 <= length <= 36:
        raise InvalidConfig("length", length, "must be an int from 8 to 36 (venue limits)")
    if not isinstance(prefix, str) or not _VENUE_SAFE.match(prefix) or len(prefix) >= length - 7:
        raise InvalidConfig(
            "prefix", prefix, "must use only [A-Za-z0-9_-] and leave at least 8 characters of digest"
        )
    if type(length) is int and type(prefix) is str and len(_VALID_SHAPES) < 1024:
        _VALID_SHAPES.add((length, prefix))


def _check_part(index: int, part: object) -> None:
    """Raise InvalidConfig naming ``parts[index]`` unless it is a valid part."""
    if isinstance(part, bool) or not isinstance(part, str | int):
        raise InvalidConfig(f"parts[{index}]", part, "id parts are str or int (stable across runs)")
    if isinstance(part, int) and not -(2**63) <= part < 2**64:
        raise InvalidConfig(f"parts[{index}]", part, "int parts must fit in 64 bits")
    if isinstance(part, str) and not _encodable(part):
        raise InvalidConfig(f"parts[{index}]", part, "str parts must be valid Unicode (no lone surrogates)")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def client_order_id(strategy_id: str, signal_seq: int, *, length: int = 32, prefix: str = "") -> str:
    """The client order id for a strategy's signal: ``deterministic_id(strategy_id, signal_seq)``."""
    return deterministic_id(strategy_id, signal_seq, length=length, prefix=prefix)
