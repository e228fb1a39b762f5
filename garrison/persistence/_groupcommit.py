"""The journal core every journal with group commit shares.

``GroupCommitJournal`` is written once here: ``append`` (checked, queued,
answered through a future), the writer task that takes every write waiting
at the moment it wakes (group commit), ``stats``, ``open``/``close`` and the
async context manager. A journal built on it (``SqliteJournal``,
``RedisJournal``) adds only what is its own: how it connects, how one batch
is committed (``_commit_batch``), and how it reads.

The append path is hot: ``append`` does its checks by exact type
(``check_append``) and queues a ``PendingAppend`` with no further call; the
per-batch hook runs once per commit, not once per append.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Sequence
from time import monotonic
from typing import Any, Generic, Protocol, Self, TypeVar

from garrison._errors import JournalClosed, JournalWriteError
from garrison.persistence._journal import Ack, check_append

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Upper bounds (seconds) of the append-latency histogram."""
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
"""Upper bounds of the appends-per-commit histogram."""


class AppendHistograms:
    """Append latency and group-commit batch sizes, as every journal reports them in ``stats()``."""

    __slots__ = ("_batch_counts", "_latency_counts", "_latency_sum")

    def __init__(self) -> None:
        self._latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._batch_counts = [0] * (len(BATCH_BUCKETS) + 1)

    def latency(self, seconds: float) -> None:
        """One append took ``seconds`` from its call to its commit (``time.monotonic`` differences)."""
        self._latency_sum += seconds
        self._latency_counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def batch(self, appends: int) -> None:
        """One commit folded ``appends`` appends."""
        self._batch_counts[bisect_left(BATCH_BUCKETS, appends)] += 1

    def stats(self, appends: int, commits: int) -> dict[str, Any]:
        infinity = float("inf")
        return {
            "appends": appends,
            "commits": commits,
            "latency_buckets": tuple(zip((*LATENCY_BUCKETS, infinity), self._latency_counts, strict=True)),
            "latency_sum": self._latency_sum,
            "batch_buckets": tuple(zip((*BATCH_BUCKETS, infinity), self._batch_counts, strict=True)),
        }


class QueuedWrite(Protocol):
    """What the writer queue holds: a write that names its stream and can be failed."""

    @property
    def stream(self) -> str: ...

    def fail(self, error: BaseException) -> None:
        """Answer the waiting caller with ``error`` (nothing if it was answered already)."""
        ...


W = TypeVar("W", bound=QueuedWrite)


class PendingAppend:
    """One ``append`` waiting for the writer; ``future`` gets the new highest seq or the error."""

    __slots__ = ("acks", "events", "expected_seq", "fence", "future", "stream")

    def __init__(
        self,
        stream: str,
        events: Sequence[bytes],
        expected_seq: int,
        acks: Sequence[Ack],
        future: asyncio.Future[int],
        fence: int = 0,
    ) -> None:
        self.stream = stream
        self.events = events
        self.expected_seq = expected_seq
        self.acks = acks
        self.future = future
        self.fence = fence
        """The writer's fencing token (0: not fenced); only a journal that checks fences gets one."""

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    def succeed(self, highest: int) -> None:
        if not self.future.done():
            self.future.set_result(highest)


class WriterQueue(Generic[W]):
    """Producers ``put``; the writer task takes everything queued at once (group commit).

    The writer wakes as soon as something arrives, so a lone producer waits
    for nothing but its own commit.
    """

    def __init__(self) -> None:
        self._items: list[W] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._closing = False

    def put(self, item: W) -> None:
        self._items.append(item)
        self._wake()

    def close(self) -> None:
        """Let ``next_batch`` return None once the queue is empty."""
        self._closing = True
        self._wake()

    def reopen(self) -> None:
        self._closing = False

    async def finish(self, writer: asyncio.Task[None], error: BaseException) -> None:
        """Close, let ``writer`` commit what is queued, then fail whatever is left with ``error``."""
        self.close()
        await asyncio.wait({writer})
        for item in self.drain():
            item.fail(error)

    def drain(self) -> list[W]:
        """Whatever is still queued (after the writer stopped)."""
        items, self._items = self._items, []
        return items

    async def next_batch(self) -> list[W] | None:
        """Everything queued now (waiting for the first item); None when closed and empty."""
        while not self._items:
            if self._closing:
                return None
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
        items, self._items = self._items, []
        return items

    def _wake(self) -> None:
        waiter = self._wakeup
        if waiter is not None:
            self._wakeup = None
            if not waiter.done():
                waiter.set_result(None)


