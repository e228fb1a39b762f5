"""Small asyncio helpers shared by the layers that talk to Redis (persistence, cluster)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["kept_cancelled"]

T = TypeVar("T")


async def kept_cancelled(call: Awaitable[T]) -> T:
    """Await a redis-py call, then raise CancelledError if this task was cancelled meanwhile.

    redis-py (seen with 8.1, any command) can catch the CancelledError of a task cancelled
    mid-command and return as if nothing happened: a loop around a read would then never
    end, and whoever waits for that task (an actor stopping, a supervisor restarting it) would
    wait forever. The cancellation request is still counted on the task, so it is raised here.
    """
    result = await call
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()
    return result
