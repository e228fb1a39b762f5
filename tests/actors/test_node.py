"""The node: registry and lookup, bad input at spawn, ref stability, orderly shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from garrison import (
    Actor,
    ActorNotFound,
    ActorStopped,
    DuplicateActorName,
    InvalidConfig,
    MailboxConfig,
    ManualClock,
    Node,
    NodeNotRunning,
    NotAnActor,
    Overflow,
)
from garrison._clock import settle
from tests.actors.helpers import Boom, Fragile, Gated, Recorder, dead_letters_to


async def test_lookup_returns_the_ref_spawn_returned(node: Node) -> None:
    ref = await node.spawn(Recorder, name="rec", args=([],))
    assert ref.path == "/rec"
    assert ref.name == "rec"
    assert node.lookup("/rec") is ref
    assert node.paths() == ["/rec"]


async def test_lookup_of_an_unknown_path_raises_actor_not_found_naming_the_path(node: Node) -> None:
    with pytest.raises(ActorNotFound) as raised:
        node.lookup("/nobody")
    assert raised.value.path == "/nobody"
    assert "path='/nobody'" in str(raised.value)


async def test_a_stopped_actor_leaves_the_registry(node: Node) -> None:
    ref = await node.spawn(Recorder, name="rec", args=([],))
    await node.stop(ref)
    with pytest.raises(ActorNotFound):
        node.lookup("/rec")
    assert node.paths() == []


async def test_anonymous_actors_get_unique_paths(node: Node) -> None:
    first = await node.spawn(Recorder, args=([],))
    second = await node.spawn(Recorder, args=([],))
    assert first.path != second.path
    assert node.lookup(first.path) is first
    assert node.lookup(second.path) is second


async def test_a_duplicate_actor_name_raises_naming_the_name(node: Node) -> None:
    await node.spawn(Recorder, name="rec", args=([],))
    with pytest.raises(DuplicateActorName) as raised:
        await node.spawn(Recorder, name="rec", args=([],))
    assert raised.value.path == "/rec"
    assert "name='rec'" in str(raised.value)
    assert node.paths() == ["/rec"]


async def test_a_name_can_be_reused_once_its_actor_has_stopped(node: Node) -> None:
    old = await node.spawn(Recorder, name="rec", args=([],))
    await node.stop(old)
    new = await node.spawn(Recorder, name="rec", args=([],))
    assert node.lookup("/rec") is new


async def test_a_stale_ref_never_reaches_a_new_actor_with_the_same_name(node: Node) -> None:
    old_seen: list[str] = []
    new_seen: list[str] = []
    old = await node.spawn(Recorder, name="rec", args=(old_seen,))
    await node.stop(old)
    await node.spawn(Recorder, name="rec", args=(new_seen,))
    with pytest.raises(ActorStopped):
        old.tell_nowait("for the old one")
    await settle()
    assert new_seen == []
    assert not old.is_alive


async def test_a_ref_is_the_same_object_for_the_life_of_the_slot(node: Node) -> None:
    refs: list[Any] = []

    class Reporter(Actor):
        async def on_receive(self, message: Any) -> Any:
            refs.append(self.ctx.self_ref)

    ref = await node.spawn(Reporter, name="rep")
    for _ in range(3):
        await ref.ask("who", timeout=1.0)
    assert all(seen is ref for seen in refs)
    assert node.lookup("/rep") is ref


@pytest.mark.parametrize("not_an_actor", [object, int, "Recorder", Recorder([]), None])
async def test_spawning_something_that_is_not_an_actor_class_raises_not_an_actor(
    node: Node, not_an_actor: Any
) -> None:
    with pytest.raises(NotAnActor) as raised:
        await node.spawn(not_an_actor, name="x")
    assert raised.value.field == "actor_class"
    assert raised.value.value is not_an_actor
    assert f"actor_class={not_an_actor!r}" in str(raised.value)
    assert node.paths() == []


async def test_not_an_actor_is_a_type_error(node: Node) -> None:
    with pytest.raises(TypeError):
        await node.spawn(dict, name="x")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a/b", 42])
async def test_an_invalid_name_is_rejected_naming_it(node: Node, name: Any) -> None:
    with pytest.raises(InvalidConfig) as raised:
        await node.spawn(Recorder, name=name, args=([],))
    assert raised.value.field == "name"
    assert f"name={name!r}" in str(raised.value)


async def test_an_invalid_mailbox_argument_is_rejected(node: Node) -> None:
    with pytest.raises(InvalidConfig) as raised:
        await node.spawn(Recorder, name="x", args=([],), mailbox={"capacity": 1})  # type: ignore[arg-type]
    assert raised.value.field == "mailbox"


async def test_a_negative_shutdown_timeout_is_rejected_naming_it(node: Node) -> None:
    with pytest.raises(InvalidConfig) as raised:
        await node.spawn(Recorder, name="x", args=([],), shutdown=-1)
    assert raised.value.field == "shutdown"
    assert "shutdown=-1" in str(raised.value)


def test_an_invalid_class_level_mailbox_is_rejected_when_the_class_is_defined() -> None:
    with pytest.raises(InvalidConfig) as raised:

        class Bad(Actor):
            mailbox = ("capacity", 0)  # type: ignore[assignment]

    assert raised.value.field.endswith("Bad.mailbox")


def test_an_invalid_mailbox_config_in_a_class_body_fails_at_definition() -> None:
    with pytest.raises(InvalidConfig) as raised:

        class Bad(Actor):
            mailbox = MailboxConfig(capacity=0)

    assert raised.value.field == "capacity"
    with pytest.raises(InvalidConfig) as raised:

        class Conflating(Actor):
            mailbox = MailboxConfig(overflow=Overflow.CONFLATE)

    assert raised.value.field == "key"


async def test_spawn_outside_a_running_node_raises_node_not_running() -> None:
    node = Node("idle", clock=ManualClock(), handle_signals=False)
    with pytest.raises(NodeNotRunning) as raised:
        await node.spawn(Recorder, args=([],))
    assert "'idle'" in str(raised.value)
    with pytest.raises(NodeNotRunning):
        await node.wait_closed()


async def test_spawn_after_shutdown_raises_node_not_running() -> None:
    async with Node("t", clock=ManualClock(), handle_signals=False) as node:
        pass
    with pytest.raises(NodeNotRunning):
        await node.spawn(Recorder, args=([],))


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("name", {"name": ""}),
        ("clock", {"clock": object()}),
        ("thread_workers", {"thread_workers": 0}),
        ("process_workers", {"process_workers": -2}),
        ("process_start_method", {"process_start_method": "teleport"}),
    ],
)
def test_invalid_node_settings_are_rejected_naming_the_field(field: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidConfig) as raised:
        Node(**kwargs)
    assert raised.value.field == field
    assert f"{field}=" in str(raised.value)


async def test_shutdown_stops_actors_in_reverse_start_order() -> None:
    stops: list[str] = []

    class Noted(Actor):
        async def on_stop(self) -> None:
            stops.append(self.ctx.path)

    async with Node("t", clock=ManualClock(), handle_signals=False) as node:
        for name in ("first", "second", "third"):
            await node.spawn(Noted, name=name)
    assert stops == ["/third", "/second", "/first"]
    assert not node.running


async def test_shutdown_sends_queued_messages_to_dead_letters() -> None:
    gate = asyncio.Event()
    seen: list[int] = []
    async with Node("t", clock=ManualClock(), handle_signals=False) as node:
        ref = await node.spawn(Gated, name="g", args=(gate, seen))
        for index in range(5):
            ref.tell_nowait(index)
        await settle()
        gate.set()  # the message in flight finishes; the rest are still queued at shutdown
    assert seen == [0]
    assert [letter.message for letter in dead_letters_to(node, "/g")] == [1, 2, 3, 4]
    assert node.exit_code == 0


async def test_shutdown_gives_each_actor_its_own_timeout_on_the_node_clock() -> None:
    clock = ManualClock()
    stuck_gate = asyncio.Event()
    stops: list[str] = []

    class Noted(Actor):
        async def on_stop(self) -> None:
            stops.append(self.ctx.path)

    node = Node("t", clock=clock, handle_signals=False)
    async with node:
        await node.spawn(Noted, name="first")
        stuck = await node.spawn(Gated, name="stuck", args=(stuck_gate, []), shutdown=2.0)
        stuck.tell_nowait("forever")
        await settle()
        shutting = asyncio.create_task(node.shutdown())
        await clock.advance(1.9)
        assert stops == []  # /first waits its turn: reverse start order
        assert not shutting.done()
        await clock.advance(0.1)
        await asyncio.wait_for(shutting, timeout=5.0)
    assert stops == ["/first"]
    assert node.exit_code == 0


async def test_shutdown_is_safe_to_call_twice() -> None:
    async with Node("t", clock=ManualClock(), handle_signals=False) as node:
        await node.spawn(Recorder, name="rec", args=([],))
        await node.shutdown()
        await node.shutdown()
    assert node.paths() == []


async def test_request_shutdown_makes_wait_closed_return(node: Node) -> None:
    waiting = asyncio.create_task(node.wait_closed())
    await settle()
    assert not waiting.done()
    node.request_shutdown()
    await asyncio.wait_for(waiting, timeout=5.0)
    assert node.exit_code == 0


async def test_two_nodes_in_one_process_have_separate_registries_and_dead_letters() -> None:
    async with (
        Node("a", clock=ManualClock(), handle_signals=False) as first,
        Node("b", clock=ManualClock(), handle_signals=False) as second,
    ):
        await first.spawn(Recorder, name="rec", args=([],))
        await second.spawn(Recorder, name="rec", args=([],))
        assert first.lookup("/rec") is not second.lookup("/rec")
        first.dead_letters.publish("x", "/rec", "test")
        assert second.dead_letters.count == 0


async def test_a_ref_stays_valid_and_keeps_its_queue_across_a_supervised_restart(node: Node) -> None:
    from garrison.supervision import ChildSpec, SupervisorSpec

    seen: list[Any] = []
    await node.start(SupervisorSpec(children=[ChildSpec("worker", Fragile, args=(seen,))]))
    worker = node.lookup("/root/worker")
    worker.tell_nowait(Boom())
    worker.tell_nowait("queued behind the crash")
    await settle()
    assert node.lookup("/root/worker") is worker
    assert worker.is_alive
    assert await worker.ask("after the restart", timeout=1.0) == "after the restart"
    assert seen == ["queued behind the crash", "after the restart"]


async def test_stop_with_timeout_zero_cancels_at_once_without_on_stop(node: Node) -> None:
    gate = asyncio.Event()
    stopped: list[str] = []

    class Stuck(Gated):
        async def on_stop(self) -> None:
            stopped.append("on_stop")

    ref = await node.spawn(Stuck, name="stuck", args=(gate, []))
    ref.tell_nowait("in flight")
    await settle()
    await asyncio.wait_for(node.stop(ref, timeout=0), timeout=5.0)
    assert not ref.is_alive
    assert stopped == []
    assert [letter.message for letter in dead_letters_to(node, "/stuck")] == ["in flight"]


async def test_a_node_cannot_be_entered_twice() -> None:
    node = Node("t", clock=ManualClock(), handle_signals=False)
    async with node:
        pass
    with pytest.raises(NodeNotRunning):
        async with node:
            pass
