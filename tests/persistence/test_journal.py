"""The Journal protocol, held against every backend: SqliteJournal on a real file and
RedisJournal on a real server (``make_journal`` in conftest.py).

Appends are atomic per batch with optimistic concurrency, reads stream in
bounded batches, snapshots replace older ones, deleting events never lowers
the highest seq, and an append reports success only once it is committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from garrison import InvalidConfig
from garrison._errors import JournalClosed, SequenceConflict
from garrison.persistence import Ack, EventCodec, Journal, SqliteJournal, replay_events

from ._model import read_all


def payloads(tag: str, count: int) -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(1, count + 1)]


MakeJournal = Callable[..., Any]


class Note(msgspec.Struct, frozen=True, tag=True):
    text: str


@pytest.fixture
async def journal(make_journal: MakeJournal) -> Any:
    """An open journal of each backend (this module's contract tests run on all of them)."""
    return await make_journal().open()


def committed_rows(path: Path, stream: str) -> list[tuple[int, bytes]]:
    """What another connection (stdlib sqlite3, not the journal's own) sees as committed."""
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT seq, payload FROM events WHERE stream = ? ORDER BY seq", (stream,)
        ).fetchall()
    finally:
        db.close()


# -- append and read ------------------------------------------------------------------


async def test_the_journal_satisfies_the_journal_protocol(journal: SqliteJournal) -> None:
    assert isinstance(journal, Journal)


async def test_a_new_stream_numbers_events_from_one_and_read_yields_them_in_order(
    journal: SqliteJournal,
) -> None:
    assert await journal.highest_seq("orders") == 0
    assert await journal.append("orders", payloads("a", 3), 0) == 3
    assert await journal.append("orders", [b"b-1"], 3) == 4

    assert await read_all(journal, "orders") == [(1, b"a-1"), (2, b"a-2"), (3, b"a-3"), (4, b"b-1")]
    assert await journal.highest_seq("orders") == 4


async def test_an_append_is_committed_when_it_returns(journal_path: Path) -> None:
    """SQLite: another connection sees it (tests/persistence/redis checks the same on Redis)."""
    async with SqliteJournal(journal_path) as journal:
        await journal.append("orders", payloads("a", 2), 0)

    assert committed_rows(journal_path, "orders") == [(1, b"a-1"), (2, b"a-2")]


async def test_read_after_seq_yields_only_later_events(journal: SqliteJournal) -> None:
    await journal.append("orders", payloads("a", 5), 0)

    assert [seq for seq, _ in await read_all(journal, "orders", after_seq=3)] == [4, 5]
    assert await read_all(journal, "orders", after_seq=5) == []


async def test_an_unknown_stream_reads_empty_with_highest_seq_zero(journal: SqliteJournal) -> None:
    assert await read_all(journal, "nobody") == []
    assert await journal.highest_seq("nobody") == 0
    assert await journal.load_snapshot("nobody") is None


async def test_streams_are_independent(journal: SqliteJournal) -> None:
    await journal.append("a", payloads("a", 2), 0)
    await journal.append("b", payloads("b", 3), 0)
    await journal.append("a", [b"a-3"], 2)

    assert await read_all(journal, "a") == [(1, b"a-1"), (2, b"a-2"), (3, b"a-3")]
    assert [seq for seq, _ in await read_all(journal, "b")] == [1, 2, 3]


async def test_read_streams_in_batches_of_at_most_read_batch_rows(make_journal: MakeJournal) -> None:
    async with make_journal(read_batch=7) as journal:
        await journal.append("s", payloads("e", 50), 0)

        sizes = [len(rows) async for rows in journal.read_batches("s")]
        events = await read_all(journal, "s")

    assert sizes == [7] * 7 + [1]
    assert [seq for seq, _ in events] == list(range(1, 51))


