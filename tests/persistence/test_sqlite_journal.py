"""SqliteJournal specifics: the file it writes, group commit, schema versions, bad files."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from garrison import InvalidConfig
from garrison._errors import JournalCorrupt, SequenceConflict
from garrison.persistence import SqliteJournal
from garrison.persistence import _sqlite as sqlite_module
from garrison.persistence import _sqlite_schema as sqlite_schema

from ._model import read_all


def pragma(path: Path, name: str) -> object:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        db.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def wal_exists(path: Path) -> bool:
    return Path(f"{path}-wal").exists()


def wal_size(path: Path) -> int:
    return Path(f"{path}-wal").stat().st_size


def damage_middle_pages(path: Path, count: int) -> None:
    """Checkpoint the WAL into the file, then overwrite ``count`` pages in its middle."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    finally:
        db.close()
    pages = path.stat().st_size // page_size
    with path.open("r+b") as file:
        file.seek(page_size * (pages // 2))
        file.write(b"\xa5" * page_size * count)


async def connection_pragma(journal: SqliteJournal, name: str) -> object:
    """A pragma as the journal's own write connection sees it (synchronous is per connection)."""
    db = journal._writer_db
    assert db is not None
    rows = list(await db.execute_fetchall(f"PRAGMA {name}"))
    return rows[0][0]


# -- the file --------------------------------------------------------------------------------


async def test_a_new_journal_is_a_wal_sqlite_file_marked_with_its_schema_version(
    journal: SqliteJournal, journal_path: Path
) -> None:
    await journal.append("s", [b"x"], 0)

    assert pragma(journal_path, "journal_mode") == "wal"
    assert pragma(journal_path, "application_id") == sqlite_schema.APPLICATION_ID
    assert pragma(journal_path, "user_version") == sqlite_schema.SCHEMA_VERSION


async def test_synchronous_is_full_by_default(journal: SqliteJournal) -> None:
    assert journal.synchronous == "FULL"
    assert await connection_pragma(journal, "synchronous") == 2


@pytest.mark.parametrize(("setting", "level"), [("normal", 1), ("OFF", 0), ("extra", 3)])
async def test_synchronous_is_configurable(journal_path: Path, setting: str, level: int) -> None:
    async with SqliteJournal(journal_path, synchronous=setting) as journal:
        assert await connection_pragma(journal, "synchronous") == level


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"synchronous": "SOMETIMES"}, "synchronous"),
        ({"read_batch": 0}, "read_batch"),
        ({"read_batch": True}, "read_batch"),
        ({"read_batch": 1.5}, "read_batch"),
    ],
)
def test_bad_settings_are_rejected_when_the_journal_is_built(
    journal_path: Path, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidConfig) as caught:
        SqliteJournal(journal_path, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


# -- group commit --------------------------------------------------------------------------------


async def test_appends_waiting_together_share_one_commit(journal: SqliteJournal) -> None:
    """100 producers, each on its own stream, all waiting at once: one transaction, one fsync."""
    highest = await asyncio.gather(*(journal.append(f"p{i}", [b"a", b"b"], 0) for i in range(100)))

    assert highest == [2] * 100
    assert journal.appends == 100
    assert journal.commits == 1
    assert [await journal.highest_seq(f"p{i}") for i in range(100)] == [2] * 100


async def test_a_lone_producer_commits_every_append_at_once(journal: SqliteJournal) -> None:
    """Nothing waits for company: each append is its own commit and returns committed."""
    for seq in range(10):
        assert await journal.append("solo", [b"e"], seq) == seq + 1
        assert journal.commits == seq + 1

    assert journal.appends == 10


async def test_producers_arriving_during_a_commit_fold_into_the_next_one(journal: SqliteJournal) -> None:
    async def producer(stream: str, batches: int) -> None:
        for seq in range(batches):
            await journal.append(stream, [b"e"], seq)

    await asyncio.gather(*(producer(f"p{i}", 20) for i in range(50)))

    assert journal.appends == 1000
    assert journal.commits <= 1000 // 10  # the producers kept meeting in shared commits
    for i in range(50):
        assert [seq for seq, _ in await read_all(journal, f"p{i}")] == list(range(1, 21))


async def test_checkpoints_run_beside_the_writer_and_keep_the_wal_near_its_checkpoint_size(
    journal_path: Path,
) -> None:
    """The writer's own automatic checkpoint is only a backstop at ten times the size; the
    background checkpoints, and the writer's catch-up between commits, start the WAL over."""
    async with SqliteJournal(journal_path, synchronous="NORMAL") as journal:
        assert await connection_pragma(journal, "wal_autocheckpoint") == 10 * sqlite_module.CHECKPOINT_FRAMES
        seq = 0
        for _ in range(6000):  # about 18,000 WAL frames if nothing started the WAL over
            seq = await journal.append("solo", [b"\x01" * 64], seq)
        checkpoints = journal.checkpoints
        page_size = pragma(journal_path, "page_size")
        assert isinstance(page_size, int)
        wal_bytes = wal_size(journal_path)

    assert checkpoints >= 3
    # Commits go on while a checkpoint copies, so a cycle overshoots; the backstop alone
    # would let it reach 10 x CHECKPOINT_FRAMES.
    assert wal_bytes <= 5 * sqlite_module.CHECKPOINT_FRAMES * (page_size + 24)
    async with SqliteJournal(journal_path) as reopened:
        assert [s for s, _ in await read_all(reopened, "solo")] == list(range(1, 6001))


async def test_closing_while_a_checkpoint_runs_loses_nothing_and_warns_of_nothing(journal_path: Path) -> None:
    # A future whose error nobody retrieved reaches the loop's exception handler when collected.
    unhandled: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: unhandled.append(context))
    journal = SqliteJournal(journal_path, synchronous="NORMAL")
    await journal.open()
    journal._checkpoint_after = 1  # a checkpoint after every commit: one is running at the close
    await asyncio.gather(*(journal.append(f"p{i}", [b"e"], 0) for i in range(50)))
    await journal.append("p0", [b"f"], 1)
    await journal.close()

    assert journal.checkpoints >= 1
    del journal
    gc.collect()
    assert unhandled == []
    async with SqliteJournal(journal_path) as reopened:
        assert [s for s, _ in await read_all(reopened, "p0")] == [1, 2]
        assert await reopened.highest_seq("p49") == 1


