"""Stopping an actor that is already stopping joins the stop in progress (as in OTP and Akka).

Every caller returns once the actor has stopped; the first stop's reason
stands, and so does its shutdown deadline unless a joining stop's ends sooner
(OTP: ``exit(Pid, kill)`` during a graceful shutdown kills at once); stopping
a stopped actor returns at once. All on virtual time: ``settle`` runs the loop
until nothing is ready, so a stop that has not returned by then is waiting for
the clock or for ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from garrison import Actor, ActorStartError, ChildSpec, ManualClock, Node, SupervisorSpec
from garrison._clock import settle
from garrison.actors import ExitReason
from tests.actors.helpers import Gated


@pytest.fixture(autouse=True)
async def deadlines_run_out(node: Node, clock: ManualClock) -> AsyncIterator[None]:
    """After each test, let virtual time pass every shutdown deadline left armed.

    A stop that failed to end an actor then fails its test instead of hanging
    the node's own shutdown.
    """
    yield
    await clock.advance(60.0)


class Stubborn(Actor):
    """Never finishes a message, nor its on_stop; records how far each got."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def on_receive(self, message: object) -> None:
        self.seen.append(f"handling {message}")
        await asyncio.Event().wait()

    async def on_stop(self) -> None:
        self.seen.append("on_stop began")
        await asyncio.Event().wait()
        self.seen.append("on_stop ended")


async def test_two_concurrent_stops_both_return_when_the_actor_has_stopped(node: Node) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(Gated, name="slow", args=(gate, []))
    ref.tell_nowait("in flight")
    await settle()
    first = asyncio.create_task(node.stop(ref))
    second = asyncio.create_task(node.stop(ref))
    await settle()
    assert not first.done() and not second.done()
    gate.set()
    await settle()
    assert first.done() and second.done()
    assert first.result() is None and second.result() is None
    assert not ref.is_alive


async def test_a_second_stop_does_not_extend_the_first_stops_deadline(node: Node, clock: ManualClock) -> None:
    ref = await node.spawn(Gated, name="stuck", args=(asyncio.Event(), []))
    ref.tell_nowait("runs for ever")
    await settle()
    first = asyncio.create_task(node.stop(ref, timeout=3.0))
    await clock.advance(2.0)
    second = asyncio.create_task(node.stop(ref, timeout=10.0))
    await clock.advance(1.0)
    assert first.done() and second.done()
    reason = await asyncio.wait_for(ref.wait_terminated(), timeout=5.0)
    assert "shutdown=3.0s" in str(reason)
    assert clock.pending_timers == 0  # the second stop left no timer of its own behind


async def test_a_second_stop_with_a_shorter_timeout_ends_the_actor_at_the_shorter_deadline(
    node: Node, clock: ManualClock
) -> None:
    ref = await node.spawn(Gated, name="stuck", args=(asyncio.Event(), []))
    ref.tell_nowait("runs for ever")
    await settle()
    first = asyncio.create_task(node.stop(ref, timeout=10.0))
    await clock.advance(2.0)
    second = asyncio.create_task(node.stop(ref, timeout=1.0))
    await clock.advance(0.5)
    assert not first.done() and not second.done()
    await clock.advance(0.5)
    assert first.done() and second.done()
    reason = await asyncio.wait_for(ref.wait_terminated(), timeout=5.0)
    assert "shutdown=1.0s" in str(reason)
    assert clock.pending_timers == 0  # the first stop's later deadline was disarmed


async def test_a_deadline_brought_forward_is_not_pushed_back_by_a_later_stop(
    node: Node, clock: ManualClock
) -> None:
    ref = await node.spawn(Gated, name="stuck", args=(asyncio.Event(), []))
    ref.tell_nowait("runs for ever")
    await settle()
    stops = [asyncio.create_task(node.stop(ref, timeout=30.0))]
    await clock.advance(1.0)
    stops.append(asyncio.create_task(node.stop(ref, timeout=4.0)))
    await clock.advance(1.0)
    stops.append(asyncio.create_task(node.stop(ref, timeout=10.0)))
    await clock.advance(2.9)
    assert not any(stop.done() for stop in stops)
    await clock.advance(0.1)
    assert all(stop.done() for stop in stops)
    reason = await asyncio.wait_for(ref.wait_terminated(), timeout=5.0)
    assert "shutdown=4.0s" in str(reason)


async def test_a_second_stop_with_timeout_zero_kills_the_message_in_flight_at_once(
    node: Node, clock: ManualClock
) -> None:
    seen: list[str] = []
    spec = SupervisorSpec(children=[ChildSpec("worker", Stubborn, args=(seen,), shutdown=10.0)])
    supervisor = await node.start(spec, name="sup")
    worker = await supervisor.child("worker")
    worker.tell_nowait("in flight")
    await settle()
    graceful = asyncio.create_task(supervisor.terminate_child("worker"))
    await settle()
    killing = asyncio.create_task(node.stop(worker, timeout=0))
    await settle()
    assert graceful.done() and killing.done()
    assert clock.now() == 0.0 and clock.pending_timers == 0
    assert seen == ["handling in flight"]  # as with shutdown=0: on_stop does not run
    [letter] = [letter for letter in node.dead_letters.recent() if letter.message == "in flight"]
    assert letter.kind == "killed"
    # The kill ended it, so the kill's reason is reported, as shutdown=0 reports it.
    reason = await asyncio.wait_for(worker.wait_terminated(), timeout=5.0)
    assert "stopped by request" in str(reason)