async def test_a_reader_that_stops_early_leaves_the_journal_usable(make_journal: MakeJournal) -> None:
    async with make_journal(read_batch=4) as journal:
        await journal.append("s", payloads("e", 20), 0)
        reader = journal.read("s")
        first = [await anext(reader) for _ in range(5)]
        await reader.aclose()

        assert [seq for seq, _ in first] == [1, 2, 3, 4, 5]
        assert await journal.append("s", [b"more"], 20) == 21
        assert len(await read_all(journal, "s")) == 21


async def packed(journal: Any, stream: str, after_seq: int = 0) -> list[Any]:
    return [run async for run in journal.read_packed(stream, after_seq)]


async def test_read_packed_yields_the_events_of_read_in_runs_of_consecutive_seqs(
    make_journal: MakeJournal,
) -> None:
    async with make_journal(read_batch=7) as journal:
        written = [b"\x00", b"\xff\xfe", *payloads("e", 18)]
        await journal.append("s", written, 0)
        await journal.append("other", payloads("o", 5), 0)

        runs = await packed(journal, "s")
        later = await packed(journal, "s", after_seq=12)

    assert [(run.first_seq, run.count) for run in runs] == [(1, 7), (8, 7), (15, 6)]
    assert [(run.first_seq, run.count) for run in later] == [(13, 7), (20, 1)]
    for run in runs:
        stored = written[run.first_seq - 1 : run.last_seq]
        assert run.payloads in (None, b"".join(stored))
        assert run.rows in (None, list(enumerate(stored, run.first_seq)))
        assert run.payloads is not None or run.rows is not None


async def test_replay_after_a_deleted_prefix_starts_at_the_first_kept_event(journal: Any) -> None:
    codec = EventCodec([Note])
    await journal.append("s", [codec.encode(Note(f"n{seq}")) for seq in range(1, 11)], 0)
    await journal.delete_events("s", 6)

    for after_seq in (0, 3, 6, 8):
        replayed = [
            (seq, event)
            async for first_seq, events in replay_events(journal, "s", codec, after_seq)
            for seq, event in enumerate(events, first_seq)
        ]
        first = max(after_seq, 6) + 1
        assert replayed == [(seq, Note(f"n{seq}")) for seq in range(first, 11)]


async def test_read_packed_sees_events_appended_while_it_reads(make_journal: MakeJournal) -> None:
    async with make_journal(read_batch=4) as journal:
        await journal.append("s", payloads("e", 10), 0)
        reader = journal.read_packed("s")
        first = await anext(reader)
        await journal.append("s", payloads("f", 3), 10)
        rest = [run async for run in reader]

    assert (first.first_seq, first.count) == (1, 4)
    assert [(run.first_seq, run.count) for run in rest] == [(5, 4), (9, 4), (13, 1)]


async def test_an_empty_append_writes_nothing_and_returns_expected_seq(journal: SqliteJournal) -> None:
    await journal.append("s", [b"x"], 0)

    assert await journal.append("s", [], 1) == 1
    assert journal.appends == 1
    assert await journal.highest_seq("s") == 1


async def test_a_batch_larger_than_one_statement_is_stored_whole(journal: SqliteJournal) -> None:
    events = payloads("e", 25_000)  # over MAX_ROWS_PER_STATEMENT: several INSERTs, one transaction

    assert await journal.append("big", events, 0) == 25_000
    stored = await read_all(journal, "big")
    assert [seq for seq, _ in stored] == list(range(1, 25_001))
    assert [payload for _, payload in stored] == events


# -- optimistic concurrency -----------------------------------------------------------------


async def test_a_stale_expected_seq_raises_sequence_conflict_and_writes_nothing(
    journal: SqliteJournal,
) -> None:
    await journal.append("s", payloads("first", 2), 0)

    with pytest.raises(SequenceConflict) as caught:
        await journal.append("s", payloads("second", 3), 0)

    assert (caught.value.stream, caught.value.expected_seq, caught.value.actual_seq) == ("s", 0, 2)
    assert "'s'" in str(caught.value) and "nothing was written" in str(caught.value)
    assert await read_all(journal, "s") == [(1, b"first-1"), (2, b"first-2")]


