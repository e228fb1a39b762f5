"""What the journals share: a pending append, and the queue their one writer task drains."""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from garrison.persistence._journal import Ack

T = TypeVar("T")

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


class PendingAppend:
    """One ``append`` waiting for the writer; ``future`` gets the new highest seq or the error."""

    __slots__ = ("acks", "events", "expected_seq", "future", "stream")

    def __init__(
        self,
        stream: str,
        events: Sequence[bytes],
        expected_seq: int,
        acks: Sequence[Ack],
        future: asyncio.Future[int],
    ) -> None:
        self.stream = stream
        self.events = events
        self.expected_seq = expected_seq
        self.acks = acks
        self.future = future

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    def succeed(self, highest: int) -> None:
        if not self.future.done():
            self.future.set_result(highest)


class WriterQueue(Generic[T]):
    """Producers ``put``; the writer task takes everything queued at once (group commit).

    The writer wakes as soon as something arrives, so a lone producer waits
    for nothing but its own commit.
    """

    def __init__(self) -> None:
        self._items: list[T] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._closing = False

    def put(self, item: T) -> None:
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
            future: asyncio.Future[Any] = item.future  # type: ignore[attr-defined]
            if not future.done():
                future.set_exception(error)

    def drain(self) -> list[T]:
        """Whatever is still queued (after the writer stopped)."""
        items, self._items = self._items, []
        return items

    async def next_batch(self) -> list[T] | None:
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
