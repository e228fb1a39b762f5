"""Checksums of stored events and snapshots: CRC-32 (``zlib.crc32``).

CRC-32 detects every error burst of up to 32 bits and all but one in 2**32 of
the others: what a flipped byte, a torn page or a truncated value looks like.
zlib's is in the standard library and runs at memory speed, and it continues
from a previous value (``zlib.crc32(data, value)``), which the SQLite journal
uses to verify a whole run of events with one call (see ``chain``).

Journals compute these; nothing else should need them but tools that walk a
journal's storage (``verify``).
"""

from __future__ import annotations

import zlib


def stored_bytes(value: object) -> bytes:
    """The bytes a checksum covers: a stored value as bytes (text as UTF-8, a number as its text).

    Only bytes are ever written by a journal; other values appear only if
    something else wrote into the store, and are checked like this so that
    a tool can still name them."""
    if type(value) is bytes:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def checksum(value: object) -> int:
    """The CRC-32 of one stored value (a snapshot, a Redis entry's payload)."""
    return zlib.crc32(value if type(value) is bytes else stored_bytes(value))


def chain(value: object, previous: int) -> int:
    """The CRC-32 of ``value`` continued from ``previous``: a stream's chained checksum.

    An event's chained checksum is that of every payload of its stream from
    the first through its own, so that ``chain(b"".join(run), before) ==
    after`` checks a whole run of consecutive events in one call, and a row
    missing from the middle is found as surely as a changed one.
    """
    return zlib.crc32(value if type(value) is bytes else stored_bytes(value), previous)


def snapshot_checksum(seq: object, state: object) -> int:
    """The CRC-32 of a snapshot: its seq (as text), then its state. The seq is covered so that
    a damaged seq is found like damaged state: a snapshot read as of another seq would replay
    the events after the wrong one."""
    return zlib.crc32(state if type(state) is bytes else stored_bytes(state), zlib.crc32(stored_bytes(seq)))


def snapshot_intact(seq: object, state: object, stored: object) -> bool:
    """Whether ``stored`` is the checksum of a snapshot at ``seq`` holding ``state``. A snapshot
    written before the seq was covered carries ``checksum(state)`` alone and is accepted as
    intact too (its seq unchecked, as it was then) until the next snapshot replaces it."""
    return stored == snapshot_checksum(seq, state) or stored == checksum(state)