async def test_a_group_with_consumer_acks_commits_events_and_offsets_together(
    journal: SqliteJournal, journal_path: Path
) -> None:
    from garrison.persistence import Ack

    await asyncio.gather(
        journal.append("out-1", [b"x"], 0, acks=[Ack("in", "g", 4)]),
        journal.append("out-2", [b"y"], 0),
    )

    assert journal.commits == 1
    assert await journal.acked_seq("in", "g") == 4
    db = sqlite3.connect(journal_path)
    try:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 2
    finally:
        db.close()


# -- schema versions ------------------------------------------------------------------------------


def set_user_version(path: Path, version: int) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute(f"PRAGMA user_version = {version}")
        db.commit()
    finally:
        db.close()


async def make_journal(path: Path) -> None:
    async with SqliteJournal(path) as journal:
        await journal.append("s", [b"kept"], 0)


async def test_a_file_from_a_newer_schema_is_refused_untouched(journal_path: Path) -> None:
    await make_journal(journal_path)
    set_user_version(journal_path, sqlite_schema.SCHEMA_VERSION + 1)
    before = digest(journal_path)

    with pytest.raises(JournalCorrupt, match="newer garrison") as caught:
        await SqliteJournal(journal_path).open()

    assert caught.value.path == str(journal_path)
    assert digest(journal_path) == before


def files_in(folder: Path) -> list[tuple[str, int]]:
    return sorted((path.name, path.stat().st_size) for path in folder.iterdir())


def statements(*sql: str) -> sqlite_schema.Migration:
    async def migration(db: aiosqlite.Connection) -> None:
        for statement in sql:
            await db.execute(statement)

    return migration


