"""``TimerScheduler`` (``ctx.timers``): keyed timers an actor sets for itself (Akka's TimerScheduler).

A timer has a key; starting a timer with a key that is in use replaces the
timer before it. Every timer belongs to the incarnation that started it and is
cancelled when that incarnation ends (stop, crash, restart). A message of a
timer that was cancelled or replaced is never delivered, even when it is
already waiting in the mailbox: each tick names the timer that sent it, and
the slot delivers it only while that timer is still the key's current one in
the current incarnation (an identity, which is a generation per key).

Ticks travel the mailbox's system lane (``TimerTick``): they are never
refused by a full mailbox and never dropped by its overflow policy, and at
most one tick per timer is ever waiting, so a timer cannot fill that
unbounded lane however busy its actor is.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any

from garrison._errors import ActorStopped, InvalidConfig
from garrison._validate import check_seconds
from garrison.actors._control import Rewire, SystemMessage

if TYPE_CHECKING:
    from garrison._clock import Cancellable
    from garrison.actors._slot import Slot

Receive = Callable[[Any], Awaitable[Any]]


class _Mode(enum.Enum):
    SINGLE = "single"
    FIXED_DELAY = "fixed delay"
    FIXED_RATE = "fixed rate"


class _Timer:
    """One started timer: what it sends, when, and the tick of it waiting to be delivered."""

    __slots__ = (
        "due_index",
        "first_due",
        "handle",
        "incarnation",
        "interval",
        "key",
        "message",
        "mode",
        "tick",
    )

    def __init__(
        self, key: Hashable, message: Any, mode: _Mode, interval: float, incarnation: int, first_due: float
    ) -> None:
        self.key = key
        self.message = message
        self.mode = mode
        self.interval = interval
        self.incarnation = incarnation
        self.first_due = first_due
        """Node-clock time of the first tick; a fixed-rate timer's n-th tick is due at
        ``first_due + n * interval`` (n from 0), computed, never accumulated."""
        self.due_index = 0
        """Which due time the clock timer now armed stands for (fixed rate)."""
        self.handle: Cancellable | None = None
        """The clock timer armed for the next tick; None while none is armed."""
        self.tick: TimerTick | None = None
        """The tick on the system lane, not yet delivered; None when none waits."""


class TimerTick(SystemMessage):
    """Internal: a keyed timer's message on the system lane.

    The slot's loop asks :meth:`claim` before delivering ``message`` to the
    handler; a tick whose timer was cancelled, replaced, or set by an earlier
    incarnation is not delivered (and is no dead letter: nobody is waiting
    for it).
    """

    __slots__ = ("message", "_scheduler", "_timer")

    def __init__(self, scheduler: TimerScheduler, timer: _Timer) -> None:
        self.message = timer.message
        self._scheduler = scheduler
        self._timer = timer

    def claim(self) -> bool:
        """True when this tick may be delivered now (its timer is current); it then counts
        as delivered (a single timer ends; a fixed-delay timer arms its next tick)."""
        return self._scheduler.claim(self._timer, self)


class TimerScheduler:
    """Keyed timers of one actor: ``self.ctx.timers`` (Akka's TimerScheduler).

    Every method is for the actor's own handlers (and ``on_start``): call it
    from the actor's task, never from another actor. A key is any hashable
    value; starting a timer under a key in use replaces that timer, and a
    message of the replaced timer is not delivered even if it is already
    waiting. All timers are cancelled when the incarnation ends (stop, crash,
    restart): a restarted actor starts its timers again in ``on_start``.

    Ticks are delivered ahead of user messages already queued (they travel
    the system lane, as control does): a full or busy mailbox neither refuses
    nor delays them behind its backlog. At most one tick of a timer waits at
    a time.

    Periodic timers come in Akka's two kinds:

    - :meth:`start_periodic` has a **fixed delay**: the next tick is due
      ``interval`` after the handler of the previous one returned. Ticks
      never pile up behind a slow handler, the actor always has ``interval``
      for its other messages between two ticks, and the period stretches by
      the time each tick waited and took (Akka's ``startTimerWithFixedDelay``).
    - :meth:`start_at_fixed_rate` has a **fixed rate**: the n-th tick is due
      at ``start + initial_delay + n * interval`` whatever happened before,
      so the schedule never drifts. A tick that comes due while the previous
      one still waits is not queued twice, and a due time that passed while
      the loop was held up is skipped, not fired in a burst (Akka's
      ``startTimerAtFixedRate``, without its catch-up burst).
    """

    __slots__ = ("_handling", "_incarnation", "_slot", "_timers")

    def __init__(self, slot: Slot) -> None:
        self._slot = slot
        self._timers: dict[Hashable, _Timer] = {}
        self._incarnation = slot.incarnation
        self._handling: _Timer | None = None
        """The fixed-delay timer whose tick the handler in flight was given: re-armed when it returns."""
        # The slot rebuilds its handler chain with our wrapper (after_ticks) before the next
        # message, which is ahead of any tick of ours on the system lane.
        slot.mailbox.put_system(Rewire())

    # -- what actors call ----------------------------------------------------------------

    def start_single(self, key: Hashable, message: Any, delay: float) -> None:
        """Send ``message`` to this actor once, ``delay`` seconds of node-clock time from now.

        Replaces the timer under ``key``, if any. Active until its message is
        delivered. Raises InvalidConfig for a negative delay or an unhashable
        key, ActorStopped once the actor has stopped.
        """
        check_seconds("delay", delay, allow_minimum=True)
        self._start(key, message, _Mode.SINGLE, float(delay), float(delay))

    def start_periodic(
        self, key: Hashable, message: Any, interval: float, *, initial_delay: float | None = None
    ) -> None:
        """Send ``message`` to this actor every ``interval`` seconds, with a fixed delay.

        The first tick comes ``initial_delay`` (default ``interval``) from now;
        each later one ``interval`` after the handler of the one before
        returned, so a slow handler stretches the period instead of queueing
        ticks, and leaves the actor ``interval`` for its other messages (Akka's
        ``startTimerWithFixedDelay``). Replaces the timer under ``key``, if
        any. Raises InvalidConfig for an interval <= 0, a negative initial
        delay or an unhashable key, ActorStopped once the actor has stopped.
        """
        check_seconds("interval", interval)
        first = self._initial_delay(initial_delay, interval)
        self._start(key, message, _Mode.FIXED_DELAY, float(interval), first)

    def start_at_fixed_rate(
        self, key: Hashable, message: Any, interval: float, *, initial_delay: float | None = None
    ) -> None:
        """Send ``message`` to this actor at a fixed rate: at ``start + initial_delay + n * interval``.

        ``initial_delay`` defaults to ``interval``. Due times are computed from
        the start, never from the previous tick, so lateness never accumulates
        (no drift). A tick due while the previous one still waits to be
        delivered is not queued twice, and due times the loop missed entirely
        are skipped (Akka's ``startTimerAtFixedRate``, without its catch-up
        burst). Replaces the timer under ``key``, if any. Raises InvalidConfig
        for an interval <= 0, a negative initial delay or an unhashable key,
        ActorStopped once the actor has stopped.
        """
        check_seconds("interval", interval)
        first = self._initial_delay(initial_delay, interval)
        self._start(key, message, _Mode.FIXED_RATE, float(interval), first)

    def cancel(self, key: Hashable) -> None:
        """Cancel the timer under ``key``; its message is not delivered, even if already waiting.

        Does nothing for a key with no timer (never started, fired, or cancelled).
        """
        timer = self._current().pop(key, None)
        if timer is not None:
            self._disarm(timer)

    def cancel_all(self) -> None:
        """Cancel every timer of this actor; none of their messages is delivered."""
        timers = self._current()
        for timer in timers.values():
            self._disarm(timer)
        timers.clear()

    def is_active(self, key: Hashable) -> bool:
        """True while a timer under ``key`` may still deliver a message.

        A single timer stops being active once its message is delivered; a
        periodic one stays active until cancelled, replaced, or its
        incarnation ends.
        """
        return key in self._current()

    def keys(self) -> list[Hashable]:
        """The keys of the active timers, in the order they were started."""
        return list(self._current())

    # -- what the slot calls -------------------------------------------------------------

    def claim(self, timer: _Timer, tick: TimerTick) -> bool:
        """Internal, for the slot's loop (through ``TimerTick.claim``): may ``tick`` be delivered now?"""
        if self._current().get(timer.key) is not timer or timer.tick is not tick:
            return False
        timer.tick = None
        if timer.mode is _Mode.SINGLE:
            del self._timers[timer.key]
        elif timer.mode is _Mode.FIXED_DELAY:
            self._handling = timer  # armed again when its handler returns (after_ticks)
        return True

    def after_ticks(self, receive: Receive) -> Receive:
        """Internal, for the slot: wrap the handler so that a fixed-delay timer is armed again
        ``interval`` after the handler of its tick returns (or raises: then, if the
        incarnation ends, the new timer is cancelled with it)."""

        async def receive_then_rearm(message: Any) -> Any:
            try:
                return await receive(message)
            finally:
                timer = self._handling
                if timer is not None:
                    self._handling = None
                    if self._timers.get(timer.key) is timer and timer.handle is None:
                        self._arm(timer, timer.interval)

        return receive_then_rearm

    # -- inside ------------------------------------------------------------------------

    def _current(self) -> dict[Hashable, _Timer]:
        """The timers of the running incarnation (an earlier incarnation's were cancelled with it)."""
        incarnation = self._slot.incarnation
        if self._incarnation != incarnation:
            self._timers.clear()
            self._incarnation = incarnation
        return self._timers

    @staticmethod
    def _initial_delay(initial_delay: float | None, interval: float) -> float:
        if initial_delay is None:
            return float(interval)
        check_seconds("initial_delay", initial_delay, allow_minimum=True)
        return float(initial_delay)

    def _start(self, key: Hashable, message: Any, mode: _Mode, interval: float, delay: float) -> None:
        try:
            hash(key)
        except TypeError:
            raise InvalidConfig("key", key, "a timer key must be hashable (a str, an int, a tuple)") from None
        slot = self._slot
        if not slot.has_incarnation:
            raise ActorStopped(slot.path, "its incarnation has ended: a timer cannot be started")
        timers = self._current()
        previous = timers.pop(key, None)
        if previous is not None:
            self._disarm(previous)
        first_due = slot.node.clock.now() + delay
        timer = _Timer(key, message, mode, interval, slot.incarnation, first_due)
        timers[key] = timer
        self._arm(timer, delay)

    def _arm(self, timer: _Timer, delay: float) -> None:
        handle = self._slot.node.clock.call_later(delay, self._fire, timer)
        timer.handle = handle
        self._slot.track_timer(handle)

    def _disarm(self, timer: _Timer) -> None:
        handle, timer.handle = timer.handle, None
        if handle is not None:
            handle.cancel()
            self._slot.untrack_timer(handle)
        tick, timer.tick = timer.tick, None
        if tick is not None:
            self._slot.mailbox.remove_system(tick)

    def _fire(self, timer: _Timer) -> None:
        slot = self._slot
        handle, timer.handle = timer.handle, None
        if handle is not None:
            slot.untrack_timer(handle)
        if self._timers.get(timer.key) is not timer or timer.incarnation != slot.incarnation:
            return
        if timer.mode is _Mode.FIXED_RATE:
            self._arm_next_rate(timer)
        if timer.tick is None:
            timer.tick = TimerTick(self, timer)
            slot.mailbox.put_system(timer.tick)

    def _arm_next_rate(self, timer: _Timer) -> None:
        """Arm the next due time after now: ``first_due + n * interval``, none missed twice."""
        now = self._slot.node.clock.now()
        interval = timer.interval
        index = max(timer.due_index + 1, math.floor((now - timer.first_due) / interval) + 1)
        timer.due_index = index
        self._arm(timer, max(0.0, timer.first_due + index * interval - now))

    def __repr__(self) -> str:
        return f"<TimerScheduler {self._slot.path} active={len(self._current())}>"
