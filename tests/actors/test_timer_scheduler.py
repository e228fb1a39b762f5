"""ctx.timers: keyed timers (Akka's TimerScheduler) on the node's virtual clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from garrison import (
    Actor,
    ActorContext,
    ActorStopped,
    ChildSpec,
    InvalidConfig,
    MailboxConfig,
    ManualClock,
    Node,
    Overflow,
    SupervisorSpec,
)


class Hold:
    """Keeps the actor busy for ``seconds`` of virtual time; then crashes it (``crash``), or
    runs the command ``then``."""

    def __init__(self, seconds: float, *, crash: bool = False, then: tuple[Any, ...] = ()) -> None:
        self.seconds = seconds
        self.crash = crash
        self.then = then


class Timed(Actor):
    """Records (time, message) for every message; a tuple command drives ``ctx.timers``."""

    def __init__(self, seen: list[tuple[float, Any]], contexts: list[ActorContext] | None = None) -> None:
        self.seen = seen
        if contexts is not None:
            contexts.append(self.ctx)

    async def on_receive(self, message: Any) -> Any:
        timers = self.ctx.timers
        if isinstance(message, tuple):
            command, *args = message
            if command == "single":
                timers.start_single(*args)
            elif command == "periodic":
                timers.start_periodic(*args[:3], initial_delay=args[3] if len(args) > 3 else None)
            elif command == "rate":
                timers.start_at_fixed_rate(*args[:3], initial_delay=args[3] if len(args) > 3 else None)
            elif command == "cancel":
                timers.cancel(*args)
            elif command == "cancel_all":
                timers.cancel_all()
            elif command == "active":
                return timers.is_active(*args)
            elif command == "keys":
                return timers.keys()
            elif command == "note":
                self.seen.append((self.ctx.node.clock.now(), *args))
            return None
        if isinstance(message, Hold):
            await self.ctx.node.clock.sleep(message.seconds)
            if message.crash:
                raise RuntimeError("crash on purpose")
            if message.then:
                await self.on_receive(message.then)
            return None
        self.seen.append((self.ctx.node.clock.now(), message))
        return None


def messages(seen: list[tuple[float, Any]]) -> list[Any]:
    return [message for _, message in seen]


def times(seen: list[tuple[float, Any]], message: Any) -> list[float]:
    return [at for at, each in seen if each == message]


async def test_a_single_timer_delivers_once_after_its_delay_and_is_active_until_then(
    node: Node, clock: ManualClock
) -> None:
    seen: list[tuple[float, Any]] = []
    ref = await node.spawn(Timed, args=(seen,))
    await ref.ask(("single", "k", "ping", 2.0))
    assert await ref.ask(("active", "k")) is True
    await clock.advance(1.9)
    assert seen == []
    await clock.advance(0.1)
    assert seen == [(2.0, "ping")]
    assert await ref.ask(("active", "k")) is False
    await clock.advance(10.0)
    assert messages(seen) == ["ping"]


async def test_a_periodic_timer_ticks_every_interval_until_cancelled(node: Node, clock: ManualClock) -> None:
    seen: list[tuple[float, Any]] = []
    ref = await node.spawn(Timed, args=(seen,))
    await ref.ask(("periodic", "poll", "tick", 1.0))
    await clock.advance(3.5)
    assert times(seen, "tick") == pytest.approx([1.0, 2.0, 3.0])
    await ref.ask(("cancel", "poll"))
    assert await ref.ask(("active", "poll")) is False
    await clock.advance(5.0)
    assert len(seen) == 3
    assert clock.pending_timers == 0


async def test_initial_delay_sets_the_first_tick_only(node: Node, clock: ManualClock) -> None:
    seen: list[tuple[float, Any]] = []
    ref = await node.spawn(Timed, args=(seen,))
    await ref.ask(("periodic", "poll", "tick", 1.0, 0.25))
    await clock.advance(2.5)
    assert times(seen, "tick") == pytest.approx([0.25, 1.25, 2.25])


async def test_starting_a_key_again_replaces_its_timer(node: Node, clock: ManualClock) -> None:
    seen: list[tuple[float, Any]] = []
    ref = await node.spawn(Timed, args=(seen,))
    await ref.ask(("periodic", "k", "old", 1.0))
    await clock.advance(0.5)
    await ref.ask(("single", "k", "new", 2.0))
    await clock.advance(5.0)
    assert seen == [(2.5, "new")]
    assert await ref.ask(("keys",)) == []


async def test_a_tick_already_waiting_is_not_delivered_once_its_timer_is_cancelled(
    node: Node, clock: ManualClock
) -> None:
    # The handler in flight when the tick came due cancels the timer: the waiting tick is
    # not delivered (Akka's guarantee).
    seen: list[tuple[float, Any]] = []
    ref = await node.spawn(Timed, args=(seen,))
    await ref.ask(("single", "k", "stale", 1.0))
    await ref.tell(Hold(2.0, then=("cancel", "k")))
    await clock.advance(1.5)
    assert ref.slot.mailbox.system  # the tick fired at 1.0 and waits behind the Hold
    await clock.advance(5.0)
    assert seen == []


async def test_a_tick_already_waiting_is_not_delivered_once_its_key_is_replaced(
    node: Node, clock: ManualClock
) -> None:
    seen: list[tuple[float, Any]] = []
    ref = await node.spawn(Timed, args=(seen,))
    await ref.ask(("single", "k", "first", 1.0))
    await ref.tell(Hold(2.0, then=("single", "k", "second", 1.0)))
    await clock.advance(5.0)
    assert seen == [(3.0, "second")]


async def test_cancel_all_cancels_every_timer(node: Node, clock: ManualClock) -> None:
    seen: list[tuple[float, Any]] = []
    ref = await node.spawn(Timed, args=(seen,))
    await ref.ask(("periodic", "a", "a", 1.0))
    await ref.ask(("rate", "b", "b", 1.0))
    await ref.ask(("single", "c", "c", 1.0))
    assert await ref.ask(("keys",)) == ["a", "b", "c"]
    await ref.ask(("cancel_all",))
    await clock.advance(5.0)
    assert seen == []
    assert clock.pending_timers == 0


async def test_fixed_rate_ticks_stay_on_start_plus_n_intervals_whatever_the_steps(
    node: Node, clock: ManualClock
) -> None:
    seen: list[tuple[float, Any]] = []
    ref = await node.spawn(Timed, args=(seen,))
    await ref.ask(("rate", "r", "tick", 0.1))
    for step in [0.037, 0.25, 0.013, 0.31, 0.09, 0.001, 0.7, 0.5, 0.099, 1.05]:  # 3.05 in all
        await clock.advance(step)
    ticks = times(seen, "tick")
    assert len(ticks) == 30
    assert ticks == pytest.approx([0.1 * n for n in range(1, 31)], abs=1e-9)


async def test_fixed_rate_does_not_drift_behind_a_busy_handler_but_fixed_delay_does(
    node: Node, clock: ManualClock
) -> None:
    rate_seen: list[tuple[float, Any]] = []
    delay_seen: list[tuple[float, Any]] = []
    rate = await node.spawn(Timed, args=(rate_seen,), name="rate")
    delay = await node.spawn(Timed, args=(delay_seen,), name="delay")
    await rate.ask(("rate", "t", "tick", 1.0))
    await delay.ask(("periodic", "t", "tick", 1.0))
    await clock.advance(0.4)
    # Both are busy from 0.4 to 1.7: the tick due at 1.0 waits until 1.7.
    rate_busy = asyncio.ensure_future(rate.ask(Hold(1.3)))
    delay_busy = asyncio.ensure_future(delay.ask(Hold(1.3)))
    await clock.advance(4.4)
    await rate_busy
    await delay_busy
    # Fixed rate: the late tick at 1.7, then back on the schedule at 2, 3, 4.
    assert times(rate_seen, "tick") == pytest.approx([1.7, 2.0, 3.0, 4.0])
    # Fixed delay: every later tick 1.0 after the one before was taken.
    assert times(delay_seen, "tick") == pytest.approx([1.7, 2.7, 3.7, 4.7])


async def test_a_fixed_delay_tick_slower_than_its_interval_leaves_room_for_other_messages(
    node: Node, clock: ManualClock
) -> None:
    # Each tick's handler takes 2 s of a 1 s interval: the next tick is due 1 s after it
    # returns, and the work queued meanwhile runs in between.
    seen: list[tuple[float, Any]] = []
    ref = await node.spawn(Timed, args=(seen,))
    await ref.ask(("periodic", "k", Hold(2.0, then=("note", "tick done")), 1.0))
    await clock.advance(1.5)
    await ref.tell("work")
    await clock.advance(5.0)
    assert seen == [(3.0, "tick done"), (3.0, "work"), (6.0, "tick done")]


async def test_a_fixed_rate_tick_is_not_queued_twice_while_the_previous_one_waits(
    node: Node, clock: ManualClock
) -> None:
    seen: list[tuple[float, Any]] = []
    ref = await node.spawn(Timed, args=(seen,))
    await ref.ask(("rate", "t", "tick", 1.0))
    await clock.advance(0.5)
    busy = asyncio.ensure_future(ref.ask(Hold(3.0)))  # busy 0.5 .. 3.5: due times 1, 2, 3 pass
    await clock.advance(4.0)
    await busy
    assert times(seen, "tick") == pytest.approx([3.5, 4.0])
    assert ref.slot.mailbox.system == []


async def test_ticks_reach_a_full_mailbox_ahead_of_queued_messages(node: Node, clock: ManualClock) -> None:
    seen: list[tuple[float, Any]] = []
    config = MailboxConfig(capacity=2, overflow=Overflow.REJECT)
    ref = await node.spawn(Timed, args=(seen,), mailbox=config)
    await ref.ask(("single", "k", "tick", 1.0))
    busy = asyncio.ensure_future(ref.ask(Hold(2.0)))
    await clock.advance(0.0)
    ref.tell_nowait("queued-1")
    ref.tell_nowait("queued-2")  # full: a sender would now be refused
    await clock.advance(3.0)
    await busy
    assert messages(seen) == ["tick", "queued-1", "queued-2"]
    assert ref.mailbox_metrics().rejected == 0


async def test_timers_are_cancelled_on_restart_and_a_waiting_tick_is_not_delivered(
    node: Node, clock: ManualClock
) -> None:
    seen: list[tuple[float, Any]] = []
    spec = SupervisorSpec(children=[ChildSpec("timed", Timed, args=(seen,))])
    await node.start(spec, name="sup")
    ref = node.lookup("/sup/timed")
    await ref.ask(("periodic", "poll", "tick", 1.0))
    await clock.advance(1.0)
    assert messages(seen) == ["tick"]
    # Busy from 1.0 to 2.5, then crash: the tick due at 2.0 is waiting when it does.
    await ref.tell(Hold(1.5, crash=True))
    await clock.advance(1.5)
    assert ref.slot.incarnation == 2
    await clock.advance(10.0)
    assert messages(seen) == ["tick"]
    assert clock.pending_timers == 0
    assert await ref.ask(("active", "poll")) is False


async def test_timers_are_cancelled_when_the_actor_stops(node: Node, clock: ManualClock) -> None:
    seen: list[tuple[float, Any]] = []
    contexts: list[ActorContext] = []
    ref = await node.spawn(Timed, args=(seen, contexts))
    await ref.ask(("periodic", "a", "a", 1.0))
    await ref.ask(("rate", "b", "b", 1.0))
    await node.stop(ref)
    await clock.advance(5.0)
    assert seen == []
    assert clock.pending_timers == 0  # nothing left armed (the asks' deadlines have passed too)
    with pytest.raises(ActorStopped) as stopped:
        contexts[0].timers.start_single("late", "x", 1.0)
    assert stopped.value.path == ref.path


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (("periodic", "k", "x", 0.0), "interval"),
        (("rate", "k", "x", -1.0), "interval"),
        (("single", "k", "x", -0.5), "delay"),
        (("periodic", "k", "x", 1.0, -1.0), "initial_delay"),
        (("single", ["unhashable"], "x", 1.0), "key"),
    ],
)
async def test_bad_timer_arguments_raise_invalid_config_naming_the_field(
    node: Node, command: tuple[Any, ...], field: str
) -> None:
    ref = await node.spawn(Timed, args=([],))
    with pytest.raises(InvalidConfig) as raised:
        await ref.ask(command)
    assert raised.value.field == field
    assert ref.is_alive
