"""Bounded waiting on the node clock: virtual time is driven, real time is awaited.

Every expectation in the kit waits through :func:`wait_until`. On a
:class:`~garrison.ManualClock` it *advances* virtual time while it waits: to
the next due timer, one timer at a time, until the condition holds or
``within`` seconds of virtual time have passed; the clock is left where the
condition first held. On any other clock it awaits real time, bounded by
``within``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from garrison._clock import Clock, ManualClock, settle
from garrison._errors import InvalidConfig

T = TypeVar("T")

MAX_TIMER_STEPS = 100_000
"""A wait on the manual clock fires at most this many timers; more means a timer
keeps rescheduling itself at the same instant, which would never end."""


def check_within(field: str, within: float) -> float:
    if isinstance(within, bool) or not isinstance(within, int | float) or within < 0:
        raise InvalidConfig(field, within, "must be a number of seconds >= 0")
    return float(within)


async def wait_until(
    clock: Clock,
    ready: Callable[[], bool],
    within: float,
    changed: Callable[[], Awaitable[object]],
) -> bool:
    """Wait until ``ready()`` is true; return False if ``within`` seconds pass first.

    ``changed()`` returns an awaitable that completes when ``ready()`` may have
    changed; it is used on real clocks only. On the manual clock, virtual
    time moves forward (see the module docstring) and the loop settles after
    every step, so work a timer triggers runs before ``ready()`` is asked again.
    """
    if isinstance(clock, ManualClock):
        return await _drive_virtual_time(clock, ready, within)
    return await _await_real_time(clock, ready, within, changed)


async def _drive_virtual_time(clock: ManualClock, ready: Callable[[], bool], within: float) -> bool:
    deadline = clock.now() + within
    await settle()
    for _ in range(MAX_TIMER_STEPS):
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
