"""``SqliteJournal``: the embedded default journal, with group commit.

One writer task owns the write connection and folds every append waiting at
that moment into one commit, so concurrent producers share one fsync while a
lone producer pays no extra delay (the writer wakes as soon as an append
arrives). A batch without consumer acks is one multi-row INSERT in
autocommit mode: one statement, one thread hop, one fsync, atomic. Reads use
a second connection, so they see only committed events and never wait for a
commit in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from functools import lru_cache
from typing import Any
from zlib import crc32

import aiosqlite
from loguru import logger

from garrison._errors import InvalidConfig, JournalClosed, JournalCorrupt, JournalWriteError, SequenceConflict
from garrison.persistence import _sqlite_schema as sqlite_schema
from garrison.persistence._checksum import chain, snapshot_checksum, snapshot_intact, stored_bytes
from garrison.persistence._groupcommit import GroupCommitJournal, PendingAppend
from garrison.persistence._journal import (
    JournalProblem,
    PackedEvents,
    QuarantinedEvent,
    ReadsInBatches,
    StreamSummary,
    check_positive_int,
    check_seq,
    check_stream,
    pack_rows,
)
from garrison.persistence._sqlite_schema import error_name, raise_if_damaged, scalar, write_transaction

MAX_ROWS_PER_STATEMENT = 8_000  # 4 parameters a row, under SQLite's 32,766-variable limit

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_WAL_SWITCH_ATTEMPTS = 500  # 10 ms apart: as long as busy_timeout
CHECKPOINT_FRAMES = 1000
"""WAL frames a background checkpoint lets accumulate before it copies them (SQLite's own default)."""
_WRITER_AUTOCHECKPOINT = 10 * CHECKPOINT_FRAMES
"""The writer's own checkpoint, only if the background one cannot keep up (a reader holding the WAL)."""


@lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    return "INSERT INTO events (stream, seq, payload, crc) VALUES " + ",".join(["(?,?,?,?)"] * rows)


_Plan = tuple[
    dict[str, int],
    dict[str, int],
    list[tuple[PendingAppend, int]],
    list[tuple[PendingAppend, int]],
    list[Any],
]
"""What ``SqliteJournal._plan`` makes of a batch: new highest seqs and chained checksums,
accepted, conflicts, rows."""


class _Exclusive:
    """A write that is not an append (snapshot, deletion, ack), run by the writer in turn.

    ``commit`` is False for the writer's own housekeeping (a checkpoint), which
    is not counted as a commit and whose failure nobody awaits."""

    __slots__ = ("commit", "future", "operation")

    stream = "(snapshot/ack/delete)"
    """What a JournalWriteError of this write names in place of a stream."""

    def __init__(
        self,
        operation: Callable[[aiosqlite.Connection], Awaitable[None]],
        future: asyncio.Future[int],
        *,
        commit: bool = True,
    ) -> None:
        self.operation = operation
        self.future = future
        self.commit = commit

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)
            if not self.commit:
                self.future.exception()  # retrieved: nobody awaits housekeeping


def _no_place_for_a_file(path: str) -> bool:
    """True when ``path`` is a folder or its folder does not exist (two stat calls, on the loop)."""
    if path == ":memory:":
        return False
    return os.path.isdir(path) or not os.path.isdir(os.path.dirname(path) or ".")


