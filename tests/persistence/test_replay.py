"""Replay: ``replay_events`` over ``read_packed`` yields exactly what reading row by row yields.

SqliteJournal packs a seq range into one query (SQLite concatenates the
payloads, one msgspec call decodes them); every other journal packs the
batches of ``read_batches``. Either way the events, their seqs and the
errors are those of the row path: payloads of any bytes survive, a deleted
prefix is skipped, and an event that does not decode is named by its seq.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison._errors import EventDecodeError, JournalCorrupt
from garrison.persistence import EventCodec, PackedEvents, SqliteJournal, replay_events
from garrison.persistence._journal import ReadsInBatches

from ._model import assert_decode_error, in_fresh_file
from ._storage import rechain

STREAM = "replayed"


class Blob(msgspec.Struct, frozen=True, tag=True):
    data: bytes


class Note(msgspec.Struct, frozen=True, tag=True):
    text: str


class Count(msgspec.Struct, frozen=True, tag=True):
    value: int


CODEC = EventCodec([Blob, Note, Count])

events_strategy = st.lists(
    st.one_of(
        # NULs, bytes that are not UTF-8, and empty payload fields.
        st.builds(Blob, st.binary(max_size=40)),
        st.builds(Note, st.text(max_size=12)),
        st.builds(Count, st.integers(-(2**63), 2**64 - 1)),
    ),
    max_size=60,
)


class RowsOnly(ReadsInBatches):
    """A journal that only reads in batches (as RedisJournal does): ``read_packed`` is the default."""

    def __init__(self, inner: SqliteJournal) -> None:
        self.inner = inner

    def read_batches(self, stream: str, after_seq: int = 0) -> AsyncGenerator[list[tuple[int, bytes]], None]:
        return self.inner.read_batches(stream, after_seq)


async def row_path(journal: Any, after_seq: int = 0) -> list[tuple[int, Any]]:
    """What recovery read before packing: ``read_batches`` decoded row by row."""
    return [
        (seq, event)
        async for rows in journal.read_batches(STREAM, after_seq)
        for (seq, _), event in zip(rows, CODEC.decode_rows(rows, STREAM), strict=True)
    ]


async def replayed(journal: Any, after_seq: int = 0) -> list[tuple[int, Any]]:
    return [
        (seq, event)
        async for first_seq, events in replay_events(journal, STREAM, CODEC, after_seq)
        for seq, event in enumerate(events, first_seq)
    ]


async def runs(journal: Any, after_seq: int = 0) -> list[PackedEvents]:
    return [run async for run in journal.read_packed(STREAM, after_seq)]


async def append_all(journal: SqliteJournal, events: list[Any], batch: int) -> None:
    seq = 0
    for start in range(0, len(events), batch):
        payloads = [CODEC.encode(event) for event in events[start : start + batch]]
        seq = await journal.append(STREAM, payloads, seq)


def change_rows(path: Path, *statements: tuple[str, tuple[Any, ...]], checksummed: bool = True) -> None:
    """Change stored rows behind the journal's back, as another program (or a damaged disk) might;
    ``checksummed``: then fix up the stream's checksums, so that the rows are read as if the journal
    had been given them (what decoding does with them is the point here, not the checksums)."""
    db = sqlite3.connect(path)
    try:
        for sql, parameters in statements:
            db.execute(sql, parameters)
        if checksummed:
            rechain(db, STREAM)
        db.commit()
    finally:
        db.close()


def set_payload(seq: int, value: Any) -> tuple[str, tuple[Any, ...]]:
    return "UPDATE events SET payload = ? WHERE stream = ? AND seq = ?", (value, STREAM, seq)


# -- the property -----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    events=events_strategy,
    read_batch=st.integers(1, 17),
    append_batch=st.integers(1, 9),
    deleted=st.integers(0, 70),
    after_seq=st.integers(0, 70),
    packing=st.sampled_from(["sqlite", "from read_batches"]),
)
def test_packed_replay_yields_exactly_what_the_row_path_yields(
    events: list[Any], read_batch: int, append_batch: int, deleted: int, after_seq: int, packing: str
) -> None:
    async def body(path: Path) -> None:
        async with SqliteJournal(path, read_batch=read_batch) as journal:
            await append_all(journal, events, append_batch)
            if deleted:
                await journal.delete_events(STREAM, deleted)
            reader: Any = journal if packing == "sqlite" else RowsOnly(journal)

            expected = await row_path(journal, after_seq)
            got = await replayed(reader, after_seq)
            read = await runs(reader, after_seq)

        assert got == expected
        first = max(after_seq, deleted) + 1
        assert [seq for seq, _ in got] == list(range(first, len(events) + 1))
        assert all(1 <= run.count <= read_batch for run in read)
        if packing == "sqlite":
            # SQLite packed every range itself: no row reached Python.
            assert all(run.rows is None and run.payloads is not None for run in read)

    in_fresh_file(body)


# -- what SQLite packs, and when it does not -------------------------------------------------------


async def test_sqlite_packs_ranges_of_read_batch_events_in_seq_order(journal_path: Path) -> None:
    events = [Count(seq) for seq in range(1, 26)]
    async with SqliteJournal(journal_path, read_batch=10) as journal:
        await append_all(journal, events, 7)
        read = await runs(journal)

    assert [(run.first_seq, run.count, run.rows) for run in read] == [
        (1, 10, None),
        (11, 10, None),
        (21, 5, None),
    ]
    assert read[1].payloads == b"".join(CODEC.encode(Count(seq)) for seq in range(11, 21))


async def test_payloads_with_nul_bytes_and_invalid_utf8_come_back_byte_for_byte(journal_path: Path) -> None:
    payloads = [b"\x00", b"\xff\xfe\x00\x80", "é\x00€".encode(), b"\xc3\x28", bytes(range(256))]
    async with SqliteJournal(journal_path) as journal:
        await journal.append(STREAM, payloads, 0)
        (run,) = await runs(journal)

    assert run.rows is None and run.payloads == b"".join(payloads)


async def test_a_reader_connection_told_to_reverse_unordered_scans_still_reads_in_seq_order(
    journal_path: Path,
) -> None:
    events = [Count(seq) for seq in range(1, 31)]
    async with SqliteJournal(journal_path, read_batch=8) as journal:
        await append_all(journal, events, 30)
        await journal._reader().execute("PRAGMA reverse_unordered_selects = ON")

        assert await replayed(journal) == list(enumerate(events, 1))


async def test_a_file_that_is_not_utf8_is_read_as_rows_byte_for_byte(journal_path: Path) -> None:
    db = sqlite3.connect(journal_path)
    db.execute("PRAGMA encoding = 'UTF-16le'")
    db.execute("CREATE TABLE t (x)")  # creates the file, in UTF-16, and leaves it empty
    db.execute("DROP TABLE t")
    assert db.execute("PRAGMA encoding").fetchone() == ("UTF-16le",)
    db.close()
    payloads = [b"\x00\xff", b"\xc3\x28\x00", CODEC.encode(Blob(b"\x00\x80"))]
    async with SqliteJournal(journal_path) as journal:
        await journal.append(STREAM, payloads, 0)
        read = await runs(journal)

    assert [run.rows for run in read] == [list(enumerate(payloads, 1))]
    assert read[0].payloads == b"".join(payloads)


async def test_without_the_stream_index_ranges_are_read_as_rows(journal_path: Path) -> None:
    events = [Note(f"n{seq}") for seq in range(1, 12)]
    async with SqliteJournal(journal_path, read_batch=5) as journal:
        await append_all(journal, events, 11)
    change_rows(journal_path, ("DROP INDEX events_by_stream", ()))

    async with SqliteJournal(journal_path, read_batch=5) as journal:
        read = await runs(journal)
        got = await replayed(journal)

    assert all(run.rows is not None for run in read)
    assert got == list(enumerate(events, 1))


async def test_a_range_too_large_for_one_sqlite_value_is_read_as_rows(journal_path: Path) -> None:
    events = [Blob(bytes([seq]) * 200) for seq in range(1, 21)]
    async with SqliteJournal(journal_path, read_batch=8) as journal:
        await append_all(journal, events, 20)
        db = journal._reader()
        # SQLite refuses to build a value over 1000 bytes: each payload fits, eight do not.
        await db._execute(db._conn.setlimit, sqlite3.SQLITE_LIMIT_LENGTH, 1000)
        read = await runs(journal)
        got = await replayed(journal)

    assert [(run.first_seq, run.count) for run in read] == [(1, 8), (9, 8), (17, 4)]
    assert [run.rows is not None for run in read] == [True, True, False]  # four fit
    assert got == list(enumerate(events, 1))


async def test_a_gap_in_the_seqs_is_read_as_rows_around_it(journal_path: Path) -> None:
    events = [Count(seq) for seq in range(1, 21)]
    async with SqliteJournal(journal_path, read_batch=8) as journal:
        await append_all(journal, events, 20)
    async with SqliteJournal(journal_path, read_batch=8) as journal:
        await journal.quarantine(STREAM, 5, "a test sets it aside")
        await journal.quarantine(STREAM, 6, "a test sets it aside")

    async with SqliteJournal(journal_path, read_batch=8) as journal:
        expected = await row_path(journal)
        got = await replayed(journal)
        read = await runs(journal)

    assert got == expected
    assert [seq for seq, _ in got] == [1, 2, 3, 4, *range(7, 21)]
    assert [(run.first_seq, run.count) for run in read][:2] == [(1, 4), (7, 4)]


async def test_other_streams_never_mix_into_a_packed_range(journal_path: Path) -> None:
    async with SqliteJournal(journal_path, read_batch=4) as journal:
        seqs = {"a": 0, "b": 0, STREAM: 0}
        for round_number in range(6):
            for stream in seqs:
                payload = CODEC.encode(Note(f"{stream}-{round_number}"))
                seqs[stream] = await journal.append(stream, [payload], seqs[stream])

        got = await replayed(journal)

    assert got == [(n + 1, Note(f"{STREAM}-{n}")) for n in range(6)]


# -- bad events: named by stream and seq, as row by row ----------------------------------------------


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        (b"\xc1\xc1", "malformed"),  # not msgpack at all
        (CODEC.encode(Note("cut off"))[:-3], "malformed"),  # truncated
        (msgspec.msgpack.encode({"type": "Count", "value": "ten"}), "schema"),
        (b"\x82\xa4type\xa4Note\xa4text\xa2\xff\xfe", "malformed"),  # a string that is not UTF-8
        (CODEC.encode(Count(1)) + CODEC.encode(Count(2)), "malformed"),  # two events in one row
        (b"", "malformed"),  # truncated before it starts
        ("a TEXT value", "not-bytes"),  # another program wrote text into the BLOB column
        (12345, "not-bytes"),  # ... or an INTEGER
    ],
)
async def test_a_bad_row_in_the_middle_of_a_packed_range_is_named_by_its_seq(
    journal_path: Path, stored: Any, problem: str
) -> None:
    events = [Count(seq) for seq in range(1, 31)]
    async with SqliteJournal(journal_path, read_batch=10) as journal:
        await append_all(journal, events, 30)
    change_rows(journal_path, set_payload(15, stored))

    async with SqliteJournal(journal_path, read_batch=10) as journal:
        with pytest.raises(EventDecodeError) as from_rows:
            await row_path(journal)
        seen: list[int] = []
        with pytest.raises(EventDecodeError) as replaying:
            async with aclosing(replay_events(journal, STREAM, CODEC)) as replay:
                async for first_seq, decoded in replay:
                    seen.extend(range(first_seq, first_seq + len(decoded)))

    assert_decode_error(replaying.value, STREAM, 15, problem)
    assert str(replaying.value) == str(from_rows.value)
    assert seen == list(range(1, 11))  # the ranges before the bad one were replayed


@pytest.mark.parametrize("stored", [b"\xc1\xc1", CODEC.encode(Count(99)), "a TEXT value"])
async def test_a_row_changed_behind_the_journal_fails_its_checksum_named_by_its_seq(
    journal_path: Path, stored: Any
) -> None:
    events = [Count(seq) for seq in range(1, 31)]
    async with SqliteJournal(journal_path, read_batch=10) as journal:
        await append_all(journal, events, 30)
    change_rows(journal_path, set_payload(15, stored), checksummed=False)

    async with SqliteJournal(journal_path, read_batch=10) as journal:
        with pytest.raises(JournalCorrupt) as from_rows:
            await row_path(journal)
        seen: list[int] = []
        with pytest.raises(JournalCorrupt) as replaying:
            async with aclosing(replay_events(journal, STREAM, CODEC)) as replay:
                async for first_seq, decoded in replay:
                    seen.extend(range(first_seq, first_seq + len(decoded)))

    for error in (from_rows.value, replaying.value):
        assert (error.stream, error.seq) == (STREAM, 15)
        assert error.expected != error.found
    assert seen == list(range(1, 11))  # the ranges before the damaged one were replayed


async def test_a_row_lost_from_the_middle_of_a_stream_is_found(journal_path: Path) -> None:
    events = [Count(seq) for seq in range(1, 21)]
    async with SqliteJournal(journal_path, read_batch=8) as journal:
        await append_all(journal, events, 20)
    change_rows(
        journal_path, ("DELETE FROM events WHERE stream = ? AND seq = 12", (STREAM,)), checksummed=False
    )

    async with SqliteJournal(journal_path, read_batch=8) as journal:
        with pytest.raises(JournalCorrupt) as caught:
            await replayed(journal)
        problems = [problem async for problem in journal.verify()]

    assert (caught.value.stream, caught.value.seq) == (STREAM, 12)
    assert "missing" in caught.value.problem
    assert [(problem.kind, problem.stream, problem.seq) for problem in problems] == [("missing", STREAM, 12)]


async def test_an_event_split_across_two_rows_is_named_by_its_first_row(journal_path: Path) -> None:
    """The concatenation of the two halves is one whole event, one short of the range's count."""
    whole = CODEC.encode(Note("split across two rows"))
    events = [Count(seq) for seq in range(1, 11)]
    async with SqliteJournal(journal_path, read_batch=10) as journal:
        await append_all(journal, events, 10)
    change_rows(journal_path, set_payload(4, whole[:5]), set_payload(5, whole[5:]))

    async with SqliteJournal(journal_path, read_batch=10) as journal:
        with pytest.raises(EventDecodeError) as caught:
            await replayed(journal)

    assert (caught.value.stream, caught.value.seq) == (STREAM, 4)


