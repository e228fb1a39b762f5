"""Fault injection: crash or hang an actor on chosen messages, then take the fault out."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from garrison import (
    Actor,
    ActorRef,
    AskTimeout,
    ChildSpec,
    Failed,
    ManualClock,
    Node,
    Restarted,
    SupervisorSpec,
)
from garrison.testing import EventRecorder, Faults, InjectedFault, TestProbe
from tests.testing.actors import Counter, Echo, Ping, Pong


async def supervised(node: Node, actor: type[Actor], *args: Any, intensity: int = 10) -> ActorRef:
    await node.start(
        SupervisorSpec(intensity=intensity, period=60.0, children=[ChildSpec("worker", actor, args=args)])
    )
    return node.lookup("/root/worker")


async def test_crash_on_a_type_crashes_once_and_the_supervisor_restarts_the_actor(
    node: Node, probe: TestProbe, faults: Faults, events: EventRecorder
) -> None:
    worker = await supervised(node, Echo, probe)
    crash = faults.crash(worker, on=Ping)
    await worker.tell(Ping(1))
    failed = await events.expect(Failed(path="/root/worker"))
    assert failed.error_type == "InjectedFault"
    await events.expect(Restarted(path="/root/worker"))
    await worker.tell(Ping(2))
    assert await probe.expect(Pong) == Pong(2)
    assert crash.fired == 1
    [letter] = node.dead_letters.recent()
    assert letter.message == Ping(1)
    assert isinstance(letter.error, InjectedFault)


async def test_crash_on_the_nth_match_counts_across_messages_of_that_kind(
    node: Node, probe: TestProbe, faults: Faults
) -> None:
    worker = await supervised(node, Counter)
    faults.crash(worker, on=Ping, nth=3)
    assert await worker.ask(Pong(0)) == 1
    assert await worker.ask(Ping(1)) == 2
    assert await worker.ask(Ping(2)) == 3
    with pytest.raises(InjectedFault, match="injected crash of /root/worker on Ping"):
        await worker.ask(Ping(3))
    assert await worker.ask(Ping(4)) == 4


async def test_crash_on_an_ask_raises_in_the_asker_without_a_restart(
    node: Node, faults: Faults, events: EventRecorder
) -> None:
    worker = await supervised(node, Counter)
    faults.crash(worker, on=Ping)
    with pytest.raises(InjectedFault):
        await worker.ask(Ping(1))
    assert await worker.ask(Ping(2)) == 1
    assert events.of(Failed) == []


async def test_crash_every_time_until_removed(node: Node, faults: Faults, events: EventRecorder) -> None:
    worker = await supervised(node, Counter)
    crash = faults.crash(worker, on=Ping, times=None)
    for n in range(3):
        await worker.tell(Ping(n))
        await events.expect(Restarted(path="/root/worker"))
    crash.remove()
    assert await worker.ask(Ping(9)) == 1
    assert crash.fired == 3
    assert not crash.active


async def test_crash_raises_the_exception_given_as_instance_class_or_factory(
    node: Node, faults: Faults
) -> None:
    worker = await supervised(node, Counter)
    with faults.crash(worker, exc=KeyError("k")), pytest.raises(KeyError, match="k"):
        await worker.ask(Ping(1))
    with (
        faults.crash(worker, exc=TimeoutError),
        pytest.raises(TimeoutError, match="injected crash of /root/worker on Ping"),
    ):
        await worker.ask(Ping(2))
    with (
        faults.crash(worker, exc=lambda message: ValueError(f"bad {message.n}")),
        pytest.raises(ValueError, match="bad 3"),
    ):
        await worker.ask(Ping(3))
    assert await worker.ask(Ping(4)) == 1


async def test_crash_and_hang_reject_bad_selection_arguments(node: Node, faults: Faults) -> None:
    worker = await node.spawn(Counter)
    with pytest.raises(ValueError, match="nth=0 is invalid"):
        faults.crash(worker, nth=0)
    with pytest.raises(ValueError, match="times=0 is invalid"):
        faults.hang(worker, times=0)
    with pytest.raises(ValueError, match=r"probability=1\.5 is invalid"):
        faults.crash(worker, probability=1.5)


async def test_remove_all_leaves_no_fault_behind(node: Node, faults: Faults) -> None:
    worker = await supervised(node, Counter)
    faults.crash(worker, on=Ping, times=None)
    faults.hang(worker, on=Pong, times=None)
    assert len(faults.installed) == 2
    faults.remove_all()
    assert faults.installed == []
    assert await worker.ask(Ping(1)) == 1
    assert await worker.ask(Pong(1)) == 2


async def test_a_fault_outlives_restarts_until_removed(
    node: Node, faults: Faults, events: EventRecorder
) -> None:
    worker = await supervised(node, Counter)
    faults.crash(worker, on=Pong, times=None)
    await worker.tell(Pong(1))
    await events.expect(Restarted(path="/root/worker"))
    with pytest.raises(InjectedFault):
        await worker.ask(Pong(2))


async def test_hang_keeps_the_handler_from_returning_until_released(
    node: Node, clock: ManualClock, faults: Faults
) -> None:
    worker = await node.spawn(Counter)
    hang = faults.hang(worker, on=Ping)
    answer = asyncio.ensure_future(worker.ask(Ping(1), timeout=None))
    await hang.wait_hanging()
    await clock.advance(30.0)
    assert not answer.done()
    assert hang.hanging == 1
    hang.release()
    assert await answer == 1
    assert hang.hanging == 0
    assert await worker.ask(Ping(2)) == 2


async def test_an_ask_to_a_hanging_actor_times_out_on_virtual_time(
    node: Node, clock: ManualClock, faults: Faults
) -> None:
    worker = await node.spawn(Counter)
    faults.hang(worker)
    answer = asyncio.ensure_future(worker.ask(Ping(1), timeout=2.0))
    await clock.advance(2.0)
    with pytest.raises(AskTimeout):
        await answer


async def test_removing_a_hang_lets_the_hanging_message_through(node: Node, faults: Faults) -> None:
    worker = await node.spawn(Counter)
    hang = faults.hang(worker, on=Ping, times=None)
    answer = asyncio.ensure_future(worker.ask(Ping(1), timeout=None))
    await hang.wait_hanging()
    hang.remove()
    assert await answer == 1
    assert await worker.ask(Ping(2)) == 2


class Slow(Counter):
    heartbeat_timeout: ClassVar[float | None] = 1.0


async def test_a_hang_trips_the_heartbeat_and_the_supervisor_restarts_the_actor(
    node: Node, faults: Faults, events: EventRecorder
) -> None:
    worker = await supervised(node, Slow)
    faults.hang(worker, on=Ping)
    await worker.tell(Ping(1))
    failed = await events.expect(Failed(path="/root/worker"), within=5.0)
    assert failed.error_type == "HeartbeatTimeout"
    await events.expect(Restarted(path="/root/worker"))
    assert await worker.ask(Ping(2)) == 1


async def test_wait_hanging_fails_when_nothing_hangs(node: Node, faults: Faults) -> None:
    worker = await node.spawn(Counter)
    hang = faults.hang(worker, on=Pong)
    await worker.tell(Ping(1))
    with pytest.raises(AssertionError, match=r"expected /counter-\d+ to hang within 1.0s .*matched 0"):
        await hang.wait_hanging(within=1.0)


async def test_faults_standalone_remove_everything_on_exit(node: Node) -> None:
    worker = await node.spawn(Counter)
    async with Faults() as faults:
        faults.crash(worker, on=Ping, times=None)
        with pytest.raises(InjectedFault):
            await worker.ask(Ping(1))
    assert await worker.ask(Ping(2)) == 1
