"""The SQLite journal's file format: its tables, its header, its migrations, and the checks
that refuse a file that is not a garrison journal this version reads.

A garrison journal marks its file with ``PRAGMA application_id`` (``APPLICATION_ID``)
and ``PRAGMA user_version`` (``SCHEMA_VERSION``). Every check here reads before
anything is written: a file of another program, a damaged file or one written by
a newer garrison raises JournalCorrupt and is left as it was. ``SqliteJournal``
uses ``check_schema`` and ``create_or_migrate`` on open; tools that must not
write (``garrison journal inspect``) use ``check_file`` through
``SqliteJournal.check_file``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote

import aiosqlite

from garrison._errors import JournalCorrupt
from garrison.persistence._checksum import chain, snapshot_checksum

SCHEMA_VERSION = 2
APPLICATION_ID = 0x47415252  # "GARR": marks a SQLite file as a garrison journal

SCHEMA = (
    # Rows go in append order (rowid): a group commit touching many streams
    # writes a few sequential pages plus index entries, not a page per stream.
    # ``crc`` is the stream's chained checksum through this event (_checksum.chain).
    """CREATE TABLE events (
        position INTEGER PRIMARY KEY,
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        payload BLOB NOT NULL,
        crc INTEGER NOT NULL
    )""",
    "CREATE UNIQUE INDEX events_by_stream ON events (stream, seq)",
    # ``crc``: the snapshot's own checksum (_checksum.checksum).
    """CREATE TABLE snapshots (
        stream TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        state BLOB NOT NULL,
        crc INTEGER NOT NULL
    )""",
    # ``crc``: the chained checksum at ``up_to_seq``, where the stream's chain resumes.
    """CREATE TABLE deletions (
        stream TEXT PRIMARY KEY,
        up_to_seq INTEGER NOT NULL,
        crc INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE offsets (
        stream TEXT NOT NULL,
        grp TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (stream, grp)
    ) WITHOUT ROWID""",
    # Events set aside by ``quarantine``: out of the stream (replay skips their seq), kept
    # as they were (``crc`` too, so the chain after them still verifies), restorable.
    """CREATE TABLE quarantine (
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        payload BLOB NOT NULL,
        crc INTEGER NOT NULL,
        reason TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (stream, seq)
    ) WITHOUT ROWID""",
    # Each stream's last appended event, kept by SQLite itself in the appending statement:
    # a read that ends short of it has lost the stream's tail (a damaged index, say),
    # which the chained checksums alone cannot see.
    """CREATE TABLE heads (
        stream TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        crc INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TRIGGER events_head AFTER INSERT ON events BEGIN
        INSERT INTO heads (stream, seq, crc) VALUES (NEW.stream, NEW.seq, NEW.crc)
        ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, crc = excluded.crc
        WHERE excluded.seq > heads.seq;
    END""",
    # No event lands at or below its stream's head: a writer in another process that has not
    # seen the latest appends gets SequenceConflict (an IntegrityError to SQLite) even where
    # the events it would overwrite were deleted. Only a quarantined event goes back there.
    """CREATE TRIGGER events_after_head BEFORE INSERT ON events
    WHEN NEW.seq <= coalesce((SELECT seq FROM heads WHERE stream = NEW.stream), 0)
        AND NOT EXISTS (SELECT 1 FROM quarantine WHERE stream = NEW.stream AND seq = NEW.seq)
    BEGIN
        SELECT RAISE(ABORT, 'an event at or below its stream''s head');
    END""",
)
"""The statements that create a new journal file at ``SCHEMA_VERSION``."""
_ADDED_IN_2 = 4
"""The last statements of SCHEMA, which version 2 added: quarantine, heads and its triggers."""

TABLES = frozenset({"events", "snapshots", "deletions", "offsets", "quarantine", "heads"})
"""The tables of a journal file at ``SCHEMA_VERSION``."""

Migration = Callable[[aiosqlite.Connection], Awaitable[None]]


async def _add_checksums(db: aiosqlite.Connection) -> None:
    """Version 1 to 2: a chained checksum on every event, a checksum on every snapshot, the
    quarantine table. A stream whose first events were deleted resumes its chain from 0."""
    for statement in (
        "ALTER TABLE events ADD COLUMN crc INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE snapshots ADD COLUMN crc INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE deletions ADD COLUMN crc INTEGER NOT NULL DEFAULT 0",
        *SCHEMA[-_ADDED_IN_2:],
    ):
        await db.execute(statement)
    stream: object = None
    previous = 0
    updates: list[tuple[int, int]] = []
    async with db.execute("SELECT position, stream, payload FROM events ORDER BY stream, seq") as rows:
        async for position, row_stream, payload in rows:
            if row_stream != stream:
                stream, previous = row_stream, 0
            previous = chain(payload, previous)
            updates.append((previous, position))
            if len(updates) >= 10_000:
                await db.executemany("UPDATE events SET crc = ? WHERE position = ?", updates)
                updates = []
    if updates:
        await db.executemany("UPDATE events SET crc = ? WHERE position = ?", updates)
    await db.execute(
        "INSERT INTO heads (stream, seq, crc) SELECT stream, seq, crc FROM events AS e "
        "WHERE seq = (SELECT max(seq) FROM events WHERE stream = e.stream)"
    )
    # A stream whose events were all deleted still has a head: the deletion's end.
    await db.execute(
        "INSERT OR IGNORE INTO heads (stream, seq, crc) SELECT stream, up_to_seq, crc FROM deletions"
    )
    snapshots = [
        (snapshot_checksum(seq, state), name)
        for name, seq, state in await db.execute_fetchall("SELECT stream, seq, state FROM snapshots")
    ]
    await db.executemany("UPDATE snapshots SET crc = ? WHERE stream = ?", snapshots)


MIGRATIONS: dict[int, Migration] = {1: _add_checksums}
"""The step that takes a file from schema version N to N+1, by N. Applied only when
the journal is opened with ``migrate=True`` (``garrison journal migrate``): migrations
are explicit."""

_DAMAGED = (
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
    "SQLITE_FORMAT",
    "SQLITE_SCHEMA",
    "SQLITE_RANGE",
    "SQLITE_MISMATCH",
)
"""SQLite's names (prefixes) for an error that says the file is not the database garrison
wrote: damaged, not a database, or of an unsupported format."""
_GENERIC = "SQLITE_ERROR"
"""SQLite's generic error: for the journal's own fixed statements, a table, column or file
format that is not there, so also damage (never busy, locked, full or an I/O error)."""


class Header(NamedTuple):
    """What a file says about itself, read before anything is written to it."""

    application_id: int
    version: int
    tables: set[str]


def check_header(path: str, header: Header, *, migrate: bool) -> None:
    """Raise JournalCorrupt unless the file is new (no tables at all), current, or older
    and migratable with ``migrate=True``. The message names the file and what to do."""
    application_id, version, tables = header
    if application_id == 0 and version == 0:
        if tables:
            raise JournalCorrupt(
                path, f"a SQLite file of something else (tables {sorted(tables)}), not a journal"
            )
        return
    if application_id != APPLICATION_ID:
        raise JournalCorrupt(
            path, f"a SQLite file of another application (application_id={application_id:#x})"
        )
    if version == SCHEMA_VERSION and not tables >= TABLES:
        raise JournalCorrupt(path, f"the journal's tables {sorted(TABLES - tables)} are missing: damaged")
    if version > SCHEMA_VERSION:
        raise JournalCorrupt(
            path,
            f"written by a newer garrison (schema version {version}; this one reads up to "
            f"{SCHEMA_VERSION}); upgrade garrison",
        )
    if version < SCHEMA_VERSION:
        if not migrate:
            raise JournalCorrupt(
                path,
                f"schema version {version} is older than {SCHEMA_VERSION}; back the file up and run "
                f"'garrison journal migrate {path}' (or open it with SqliteJournal(..., migrate=True))",
            )
        missing = [step for step in range(version, SCHEMA_VERSION) if step not in MIGRATIONS]
        if missing:
            raise JournalCorrupt(path, f"schema version {version}: no migration from version {missing[0]}")


def check_file(path: str | os.PathLike[str]) -> None:
    """Raise JournalCorrupt unless ``path`` is a garrison journal this version opens without
    migrating. Reads only: the file is opened read-only, never created, configured or
    migrated. Blocks (a synchronous read): for tools, not for the event loop."""
    name = os.fspath(path)
    try:
        db = sqlite3.connect(f"file:{quote(os.path.realpath(name))}?mode=ro", uri=True)
        try:
            header = Header(
                db.execute("PRAGMA application_id").fetchone()[0],
                db.execute("PRAGMA user_version").fetchone()[0],
                {row[0] for row in db.execute("SELECT name FROM sqlite_master")},
            )
        finally:
            db.close()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as error:
        raise JournalCorrupt(name, f"not a SQLite database, or damaged ({error})") from error
    if header.application_id == 0 and header.version == 0 and not header.tables:
        raise JournalCorrupt(name, "an empty SQLite file, not a journal")
    check_header(name, header, migrate=False)


async def read_header(db: aiosqlite.Connection, path: str) -> Header:
    """The file's header, read in one read transaction (unless ``db`` is in one already).

    Raises JournalCorrupt for a file that is not a SQLite database or is damaged."""
    # One read transaction: another connection creating the schema meanwhile
    # must not make a half-created file look like some other program's.
    own_transaction = not db.in_transaction
    try:
        if own_transaction:
            await db.execute("BEGIN")
        application_id = await scalar(db, "PRAGMA application_id")
        version = await scalar(db, "PRAGMA user_version")
        tables = {row[0] for row in await db.execute_fetchall("SELECT name FROM sqlite_master")}
    except UnicodeDecodeError as error:
        raise JournalCorrupt(path, f"the file's schema is damaged ({error})") from error
    except sqlite3.DatabaseError as error:
        raise_if_damaged(error, path)
        raise
    finally:
        if own_transaction:
            await rollback(db)
    return Header(application_id, version, tables)


async def check_schema(db: aiosqlite.Connection, path: str, *, migrate: bool) -> int:
    """Read and check the header before anything is written; returns the file's schema
    version (0 for a new file). Raises JournalCorrupt as ``check_header`` does."""
    header = await read_header(db, path)
    check_header(path, header, migrate=migrate)
    return header.version


async def create_or_migrate(db: aiosqlite.Connection, path: str, *, migrate: bool) -> None:
    """Bring the file to ``SCHEMA_VERSION``: create the tables of a new file, or run the
    migrations of an older one, in one write transaction (all or nothing).

    The header is read again inside that transaction, since another connection may
    have created or migrated the file meanwhile. Raises JournalCorrupt as
    ``check_header`` does."""
    async with write_transaction(db):
        header = await read_header(db, path)
        check_header(path, header, migrate=migrate)
        if header.application_id == 0 and header.version == 0:
            for statement in SCHEMA:
                await db.execute(statement)
            await db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        else:
            for step in range(header.version, SCHEMA_VERSION):
                await MIGRATIONS[step](db)
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextlib.asynccontextmanager
async def write_transaction(db: aiosqlite.Connection) -> AsyncIterator[None]:
    """One write transaction (BEGIN IMMEDIATE): committed if the block ends, rolled back if it raises."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        yield
        await db.execute("COMMIT")
    except BaseException:
        await rollback(db)
        raise


def error_name(error: sqlite3.Error) -> str:
    """SQLite's name for ``error`` (``SQLITE_BUSY``, ``SQLITE_CORRUPT``...), or ""."""
    return str(getattr(error, "sqlite_errorname", ""))


def raise_if_damaged(error: sqlite3.DatabaseError, path: str, where: str = "") -> None:
    """Raise JournalCorrupt (from ``error``) if it says the file is not a database or is damaged."""
    name = error_name(error)
    if name.startswith(_DAMAGED) or name == _GENERIC:
        raise JournalCorrupt(path, f"{where}not a SQLite database, or damaged ({error})") from error


async def scalar(db: aiosqlite.Connection, sql: str, parameters: Sequence[Any] = ()) -> int:
    """The first column of the first row as an int (0 for no row or NULL)."""
    rows = list(await db.execute_fetchall(sql, parameters))
    value = rows[0][0] if rows else None
    return int(value) if value is not None else 0


async def rollback(db: aiosqlite.Connection) -> None:
    """Roll back the transaction ``db`` is in, if any."""
    if db.in_transaction:
        await db.execute("ROLLBACK")
