"""Refs name a path: they stay valid across their own and their ancestors' restarts, and die
only when the actor stops for good (removed from its supervisor, an ancestor stopped for good,
the node stopped)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from garrison import (
    Actor,
    ActorRef,
    ActorStopped,
    Backoff,
    ChildSpec,
    ExitKind,
    ManualClock,
    MessageDropped,
    Node,
    Restart,
    Strategy,
    SupervisorSpec,
    Terminated,
)

from ._support import Journal, Ping, crash, drive, worker


def nested(journal: Journal, *, sub_intensity: int = 1, **sub_options: Any) -> SupervisorSpec:
    """/root: w1, sub (x1, x2) under ONE_FOR_ALL, so a crash of w1 restarts sub too."""
    sub = SupervisorSpec(intensity=sub_intensity, children=[worker("x1", journal), worker("x2", journal)])
    return SupervisorSpec(
        strategy=Strategy.ONE_FOR_ALL,
        intensity=10,
        children=[worker("w1", journal), ChildSpec("sub", sub, **sub_options)],
    )


async def test_a_ref_to_a_child_of_a_restarted_supervisor_reaches_the_new_incarnation(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    await node.start(nested(journal))
    x1 = node.lookup("/root/sub/x1")
    sub = node.lookup("/root/sub")
    _, first_serial = await x1.ask(Ping())

    await crash(node.lookup("/root/w1"), clock)  # ONE_FOR_ALL: sub restarts, and x1, x2 with it

    assert journal.steps("stop").count(("stop", "x1")) == 1
    name, serial = await x1.ask(Ping())
    assert (name, x1.is_alive) == ("x1", True)
    assert serial > first_serial  # a new instance answered, through the old ref
    assert node.lookup("/root/sub/x1") is x1
    assert node.lookup("/root/sub") is sub


async def test_refs_survive_a_nested_supervisor_that_gives_up_and_is_restarted(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    await node.start(nested(journal, sub_intensity=0))
    x1, x2 = node.lookup("/root/sub/x1"), node.lookup("/root/sub/x2")

    await crash(x1, clock)  # sub gives up at once; root restarts it (and w1: ONE_FOR_ALL)

    assert journal.steps("start").count(("start", "x1")) == 2
    assert (await x1.ask(Ping()))[0] == "x1"  # also the child whose crash made sub give up
    assert (await x2.ask(Ping()))[0] == "x2"
    assert (node.lookup("/root/sub/x1"), node.lookup("/root/sub/x2")) == (x1, x2)


async def test_a_watcher_hears_nothing_of_an_ancestor_restart_and_terminated_when_the_ref_dies(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    root = await node.start(nested(journal))
    x1 = node.lookup("/root/sub/x1")
    heard: list[Terminated] = []

    class Watcher(Actor):
        async def on_start(self) -> None:
            self.ctx.watch(x1)

        async def on_receive(self, message: Any) -> None:
            heard.append(message)

    await node.spawn(Watcher, name="watcher")
    await crash(node.lookup("/root/w1"), clock)
    await clock.advance(0)
    assert heard == []

    await root.terminate_child("sub")
    await clock.advance(0)
    assert [(event.ref, event.reason.kind) for event in heard] == [(x1, ExitKind.SHUTDOWN)]
    assert not x1.is_alive
    assert (await x1.wait_terminated()).kind is ExitKind.SHUTDOWN


async def test_a_ref_dies_when_its_child_is_terminated_and_a_restarted_child_gets_a_new_ref(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    root = await node.start(nested(journal))
    w1 = node.lookup("/root/w1")

    await root.terminate_child("w1")

    assert not w1.is_alive
    with pytest.raises(ActorStopped):
        await w1.tell(Ping())
    with pytest.raises(ActorStopped):
        await w1.ask(Ping())
    fresh = await root.restart_child("w1")
    assert fresh is not w1 and fresh.is_alive and not w1.is_alive
    assert node.lookup("/root/w1") is fresh


async def test_a_message_sent_between_incarnations_goes_to_dead_letters_and_an_ask_fails(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    backoff = Backoff(initial=1.0, max=1.0, jitter=0.0)
    await node.start(nested(journal, sub_intensity=0, backoff=backoff))
    x1 = node.lookup("/root/sub/x1")

    await crash(x1, clock)  # sub gives up; root restarts it after 1 s of backoff

    assert x1.is_alive and node.lookup("/root/sub/x1") is x1
    await x1.tell("meanwhile")
    with pytest.raises(MessageDropped) as dropped:
        await x1.ask(Ping())
    assert "between incarnations" in dropped.value.reason
    letters = [letter for letter in node.dead_letters.recent() if letter.recipient == "/root/sub/x1"]
    assert [(letter.message, letter.kind) for letter in letters[-2:]] == [
        ("meanwhile", "restarting"),
        (Ping(), "restarting"),
    ]
    assert "its parent /root/sub is restarting" in letters[-1].reason

    await clock.advance(1.0)

    assert (await x1.ask(Ping()))[0] == "x1"


async def test_refs_under_a_supervisor_that_is_not_restarted_die_with_its_exit_reason(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    await node.start(nested(journal, sub_intensity=0, restart=Restart.TEMPORARY))
    x1, x2, sub = (node.lookup(path) for path in ("/root/sub/x1", "/root/sub/x2", "/root/sub"))

    await crash(x2, clock)  # sub gives up and, TEMPORARY, is not restarted

    assert [ref.is_alive for ref in (x1, x2, sub)] == [False, False, False]
    assert x1.exit_reason is not None and "parent /root/sub stopping" in str(x1.exit_reason)
    with pytest.raises(ActorStopped):
        x1.tell_nowait(Ping())
    assert "/root/sub/x1" not in node.paths()


async def test_a_plain_parent_that_spawns_its_child_again_keeps_the_childs_ref(
    node: Node, clock: ManualClock
) -> None:
    spawn_child = [True, True]

    class Child(Actor):
        async def on_receive(self, message: Any) -> Any:
            return ("child", self.ctx.incarnation)

    class Parent(Actor):
        async def on_start(self) -> None:
            if spawn_child.pop(0):
                await self.ctx.spawn(Child, name="c")

        async def on_receive(self, message: Any) -> Any:
            raise RuntimeError("crash")

    spec = SupervisorSpec(intensity=5, children=[ChildSpec("p", Parent)])
    await node.start(spec)
    child = node.lookup("/root/p/c")
    await crash(node.lookup("/root/p"), clock)
    assert await child.ask("who") == ("child", 1)  # a new slot: its first incarnation
    assert node.lookup("/root/p/c") is child

    await crash(node.lookup("/root/p"), clock)  # this incarnation does not spawn it
    assert not child.is_alive


async def test_node_shutdown_kills_every_ref(clock: ManualClock) -> None:
    journal = Journal()
    async with Node("t", clock=clock, handle_signals=False) as node:
        await node.start(nested(journal))
        refs: list[ActorRef] = [node.lookup(path) for path in node.paths()]
        await drive(clock, node.shutdown(), within=60.0)
    assert [ref.path for ref in refs if ref.is_alive] == []


async def test_a_ref_survives_a_child_that_fails_to_start_while_its_supervisor_restarts(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    refuse: list[bool] = []
    sub = SupervisorSpec(intensity=0, children=[worker("x1", journal, kwargs={"fail_start": refuse})])
    await node.start(SupervisorSpec(intensity=5, children=[ChildSpec("sub", sub)]))
    x1 = node.lookup("/root/sub/x1")
    refuse.append(True)  # the next start of x1 fails once

    await crash(x1, clock)  # sub gives up; root restarts it, x1 fails to start, root retries

    assert journal.steps("start", "start-failed")[-2:] == [("start-failed", "x1"), ("start", "x1")]
    assert x1.is_alive and node.lookup("/root/sub/x1") is x1
    assert (await x1.ask(Ping()))[0] == "x1"


async def test_a_call_to_a_supervisor_waiting_on_its_own_backoff_is_served_by_its_next_incarnation(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    backoff = Backoff(initial=1.0, max=1.0, jitter=0.0)
    await node.start(nested(journal, sub_intensity=0, backoff=backoff))
    sub = node.supervisor("/root/sub")

    await crash(node.lookup("/root/sub/x1"), clock)  # sub gives up; root restarts it after 1 s
    call = asyncio.ensure_future(sub.which_children())
    await clock.advance(0.5)
    assert not call.done()  # kept in the mailbox, as any message to a restarting actor
    await clock.advance(0.5)

    assert [(row.id, row.state) for row in await call] == [("x1", "running"), ("x2", "running")]