async def test_an_expected_seq_ahead_of_the_stream_is_a_conflict_too(journal: SqliteJournal) -> None:
    await journal.append("s", [b"x"], 0)

    with pytest.raises(SequenceConflict) as caught:
        await journal.append("s", [b"y"], 5)

    assert caught.value.actual_seq == 1
    assert await journal.highest_seq("s") == 1


async def test_in_one_group_commit_a_conflicting_append_fails_alone(journal: SqliteJournal) -> None:
    await journal.append("s", [b"base"], 0)
    commits_before = journal.commits

    outcomes = await asyncio.gather(
        journal.append("s", [b"winner"], 1),
        journal.append("s", [b"loser"], 1),
        journal.append("other", [b"o-1", b"o-2"], 0),
        journal.append("s", [b"next"], 2),
        return_exceptions=True,
    )

    assert outcomes[0] == 2 and outcomes[2] == 2 and outcomes[3] == 3
    assert isinstance(outcomes[1], SequenceConflict) and outcomes[1].actual_seq == 2
    assert journal.commits - commits_before == 1
    assert await read_all(journal, "s") == [(1, b"base"), (2, b"winner"), (3, b"next")]


async def test_two_journals_on_one_store_never_interleave_a_stream(make_journal: MakeJournal) -> None:
    """Two writers (two connections, as two processes would have) race for one stream."""
    async with make_journal() as first, make_journal() as second:
        await first.append("s", [b"f-1"], 0)
        assert await second.append("s", [b"s-1", b"s-2"], 1) == 3

        with pytest.raises(SequenceConflict) as caught:
            await first.append("s", [b"f-2"], 1)
        assert caught.value.actual_seq == 3

        assert await read_all(first, "s") == [(1, b"f-1"), (2, b"s-1"), (3, b"s-2")]


async def test_a_writer_that_caught_up_with_another_journal_can_append(make_journal: MakeJournal) -> None:
    """After reading what another writer appended, an append with the true highest seq succeeds."""
    async with make_journal() as first, make_journal() as second:
        await first.append("s", [b"f-1"], 0)
        await second.append("s", [b"s-1"], 1)

        caught_up = await first.highest_seq("s")
        assert await first.append("s", [b"f-2"], caught_up) == 3

        assert [payload for _, payload in await read_all(second, "s")] == [b"f-1", b"s-1", b"f-2"]


# -- snapshots ------------------------------------------------------------------------------


async def test_a_snapshot_is_loaded_back_and_a_newer_one_replaces_it(journal: SqliteJournal) -> None:
    await journal.save_snapshot("s", 3, b"state@3")
    assert await journal.load_snapshot("s") == (3, b"state@3")

    await journal.save_snapshot("s", 7, b"state@7")
    assert await journal.load_snapshot("s") == (7, b"state@7")


async def test_an_older_snapshot_never_replaces_a_newer_one(journal: SqliteJournal) -> None:
    await journal.save_snapshot("s", 7, b"state@7")
    await journal.save_snapshot("s", 3, b"state@3")

    assert await journal.load_snapshot("s") == (7, b"state@7")


async def test_replace_snapshot_stores_only_over_the_snapshot_the_writer_read(
    make_journal: MakeJournal,
) -> None:
    """Two writers (two journals on one store) built on no snapshot: the first to replace wins."""
    first, second = await make_journal().open(), await make_journal().open()
    await first.append("s", payloads("e", 3), 0)

    assert await first.replace_snapshot("s", None, 2, b"first@2") is True
    assert await second.replace_snapshot("s", None, 3, b"second@3") is False
    assert await second.load_snapshot("s") == (2, b"first@2")
    assert await second.replace_snapshot("s", 2, 3, b"second@3") is True
    assert await first.replace_snapshot("s", 2, 3, b"first@3") is False
    assert await first.load_snapshot("s") == (3, b"second@3")