class GroupCommitJournal(Generic[W]):
    """A journal whose one writer task commits every write waiting at once (group commit).

    Guarantees, for every journal built on it:

    - ``append`` returns the new highest seq once the commit that holds it
      is confirmed, and raises what that commit reported for it
      (SequenceConflict, JournalWriteError); an append made while the
      journal is closed raises JournalClosed. If the caller is cancelled,
      the append may still be committed.
    - Writes are committed in the order they were queued; a batch is every
      write queued when the writer wakes, so a lone producer waits for its
      own commit only.
    - The writer never dies of a failed commit: an error it did not expect
      fails that batch's writes with JournalWriteError, and it goes on.
    - ``close`` lets the writer commit what is already queued, fails what is
      left with JournalClosed, then closes the connections.

    Internal, for journals of this package. A subclass queues its own kind
    of write besides ``PendingAppend`` as ``W`` (``Never`` if none) and
    implements three hooks:

    - ``_open_connections()``: connect and check; if it raises, nothing is
      left open;
    - ``_close_connections()``: close them (the writer has stopped);
    - ``_commit_batch(batch)``: commit one batch in order and answer every
      write of it (``succeed``/``fail``); it counts ``commits``, ``appends``
      and ``_histograms.batch`` as its commits go.
    """

    def __init__(self, location: str, writer_name: str) -> None:
        self.commits = 0
        """Commits made by the writer (appends per commit = group-commit batching)."""
        self.appends = 0
        """Appends committed."""
        self._location = location
        """The path or URL that names this journal in errors."""
        self._writer_name = writer_name
        self._histograms = AppendHistograms()
        self._queue: WriterQueue[PendingAppend | W] = WriterQueue()
        self._writer: asyncio.Task[None] | None = None

    # -- what subclasses implement ------------------------------------------------

    async def _open_connections(self) -> None:
        raise NotImplementedError

    async def _close_connections(self) -> None:
        raise NotImplementedError

    async def _commit_batch(self, batch: list[PendingAppend | W]) -> None:
        raise NotImplementedError

    # -- open and close -------------------------------------------------------------

    async def open(self) -> Self:
        """Open (idempotent): connect, check, and start the writer. Awaits.

        Raises what the journal's checks raise, with nothing left open
        (SqliteJournal: JournalCorrupt for a file that is not a current
        garrison journal; RedisJournal: ConnectionError, or InvalidConfig
        for ``confirm_aof`` on a server that cannot honour it).
        """
        if self._writer is not None:
            return self
        await self._open_connections()
        self._queue.reopen()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name=self._writer_name)
        return self

    async def close(self) -> None:
        """Finish the writes already queued, then close (idempotent). Awaits.

        Writes the writer did not take before it stopped fail with JournalClosed."""
        writer = self._writer
        if writer is None:
            return
        self._writer = None
        await self._queue.finish(writer, JournalClosed(self._location))
        await self._close_connections()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- appends ------------------------------------------------------------------------

    async def append(
        self, stream: str, events: Sequence[bytes], expected_seq: int, *, acks: Sequence[Ack] = ()
    ) -> int:
        """Append ``events`` atomically after ``expected_seq``; returns the new highest seq.

        Returns once the events are durable. Raises SequenceConflict (nothing
        written), JournalWriteError (the outcome is unknown: read back) or
        JournalClosed. If the caller is cancelled, the append may still be
        committed.
        """
        check_append(stream, events, expected_seq)
        if not events and not acks:
            return expected_seq
        if self._writer is None:
            raise JournalClosed(self._location)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put(PendingAppend(stream, events, expected_seq, acks, future))
        started = monotonic()
        highest = await future
        self._histograms.latency(monotonic() - started)
        return highest

    def stats(self) -> dict[str, Any]:
        """Counters for metrics: appends, commits, the append-latency histogram and the
        appends-per-commit histogram (the node's metrics endpoint exports them)."""
        return self._histograms.stats(self.appends, self.commits)

    def _new_future(self) -> asyncio.Future[int]:
        """A future for a write of the subclass's own kind; raises JournalClosed when closed."""
        if self._writer is None:
            raise JournalClosed(self._location)
        return asyncio.get_running_loop().create_future()

    async def _write_loop(self) -> None:
        queue = self._queue
        while (batch := await queue.next_batch()) is not None:
            try:
                await self._commit_batch(batch)
            except Exception as error:
                # Whatever went wrong, the writer lives on: a dead writer would leave
                # every later write waiting forever.
                for write in batch:
                    write.fail(JournalWriteError(write.stream, error))