class SqliteJournal(GroupCommitJournal[_Exclusive], ReadsInBatches):
    """A journal in one SQLite file (WAL mode).

    ``synchronous="FULL"`` (default) makes every acknowledged append survive
    power loss; ``"NORMAL"`` survives a process crash but may lose the last
    commits on power loss. Opening a file that is not a garrison journal, is
    damaged, or was written by a newer schema raises JournalCorrupt; a file
    from an older schema needs ``migrate=True``.

    Use as ``async with SqliteJournal("state.db") as journal:``. Appends,
    ``stats``, ``open``/``close`` and group commit are the journal core's
    (``GroupCommitJournal``); a batch commits as one transaction
    (``_commit_batch``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        read_batch: int = 10_000,
        migrate: bool = False,
    ) -> None:
        if str(synchronous).upper() not in _SYNCHRONOUS:
            raise InvalidConfig("synchronous", synchronous, f"must be one of {_SYNCHRONOUS}")
        check_positive_int("read_batch", read_batch)
        self.path = os.fspath(path)
        super().__init__(self.path, f"garrison:journal-writer:{self.path}")
        self.synchronous = str(synchronous).upper()
        self.read_batch = read_batch
        self.migrate = migrate
        self._writer_db: aiosqlite.Connection | None = None
        self._reader_db: aiosqlite.Connection | None = None
        self._highest: dict[str, int] = {}
        self._chains: dict[str, int] = {}
        """Each cached stream's chained checksum at its highest seq (``_checksum.chain``)."""
        self._packing_checked: aiosqlite.Connection | None = None
        self._packing = False
        self.checkpoints = 0
        """Background WAL checkpoints run (off the commit path, on a connection of their own)."""
        self._checkpoint_db: aiosqlite.Connection | None = None
        self._checkpointing: asyncio.Task[None] | None = None
        self._commits_since_checkpoint = 0
        self._commits_in_wal = 0
        """Commits since the WAL last started over: its frames over this are frames per commit."""
        self._checkpoint_after = 64
        """Commits between checkpoints, learned from how many WAL frames a commit writes."""

    @staticmethod
    def check_file(path: str | os.PathLike[str]) -> None:
        """Raise JournalCorrupt unless ``path`` is a garrison journal this version opens
        without ``migrate=True`` (the message says what is wrong and what to do).

        Reads only: the file is opened read-only, never created, switched to WAL or
        migrated. Blocks for one small synchronous read: for tools such as
        ``garrison journal inspect``, not for code on the event loop.
        """
        sqlite_schema.check_file(path)

    # -- open and close (the journal core's hooks) -------------------------------------

    async def _open_connections(self) -> None:
        """Open (creating if new) and check the file; raises JournalCorrupt, leaving nothing open."""
        found = _file_state(self.path)
        if found == "missing":
            await self._create()
        elif found == "empty":
            # A new journal is never empty (see _create): this one was truncated, and
            # opening it would start the journal over, every event and id forgotten.
            raise JournalCorrupt(
                self.path,
                "an empty file: a journal truncated to nothing? garrison creates a new journal "
                "itself; to start over on purpose, delete the file",
            )
        async with contextlib.AsyncExitStack() as opened:
            writer = await self._connect(configure=False)
            opened.push_async_callback(writer.close)
            await self._check_schema(writer)
            # Checkpoints run in the background (see _checkpoint): a commit never copies the WAL.
            await writer.execute(f"PRAGMA wal_autocheckpoint = {_WRITER_AUTOCHECKPOINT}")
            reader = await self._connect()
            opened.push_async_callback(reader.close)
            checkpoint_db = await self._connect()
            opened.pop_all()  # all three open and checked: _close_connections closes them
        self._writer_db = writer
        self._reader_db = reader
        self._checkpoint_db = checkpoint_db
        # Another process may have appended while this journal was closed.
        self._forget(self._highest)

    async def _close_connections(self) -> None:
        if self._checkpointing is not None:
            # Its statement runs on the connection's thread and cannot be cut short.
            await asyncio.wait({self._checkpointing})
        for db in (self._writer_db, self._reader_db, self._checkpoint_db):
            if db is not None:
                await db.close()
        self._writer_db = self._reader_db = self._checkpoint_db = None

    async def _create(self) -> None:
        """Create a new journal file whole: its tables are made in a file beside it, which is
        then linked into place only if nothing is there yet (another journal may have won the
        race). So a journal file is never seen without its tables, and an empty file at the
        path can only be damage."""
        staging = f"{self.path}.new-{os.getpid()}-{id(self):x}"
        try:
            db = await self._open_file(staging)
            try:
                await self._configure(db)
                await sqlite_schema.create_or_migrate(db, staging, migrate=False)
            finally:
                await db.close()
            _link_new(staging, self.path)
        finally:
            _remove_staging(staging)

    async def _open_file(self, path: str) -> aiosqlite.Connection:
        """A connection to ``path``; a file SQLite cannot open (a missing folder, a folder
        at the path, no permission) raises InvalidConfig naming it."""
        cannot_open = (
            "SQLite cannot open a journal file there: check that its folder exists, that the path "
            "is not a folder, and that this user may write there"
        )
        # Checked before aiosqlite's thread starts: a connect that fails leaves that thread to
        # report to a loop that may be closed by then (a traceback at exit).
        if _no_place_for_a_file(path):
            raise InvalidConfig("path", self.path, cannot_open)
        try:
            return await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.OperationalError as error:
            if error_name(error) != "SQLITE_CANTOPEN":
                raise
            raise InvalidConfig("path", self.path, cannot_open) from error

    async def _connect(self, *, configure: bool = True) -> aiosqlite.Connection:
        db = await self._open_file(self.path)
        try:
            await db.execute("PRAGMA busy_timeout = 5000")
            if configure:
                await self._configure(db)
        except BaseException:
            await db.close()
            raise
        return db

    async def _configure(self, db: aiosqlite.Connection) -> None:
        try:
            for attempt in range(_WAL_SWITCH_ATTEMPTS):
                try:
                    await db.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as error:
                    # Switching a new file to WAL needs it alone for a moment, and
                    # SQLite reports another opener as busy without waiting for it.
                    if error_name(error) != "SQLITE_BUSY" or attempt == _WAL_SWITCH_ATTEMPTS - 1:
                        raise
                    await asyncio.sleep(0.01)
            await db.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.DatabaseError as error:
            raise_if_damaged(error, self.path)
            raise

    async def _check_schema(self, db: aiosqlite.Connection) -> None:
        # The file is checked before anything is written to it (journal_mode=WAL
        # is persistent): a file of another application is left as it was.
        version = await sqlite_schema.check_schema(db, self.path, migrate=self.migrate)
        await self._configure(db)
        if version != sqlite_schema.SCHEMA_VERSION:
            await sqlite_schema.create_or_migrate(db, self.path, migrate=self.migrate)

    # -- writes ------------------------------------------------------------------------

    async def ack(self, stream: str, group: str, seq: int) -> None:
        """Move ``group``'s offset on ``stream`` to ``seq``; never moves it backwards."""
        check_stream(stream)
        check_seq("seq", seq)

        async def write(db: aiosqlite.Connection) -> None:
            await db.execute(_UPSERT_OFFSET, (stream, group, seq))

        await self._exclusive(write)

    async def save_snapshot(self, stream: str, seq: int, state: bytes) -> None:
        """Store ``state`` as of ``seq``; an older snapshot never replaces a newer one."""
        check_stream(stream)
        check_seq("seq", seq)
        if not isinstance(state, bytes):
            raise InvalidConfig("state", type(state).__name__, "a snapshot state must be bytes")

        async def write(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO snapshots (stream, seq, state, crc) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, state = excluded.state, "
                "crc = excluded.crc WHERE excluded.seq >= snapshots.seq",
                (stream, seq, state, snapshot_checksum(seq, state)),
            )

        await self._exclusive(write)

    async def replace_snapshot(self, stream: str, expected_seq: int | None, seq: int, state: bytes) -> bool:
        """Store ``state`` as of ``seq`` only if the stored snapshot is still the one at
        ``expected_seq`` (None: none is stored); True if it was stored."""
        check_stream(stream)
        check_seq("seq", seq)
        if expected_seq is not None:
            check_seq("expected_seq", expected_seq)
        if not isinstance(state, bytes):
            raise InvalidConfig("state", type(state).__name__, "a snapshot state must be bytes")
        stored: list[bool] = []

        async def write(db: aiosqlite.Connection) -> None:
            async with write_transaction(db):
                current = await _snapshot_seq(db, stream)
                if current != expected_seq:
                    stored.append(False)
                    return
                await db.execute(
                    "INSERT INTO snapshots (stream, seq, state, crc) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, state = excluded.state, "
                    "crc = excluded.crc",
                    (stream, seq, state, snapshot_checksum(seq, state)),
                )
                stored.append(True)

        await self._exclusive(write)
        return stored == [True]

    async def delete_events(self, stream: str, up_to_seq: int) -> None:
        """Delete events with seq <= ``up_to_seq``; ``highest_seq`` is unchanged."""
        check_stream(stream)
        check_seq("up_to_seq", up_to_seq)

        async def write(db: aiosqlite.Connection) -> None:
            async with write_transaction(db):
                # Deleting past the end deletes everything but must not raise the
                # highest seq (the writer would then number from a seq nobody saw). The
                # chain's value at the new start is kept: the next event continues it.
                await db.execute(_DELETION_SQL, (stream, up_to_seq))
                await db.execute("DELETE FROM events WHERE stream = ? AND seq <= ?", (stream, up_to_seq))

        await self._exclusive(write)

    async def _exclusive(self, operation: Callable[[aiosqlite.Connection], Awaitable[None]]) -> None:
        future = self._new_future()
        self._queue.put(_Exclusive(operation, future))
        await future

    async def _commit_batch(self, batch: list[PendingAppend | _Exclusive]) -> None:
        """The journal core's hook: appends in runs of one transaction each, every other
        write alone, in the order queued."""
        appends: list[PendingAppend] = []
        for item in batch:
            if isinstance(item, PendingAppend):
                appends.append(item)
                continue
            # Keep order: appends queued before this write commit first.
            if appends:
                await self._commit(appends)
                appends = []
            await self._run_exclusive(item)
        if appends:
            await self._commit(appends)

    async def _run_exclusive(self, item: _Exclusive) -> None:
        assert self._writer_db is not None
        try:
            await item.operation(self._writer_db)
        except Exception as error:
            if not item.commit:
                logger.opt(exception=True).warning("journal {path}: checkpoint failed", path=self.path)
            elif not item.future.done():
                item.future.set_exception(JournalWriteError(item.stream, error))
        else:
            if item.commit:
                self._committed()
            if not item.future.done():
                item.future.set_result(0)

    async def _commit(self, batch: list[PendingAppend], *, retry_alone: bool = True) -> None:
        """Commit a group of appends in one transaction; conflicts fail alone."""
        db = self._writer_db
        assert db is not None
        plan = self._plan(batch, loaded=False)
        if plan is None:
            try:
                await self._load_highest(db, _streams_to_load(batch, self._highest))
            except Exception as error:
                for append in batch:
                    append.fail(JournalWriteError(append.stream, error))
                return
            plan = self._plan(batch, loaded=True)
            assert plan is not None
        tentative, chains, accepted, conflicts, values = plan
        for append, current in conflicts:
            append.fail(SequenceConflict(append.stream, append.expected_seq, current))
        if not accepted:
            return
        rows = len(values) // 4
        acks = [(ack.stream, ack.group, ack.seq) for append, _ in accepted for ack in append.acks]
        try:
            if not acks and 0 < rows <= MAX_ROWS_PER_STATEMENT:
                await db.execute(_insert_sql(rows), values)
            else:
                await self._transaction(db, values, acks)
        except sqlite3.IntegrityError as error:
            # Another process appended to one of these streams: find out which, alone.
            self._forget(tentative)
            for append, _ in accepted:
                if retry_alone:
                    await self._commit([append], retry_alone=False)
                else:
                    try:
                        actual = await _highest(db, append.stream)
                    except Exception as read_error:
                        append.fail(JournalWriteError(append.stream, read_error))
                    else:
                        append.fail(SequenceConflict(append.stream, append.expected_seq, actual))
            del error
            return
        except Exception as error:
            self._forget(tentative)
            for append, _ in accepted:
                append.fail(JournalWriteError(append.stream, error))
            return
        self._highest.update(tentative)
        self._chains.update(chains)
        self._committed()
        self.appends += len(accepted)
        self._histograms.batch(len(accepted))
        for append, new_highest in accepted:
            append.succeed(new_highest)

    def _plan(self, batch: list[PendingAppend], *, loaded: bool) -> _Plan | None:
        """Check a batch against the cached highest seqs: the new highest seq per stream, the
        appends accepted (with theirs), those that conflict (with the seq they met), and the rows.

        None if a stream must be read first (``loaded=False`` only): never seen, or an append
        expects it further along than the cache says (another process may have appended; a
        highest seq never decreases, so one behind is a conflict for sure). One pass: the check
        is the plan, and the common batch needs no other.
        """
        cached = self._highest
        tentative: dict[str, int] = {}
        chains: dict[str, int] = {}
        accepted: list[tuple[PendingAppend, int]] = []
        conflicts: list[tuple[PendingAppend, int]] = []
        values: list[Any] = []  # (stream, seq, payload, crc) per row, flat: the INSERT's parameters
        for append in batch:
            stream = append.stream
            current = tentative.get(stream)
            if current is None:
                current = cached.get(stream)
                if current is None:
                    return None
                crc = self._chains[stream]
            else:
                crc = chains[stream]
            expected = append.expected_seq
            if expected != current:
                if expected > current and not loaded:
                    return None
                conflicts.append((append, current))
                continue
            for payload in append.events:
                current += 1
                crc = crc32(payload, crc)
                values += (stream, current, payload, crc)
            tentative[stream] = current
            chains[stream] = crc
            accepted.append((append, current))
        return tentative, chains, accepted, conflicts, values

    def _committed(self) -> None:
        """Count a commit; start a background checkpoint when about CHECKPOINT_FRAMES are in the WAL."""
        self.commits += 1
        self._commits_since_checkpoint += 1
        self._commits_in_wal += 1
        if (
            self._commits_since_checkpoint >= self._checkpoint_after
            and self._checkpointing is None
            and self._checkpoint_db is not None
        ):
            self._checkpointing = asyncio.get_running_loop().create_task(
                self._checkpoint(self._checkpoint_db),
                name=f"garrison:journal-checkpoint:{self.path}",
            )
            self._commits_since_checkpoint = 0

    async def _checkpoint(self, db: aiosqlite.Connection) -> None:
        """Copy the WAL into the database file beside the writer, not in a commit.

        SQLite's automatic checkpoint runs inside the commit that crosses its
        threshold, so one producer in a few hundred waits for a copy of about
        a thousand pages and two more fsyncs: the append-latency tail. Here a
        PASSIVE checkpoint on a connection of its own copies them while the
        writer goes on appending; then the writer, between two commits, copies
        the few frames written meanwhile, so that its next commit starts the
        WAL over (SQLite restarts it only when a write finds it fully copied).
        A failure costs only a longer WAL; the writer's own automatic
        checkpoint is the backstop (_WRITER_AUTOCHECKPOINT).
        """
        try:
            await db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self.checkpoints += 1
            if self._writer is not None:
                future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                self._queue.put(_Exclusive(self._catch_up, future, commit=False))
        except Exception:
            logger.opt(exception=True).warning("journal {path}: background checkpoint failed", path=self.path)
        finally:
            self._checkpointing = None

    async def _catch_up(self, db: aiosqlite.Connection) -> None:
        """Copy what was written during the background checkpoint (the writer's turn: no commit
        runs meanwhile), and learn from the WAL's size how often to checkpoint."""
        rows = await db.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
        busy, frames, copied = next(iter(rows))
        if not busy and frames == copied and frames > 0 and self._commits_in_wal > 0:
            per_commit = frames / self._commits_in_wal
            self._checkpoint_after = max(1, min(10_000, int(CHECKPOINT_FRAMES / per_commit)))
            self._commits_in_wal = 0

    async def _transaction(self, db: aiosqlite.Connection, values: list[Any], acks: list[Any]) -> None:
        """Rows (``values``: stream, seq, payload per row, flat) and offsets in one transaction."""
        async with write_transaction(db):
            step = 4 * MAX_ROWS_PER_STATEMENT
            for start in range(0, len(values), step):
                chunk = values[start : start + step]
                await db.execute(_insert_sql(len(chunk) // 4), chunk)
            if acks:
                await db.executemany(_UPSERT_OFFSET, acks)

    async def _load_highest(self, db: aiosqlite.Connection, streams: set[str]) -> None:
        for stream in streams:
            highest = await _highest(db, stream)
            self._chains[stream] = await self._chain_at(db, stream, highest)
            self._highest[stream] = highest

    def _forget(self, streams: Iterable[str]) -> None:
        """Drop cached highest seqs and chains (another process may have moved them)."""
        for stream in list(streams):
            self._highest.pop(stream, None)
            self._chains.pop(stream, None)

    async def _chain_at(self, db: aiosqlite.Connection, stream: str, seq: int) -> int:
        """The stream's chained checksum through ``seq``: that of the event (stored or
        quarantined), or of the deletion that ended at it; 0 before the first event.

        Raises JournalCorrupt if nothing holds it: event ``seq`` is missing without having
        been deleted or set aside (a row lost from the middle of the stream)."""
        if seq == 0:
            return 0
        rows = await self._fetched(db.execute_fetchall(_CHAIN_QUERY, (stream, seq)), stream, seq - 1)
        value = rows[0][0] if rows else None
        if value is None:
            raise JournalCorrupt(
                self.path,
                f"stream {stream!r}: event {seq} is missing (neither deleted nor quarantined); "
                "run 'garrison journal verify'",
                stream=stream,
                seq=seq,
            )
        return int(value)

    # -- reads -------------------------------------------------------------------------------

    def _reader(self) -> aiosqlite.Connection:
        if self._reader_db is None:
            raise JournalClosed(self.path)
        return self._reader_db

    async def read_batches(
        self, stream: str, after_seq: int = 0
    ) -> AsyncGenerator[list[tuple[int, bytes]], None]:
        """Events after ``after_seq`` in order, as lists of at most ``read_batch`` rows.

        Every event's chained checksum is verified before it is yielded: a changed
        or missing event raises JournalCorrupt naming stream and seq. The next
        batch is fetched while the caller works on the current one. A damaged
        file raises JournalCorrupt naming the stream.
        """
        check_stream(stream)
        check_seq("after_seq", after_seq)
        db = self._reader()
        size = self.read_batch
        checked: tuple[int, int] | None = None
        asked: list[int] = []
        pending: asyncio.Future[Any] | None = asyncio.ensure_future(
            db.execute_fetchall(_ROWS_QUERY, (stream, after_seq, size))
        )
        try:
            while pending is not None:
                rows: list[tuple[int, Any, int]] = await self._fetched(pending, stream, after_seq)
                pending = None
                if rows:
                    verified, checked = await self._verified(db, stream, rows, checked, after_seq)
                    after_seq = checked[0]
                if len(rows) == size or await self._more_after(db, stream, after_seq, asked):
                    pending = asyncio.ensure_future(
                        db.execute_fetchall(_ROWS_QUERY, (stream, after_seq, size))
                    )
                if rows:
                    yield verified
        finally:
            if pending is not None:
                pending.cancel()

    async def _verified(
        self,
        db: aiosqlite.Connection,
        stream: str,
        rows: list[tuple[int, Any, int]],
        checked: tuple[int, int] | None,
        after_seq: int,
    ) -> tuple[list[tuple[int, bytes]], tuple[int, int]]:
        """``(seq, payload, crc)`` rows in seq order, read after ``after_seq``, as ``(seq,
        payload)``, each checked against its chained checksum; ``checked`` is the last event
        checked before them, as ``(seq, crc)``, and the same for the last of these is returned
        with them. Seqs the rows skip must have been deleted or quarantined.

        Raises JournalCorrupt naming the first event that does not verify or is missing."""
        verified: list[tuple[int, bytes]] = []
        previous_seq, previous = checked if checked is not None else (after_seq, -1)
        for seq, payload, stored in rows:
            if type(seq) is not int or type(stored) is not int:
                raise JournalCorrupt(
                    self.path,
                    f"stream {stream!r}: a row after seq {previous_seq} holds seq {seq!r} and checksum "
                    f"{stored!r}, not integers; run 'garrison journal verify {self.path}'",
                    stream=stream,
                    seq=previous_seq + 1,
                )
            if seq != previous_seq + 1 or previous < 0:
                await self._check_gap(db, stream, previous_seq + 1, seq - 1)
                previous = await self._chain_at(db, stream, seq - 1)
            found = chain(payload, previous)
            if found != stored:
                raise self.damaged(stream, seq, stored, found)
            verified.append((seq, payload))
            previous_seq, previous = seq, stored
        return verified, (previous_seq, previous)

    async def _unaccounted(self, db: aiosqlite.Connection, stream: str, first: int, last: int) -> int:
        """How many of the seqs ``first`` .. ``last`` are neither deleted nor quarantined."""
        if last < first:
            return 0
        (deleted_to, set_aside), *_ = await self._fetched(
            db.execute_fetchall(_GAP_QUERY, (stream, first, last)), stream, first - 1
        )
        deleted = max(0, min(int(deleted_to), last) - first + 1)
        return last - first + 1 - deleted - int(set_aside)

    async def _check_gap(self, db: aiosqlite.Connection, stream: str, first: int, last: int) -> None:
        """Raise JournalCorrupt unless every seq ``first`` .. ``last``, which a read went past,
        was deleted or quarantined (a damaged index can hide rows that are still stored)."""
        if await self._unaccounted(db, stream, first, last):
            raise JournalCorrupt(
                self.path,
                f"stream {stream!r}: events {first}..{last} are missing from the read (neither deleted "
                f"nor quarantined); run 'garrison journal verify {self.path}'",
                stream=stream,
                seq=first,
            )

    async def _fetched(self, pending: Awaitable[Any], stream: str, after_seq: int) -> list[Any]:
        """A read query's rows; a damaged file raises JournalCorrupt naming the stream."""
        try:
            return list(await pending)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as error:
            raise self._damage(error, f"reading stream {stream!r} after seq {after_seq}: ") from error

    def _damage(self, error: BaseException, where: str = "") -> BaseException:
        """``error`` as JournalCorrupt if it says the file is damaged, else ``error`` itself."""
        if isinstance(error, UnicodeDecodeError):
            # A damaged record makes a BLOB or a name look like text that is not UTF-8.
            return JournalCorrupt(self.path, f"{where}a stored value is damaged ({error})")
        if isinstance(error, sqlite3.DatabaseError):
            try:
                raise_if_damaged(error, self.path, where)
            except JournalCorrupt as damage:
                return damage
        return error

    async def _more_after(self, db: aiosqlite.Connection, stream: str, seq: int, asked: list[int]) -> bool:
        """Whether a read that found nothing more after ``seq`` must read on: True if events
        were appended meanwhile. ``asked`` holds the seq this read last asked about (updated
        here): asked twice about one seq, with rows stored after it that the read did not
        find, the file is damaged. Raises JournalCorrupt then, and if the stream's last
        appended event is past ``seq`` and the events in between are neither stored, deleted
        nor quarantined: the stream's tail is lost (a damaged index hides rows from the read)."""
        (head, stored), *_ = await self._fetched(db.execute_fetchall(_TAIL_QUERY, (stream, seq)), stream, seq)
        if head is None or (type(head) is int and head <= seq):
            return False
        if stored and (not asked or asked[0] != seq):
            asked[:] = [seq]
            return True
        if type(head) is int and not stored and not await self._unaccounted(db, stream, seq + 1, head):
            return False
        raise JournalCorrupt(
            self.path,
            f"stream {stream!r}: events {seq + 1}..{head} are missing (its last event is {head}, but "
            f"the read found none after {seq}); run 'garrison journal verify {self.path}'",
            stream=stream,
            seq=seq + 1,
        )

    def damaged(
        self, stream: str, seq: int, expected: int, found: int, what: str = "event"
    ) -> JournalCorrupt:
        """The error for a stored event (or snapshot) whose checksum does not match."""
        return JournalCorrupt(
            self.path,
            f"stream {stream!r}: {what} {seq} is damaged (checksum expected {expected:#010x}, found "
            f"{found:#010x}); run 'garrison journal verify {self.path}', then 'garrison journal "
            f"quarantine {self.path} {stream} {seq}' to set it aside",
            stream=stream,
            seq=seq,
            expected=expected,
            found=found,
        )

    async def read_packed(self, stream: str, after_seq: int = 0) -> AsyncGenerator[PackedEvents, None]:
        """Events after ``after_seq`` as runs of at most ``read_batch`` consecutive events, in order.

        Each run is one query in which SQLite concatenates the payloads of a
        seq range (a stream's seqs have no gaps after its deleted prefix, but
        for events set aside), so no row reaches Python, and the run's bytes
        are verified in one call against the chained checksum of its last
        event; the next run is fetched while the caller decodes this one. A
        range that cannot be packed (a gap in its seqs, a concatenation too
        large for SQLite) or that does not verify is read as ``read_batches``
        reads it, rows kept, each verified (a damaged event raises
        JournalCorrupt naming its seq); so is every range if the file is not
        UTF-8 or SQLite would not walk the (stream, seq) index. Appends and
        deletions made meanwhile are seen as ``read_batches`` would see them.
        A damaged file raises JournalCorrupt naming the stream.
        """
        check_stream(stream)
        check_seq("after_seq", after_seq)
        db = self._reader()
        if not await self._packs(db):
            async for run in super().read_packed(stream, after_seq):
                yield run
            return
        size = self.read_batch
        checked: tuple[int, int] | None = None
        asked: list[int] = []
        pending: asyncio.Future[Any] | None = asyncio.ensure_future(
            db.execute_fetchall(_PACKED_QUERY, (stream, after_seq, size))
        )
        try:
            while pending is not None:
                runs: list[PackedEvents] = []
                try:
                    count, first, last, payloads, last_crc = next(iter(await pending))
                except (sqlite3.DatabaseError, UnicodeDecodeError) as error:
                    if not isinstance(error, sqlite3.DatabaseError) or error_name(error) != "SQLITE_TOOBIG":
                        raise self._damage(
                            error, f"reading stream {stream!r} after seq {after_seq}: "
                        ) from error
                else:
                    if count == 0:
                        if not await self._more_after(db, stream, after_seq, asked):
                            return
                        pending = asyncio.ensure_future(
                            db.execute_fetchall(_PACKED_QUERY, (stream, after_seq, size))
                        )
                        continue
                    if (
                        type(first) is int
                        and type(last) is int
                        and count == last - first + 1
                        and type(payloads) is bytes
                    ):
                        if checked is not None and checked[0] == first - 1:
                            previous = checked[1]
                        else:
                            await self._check_gap(db, stream, after_seq + 1, first - 1)
                            previous = await self._chain_at(db, stream, first - 1)
                        if crc32(payloads, previous) == last_crc:
                            runs = [PackedEvents(first, count, payloads)]
                            checked = (last, last_crc)
                pending = None
                if not runs:
                    rows, checked = await self._verified(
                        db, stream, await self._rows_after(db, stream, after_seq, size), checked, after_seq
                    )
                    runs = list(pack_rows(rows))
                    if not runs:
                        if not await self._more_after(db, stream, after_seq, asked):
                            return
                        pending = asyncio.ensure_future(
                            db.execute_fetchall(_PACKED_QUERY, (stream, after_seq, size))
                        )
                        continue
                after_seq = runs[-1].last_seq
                pending = asyncio.ensure_future(db.execute_fetchall(_PACKED_QUERY, (stream, after_seq, size)))
                # Let the query reach the connection's thread before the caller decodes.
                await asyncio.sleep(0)
                for run in runs:
                    yield run
        finally:
            if pending is not None:
                pending.cancel()

    async def _rows_after(
        self, db: aiosqlite.Connection, stream: str, after_seq: int, size: int
    ) -> list[tuple[int, Any, int]]:
        """One batch as ``read_batches`` reads it, before it is verified."""
        return await self._fetched(
            db.execute_fetchall(_ROWS_QUERY, (stream, after_seq, size)), stream, after_seq
        )

    async def _packs(self, db: aiosqlite.Connection) -> bool:
        """Whether ``_PACKED_QUERY`` yields the payloads byte for byte in seq order on ``db``.

        Checked once per reader connection: the database is UTF-8
        (group_concat passes a BLOB's bytes through as text in the database's
        encoding, unchanged only in UTF-8), and SQLite walks the (stream,
        seq) index forwards to aggregate (the order group_concat keeps).
        """
        if self._packing_checked is not db:
            try:
                await db.execute("PRAGMA reverse_unordered_selects = OFF")
                encoding = next(iter(await db.execute_fetchall("PRAGMA encoding")))[0]
            except sqlite3.DatabaseError as error:
                raise_if_damaged(error, self.path)
                raise
            try:
                plan = [
                    str(row[3])
                    for row in await db.execute_fetchall("EXPLAIN QUERY PLAN " + _PACKED_QUERY, ("", 0, 1))
                ]
            except sqlite3.OperationalError:
                plan = []  # no such index: "INDEXED BY" refuses to plan, rows do without it
            self._packing = encoding == "UTF-8" and any(step.startswith(_PACKED_PLAN) for step in plan)
            self._packing_checked = db
        return self._packing

    async def highest_seq(self, stream: str) -> int:
        check_stream(stream)
        return await _highest(self._reader(), stream)

    async def load_snapshot(self, stream: str) -> tuple[int, bytes] | None:
        check_stream(stream)
        rows = await self._fetched(
            self._reader().execute_fetchall(
                "SELECT seq, state, crc FROM snapshots WHERE stream = ?", (stream,)
            ),
            stream,
            0,
        )
        if not rows:
            return None
        seq, state, stored = rows[0]
        if type(seq) is not int:
            raise JournalCorrupt(
                self.path, f"stream {stream!r}: the snapshot's seq {seq!r} is damaged", stream=stream
            )
        if not snapshot_intact(seq, state, stored):
            raise self.damaged(stream, seq, stored, snapshot_checksum(seq, state), "snapshot at seq")
        return int(seq), stored_bytes(state)

    async def acked_seq(self, stream: str, group: str) -> int:
        check_stream(stream)
        rows = list(
            await self._reader().execute_fetchall(
                "SELECT seq FROM offsets WHERE stream = ? AND grp = ?", (stream, group)
            )
        )
        return int(rows[0][0]) if rows else 0

    # -- operator tools: quarantine, summary, verify ------------------------------------------

    async def quarantine(self, stream: str, seq: int, reason: str) -> QuarantinedEvent:
        """Set event ``seq`` of ``stream`` aside, so that replay skips it and its actor can
        start: the event moves to the quarantine table as it was stored (``restore`` puts
        it back). ``highest_seq`` is unchanged. Raises InvalidConfig if there is no such
        stored event."""
        check_stream(stream)
        check_seq("seq", seq)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidConfig("reason", reason, "say why the event is set aside (it is kept with it)")
        at = time.time()

        await self._move(
            "INSERT INTO quarantine (stream, seq, payload, crc, reason, at) "
            "SELECT stream, seq, payload, crc, ?3, ?4 FROM events WHERE stream = ?1 AND seq = ?2",
            "DELETE FROM events WHERE stream = ?1 AND seq = ?2",
            (stream, seq, reason, at),
            f"stream {stream!r} has no stored event {seq} to set aside",
        )
        return next(event for event in await self.quarantined(stream) if event.seq == seq)

    async def restore(self, stream: str, seq: int) -> None:
        """Put a quarantined event back into its stream, as it was stored. Raises
        InvalidConfig if ``seq`` of ``stream`` is not quarantined."""
        check_stream(stream)
        check_seq("seq", seq)

        await self._move(
            "INSERT INTO events (stream, seq, payload, crc) "
            "SELECT stream, seq, payload, crc FROM quarantine WHERE stream = ?1 AND seq = ?2",
            "DELETE FROM quarantine WHERE stream = ?1 AND seq = ?2",
            (stream, seq),
            f"stream {stream!r} has no quarantined event {seq}",
        )

    async def _move(self, copy: str, delete: str, parameters: tuple[Any, ...], missing: str) -> None:
        """Move one event between the events and quarantine tables (``copy`` it, then
        ``delete`` the original), in one transaction in the writer's turn. Raises
        InvalidConfig (naming ``seq``, with the message ``missing``) if there was none."""
        failure: list[BaseException] = []

        async def write(db: aiosqlite.Connection) -> None:
            async with write_transaction(db):
                if (await db.execute(copy, parameters)).rowcount != 1:
                    failure.append(InvalidConfig("seq", parameters[1], missing))
                    return
                await db.execute(delete, parameters[:2])

        await self._exclusive(write)
        if failure:
            raise failure[0]

    async def quarantined(self, stream: str) -> list[QuarantinedEvent]:
        check_stream(stream)
        rows = await self._reader().execute_fetchall(
            "SELECT stream, seq, payload, reason, at FROM quarantine WHERE stream = ? ORDER BY seq", (stream,)
        )
        return [QuarantinedEvent(row[0], row[1], stored_bytes(row[2]), row[3], row[4]) for row in rows]

    async def all_quarantined(self) -> list[QuarantinedEvent]:
        """Every quarantined event of the journal, by stream and seq."""
        rows = await self._reader().execute_fetchall(
            "SELECT stream, seq, payload, reason, at FROM quarantine ORDER BY stream, seq"
        )
        return [QuarantinedEvent(row[0], row[1], stored_bytes(row[2]), row[3], row[4]) for row in rows]

    async def streams(self) -> list[StreamSummary]:
        """Every stream the journal knows (events, a snapshot, a deletion or a quarantined
        event), by name."""
        try:
            rows = await self._reader().execute_fetchall(_STREAMS_QUERY)
        except sqlite3.DatabaseError as error:
            raise_if_damaged(error, self.path)
            raise
        return [
            StreamSummary(
                stream=name,
                events=int(count),
                first_seq=int(first or 0),
                highest_seq=int(max(last or 0, deleted or 0, set_aside or 0)),
                snapshot_seq=None if snapshot is None else int(snapshot),
                quarantined=int(quarantined),
            )
            for name, count, first, last, deleted, set_aside, snapshot, quarantined in rows
        ]

    async def verify(self) -> AsyncGenerator[JournalProblem, None]:
        """Walk the whole file and yield every problem found: SQLite's own check of the file,
        then each stream's events in seq order (chained checksums, no event missing, every
        payload bytes) and its snapshot. Reads only; yields nothing for a sound journal."""
        db = self._reader()
        try:
            report = [str(row[0]) for row in await db.execute_fetchall("PRAGMA quick_check")]
        except sqlite3.DatabaseError as error:
            yield JournalProblem("file", None, None, f"SQLite cannot check the file: {error}")
            return
        if report != ["ok"]:
            for line in report:
                yield JournalProblem("file", None, None, line)
        for summary in await self.streams():
            async for problem in self._verify_stream(db, summary):
                yield problem

    async def _verify_stream(
        self, db: aiosqlite.Connection, summary: StreamSummary
    ) -> AsyncGenerator[JournalProblem, None]:
        stream = summary.stream
        previous_seq, previous = 0, 0
        after = 0
        while True:
            rows = list(await db.execute_fetchall(_ROWS_QUERY, (stream, after, self.read_batch)))
            ints = [row[0] for row in rows if type(row[0]) is int]
            if not ints or max(ints) <= after:
                break
            for seq, payload, stored in rows:
                if type(seq) is not int or type(stored) is not int:
                    yield JournalProblem(
                        "checksum", stream, previous_seq + 1, "a row's seq or checksum is damaged"
                    )
                    continue
                if seq != previous_seq + 1:
                    if await self._unaccounted(db, stream, previous_seq + 1, seq - 1):
                        yield JournalProblem(
                            "missing",
                            stream,
                            previous_seq + 1,
                            f"events {previous_seq + 1}..{seq - 1}: gone, not deleted or quarantined",
                        )
                        previous_seq, previous = seq, stored  # resume the walk after the gap
                        continue
                    previous = await self._chain_at(db, stream, seq - 1)
                if type(payload) is not bytes:
                    yield JournalProblem(
                        "not-bytes", stream, seq, f"the stored value is {type(payload).__name__}, not bytes"
                    )
                found = chain(payload, previous)
                if found != stored:
                    yield JournalProblem(
                        "checksum",
                        stream,
                        seq,
                        f"checksum expected {stored:#010x}, found {found:#010x}: the event was changed",
                    )
                previous_seq, previous = seq, stored
            after = max(ints)
        snapshot = list(
            await db.execute_fetchall("SELECT seq, state, crc FROM snapshots WHERE stream = ?", (stream,))
        )
        if snapshot:
            seq, state, stored = snapshot[0]
            found = snapshot_checksum(seq, state)
            if not snapshot_intact(seq, state, stored):
                yield JournalProblem(
                    "snapshot", stream, seq, f"checksum expected {stored:#010x}, found {found:#010x}"
                )
            if seq > summary.highest_seq:
                yield JournalProblem(
                    "snapshot",
                    stream,
                    seq,
                    f"snapshot is after the stream's highest seq {summary.highest_seq}",
                )

    def __repr__(self) -> str:
        state = "open" if self._writer is not None else "closed"
        return f"SqliteJournal({self.path!r}, {state})"


_ROWS_QUERY = "SELECT seq, payload, crc FROM events WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?"

# One seq range of a stream, from its first seq after ?2, packed: count and
# bounds to check it has no gaps, and the payloads concatenated in the order
# the index walk visits them. A payload that is not a BLOB (or is empty) is
# not looked for here, which would cost a function call per row: it is not
# one whole event, so the range fails to decode as exactly count events and
# is decoded row by row, which names it.
#
# The chained checksum of the range's last event comes with it, to verify the
# whole range in one call (_checksum.chain).
_PACKED_QUERY = (
    "SELECT n, lo, hi, p, (SELECT crc FROM events WHERE stream = ?1 AND seq = hi) FROM ("
    "SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi, CAST(group_concat(payload, '') AS BLOB) AS p "
    "FROM events INDEXED BY events_by_stream "
    "WHERE stream = ?1 AND seq >= (SELECT min(seq) FROM events WHERE stream = ?1 AND seq > ?2) "
    "AND seq < (SELECT min(seq) FROM events WHERE stream = ?1 AND seq > ?2) + ?3)"
)
_PACKED_PLAN = "SEARCH events USING INDEX events_by_stream (stream=? AND seq>? AND seq<?)"

# A stream's chained checksum through a seq: the event's, a quarantined event's, or the
# deletion's that ended there (NULL if nothing holds it: a row lost from the middle).
_CHAIN_QUERY = (
    "SELECT coalesce((SELECT crc FROM events WHERE stream = ?1 AND seq = ?2), "
    "(SELECT crc FROM quarantine WHERE stream = ?1 AND seq = ?2), "
    "(SELECT crc FROM deletions WHERE stream = ?1 AND up_to_seq = ?2))"
)

# Seqs a read went past: how far the stream was deleted, and how many of ?2..?3 past that
# are quarantined.
_GAP_QUERY = (
    "SELECT coalesce((SELECT up_to_seq FROM deletions WHERE stream = ?1), 0), "
    "(SELECT count(*) FROM quarantine WHERE stream = ?1 AND seq BETWEEN "
    "max(?2, coalesce((SELECT up_to_seq FROM deletions WHERE stream = ?1), 0) + 1) AND ?3)"
)

# Deletion up to ?2, never past the last stored event, keeping the chain's value there.
_DELETION_SQL = (
    "INSERT INTO deletions (stream, up_to_seq, crc) "
    "SELECT ?1, upto, coalesce((SELECT crc FROM events WHERE stream = ?1 AND seq = upto), "
    "(SELECT crc FROM quarantine WHERE stream = ?1 AND seq = upto), "
    "(SELECT crc FROM deletions WHERE stream = ?1 AND up_to_seq = upto), 0) "
    "FROM (SELECT min(?2, coalesce((SELECT max(seq) FROM events WHERE stream = ?1), 0)) AS upto) WHERE 1 "
    "ON CONFLICT (stream) DO UPDATE SET up_to_seq = excluded.up_to_seq, crc = excluded.crc "
    "WHERE excluded.up_to_seq > deletions.up_to_seq"
)

# Every stream with anything stored: events (count, first, last), a deletion, a
# quarantined event or a snapshot.
_STREAMS_QUERY = """
WITH names AS (
    SELECT DISTINCT stream FROM events UNION SELECT stream FROM snapshots
    UNION SELECT stream FROM deletions UNION SELECT stream FROM quarantine
)
SELECT names.stream,
    (SELECT count(*) FROM events WHERE events.stream = names.stream),
    (SELECT min(seq) FROM events WHERE events.stream = names.stream),
    (SELECT max(seq) FROM events WHERE events.stream = names.stream),
    (SELECT up_to_seq FROM deletions WHERE deletions.stream = names.stream),
    (SELECT max(seq) FROM quarantine WHERE quarantine.stream = names.stream),
    (SELECT seq FROM snapshots WHERE snapshots.stream = names.stream),
    (SELECT count(*) FROM quarantine WHERE quarantine.stream = names.stream)
FROM names ORDER BY names.stream
"""

# What a read that found nothing after ?2 checks: the stream's last appended event, and
# whether any event after ?2 is stored.
_TAIL_QUERY = (
    "SELECT (SELECT seq FROM heads WHERE stream = ?1), "
    "EXISTS (SELECT 1 FROM events WHERE stream = ?1 AND seq > ?2)"
)

_UPSERT_OFFSET = (
    "INSERT INTO offsets (stream, grp, seq) VALUES (?, ?, ?) "
    "ON CONFLICT (stream, grp) DO UPDATE SET seq = max(seq, excluded.seq)"
)


def _file_state(path: str) -> str:
    """``missing``, ``empty`` (a regular file of 0 bytes) or ``present``: one stat."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return "missing"
    return "empty" if stat.S_ISREG(status.st_mode) and status.st_size == 0 else "present"


def _link_new(staging: str, path: str) -> None:
    """Put the new file ``staging`` at ``path`` unless something is there already."""
    try:
        os.link(staging, path)
    except FileExistsError:
        pass  # another journal created it meanwhile: open that one
    except OSError:
        # A file system without hard links: a rename, which could replace a file
        # created in the last instant, hence only when there is none.
        if _file_state(path) == "missing":
            os.replace(staging, path)


def _remove_staging(staging: str) -> None:
    for leftover in (staging, f"{staging}-wal", f"{staging}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)


def _streams_to_load(batch: list[PendingAppend], cached: dict[str, int]) -> set[str]:
    """Streams whose highest seq must be read before this batch is checked.

    Those never seen, and those an append expects to be further along than
    the cache says: another connection (another process) may have appended
    to them. A stream behind what the cache says is a conflict for sure,
    since a highest seq never decreases.
    """
    streams: set[str] = set()
    projected: dict[str, int] = {}
    for append in batch:
        current = projected.get(append.stream, cached.get(append.stream))
        if current is None or append.expected_seq > current:
            streams.add(append.stream)
        elif append.expected_seq == current:
            projected[append.stream] = current + len(append.events)
    return streams


async def _snapshot_seq(db: aiosqlite.Connection, stream: str) -> int | None:
    rows = list(await db.execute_fetchall("SELECT seq FROM snapshots WHERE stream = ?", (stream,)))
    return int(rows[0][0]) if rows else None


async def _highest(db: aiosqlite.Connection, stream: str) -> int:
    return await scalar(
        db,
        "SELECT max(coalesce((SELECT max(seq) FROM events WHERE stream = ?1), 0), "
        "coalesce((SELECT up_to_seq FROM deletions WHERE stream = ?1), 0), "
        "coalesce((SELECT max(seq) FROM quarantine WHERE stream = ?1), 0))",
        (stream,),
    )