# -- reads while the stream changes ------------------------------------------------------------


async def test_events_appended_during_a_read_are_read_as_the_row_path_reads_them(
    journal_path: Path,
) -> None:
    async with SqliteJournal(journal_path, read_batch=10) as journal:
        await append_all(journal, [Count(seq) for seq in range(1, 26)], 25)
        reader = journal.read_packed(STREAM)
        first = await anext(reader)
        await journal.append(STREAM, [CODEC.encode(Count(seq)) for seq in range(26, 31)], 25)
        rest = [run async for run in reader]

    assert (first.first_seq, first.count) == (1, 10)
    assert [(run.first_seq, run.count) for run in rest] == [(11, 10), (21, 10)]


async def test_a_prefix_deleted_during_a_read_is_skipped_as_the_row_path_skips_it(journal_path: Path) -> None:
    async with SqliteJournal(journal_path, read_batch=10) as journal:
        await append_all(journal, [Count(seq) for seq in range(1, 41)], 40)
        reader = journal.read_packed(STREAM)
        first = await anext(reader)
        await journal.delete_events(STREAM, 25)
        rest = [run async for run in reader]

    # The range after the first may have been read before the deletion (as
    # read_batches reads its next batch ahead): then it comes, whole.
    assert (first.first_seq, first.count) == (1, 10)
    read_ahead = [(11, 10), (26, 10), (36, 5)]
    assert [(run.first_seq, run.count) for run in rest] in (read_ahead, [(26, 10), (36, 5)])


async def test_a_reader_closed_early_leaves_the_journal_usable(journal_path: Path) -> None:
    async with SqliteJournal(journal_path, read_batch=5) as journal:
        await append_all(journal, [Count(seq) for seq in range(1, 21)], 20)
        async with aclosing(replay_events(journal, STREAM, CODEC)) as replay:
            first_seq, decoded = await anext(replay)

        assert (first_seq, decoded) == (1, [Count(seq) for seq in range(1, 6)])
        assert await journal.append(STREAM, [CODEC.encode(Count(21))], 20) == 21
        assert len(await replayed(journal)) == 21
