"""Replay: a stream's events read back and decoded in runs, the way recovery reads them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from garrison.persistence._codec import EventCodec
from garrison.persistence._journal import Journal, PackedEvents, consecutive_runs


async def replay_events(
    journal: Journal, stream: str, codec: EventCodec, after_seq: int = 0
) -> AsyncGenerator[tuple[int, list[Any]], None]:
    """The events of ``stream`` after ``after_seq``, decoded, as ``(first_seq, events)``.

    ``events`` is never empty and ``events[i]`` has seq ``first_seq + i``;
    successive lists come in seq order, each of at most the journal's read
    batch size. A run the journal packed is decoded in one call; a run that
    does not decode so, or that the journal could not pack, is decoded row
    by row, so an event that does not decode raises EventDecodeError naming
    ``stream`` and its seq, and nothing is skipped. Awaits the journal
    between runs. Close it (``contextlib.aclosing``) if you stop early.
    """
    async for run in journal.read_packed(stream, after_seq):
        if run.payloads is not None:
            events = codec.decode_packed(run.payloads, run.count)
            if events is not None:
                yield run.first_seq, events
                continue
        rows = run.rows if run.rows is not None else await _read_rows(journal, stream, run)
        # Read again, rows may miss events deleted since: never assume they are consecutive.
        for part in consecutive_runs(rows):
            yield part[0][0], codec.decode_rows(part, stream)


async def _read_rows(journal: Journal, stream: str, run: PackedEvents) -> Sequence[tuple[int, bytes]]:
    """The rows of ``run``'s seqs, read one by one (to decode them one by one)."""
    rows: list[tuple[int, bytes]] = []
    batches = journal.read_batches(stream, run.first_seq - 1)
    try:
        async for batch in batches:
            for row in batch:
                if row[0] > run.last_seq:
                    return rows
                rows.append(row)
    finally:
        await batches.aclose()
    return rows
