"""The intent log's bounds: how many intents may be unsettled, and how many in doubt, at once.

A ``Gate`` counts what holds a slot (an unsettled intent, an intent in SENDING or
UNKNOWN) against an optional bound. A caller that finds it full is refused at once
(``IntentBacklogFull``, ``SendWindowFull``) or waits, with a timeout, in line: a slot
that frees goes to the first waiter still waiting (reserved for it until it uses or
returns it), never to a caller that arrived later. Counting is the log's; the gate
only keeps the number, the line and the figures ``IntentLogStats`` reports.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from garrison._clock import Clock
from garrison._errors import GarrisonError


class IntentBacklogFull(GarrisonError):
    """A record was refused: ``count`` intents are unsettled, and the log's ``max_unsettled``
    is ``bound``. Drop, conflate, or wait (``record(..., wait=seconds)``) and try again."""

    def __init__(self, stream: str, count: int, bound: int) -> None:
        self.stream = stream
        self.count = count
        self.bound = bound
        super().__init__(
            f"intent log {stream!r}: {count} intents are not settled yet (max_unsettled={bound}); "
            "drop or conflate this one, or record it with wait=<seconds> to wait for room"
        )


class SendWindowFull(GarrisonError):
    """A move into SENDING was refused: ``count`` intents are in SENDING or UNKNOWN, and the
    log's ``send_window`` is ``bound``. Settle in-doubt intents, or move with wait=seconds."""

    def __init__(self, stream: str, count: int, bound: int) -> None:
        self.stream = stream
        self.count = count
        self.bound = bound
        super().__init__(
            f"intent log {stream!r}: {count} intents are in SENDING or UNKNOWN (send_window={bound}); "
            "settle some first, or move with wait=<seconds> to wait for room"
        )


@dataclass(frozen=True, slots=True)
class IntentLogStats:
    """What an intent log's bounds have seen since it was created (``IntentLog.stats``)."""

    unsettled: int
    """Intents recorded (or queued) and not settled, counting queued moves."""
    max_unsettled: int | None
    in_doubt: int
    """Intents in SENDING or UNKNOWN, counting queued moves."""
    send_window: int | None
    backlog_waits: int
    """Records that had to wait for room."""
    backlog_refused: int
    """Records refused with IntentBacklogFull (at once, or after waiting in vain)."""
    window_waits: int
    """Moves into SENDING that had to wait for room."""
    window_refused: int
    """Moves into SENDING refused with SendWindowFull."""
    expired: int
    """Moves to EXPIRED queued by this log."""


def _time_out(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Gate:
    """Slots counted against an optional bound, with a line of waiters (see the module)."""

    __slots__ = ("bound", "refused", "reserved", "used", "waiters", "waits")

    def __init__(self, bound: int | None) -> None:
        self.bound = bound
        self.used = 0
        """Slots held: counted by the log, plus ``reserved``."""
        self.reserved = 0
        """Slots handed to waiters that have not used (``claim``) or returned them yet."""
        self.waiters: deque[asyncio.Future[bool]] = deque()
        self.waits = 0
        self.refused = 0

    def room(self, slots: int = 1) -> bool:
        """Whether ``slots`` more fit now without passing anyone waiting."""
        bound = self.bound
        if bound is None:
            return True
        waiters = self.waiters
        while waiters and waiters[0].done():
            waiters.popleft()  # timed out or cancelled: no longer in line
        return self.used + slots <= bound and not waiters

    def take(self, slots: int = 1) -> None:
        self.used += slots

    def release(self, slots: int = 1) -> None:
        self.used -= slots
        if self.waiters:
            self.wake_waiters()

    def shift(self, slots: int) -> None:
        """The log's count changed by ``slots`` (either sign: another writer's events read)."""
        self.used += slots
        if slots < 0 and self.waiters:
            self.wake_waiters()

    def recount(self, counted: int) -> None:
        """The log counted again from scratch (after reading the stream): ``counted`` slots
        held, plus those reserved for waiters."""
        self.used = counted + self.reserved
        if self.waiters:
            self.wake_waiters()

    def wake_all(self) -> None:
        """Hand every waiter a slot now, bound or not (the log broke: each finds it broken,
        raises, and returns its slot)."""
        bound, self.bound = self.bound, None
        try:
            self.wake_waiters()
        finally:
            self.bound = bound

    def wake_waiters(self) -> None:
        """Hand freed slots to the waiters first in line."""
        bound, waiters = self.bound, self.waiters
        while waiters and (bound is None or self.used < bound):
            waiter = waiters.popleft()
            if waiter.done():
                continue
            self.used += 1
            self.reserved += 1
            waiter.set_result(True)

    async def wait(self, timeout: float, clock: Clock | None) -> bool:
        """Wait in line for a slot, at most ``timeout`` seconds (of ``clock``, or of the loop);
        True once one is reserved for the caller (who must ``claim`` or ``unreserve`` it),
        False if the time ran out. A cancelled caller leaves the line (and returns a slot
        handed to it)."""
        self.waits += 1
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self.waiters.append(waiter)
        if clock is None:
            timer = loop.call_later(timeout, _time_out, waiter)
            cancel = timer.cancel
        else:
            cancel = clock.call_later(timeout, _time_out, waiter).cancel
        try:
            granted = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.unreserve()
            raise
        finally:
            cancel()
        return granted

    def claim(self) -> None:
        """A reserved slot is now held by what the log counts."""
        self.reserved -= 1

    def unreserve(self) -> None:
        """A reserved slot was not needed after all: it goes to the next in line."""
        self.reserved -= 1
        self.release()
