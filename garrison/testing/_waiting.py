"""Bounded waiting on the node clock: virtual time is driven, real time is awaited.

Every expectation in the kit waits through :func:`wait_until`. On a
:class:`~garrison.ManualClock` it *advances* virtual time while it waits: to
the next due timer, one timer at a time, until the condition holds or
``within`` seconds of virtual time have passed; the clock is left where the
condition first held. On any other clock it awaits real time, bounded by
``within``.

Work that runs off the loop and is registered as :class:`OutsideWork` of the
clock (the journal I/O of a kit's :class:`~garrison.testing.TrackedJournal`)
takes no virtual time: before each step, the wait lets it finish, in real
time, bounded by :data:`OUTSIDE_WORK_REAL_LIMIT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

from garrison._clock import Clock, ManualClock, settle
from garrison._validate import check_seconds

T = TypeVar("T")

OUTSIDE_WORK_REAL_LIMIT = 30.0
"""Real seconds a wait on the manual clock gives work off the loop (journal I/O) to finish."""

MAX_TIMER_STEPS = 100_000
"""A wait on the manual clock fires at most this many timers; more means a timer
keeps rescheduling itself at the same instant, which would never end."""


def check_within(field: str, within: float) -> float:
    check_seconds(field, within, allow_minimum=True)
    return float(within)


async def wait_until(
    clock: Clock,
    ready: Callable[[], bool],
    within: float,
    changed: Callable[[], Awaitable[object]] | None = None,
) -> bool:
    """Wait until ``ready()`` is true; return False if ``within`` seconds pass first.

    Awaits. On the manual clock, virtual time moves forward timer by timer
    (see the module docstring) and the loop settles after every step, so
    work a timer triggers runs before ``ready()`` is asked again; the clock
    stops where ``ready()`` first held. On a real clock it waits real time:
    ``changed()`` (optional) returns an awaitable that completes when
    ``ready()`` may have changed; without it, ``ready()`` is polled every
    :data:`REAL_POLL_INTERVAL` seconds. Raises InvalidConfig for a bad ``within``.
    """
    within = check_within("within", within)
    if isinstance(clock, ManualClock):
        return await _drive_virtual_time(clock, ready, within)
    return await _await_real_time(clock, ready, within, changed or _poll)


REAL_POLL_INTERVAL = 0.01
"""Real seconds between two looks of a ``wait_until`` on a real clock without ``changed``."""


def _poll() -> Awaitable[object]:
    return asyncio.sleep(REAL_POLL_INTERVAL)


async def _drive_virtual_time(clock: ManualClock, ready: Callable[[], bool], within: float) -> bool:
    deadline = clock.now() + within
    await settle()
    for _ in range(MAX_TIMER_STEPS):
        await finish_outside_work(clock)
        if ready():
            return True
        now = clock.now()
        if now >= deadline:
            return False
        next_timer = clock.next_deadline()
        if next_timer is None or next_timer > deadline:
            await clock.advance(deadline - now)
        else:
            await clock.advance(max(next_timer - now, 0.0))
    raise AssertionError(
        f"virtual time is stuck at {clock.now()}: {MAX_TIMER_STEPS} timers fired without time "
        "moving on (a timer that reschedules itself with delay 0?)"
    )


async def _await_real_time(
    clock: Clock,
    ready: Callable[[], bool],
    within: float,
    changed: Callable[[], Awaitable[object]],
) -> bool:
    deadline = clock.now() + within
    while not ready():
        remaining = deadline - clock.now()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(_as_future(changed()), remaining)
        except TimeoutError:
            return ready()
    return True


def _as_future(awaitable: Awaitable[object]) -> asyncio.Future[object]:
    return asyncio.ensure_future(awaitable)


class Notifier:
    """Wakes whoever awaits :meth:`changed` the next time :meth:`notify` is called."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def changed(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class OutsideWork:
    """Calls running off the loop (a journal's SQLite thread) that waits on a clock let finish.

    Virtual time stands still while such a call is in flight: on the manual
    clock the kit's expectations, and the kit's shutdown, wait for it in real
    time before they fire the next timer. One per clock: :func:`outside_work`.
    """

    __slots__ = ("__weakref__", "_idle", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        """Calls started through :meth:`run` and not finished."""
        self._idle = Notifier()

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, counted as in flight until it returns or raises."""
        self.in_flight += 1
        try:
            return await awaitable
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.notify()

    async def run_each(self, items: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        """Yield what ``items`` yields; each step, and closing it, runs through :meth:`run`."""
        try:
            while True:
                try:
                    item = await self.run(anext(items))
                except StopAsyncIteration:
                    return
                yield item
        finally:
            await self.run(items.aclose())

    def idle(self) -> asyncio.Future[None]:
        """Completes when nothing is in flight (at once if nothing is)."""
        if not self.in_flight:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return self._idle.changed()


_OUTSIDE_WORK: weakref.WeakKeyDictionary[Clock, OutsideWork] = weakref.WeakKeyDictionary()


def outside_work(clock: Clock) -> OutsideWork:
    """The :class:`OutsideWork` of ``clock``: every waiter on that clock lets it finish.

    Kept with the clock (and dropped with it), not with any one node: nodes
    sharing a virtual clock share its notion of "now".
    """
    work = _OUTSIDE_WORK.get(clock)
    if work is None:
        work = _OUTSIDE_WORK[clock] = OutsideWork()
    return work


async def finish_outside_work(clock: Clock, real_limit: float = OUTSIDE_WORK_REAL_LIMIT) -> None:
    """Wait until no outside work of ``clock`` is in flight and the loop has settled.

    What finishing work sets off (a recovered actor's next step) may start
    more; this waits for that too. Raises AssertionError after ``real_limit``
    real seconds.
    """
    work = _OUTSIDE_WORK.get(clock)
    if work is None or not work.in_flight:
        return
    give_up = time.monotonic() + real_limit
    while work.in_flight:
        remaining = give_up - time.monotonic()
        try:
            await asyncio.wait_for(work.idle(), max(remaining, 0.0))
        except TimeoutError:
            raise AssertionError(
                f"{work.in_flight} journal call(s) still in flight after {real_limit}s of real time; "
                "virtual time cannot move on while they run"
            ) from None
        await settle()


def clock_kind(clock: Clock) -> str:
    """How a timeout is described in a failure message."""
    return "virtual" if isinstance(clock, ManualClock) else "real"


async def drive_to_completion(
    clock: Clock, awaitable: Awaitable[T], *, virtual_limit: float, real_limit: float
) -> T:
    """Await ``awaitable`` while firing the manual clock's timers one by one.

    Time moves only to the next timer; when none is due within
    ``virtual_limit`` seconds, what is left can only be real-world work
    (threads, processes), which gets ``real_limit`` real seconds. Raises
    AssertionError (the awaitable cancelled) when either limit is reached.
    On another clock, this awaits with ``real_limit``.
    """
    task = asyncio.ensure_future(awaitable)
    if isinstance(clock, ManualClock):
        limit = clock.now() + virtual_limit
        await settle()
        while not task.done():
            await finish_outside_work(clock)
            next_timer = clock.next_deadline()
            if next_timer is not None and next_timer <= limit:
                await clock.advance(max(next_timer - clock.now(), 0.0))
                continue
            await asyncio.wait({task}, timeout=real_limit)
            break
    else:
        await asyncio.wait({task}, timeout=real_limit)
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise AssertionError(
            f"{awaitable!r} did not complete within {virtual_limit}s of virtual time "
            f"and then {real_limit}s of real time; it was cancelled"
        )
    return task.result()