async def test_snapshots_are_per_stream(journal: SqliteJournal) -> None:
    await journal.save_snapshot("a", 1, b"a")
    await journal.save_snapshot("b", 2, b"b")

    assert await journal.load_snapshot("a") == (1, b"a")
    assert await journal.load_snapshot("b") == (2, b"b")


async def test_a_snapshot_queued_after_an_append_commits_after_it(journal: SqliteJournal) -> None:
    append = asyncio.ensure_future(journal.append("s", payloads("e", 3), 0))
    snapshot = asyncio.ensure_future(journal.save_snapshot("s", 3, b"state@3"))

    await asyncio.gather(append, snapshot)

    assert await journal.highest_seq("s") == 3
    assert await journal.load_snapshot("s") == (3, b"state@3")


# -- deleting events ----------------------------------------------------------------------------


async def test_deleting_events_keeps_the_highest_seq_and_later_appends_continue_it(
    journal: SqliteJournal,
) -> None:
    await journal.append("s", payloads("e", 5), 0)
    await journal.save_snapshot("s", 3, b"state@3")

    await journal.delete_events("s", 3)

    assert [seq for seq, _ in await read_all(journal, "s")] == [4, 5]
    assert await journal.highest_seq("s") == 5
    with pytest.raises(SequenceConflict):
        await journal.append("s", [b"stale"], 0)
    assert await journal.append("s", [b"e-6"], 5) == 6


async def test_deleting_every_event_never_lowers_the_highest_seq(journal: SqliteJournal) -> None:
    await journal.append("s", payloads("e", 4), 0)

    await journal.delete_events("s", 4)

    assert await read_all(journal, "s") == []
    assert await journal.highest_seq("s") == 4
    assert await journal.append("s", [b"e-5"], 4) == 5


async def test_a_smaller_deletion_after_a_larger_one_restores_nothing(journal: SqliteJournal) -> None:
    await journal.append("s", payloads("e", 6), 0)

    await journal.delete_events("s", 4)
    await journal.delete_events("s", 2)

    assert [seq for seq, _ in await read_all(journal, "s")] == [5, 6]
    assert await journal.highest_seq("s") == 6


async def test_deleting_past_the_end_deletes_everything_without_raising_the_highest_seq(
    journal: SqliteJournal,
) -> None:
    await journal.append("s", payloads("e", 2), 0)

    await journal.delete_events("s", 100)

    assert await read_all(journal, "s") == []
    assert await journal.highest_seq("s") == 2
    assert await journal.append("s", [b"e-3"], 2) == 3
    assert await journal.highest_seq("s") == 3
    assert [seq for seq, _ in await read_all(journal, "s")] == [3]


async def test_deleting_events_survives_reopening(make_journal: MakeJournal) -> None:
    async with make_journal() as journal:
        await journal.append("s", payloads("e", 3), 0)
        await journal.delete_events("s", 3)

    async with make_journal() as reopened:
        assert await reopened.highest_seq("s") == 3
        with pytest.raises(SequenceConflict):
            await reopened.append("s", [b"again-1"], 0)


# -- consumer offsets committed with appends --------------------------------------------------------


# Streams whose names begin with one hash tag share a Redis Cluster slot: an append can ack
# only those there (test_redis_cluster.py), and these names hold on every backend.
IN, OUT = "{flow}.in", "{flow}.out"


async def test_acks_commit_with_the_append_and_never_move_backwards(journal: SqliteJournal) -> None:
    await journal.append(IN, payloads("i", 3), 0)

    await journal.append(OUT, [b"effect"], 0, acks=[Ack(IN, "workers", 2)])
    assert await journal.acked_seq(IN, "workers") == 2

    await journal.ack(IN, "workers", 1)
    assert await journal.acked_seq(IN, "workers") == 2
    await journal.ack(IN, "workers", 3)
    assert await journal.acked_seq(IN, "workers") == 3
    assert await journal.acked_seq(IN, "others") == 0


