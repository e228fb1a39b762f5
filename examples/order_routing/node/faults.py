"""Expected faults of a venue connection: timeouts on the node's clock, and log lines that do not flood.

An expected fault (a reset, a timeout, a bad frame) is one WARNING line with the peer, the cause
and what happens next; it never carries a traceback (those are for unexpected errors, and at
DEBUG). When the same kind of fault repeats, one line per ``window`` seconds is written and the
repeats in between are counted into the next one ("… 37 more in the last 10 s").
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from garrison import Clock

if TYPE_CHECKING:
    from loguru import Logger

T = TypeVar("T")

REPEAT_WINDOW = 10.0
"""Seconds during which repeats of one kind of fault are counted instead of logged."""


class StepTimeout(TimeoutError):
    """A protocol step (connect, handshake, a silent connection) took longer than its limit."""

    def __init__(self, step: str, seconds: float) -> None:
        super().__init__(f"{step} timed out after {seconds:g}s")
        self.step = step
        self.seconds = seconds


async def within(clock: Clock, seconds: float, step: str, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result, or StepTimeout(step) once ``seconds`` have passed on ``clock`` (the
    node's, so a manual clock drives it in tests). The awaitable is cancelled at the deadline."""
    task = asyncio.ensure_future(awaitable)
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = clock.call_later(seconds, expire)
    try:
        return await task
    except asyncio.CancelledError:
        if expired and not task_cancelling():
            raise StepTimeout(step, seconds) from None
        raise
    finally:
        timer.cancel()
        if not task.done():
            task.cancel()


def task_cancelling() -> bool:
    """Whether the current task itself is being cancelled (not only what it awaited)."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


class RepeatLimiter:
    """One WARNING per kind of fault per window; the repeats in between are counted, not logged,
    and the next line says how many there were."""

    def __init__(self, logger: Logger, clock: Clock, window: float = REPEAT_WINDOW) -> None:
        self.logger = logger
        self.clock = clock
        self.window = window
        self.kinds: dict[str, tuple[float, int]] = {}
        """kind -> (when its last line was written, repeats not logged since)."""

    def warning(self, kind: str, text: str, **fields: Any) -> bool:
        """Log ``text`` (loguru braces, ``fields``) at WARNING unless ``kind`` was logged less than
        ``window`` seconds ago; then only count it. True if a line was written."""
        now = self.clock.now()
        last, repeats = self.kinds.get(kind, (-math.inf, 0))
        if now - last < self.window:
            self.kinds[kind] = (last, repeats + 1)
            return False
        if repeats:
            text += " (… {repeats} more in the last {since:.0f} s)"
            fields = {**fields, "repeats": repeats, "since": now - last}
        self.logger.warning(text, **fields)
        self.kinds[kind] = (now, 0)
        return True
