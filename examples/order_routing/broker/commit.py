"""Group commit: one store transaction for everything staged while the previous one ran.

Callers stage rows in ``batch`` and register what may happen only once those
rows are durable with ``after_commit``. A single writer task takes the whole
batch at once, commits it on the store's thread and then runs the callbacks
in the order they were registered, so a callback runs only after every row
staged before it is on disk. Many requests share one fsync.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor

from loguru import logger

from .store import BrokerStore, WriteBatch


class GroupCommit:
    def __init__(
        self, store: BrokerStore, executor: Executor, on_batch_done: Callable[[], None] = lambda: None
    ) -> None:
        """``on_batch_done`` runs after each commit's callbacks (to act on a whole batch at once)."""
        self.batch = WriteBatch()
        """Rows for the next transaction; stage into it directly."""
        self.commits = 0
        self._store = store
        self._executor = executor
        self._on_batch_done = on_batch_done
        self._after_commit: list[Callable[[], None]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._writer: asyncio.Task[None] | None = None

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything staged so far is durable (possibly nothing: then soon)."""
        self._after_commit.append(callback)
        self._wakeup.set()

    def start(self) -> asyncio.Task[None]:
        """Start the writer; the task fails if a commit does, after which nothing more is committed."""
        self._writer = asyncio.create_task(self._write_loop(), name="broker-group-commit")
        return self._writer

    async def close(self) -> None:
        """Commit what is staged and run its callbacks, then stop. Raises if the writer failed."""
        self._closing = True
        self._wakeup.set()
        if self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, callbacks = self.batch, self._after_commit
            self.batch, self._after_commit = WriteBatch(), []
            if batch:
                try:
                    await loop.run_in_executor(self._executor, self._store.write, batch)
                except Exception:
                    logger.exception("broker store write failed: nothing of the batch was acknowledged")
                    raise
                self.commits += 1
            for callback in callbacks:
                callback()
            self._on_batch_done()
            if self._closing and not self.batch and not self._after_commit:
                return
