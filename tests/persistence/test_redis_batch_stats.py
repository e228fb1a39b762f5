"""The appends-per-commit histogram counts what a commit accepted, on RedisJournal as on
SqliteJournal (``make_journal`` runs each test on every backend)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from garrison._errors import SequenceConflict


def batch_counts(journal: Any) -> dict[float, int]:
    return {bound: count for bound, count in journal.stats()["batch_buckets"] if count}


async def two_racing_appends(journal: Any, expected_seq: int) -> list[Any]:
    """Two appends after the same seq, queued together so one commit takes both."""
    return await asyncio.gather(
        journal.append("orders", [b"a"], expected_seq),
        journal.append("orders", [b"b"], expected_seq),
        return_exceptions=True,
    )


async def test_an_append_that_conflicts_is_not_counted_in_its_commits_batch_size(
    make_journal: Callable[..., Any],
) -> None:
    async with make_journal() as journal:
        first, second = await two_racing_appends(journal, 0)

        assert first == 1
        assert isinstance(second, SequenceConflict)
        assert batch_counts(journal) == {1: 1}
        assert journal.stats()["appends"] == 1


async def test_a_commit_whose_appends_all_conflict_counts_no_batch(
    make_journal: Callable[..., Any],
) -> None:
    async with make_journal() as journal:
        await journal.append("orders", [b"a"], 0)

        results = await two_racing_appends(journal, 0)

        assert all(isinstance(result, SequenceConflict) for result in results)
        assert batch_counts(journal) == {1: 1}
        assert journal.stats()["appends"] == 1
