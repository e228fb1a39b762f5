"""Death watch across nodes: Terminated when the remote actor stops or its node leaves."""

from __future__ import annotations

from typing import Any

from garrison import Actor, ExitKind, NodeUnreachable, Terminated
from garrison.cluster import Cluster, RemoteRef
from garrison.testing import TestProbe
from tests.cluster._actors import Recorder
from tests.cluster.conftest import Ping, eventually, refresh


async def _terminated(probe: TestProbe) -> Terminated:
    mailbox = probe.slot.mailbox
    await eventually(lambda: any(isinstance(each, Terminated) for each in mailbox.system), "a Terminated")
    found = [each for each in mailbox.system if isinstance(each, Terminated)]
    assert len(found) == 1
    return found[0]


async def two(join: Any, **options: Any) -> tuple[Cluster, Cluster]:
    a: Cluster = await join("a", **options)
    b: Cluster = await join("b", **options)
    await refresh(a)
    return a, b


async def test_watching_a_remote_actor_delivers_terminated_when_it_stops(join: Any) -> None:
    a, b = await two(join)
    recorder = await b.node.spawn(Recorder, name="recorder", args=([],))
    probe = TestProbe(a.node)
    ref = a.ref("b", "/recorder")
    probe.slot.watch(ref)
    await ref.ask(Ping(1), timeout=5.0)  # the watch is sent before it, so it is in place
    await b.node.stop(recorder)
    terminated = await _terminated(probe)
    assert terminated.ref is ref
    assert terminated.reason.kind is ExitKind.SHUTDOWN
    assert "stopped by request" in terminated.reason.detail
    assert not ref.is_alive


async def test_an_actor_watching_through_its_context_hears_of_the_remote_stop(join: Any) -> None:
    a, b = await two(join)
    recorder = await b.node.spawn(Recorder, name="recorder", args=([],))
    heard: list[Any] = []

    class Watcher(Actor):
        async def on_start(self) -> None:
            self.ctx.watch(a.ref("b", "/recorder"))

        async def on_receive(self, message: Any) -> None:
            heard.append(message)

    await a.node.spawn(Watcher, name="watcher")
    await a.ref("b", "/recorder").ask(Ping(1), timeout=5.0)
    await b.node.stop(recorder)
    await eventually(lambda: len(heard) == 1, "Terminated at /watcher")
    assert isinstance(heard[0], Terminated)
    assert isinstance(heard[0].ref, RemoteRef)


async def test_watching_a_path_with_no_actor_delivers_terminated(join: Any) -> None:
    a, _b = await two(join)
    probe = TestProbe(a.node)
    probe.slot.watch(a.ref("b", "/nobody"))
    terminated = await _terminated(probe)
    assert "no actor is registered" in terminated.reason.detail


async def test_a_watched_actors_node_whose_lease_expires_delivers_terminated(join: Any) -> None:
    a, b = await two(join, lease_ttl=0.3, refresh_interval=0.1)
    await b.node.spawn(Recorder, name="recorder", args=([],))
    probe = TestProbe(a.node)
    ref = a.ref("b", "/recorder")
    probe.slot.watch(ref)
    await ref.ask(Ping(1), timeout=5.0)
    for _ in range(100):  # b's clock stands still: its lease lapses in Redis
        await refresh(a)
        if not a.is_up("b"):
            break
    terminated = await _terminated(probe)
    assert terminated.reason.kind is ExitKind.FAILURE
    assert isinstance(terminated.reason.error, NodeUnreachable)
    assert "left the cluster" in terminated.reason.detail


async def test_watching_a_ref_of_a_node_that_is_not_up_delivers_terminated_at_once(join: Any) -> None:
    a, _b = await two(join)
    probe = TestProbe(a.node)
    probe.slot.watch(a.ref("c", "/anyone"))
    assert isinstance(probe.slot.mailbox.system[-1], Terminated)
