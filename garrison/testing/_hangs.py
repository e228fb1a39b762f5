"""A test that hangs fails with the stack of every asyncio task and every thread.

pytest-timeout decides *when* a test has run too long; this module decides
what the failure says. With pytest-timeout's ``signal`` method, the garrison
plugin takes over its timer (the ``pytest_timeout_set_timer`` hook):

1. at the timeout, SIGALRM fails the test where it stands (the body, a
   fixture's setup or teardown, a node's shutdown) with a report of every
   task on the running loop, each with its whole ``await`` chain down to
   the future it waits on, and every thread's stack;
2. the alarm is armed again: a teardown that hangs once more fails again
   ``REARM_SECONDS`` later, with a fresh report;
3. if Python code never runs again (the main thread stuck in C, the GIL
   held), faulthandler's own watchdog thread dumps every thread and ends
   the process ``LAST_RESORT_SECONDS`` after the timeout, so a hang can
   never outlive the run.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import inspect
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any

import _pytest
import pluggy

REARM_SECONDS = 10.0
LAST_RESORT_SECONDS = 60.0

# The last resort writes where the run's own output goes, not into pytest's
# capture of fd 2, which the process's end would take with it.
_last_resort_fd: int | None = None

_NOT_SHOWN = (
    *(os.path.dirname(module.__file__) + os.sep for module in (_pytest, pluggy) if module.__file__),
    __file__,
)


def keep_stderr() -> None:
    """Keep a copy of fd 2 as it is now, before pytest captures it (idempotent)."""
    global _last_resort_fd
    if _last_resort_fd is None:
        _last_resort_fd = os.dup(2)


def await_chain(awaitable: Any) -> tuple[list[FrameType], Any]:
    """The frames of a suspended coroutine and of everything it awaits, outermost first,
    and what the innermost one waits on (a future, or None)."""
    frames: list[FrameType] = []
    current = awaitable
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frame = getattr(current, "cr_frame", None) or getattr(current, "gi_frame", None)
        frame = frame or getattr(current, "ag_frame", None)
        inner = getattr(current, "cr_await", None) or getattr(current, "gi_yieldfrom", None)
        inner = inner or getattr(current, "ag_await", None)
        if frame is None and inner is None:
            # An awaitable made in C (a future's iterator, an async generator's
            # asend) hides what it stands for: find it among what it holds.
            held = [
                ref
                for ref in gc.get_referents(current)
                if asyncio.isfuture(ref) or inspect.isasyncgen(ref) or inspect.iscoroutine(ref)
            ]
            if not held or asyncio.isfuture(current):
                return frames, current  # a future, or an awaitable that says no more: the bottom
            current = held[0]
            continue
        if frame is not None:
            frames.append(frame)
        current = inner
    return frames, None


def describe_tasks(loop: asyncio.AbstractEventLoop | None) -> str:
    """Every task of ``loop``: its name, state and ``await`` chain."""
    if loop is None:
        return "no asyncio loop is running in the main thread\n"
    tasks = sorted(asyncio.all_tasks(loop), key=lambda task: task.get_name())
    lines = [f"{len(tasks)} asyncio task(s) on the running loop:\n"]
    for task in tasks:
        state = "done" if task.done() else "cancelling" if task.cancelling() else "pending"
        lines.append(f"--- task {task.get_name()!r} ({state}): {task.get_coro()!r}\n")
        frames, bottom = await_chain(task.get_coro())
        summary = traceback.StackSummary.extract(((frame, frame.f_lineno) for frame in frames), limit=None)
        lines.extend(summary.format())
        if bottom is not None:
            lines.append(f"    waiting on {bottom!r}\n")
    return "".join(lines)


def _own_frames(frame: FrameType | None) -> list[FrameType]:
    """The stack ending at ``frame``, outermost first, without pytest's and pluggy's own
    frames (the runner's call chain, the same in every report) nor this module's."""
    frames: list[FrameType] = []
    while frame is not None:
        if not frame.f_code.co_filename.startswith(_NOT_SHOWN):
            frames.append(frame)
        frame = frame.f_back
    return frames[::-1]


def describe_threads() -> str:
    """Every thread's Python stack, the current (main) one included."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines: list[str] = []
    for ident, frame in sys._current_frames().items():
        lines.append(f"--- thread {names.get(ident, '<unknown>')!r} ({ident}):\n")
        frames = _own_frames(frame)
        lines.extend(traceback.StackSummary.extract(((f, f.f_lineno) for f in frames), limit=None).format())
    return "".join(lines)


def hang_report(timeout: float) -> str:
    """What a test that ran past ``timeout`` was doing: its tasks, then its threads."""
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    return (
        f"Timeout: the test ran longer than {timeout:g}s (pytest-timeout); it was stopped where it "
        "stood. What every task and thread was doing:\n"
        f"{describe_tasks(loop)}{describe_threads()}"
    )


def arm(timeout: float, fail: Callable[[str], object]) -> Callable[[], None]:
    """Arm the alarm for one test (main thread only); returns the function that disarms it.

    ``fail(report)`` is called in the main thread at the timeout, and again
    every ``REARM_SECONDS`` while the test has not ended; it must raise.
    """

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        signal.setitimer(signal.ITIMER_REAL, REARM_SECONDS)
        fail(hang_report(timeout))

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    faulthandler.dump_traceback_later(
        timeout + LAST_RESORT_SECONDS, exit=True, file=_last_resort_fd if _last_resort_fd is not None else 2
    )

    def disarm() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()

    return disarm
