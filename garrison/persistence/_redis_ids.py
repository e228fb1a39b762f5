"""Redis stream entry ids as RedisJournal writes them: ``<seq>-0``, the journal seq in the
id's millisecond part, so the server itself refuses an entry at or below a stream's top.

``entry_id`` builds one from a seq, ``entry_seq`` reads one back. The Lua scripts
that XADD on the server format the same id (``string.format('%d-0', seq)``);
tests/persistence/test_redis_ids.py holds the two to agreement.
"""

from __future__ import annotations


def entry_id(seq: int) -> str:
    """The entry id that holds journal seq ``seq`` (``42`` -> ``"42-0"``).

    Raises ValueError for a negative seq: Redis has no id below ``0-0``.
    """
    if seq < 0:
        raise ValueError(f"a Redis stream entry id needs a seq >= 0, not {seq!r}")
    return f"{seq}-0"


def entry_seq(entry_id: bytes | str) -> int:
    """The journal seq an entry id holds: its ``<ms>`` part (``b"42-0"`` -> 42).

    Takes the id as redis-py answers it (bytes) or as text. Raises ValueError
    naming the id when it is not ``<ms>-<seq>`` (two runs of ASCII digits).
    """
    raw = entry_id.encode() if isinstance(entry_id, str) else entry_id
    if isinstance(raw, bytes):
        milliseconds, dash, sequence = raw.partition(b"-")
        if dash and milliseconds.isdigit() and sequence.isdigit():
            return int(milliseconds)
    raise ValueError(f"not a Redis stream entry id (<ms>-<seq>): {entry_id!r}")
