"""on_start, on_receive, on_stop, self.ctx, and what a crash does."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from garrison import (
    Actor,
    ActorStartError,
    ActorStopped,
    ExitKind,
    Failed,
    LifecycleEvent,
    ManualClock,
    Node,
    Started,
    Stopped,
)
from garrison._clock import settle
from garrison.actors import ActorContext, ExitReason, SystemMessage
from tests.actors._pollers import spawn_busy_poller
from tests.actors.helpers import Boom, Crash, Fragile, Gated, dead_letters_to


class Lifecycle(Actor):
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.log.append(f"init ctx={self.ctx.path}")

    async def on_start(self) -> None:
        self.log.append("on_start")

    async def on_receive(self, message: Any) -> Any:
        self.log.append(f"on_receive {message}")
        if message == "stop":
            self.ctx.stop()
        return None

    async def on_stop(self) -> None:
        self.log.append("on_stop")


async def test_on_start_runs_before_the_first_message_and_spawn_awaits_it(node: Node) -> None:
    log: list[str] = []
    ref = await node.spawn(Lifecycle, name="life", args=(log,))
    assert log == ["init ctx=/life", "on_start"]
    await ref.tell("a")
    await settle()
    assert log[-1] == "on_receive a"


async def test_ctx_stop_runs_on_stop_and_sends_queued_messages_to_dead_letters(node: Node) -> None:
    log: list[str] = []
    ref = await node.spawn(Lifecycle, name="life", args=(log,))
    ref.tell_nowait("stop")
    ref.tell_nowait("after")
    reason = await asyncio.wait_for(ref.wait_terminated(), timeout=5.0)
    assert reason.kind is ExitKind.NORMAL
    assert log[-2:] == ["on_receive stop", "on_stop"]
    assert [letter.message for letter in dead_letters_to(node, "/life")] == ["after"]
    assert not ref.is_alive


async def test_node_stop_lets_the_message_in_flight_finish_then_runs_on_stop(node: Node) -> None:
    gate = asyncio.Event()
    seen: list[str] = []
    stopped: list[str] = []

    class Slow(Gated):
        async def on_stop(self) -> None:
            stopped.append(f"on_stop after {list(self.seen)}")

    ref = await node.spawn(Slow, name="slow", args=(gate, seen))
    ref.tell_nowait("in flight")
    await settle()
    ref.tell_nowait("queued")
    stopping = asyncio.create_task(node.stop(ref))
    await settle()
    assert not stopping.done()
    gate.set()
    await asyncio.wait_for(stopping, timeout=5.0)
    assert seen == ["in flight"]
    assert stopped == ["on_stop after ['in flight']"]
    assert [letter.message for letter in dead_letters_to(node, "/slow")] == ["queued"]


async def test_stop_cancels_a_handler_that_outlives_the_shutdown_timeout(
    node: Node, clock: ManualClock
) -> None:
    gate = asyncio.Event()
    stopped: list[str] = []

    class Stuck(Gated):
        async def on_stop(self) -> None:
            stopped.append("on_stop")

    ref = await node.spawn(Stuck, name="stuck", args=(gate, []))
    ref.tell_nowait("forever")
    await settle()
    stopping = asyncio.create_task(node.stop(ref, timeout=3.0))
    await clock.advance(2.9)
    assert not stopping.done()
    await clock.advance(0.1)
    await asyncio.wait_for(stopping, timeout=5.0)
    assert not ref.is_alive
    assert stopped == []  # on_stop runs only on an orderly stop
    reason = await asyncio.wait_for(ref.wait_terminated(), timeout=5.0)
    assert "shutdown=3.0s" in str(reason)


async def test_a_handler_cut_off_by_the_shutdown_timeout_sends_its_message_to_dead_letters(
    node: Node, clock: ManualClock
) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(Gated, name="stuck", args=(gate, []))
    ref.tell_nowait("cut off")
    await settle()
    stopping = asyncio.create_task(node.stop(ref, timeout=1.0))
    await clock.advance(1.0)
    await asyncio.wait_for(stopping, timeout=5.0)
    assert [letter.message for letter in dead_letters_to(node, "/stuck")] == ["cut off"]


async def test_an_exception_from_on_stop_is_logged_and_the_actor_still_stops(
    node: Node, log_records: list[dict[str, Any]]
) -> None:
    class BadStop(Actor):
        async def on_stop(self) -> None:
            raise Crash("on_stop broke")

    ref = await node.spawn(BadStop, name="bad")
    await asyncio.wait_for(node.stop(ref), timeout=5.0)
    assert not ref.is_alive
    errors = [r for r in log_records if r["level"].name == "ERROR" and "on_stop" in r["message"]]
    assert errors and "/bad" in errors[0]["message"]


async def test_an_on_start_failure_raises_actor_start_error_and_frees_the_name(node: Node) -> None:
    class BadStart(Actor):
        async def on_start(self) -> None:
            raise Crash("no connection")

    with pytest.raises(ActorStartError) as raised:
        await node.spawn(BadStart, name="bad")
    assert raised.value.path == "/bad"
    assert isinstance(raised.value.cause, Crash)
    assert "no connection" in str(raised.value)
    assert "/bad" not in node.paths()
    ref = await node.spawn(Fragile, name="bad", args=([],))
    assert ref.is_alive


async def test_an_exception_escaping_on_receive_on_a_tell_stops_the_actor(node: Node) -> None:
    seen: list[Any] = []
    ref = await node.spawn(Fragile, name="fragile", args=(seen,))
    ref.tell_nowait("before")
    ref.tell_nowait(Boom())
    reason = await asyncio.wait_for(ref.wait_terminated(), timeout=5.0)
    assert reason.kind is ExitKind.FAILURE
    assert isinstance(reason.error, Crash)
    assert not ref.is_alive
    assert seen == ["before"]
    with pytest.raises(ActorStopped):
        ref.tell_nowait("after")


async def test_a_crash_sends_the_failing_message_with_its_error_and_the_queue_to_dead_letters(
    node: Node,
) -> None:
    ref = await node.spawn(Fragile, name="fragile", args=([],))
    boom = Boom()
    ref.tell_nowait(boom)
    ref.tell_nowait("queued 1")
    ref.tell_nowait("queued 2")
    await asyncio.wait_for(ref.wait_terminated(), timeout=5.0)
    letters = dead_letters_to(node, "/fragile")
    assert [letter.message for letter in letters] == [boom, "queued 1", "queued 2"]
    assert isinstance(letters[0].error, Crash)
    assert "Crash" in letters[0].reason and "/fragile" in letters[0].reason


async def test_a_crash_fails_the_queued_asks_with_actor_stopped(node: Node) -> None:
    ref = await node.spawn(Fragile, name="fragile", args=([],))
    ref.tell_nowait(Boom())
    ask = asyncio.create_task(ref.ask("queued", timeout=10.0))
    with pytest.raises(ActorStopped):
        await asyncio.wait_for(ask, timeout=5.0)


async def test_a_crash_is_reported_with_the_actor_path_and_the_message_type(
    node: Node, log_records: list[dict[str, Any]]
) -> None:
    events: list[LifecycleEvent] = []
    node.events.subscribe(events.append)
    ref = await node.spawn(Fragile, name="fragile", args=([],))
    ref.tell_nowait(Boom())
    await asyncio.wait_for(ref.wait_terminated(), timeout=5.0)
    failed = [event for event in events if isinstance(event, Failed)]
    assert len(failed) == 1
    assert failed[0].path == "/fragile"
    assert failed[0].message_type == "Boom"
    assert failed[0].error_type == "Crash"
    errors = [r for r in log_records if r["level"].name == "ERROR" and "failed" in r["message"]]
    assert len(errors) == 1
    assert "/fragile" in errors[0]["message"]
    assert "Boom" in errors[0]["message"]
    assert errors[0]["exception"] is not None
    assert errors[0]["extra"]["actor"] == "/fragile"


async def test_lifecycle_events_are_published_with_the_clock_time(node: Node, clock: ManualClock) -> None:
    events: list[LifecycleEvent] = []
    node.events.subscribe(events.append)
    await clock.advance(7.0)
    ref = await node.spawn(Fragile, name="f", args=([],))
    await node.stop(ref)
    assert [type(event) for event in events] == [Started, Stopped]
    assert all(event.path == "/f" and event.at == 7.0 for event in events)


async def test_an_event_subscriber_that_raises_does_not_break_the_runtime(node: Node) -> None:
    def broken(event: LifecycleEvent) -> None:
        raise RuntimeError("observer bug")

    node.events.subscribe(broken)
    ref = await node.spawn(Fragile, name="f", args=([],))
    assert await ref.ask("still works", timeout=1.0) == "still works"


async def test_ctx_gives_the_actor_its_ref_node_and_parent(node: Node) -> None:
    seen: dict[str, Any] = {}

    class Child(Actor):
        async def on_start(self) -> None:
            seen["child parent"] = self.ctx.parent

    class Parent(Actor):
        async def on_start(self) -> None:
            seen["self"] = self.ctx.self_ref
            seen["node"] = self.ctx.node
            seen["parent"] = self.ctx.parent
            seen["child"] = await self.ctx.spawn(Child, name="child")

    ref = await node.spawn(Parent, name="parent")
    assert seen["self"] is ref
    assert seen["node"] is node
    assert seen["parent"] is None
    assert seen["child"].path == "/parent/child"
    assert seen["child parent"] is ref
    assert node.lookup("/parent/child") is seen["child"]


async def test_children_stop_when_their_parent_stops(node: Node) -> None:
    stops: list[str] = []

    class Child(Actor):
        async def on_stop(self) -> None:
            stops.append(self.ctx.path)

    class Parent(Actor):
        async def on_start(self) -> None:
            await self.ctx.spawn(Child, name="a")
            await self.ctx.spawn(Child, name="b")

        async def on_stop(self) -> None:
            stops.append(self.ctx.path)

    ref = await node.spawn(Parent, name="p")
    child = node.lookup("/p/a")
    await node.stop(ref)
    assert sorted(stops) == ["/p", "/p/a", "/p/b"]
    assert stops.index("/p/b") < stops.index("/p/a")  # children in reverse start order
    assert not child.is_alive
    assert node.paths() == []


async def test_an_unhandled_message_goes_to_dead_letters(node: Node) -> None:
    class Silent(Actor):
        pass

    ref = await node.spawn(Silent, name="silent")
    ref.tell_nowait("nobody listens")
    await settle()
    letters = dead_letters_to(node, "/silent")
    assert [letter.message for letter in letters] == ["nobody listens"]
    assert "unhandled by Silent" in letters[0].reason
    assert ref.is_alive


async def test_a_timer_to_itself_is_delivered_even_when_the_mailbox_is_full(
    node: Node, clock: ManualClock
) -> None:
    # "block" is in flight until t=5; the mailbox (capacity 2) is full when the timer fires at t=1.
    _, _, ticks = await spawn_busy_poller(node, "block", ["queued-1", "queued-2"], rearm=True)
    await clock.advance(8.0)
    assert ticks[:3] == [5.0, 6.0, 7.0]  # the t=1 tick waited behind the busy handler, then went on
    assert not [letter for letter in node.dead_letters.recent() if letter.kind == "timer"]


class _Question(SystemMessage):
    """A control message whose sender awaits an answer (as a supervisor call does)."""

    def __init__(self, reply: asyncio.Future[Any]) -> None:
        self.reply = reply

    async def run(self, context: ActorContext, instance: Actor) -> ExitReason | None:
        self.reply.set_result("answered")
        return None


async def test_a_queued_control_message_awaiting_a_reply_fails_with_actor_stopped_when_the_actor_stops(
    node: Node, clock: ManualClock
) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(Gated, name="gated", args=(gate, []))
    ref.tell_nowait("hold")
    await settle()
    reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    ref._context.mailbox.put_system(_Question(reply))
    await node.stop(ref, timeout=0)
    assert reply.done()
    error = reply.exception()
    assert isinstance(error, ActorStopped)
    assert error.path == "/gated"
    assert "stopped by request" in str(error)


class _SlowQuestion(SystemMessage):
    """A control message whose answer never comes before the actor is cancelled."""

    def __init__(self, reply: asyncio.Future[Any]) -> None:
        self.reply = reply

    async def run(self, context: ActorContext, instance: Actor) -> ExitReason | None:
        await asyncio.Event().wait()
        return None


async def test_a_control_message_cut_off_mid_way_fails_its_reply_with_actor_stopped(node: Node) -> None:
    ref = await node.spawn(Lifecycle, name="life", args=([],))
    reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    ref._context.mailbox.put_system(_SlowQuestion(reply))
    await settle()
    await node.stop(ref, timeout=0)
    error = reply.exception()
    assert isinstance(error, ActorStopped)
    assert "cancelled while answering" in str(error)