async def test_a_second_stop_with_timeout_zero_cuts_on_stop_off(node: Node, clock: ManualClock) -> None:
    seen: list[str] = []
    ref = await node.spawn(Stubborn, name="stubborn", args=(seen,))
    first = asyncio.create_task(node.stop(ref, timeout=10.0))
    await settle()
    assert seen == ["on_stop began"]
    second = asyncio.create_task(node.stop(ref, timeout=0))
    await settle()
    assert first.done() and second.done()
    assert seen == ["on_stop began"]
    assert clock.now() == 0.0 and clock.pending_timers == 0
    assert not ref.is_alive


async def test_a_restart_stop_joining_with_a_shorter_timeout_brings_the_deadline_forward(
    node: Node, clock: ManualClock
) -> None:
    ref = await node.spawn(Gated, name="stuck", args=(asyncio.Event(), []))
    ref.tell_nowait("runs for ever")
    await settle()
    slot = ref.slot
    first = asyncio.create_task(slot.stop_incarnation(ExitReason.shutdown("first stop"), 10.0))
    await settle()
    second = asyncio.create_task(slot.stop_incarnation(ExitReason.shutdown("second stop"), 2.0))
    await clock.advance(2.0)
    assert first.done() and second.done()
    assert first.result() is second.result()
    assert "shutdown=2.0s" in str(first.result())
    assert clock.pending_timers == 0


async def test_the_first_stops_reason_stands_when_a_second_stop_joins(node: Node) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(Gated, name="slow", args=(gate, []))
    ref.tell_nowait("in flight")
    await settle()
    first = asyncio.create_task(node.stop(ref))
    await settle()
    shutting_down = asyncio.create_task(ref.slot.stop(ExitReason.shutdown("second stop"), None))
    gate.set()
    await settle()
    assert first.done() and shutting_down.done()
    reason = await asyncio.wait_for(ref.wait_terminated(), timeout=5.0)
    assert "stopped by request" in str(reason)


async def test_a_stop_of_an_actor_already_stopped_returns_at_once(node: Node, clock: ManualClock) -> None:
    ref = await node.spawn(Gated, name="done", args=(asyncio.Event(), []))
    await node.stop(ref)
    again = asyncio.create_task(node.stop(ref, timeout=None))
    await settle()
    assert again.done() and again.result() is None
    assert clock.pending_timers == 0


async def test_a_stop_joining_after_the_deadline_fired_returns_with_the_others(
    node: Node, clock: ManualClock
) -> None:
    ref = await node.spawn(Gated, name="stuck", args=(asyncio.Event(), []))
    ref.tell_nowait("runs for ever")
    await settle()
    stops = [asyncio.create_task(node.stop(ref, timeout=1.0)) for _ in range(3)]
    await clock.advance(1.0)
    assert all(stop.done() for stop in stops)
    assert not ref.is_alive


async def test_cancelling_a_stop_caller_does_not_take_the_stop_back(node: Node, clock: ManualClock) -> None:
    ref = await node.spawn(Gated, name="stuck", args=(asyncio.Event(), []))
    ref.tell_nowait("runs for ever")
    await settle()
    first = asyncio.create_task(node.stop(ref, timeout=3.0))
    second = asyncio.create_task(node.stop(ref))
    await settle()
    first.cancel()
    await settle()
    assert first.cancelled()
    assert not second.done()
    await clock.advance(3.0)
    assert second.done() and second.result() is None
    assert not ref.is_alive


async def test_terminate_child_while_node_stop_is_stopping_it_joins_that_stop(
    node: Node, clock: ManualClock
) -> None:
    gate = asyncio.Event()
    spec = SupervisorSpec(children=[ChildSpec("worker", Gated, args=(gate, []), shutdown=3.0)])
    supervisor = await node.start(spec, name="sup")
    worker = await supervisor.child("worker")
    worker.tell_nowait("runs for ever")
    await settle()
    by_node = asyncio.create_task(node.stop(worker))
    await settle()
    by_supervisor = asyncio.create_task(supervisor.terminate_child("worker"))
    await clock.advance(3.0)
    assert by_node.done() and by_supervisor.done()
    assert by_node.result() is None and by_supervisor.result() is None
    assert not worker.is_alive


async def test_a_stop_that_cuts_off_on_start_returns_and_the_spawn_fails(
    node: Node, clock: ManualClock
) -> None:
    class NeverStarts(Actor):
        async def on_start(self) -> None:
            await asyncio.Event().wait()

    spawning = asyncio.create_task(node.spawn(NeverStarts, name="never"))
    await settle()
    ref = node.lookup("/never")
    stopping = asyncio.create_task(node.stop(ref, timeout=1.0))
    await clock.advance(1.0)
    assert stopping.done() and stopping.result() is None
    assert spawning.done() and isinstance(spawning.exception(), ActorStartError)
    assert not ref.is_alive


async def test_a_parent_whose_deadline_passes_while_its_children_stop_still_stops(
    node: Node, clock: ManualClock
) -> None:
    class Parent(Actor):
        async def on_start(self) -> None:
            child = await self.ctx.spawn(Gated, name="child", args=(asyncio.Event(), []), shutdown=5.0)
            child.tell_nowait("runs for ever")

        async def on_receive(self, message: object) -> None:
            return None

    parent = await node.spawn(Parent, name="parent", shutdown=1.0)
    await settle()
    child = node.lookup("/parent/child")
    stopping = asyncio.create_task(node.stop(parent))
    await clock.advance(5.0)
    assert stopping.done() and stopping.result() is None
    assert not parent.is_alive and not child.is_alive
