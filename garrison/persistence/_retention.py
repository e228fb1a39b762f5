"""Trimming a stream: deleting the events a snapshot already holds, never one past it."""

from __future__ import annotations

import asyncio

from garrison._errors import InvalidConfig
from garrison._validate import check_count
from garrison.persistence._journal import Journal, check_seq, check_stream

TRIM_STEP = 10_000
"""Events deleted by one ``delete_events`` call at most: a long history is trimmed in
bounded steps, so the journal's other writes (appends of every stream) go on in between."""


async def trim_to_snapshot(
    journal: Journal,
    stream: str,
    up_to_seq: int | None = None,
    *,
    step: int = TRIM_STEP,
    from_seq: int | None = None,
) -> int:
    """Delete the events of ``stream`` that its latest snapshot holds, up to ``up_to_seq``.

    Recovery reads the latest snapshot and the events after it, so an event
    at or before that snapshot's seq is never read again: those are the only
    ones this deletes. ``up_to_seq=None`` trims up to the snapshot. Returns
    the seq trimmed through (0 when the stream has no snapshot: nothing is
    deleted). Deletes in calls of at most ``step`` events, awaiting each, so
    a long history never holds the journal's writer for long; the stream's
    ``highest_seq`` is unchanged. ``from_seq`` is where the stored events
    start, if the caller knows it (one past its previous trim); otherwise
    the first batch of the stream is read to learn it. It only sizes the
    steps: events before it are deleted too, by the first.

    Raises InvalidConfig, deleting nothing, for an ``up_to_seq`` past the
    latest snapshot (those events would be lost to recovery: save a snapshot
    first), and the journal's errors (JournalWriteError, JournalClosed).
    On Redis, events a consumer group has not acknowledged are kept
    (``RedisJournal.delete_events``).
    """
    check_stream(stream)
    if up_to_seq is not None:
        check_seq("up_to_seq", up_to_seq)
    check_count("step", step)
    snapshot = await journal.load_snapshot(stream)
    snapshot_seq = snapshot[0] if snapshot is not None else 0
    if up_to_seq is None:
        up_to_seq = snapshot_seq
    elif up_to_seq > snapshot_seq:
        raise InvalidConfig(
            "up_to_seq",
            up_to_seq,
            f"is past the latest snapshot of {stream!r} "
            f"({'seq ' + str(snapshot_seq) if snapshot else 'none saved'}): recovery would miss "
            "the events in between; trim at most up to the snapshot, or save a later one first",
        )
    if from_seq is not None:
        check_count("from_seq", from_seq)
    await delete_through(journal, stream, up_to_seq, step, from_seq)
    return up_to_seq


async def delete_through(
    journal: Journal, stream: str, up_to_seq: int, step: int = TRIM_STEP, from_seq: int | None = None
) -> None:
    """Delete the events of ``stream`` up to ``up_to_seq`` in steps of ``step`` from
    ``from_seq`` (read from the stream if None). No snapshot check: for streams that have
    none (an intent log's settled stream)."""
    if up_to_seq < 1:
        return
    first = await _first_seq(journal, stream) if from_seq is None else from_seq
    if first is None or first > up_to_seq:
        return
    for through in range(first - 1 + step, up_to_seq + step, step):
        await journal.delete_events(stream, min(through, up_to_seq))
        await asyncio.sleep(0)


async def _first_seq(journal: Journal, stream: str) -> int | None:
    """The seq of the oldest event still stored, or None for a stream with none. Reads a whole
    batch (tens of ms for a thousand Redis entries): callers that know it pass it instead."""
    batches = journal.read_batches(stream)
    try:
        async for rows in batches:
            if rows:
                return rows[0][0]
    finally:
        await batches.aclose()
    return None