async def test_a_conflicting_append_does_not_commit_its_acks(journal: SqliteJournal) -> None:
    await journal.append(OUT, [b"x"], 0)

    with pytest.raises(SequenceConflict):
        await journal.append(OUT, [b"effect"], 0, acks=[Ack(IN, "workers", 5)])

    assert await journal.acked_seq(IN, "workers") == 0


# -- bad arguments, closed journals ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "events", "expected_seq", "field"),
    [
        ("", [b"x"], 0, "stream"),
        (7, [b"x"], 0, "stream"),
        ("s", b"xyz", 0, "events"),
        ("s", "xyz", 0, "events"),
        ("s", [b"ok", "not bytes"], 0, "events[1]"),
        ("s", [b"x"], -1, "expected_seq"),
        ("s", [b"x"], True, "expected_seq"),
    ],
)
async def test_a_malformed_append_is_rejected_before_anything_is_written(
    journal: SqliteJournal, stream: object, events: object, expected_seq: object, field: str
) -> None:
    with pytest.raises(InvalidConfig) as caught:
        await journal.append(stream, events, expected_seq)  # type: ignore[arg-type]

    assert caught.value.field == field
    assert journal.appends == 0


async def test_a_snapshot_state_must_be_bytes(journal: SqliteJournal) -> None:
    with pytest.raises(InvalidConfig, match="state"):
        await journal.save_snapshot("s", 1, "text")  # type: ignore[arg-type]


async def test_a_journal_that_is_not_open_raises_journal_closed(make_journal: MakeJournal) -> None:
    journal = make_journal()
    with pytest.raises(JournalClosed, match="open it first"):
        await journal.append("s", [b"x"], 0)
    with pytest.raises(JournalClosed):
        await journal.highest_seq("s")

    async with journal:
        await journal.append("s", [b"x"], 0)
    with pytest.raises(JournalClosed):
        await journal.append("s", [b"y"], 1)
    with pytest.raises(JournalClosed):
        await journal.save_snapshot("s", 1, b"state")


async def test_close_finishes_the_appends_already_queued(make_journal: MakeJournal) -> None:
    journal = await make_journal().open()
    appends = [asyncio.ensure_future(journal.append(f"s{i}", [b"x", b"y"], 0)) for i in range(20)]
    await asyncio.sleep(0)  # every append is queued; none has been committed yet

    await journal.close()

    assert [append.result() for append in appends] == [2] * 20
    async with make_journal() as reopened:
        assert [await reopened.highest_seq(f"s{i}") for i in range(20)] == [2] * 20


async def test_a_cancelled_append_is_either_wholly_stored_or_absent(journal: SqliteJournal) -> None:
    append = asyncio.ensure_future(journal.append("s", payloads("e", 3), 0))
    await asyncio.sleep(0)
    append.cancel()
    with pytest.raises(asyncio.CancelledError):
        await append
    # The writer takes appends in order: once a later one is committed, the
    # cancelled one has been committed or dropped, never half of it.
    await journal.append("later", [b"x"], 0)

    highest = await journal.highest_seq("s")
    assert highest in (0, 3)
    assert await journal.append("s", [b"after"], highest) == highest + 1
    assert len(await read_all(journal, "s")) == highest + 1


async def test_close_twice_and_reopen_continue_the_streams(make_journal: MakeJournal) -> None:
    journal = make_journal()
    async with journal:
        await journal.append("s", [b"1"], 0)
    await journal.close()

    async with journal:
        assert await journal.append("s", [b"2"], 1) == 2
        assert await read_all(journal, "s") == [(1, b"1"), (2, b"2")]
