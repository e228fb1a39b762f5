"""ctx.watch(ref): Terminated(ref, reason) once the watched actor stops for good."""

from __future__ import annotations

import asyncio
from typing import Any

from garrison import Actor, ActorRef, ExitKind, Node, Terminated
from garrison._clock import settle
from tests.actors.helpers import Boom, Crash, Fragile, Recorder


class Watcher(Actor):
    """Watches every ref sent to it (a ("watch", ref) or ("unwatch", ref) message); records Terminated."""

    def __init__(self, received: list[Any]) -> None:
        self.received = received

    async def on_receive(self, message: Any) -> Any:
        match message:
            case ("watch", ActorRef() as ref):
                self.ctx.watch(ref)
            case ("unwatch", ActorRef() as ref):
                self.ctx.unwatch(ref)
            case _:
                self.received.append(message)


async def test_watch_delivers_terminated_when_the_watched_actor_stops(node: Node) -> None:
    received: list[Any] = []
    target = await node.spawn(Recorder, name="target", args=([],))
    watcher = await node.spawn(Watcher, name="watcher", args=(received,))
    await watcher.ask(("watch", target), timeout=1.0)
    await node.stop(target)
    await settle()
    assert len(received) == 1
    terminated = received[0]
    assert isinstance(terminated, Terminated)
    assert terminated.ref is target
    assert terminated.reason.kind is ExitKind.SHUTDOWN


async def test_watch_delivers_terminated_with_the_error_when_the_watched_actor_crashes(node: Node) -> None:
    received: list[Any] = []
    target = await node.spawn(Fragile, name="target", args=([],))
    watcher = await node.spawn(Watcher, name="watcher", args=(received,))
    await watcher.ask(("watch", target), timeout=1.0)
    target.tell_nowait(Boom())
    await settle()
    assert [type(message) for message in received] == [Terminated]
    assert received[0].reason.abnormal
    assert isinstance(received[0].reason.error, Crash)


async def test_watching_an_actor_already_stopped_delivers_terminated_at_once(node: Node) -> None:
    received: list[Any] = []
    target = await node.spawn(Recorder, name="target", args=([],))
    await node.stop(target)
    watcher = await node.spawn(Watcher, name="watcher", args=(received,))
    await watcher.ask(("watch", target), timeout=1.0)
    await settle()
    assert [message.ref for message in received] == [target]


async def test_watching_twice_delivers_terminated_once(node: Node) -> None:
    received: list[Any] = []
    target = await node.spawn(Recorder, name="target", args=([],))
    watcher = await node.spawn(Watcher, name="watcher", args=(received,))
    await watcher.ask(("watch", target), timeout=1.0)
    await watcher.ask(("watch", target), timeout=1.0)
    await node.stop(target)
    await settle()
    assert len(received) == 1


async def test_unwatch_stops_the_delivery(node: Node) -> None:
    received: list[Any] = []
    target = await node.spawn(Recorder, name="target", args=([],))
    watcher = await node.spawn(Watcher, name="watcher", args=(received,))
    await watcher.ask(("watch", target), timeout=1.0)
    await watcher.ask(("unwatch", target), timeout=1.0)
    await node.stop(target)
    await settle()
    assert received == []


async def test_every_watcher_gets_its_own_terminated(node: Node) -> None:
    first: list[Any] = []
    second: list[Any] = []
    target = await node.spawn(Recorder, name="target", args=([],))
    for name, received in (("w1", first), ("w2", second)):
        watcher = await node.spawn(Watcher, name=name, args=(received,))
        await watcher.ask(("watch", target), timeout=1.0)
    await node.stop(target)
    await settle()
    assert len(first) == len(second) == 1


async def test_terminated_is_delivered_ahead_of_queued_user_messages(node: Node) -> None:
    gate = asyncio.Event()
    received: list[Any] = []

    class SlowWatcher(Watcher):
        async def on_receive(self, message: Any) -> Any:
            if message == "hold":
                await gate.wait()
            return await super().on_receive(message)

    target = await node.spawn(Recorder, name="target", args=([],))
    watcher = await node.spawn(SlowWatcher, name="watcher", args=(received,))
    await watcher.ask(("watch", target), timeout=1.0)
    watcher.tell_nowait("hold")
    await settle()
    watcher.tell_nowait("queued user message")
    await node.stop(target)
    gate.set()
    await settle()
    assert [type(message) for message in received] == [str, Terminated, str]
    assert received[0] == "hold"


async def test_a_stopped_watcher_gets_nothing_and_nothing_breaks(node: Node) -> None:
    received: list[Any] = []
    target = await node.spawn(Recorder, name="target", args=([],))
    watcher = await node.spawn(Watcher, name="watcher", args=(received,))
    await watcher.ask(("watch", target), timeout=1.0)
    await node.stop(watcher)
    await node.stop(target)
    await settle()
    assert received == []


async def test_a_supervised_restart_does_not_deliver_terminated(node: Node) -> None:
    from garrison.supervision import ChildSpec, SupervisorSpec

    received: list[Any] = []
    await node.start(SupervisorSpec(children=[ChildSpec("worker", Fragile, args=([],))]))
    worker = node.lookup("/root/worker")
    watcher = await node.spawn(Watcher, name="watcher", args=(received,))
    await watcher.ask(("watch", worker), timeout=1.0)
    worker.tell_nowait(Boom())
    await settle()
    assert worker.is_alive
    assert received == []
    await node.stop(node.lookup("/root"))
    await settle()
    assert [message.ref for message in received] == [worker]