async def test_an_older_schema_needs_an_explicit_migration(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_journal(journal_path)
    current = sqlite_schema.SCHEMA_VERSION
    monkeypatch.setattr(sqlite_schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(
        sqlite_schema, "MIGRATIONS", {current: statements("CREATE TABLE added_by_migration (x INTEGER)")}
    )

    with pytest.raises(JournalCorrupt, match=r"garrison journal migrate"):
        await SqliteJournal(journal_path).open()
    assert pragma(journal_path, "user_version") == current

    async with SqliteJournal(journal_path, migrate=True) as migrated:
        assert await read_all(migrated, "s") == [(1, b"kept")]
        assert await migrated.append("s", [b"after"], 1) == 2

    assert pragma(journal_path, "user_version") == current + 1
    db = sqlite3.connect(journal_path)
    try:
        assert db.execute("SELECT count(*) FROM added_by_migration").fetchone()[0] == 0
    finally:
        db.close()


async def test_a_migration_that_fails_leaves_the_file_at_its_old_version(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_journal(journal_path)
    current = sqlite_schema.SCHEMA_VERSION
    monkeypatch.setattr(sqlite_schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(
        sqlite_schema,
        "MIGRATIONS",
        {current: statements("CREATE TABLE half_done (x INTEGER)", "ALTER TABLE no_such_table ADD COLUMN y")},
    )

    with pytest.raises(sqlite3.OperationalError):
        await SqliteJournal(journal_path, migrate=True).open()

    assert pragma(journal_path, "user_version") == current
    db = sqlite3.connect(journal_path)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    finally:
        db.close()
    assert "half_done" not in tables


async def test_a_missing_migration_step_is_a_clear_error(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_journal(journal_path)
    monkeypatch.setattr(sqlite_schema, "SCHEMA_VERSION", sqlite_schema.SCHEMA_VERSION + 1)
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", {})

    with pytest.raises(JournalCorrupt, match="no migration from version"):
        await SqliteJournal(journal_path, migrate=True).open()


# -- files that are not journals --------------------------------------------------------------------


async def test_a_file_that_is_not_sqlite_is_refused_untouched(journal_path: Path) -> None:
    write_file(journal_path, b"this is a text file, not a database\n" * 200)
    before = digest(journal_path)

    with pytest.raises(JournalCorrupt, match="not a SQLite database"):
        await SqliteJournal(journal_path).open()

    assert digest(journal_path) == before
    assert not wal_exists(journal_path)


async def test_a_sqlite_file_of_another_program_is_refused_untouched(journal_path: Path) -> None:
    db = sqlite3.connect(journal_path)
    db.execute("CREATE TABLE customers (name TEXT)")
    db.execute("INSERT INTO customers VALUES ('ada')")
    db.commit()
    db.close()
    before = digest(journal_path)

    with pytest.raises(JournalCorrupt, match=r"something else \(tables \['customers'\]\)"):
        await SqliteJournal(journal_path).open()

    assert digest(journal_path) == before
    assert pragma(journal_path, "journal_mode") == "delete"


async def test_a_sqlite_file_with_another_application_id_is_refused(journal_path: Path) -> None:
    db = sqlite3.connect(journal_path)
    db.execute("PRAGMA application_id = 1234")
    db.commit()
    db.close()

    with pytest.raises(JournalCorrupt, match="another application"):
        await SqliteJournal(journal_path).open()


async def test_an_empty_file_is_refused_as_a_truncated_journal_and_left_alone(journal_path: Path) -> None:
    write_file(journal_path, b"")

    with pytest.raises(JournalCorrupt, match="empty file") as caught:
        await SqliteJournal(journal_path).open()

    assert caught.value.path == str(journal_path)
    assert files_in(journal_path.parent) == [(journal_path.name, 0)]


async def test_a_new_journal_file_is_never_seen_without_its_tables(journal_path: Path) -> None:
    async with SqliteJournal(journal_path) as journal:
        assert SqliteJournal.check_file(journal_path) is None
        assert await journal.append("s", [b"x"], 0) == 1
    assert [name for name, _ in files_in(journal_path.parent) if ".new-" in name] == []


async def test_journals_creating_one_new_file_at_once_all_open_it(tmp_path: Path) -> None:
    for attempt in range(10):
        path = tmp_path / f"new-{attempt}.db"
        journals = [SqliteJournal(path) for _ in range(3)]
        try:
            await asyncio.gather(*(journal.open() for journal in journals))
            for seq, journal in enumerate(journals):
                assert await journal.append("s", [b"x"], seq) == seq + 1
        finally:
            for journal in journals:
                await journal.close()


async def test_a_damaged_page_is_reported_as_corrupt_naming_the_stream_and_others_still_read(
    journal_path: Path,
) -> None:
    async with SqliteJournal(journal_path) as journal:
        for stream in ("small", "big"):
            await journal.append(stream, [b"keep"], 0)
        await journal.append("big", [os.urandom(3000) for _ in range(400)], 1)
        small = await read_all(journal, "small")
    damage_middle_pages(journal_path, 8)  # the middle of the file holds big's events

    async with SqliteJournal(journal_path) as journal:
        with pytest.raises(JournalCorrupt, match="reading stream 'big'") as caught:
            await read_all(journal, "big")
        assert "damaged" in str(caught.value)
        assert await read_all(journal, "small") == small


# -- version 1 files (no checksums) --------------------------------------------------------------

V1_SCHEMA = (
    "CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, seq INTEGER NOT NULL, "
    "payload BLOB NOT NULL)",
    "CREATE UNIQUE INDEX events_by_stream ON events (stream, seq)",
    "CREATE TABLE snapshots (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL, state BLOB NOT NULL)",
    "CREATE TABLE deletions (stream TEXT PRIMARY KEY, up_to_seq INTEGER NOT NULL)",
    "CREATE TABLE offsets (stream TEXT NOT NULL, grp TEXT NOT NULL, seq INTEGER NOT NULL, "
    "PRIMARY KEY (stream, grp)) WITHOUT ROWID",
)


def write_v1_journal(path: Path) -> None:
    """A journal as garrison wrote it before checksums (schema version 1): two streams, the
    first two events of one deleted, a snapshot, a consumer offset."""
    db = sqlite3.connect(path)
    try:
        for statement in V1_SCHEMA:
            db.execute(statement)
        rows = [("a", seq, f"a{seq}".encode()) for seq in range(3, 8)] + [
            ("b", seq, f"b{seq}".encode()) for seq in range(1, 4)
        ]
        db.executemany("INSERT INTO events (stream, seq, payload) VALUES (?, ?, ?)", rows)
        db.execute("INSERT INTO deletions VALUES ('a', 2)")
        db.execute("INSERT INTO snapshots VALUES ('a', 4, x'0102')")
        db.execute("INSERT INTO offsets VALUES ('b', 'g', 2)")
        db.execute(f"PRAGMA application_id = {sqlite_schema.APPLICATION_ID}")
        db.execute("PRAGMA user_version = 1")
        db.commit()
    finally:
        db.close()


async def test_a_version_1_file_is_refused_until_migrated_then_reads_with_checksums(
    journal_path: Path,
) -> None:
    write_v1_journal(journal_path)
    before = digest(journal_path)

    with pytest.raises(JournalCorrupt, match="garrison journal migrate") as caught:
        await SqliteJournal(journal_path).open()
    assert caught.value.path == str(journal_path)
    assert digest(journal_path) == before

    async with SqliteJournal(journal_path, migrate=True):
        pass
    assert pragma(journal_path, "user_version") == sqlite_schema.SCHEMA_VERSION

    async with SqliteJournal(journal_path) as journal:
        assert await read_all(journal, "a") == [(seq, f"a{seq}".encode()) for seq in range(3, 8)]
        assert await read_all(journal, "b") == [(seq, f"b{seq}".encode()) for seq in range(1, 4)]
        assert await journal.load_snapshot("a") == (4, b"\x01\x02")
        assert await journal.acked_seq("b", "g") == 2
        assert [problem async for problem in journal.verify()] == []
        assert await journal.append("a", [b"a8"], 7) == 8
        assert await journal.append("b", [b"b4"], 3) == 4
        assert (await read_all(journal, "a"))[-1] == (8, b"a8")


async def test_a_stale_writer_cannot_append_at_a_deleted_seq(tmp_path: Path) -> None:
    """Two journals on one file: the second has not seen the first's appends, which were deleted."""
    path = tmp_path / "shared.db"
    async with SqliteJournal(path) as first, SqliteJournal(path) as second:
        assert await first.append("s", [b"a"], 0) == 1
        assert await second.append("s", [b"b"], 1) == 2  # second has seen seq 1 and caches 2
        assert await first.append("s", [b"c"], 2) == 3  # first moves on behind second's back
        await first.delete_events("s", 3)
        with pytest.raises(SequenceConflict) as caught:
            await second.append("s", [b"stale"], 2)  # seq 3 was deleted, not free
        assert caught.value.actual_seq == 3
        assert await read_all(first, "s") == []
        assert await first.highest_seq("s") == 3
