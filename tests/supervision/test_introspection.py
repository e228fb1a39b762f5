"""Rule 11 (introspection): which_children, count_children, terminate_child, restart_child,
delete_child, start_child, and node.tree() with each actor's state, restarts, depth and lag."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from garrison import (
    ActorStartError,
    ActorStopped,
    Backoff,
    ChildExists,
    ChildNotFound,
    ChildRunning,
    ChildSpec,
    InvalidConfig,
    InvalidSpec,
    ManualClock,
    Node,
    Restart,
    Strategy,
    SupervisorSpec,
)
from garrison.supervision._supervisor import _Call

from ._support import Block, Finish, Journal, Ping, Record, Worker, crash, drive, worker


def _find(tree: list[dict[str, Any]], path: str) -> dict[str, Any]:
    for entry in tree:
        if entry["path"] == path:
            return entry
        if path.startswith(entry["path"] + "/"):
            return _find(entry["children"], path)
    raise AssertionError(f"{path} not in the tree")


async def _tree_spec(journal: Journal) -> SupervisorSpec:
    inner = SupervisorSpec(strategy=Strategy.ONE_FOR_ALL, children=[worker("x", journal)])
    return SupervisorSpec(
        intensity=10,
        children=[
            worker("a", journal),
            ChildSpec("inner", inner),
            worker("t", journal, Restart.TRANSIENT),
            worker("w", journal, backoff=Backoff(initial=5.0, jitter=0.0)),
        ],
    )


async def test_which_children_lists_every_spec_in_start_order_with_its_state(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(await _tree_spec(journal))
    await crash(node.lookup("/root/a"), clock)
    await sup.terminate_child("t")
    await crash(node.lookup("/root/w"), clock)  # waiting 5 s on its backoff
    rows = await sup.which_children()
    assert [(row.id, row.state, row.kind, row.restart, row.restarts) for row in rows] == [
        ("a", "running", "worker", Restart.PERMANENT, 1),
        ("inner", "running", "supervisor", Restart.PERMANENT, 0),
        ("t", "undefined", "worker", Restart.TRANSIENT, 0),
        ("w", "restarting", "worker", Restart.PERMANENT, 0),
    ]
    assert rows[0].ref is node.lookup("/root/a")
    assert rows[2].ref is None


async def test_count_children_counts_specs_active_supervisors_and_workers(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(await _tree_spec(journal))
    counts = await sup.count_children()
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (4, 4, 1, 3)
    await sup.terminate_child("t")
    await crash(node.lookup("/root/w"), clock)
    counts = await sup.count_children()
    # Like OTP: a stopped spec and a child waiting to be restarted are specs, not active children.
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (4, 2, 1, 3)


async def test_terminate_child_stops_it_and_keeps_its_spec(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(SupervisorSpec(children=[worker("a", journal), worker("b", journal)]))
    ref = node.lookup("/root/a")
    journal.clear()
    await sup.terminate_child("a")
    assert journal.entries == [("stop", "a")]
    assert not ref.is_alive
    with pytest.raises(ActorStopped):
        await ref.tell(Ping())
    assert [(row.id, row.state) for row in await sup.which_children()] == [
        ("a", "undefined"),
        ("b", "running"),
    ]
    await sup.terminate_child("a")  # already stopped: nothing to do, as in OTP
    with pytest.raises(ChildNotFound):
        await sup.terminate_child("nope")


async def test_terminate_child_drops_a_temporary_spec(node: Node) -> None:
    sup = await node.start(SupervisorSpec(children=[worker("a", Journal(), Restart.TEMPORARY)]))
    await sup.terminate_child("a")
    assert await sup.which_children() == []


async def test_restart_child_starts_a_stopped_spec_again_and_refuses_a_running_one(node: Node) -> None:
    journal = Journal()
    refuse: list[bool] = []
    sup = await node.start(SupervisorSpec(children=[ChildSpec("a", Worker, args=(journal, refuse))]))
    with pytest.raises(ChildRunning):
        await sup.restart_child("a")
    with pytest.raises(ChildNotFound):
        await sup.restart_child("nope")
    await sup.terminate_child("a")
    ref = await sup.restart_child("a")
    assert ref.path == "/root/a" and (await ref.ask(Ping()))[0] == "a"
    await sup.terminate_child("a")
    refuse.append(True)
    with pytest.raises(ActorStartError):
        await sup.restart_child("a")
    assert [(row.id, row.state) for row in await sup.which_children()] == [("a", "undefined")]


async def test_a_child_started_again_by_hand_keeps_its_place_in_the_stop_order(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(SupervisorSpec(children=[worker(name, journal) for name in "abc"]))
    await sup.terminate_child("a")
    await sup.restart_child("a")
    journal.clear()
    await drive(clock, node.shutdown(), within=1.0)
    assert journal.steps("stop") == [("stop", "c"), ("stop", "b"), ("stop", "a")]


async def test_delete_child_forgets_a_stopped_spec_only(node: Node) -> None:
    sup = await node.start(SupervisorSpec(children=[worker("a", Journal()), worker("b", Journal())]))
    with pytest.raises(ChildRunning):
        await sup.delete_child("a")
    await sup.terminate_child("a")
    await sup.delete_child("a")
    assert [row.id for row in await sup.which_children()] == ["b"]
    with pytest.raises(ChildNotFound):
        await sup.delete_child("a")


async def test_start_child_appends_and_starts_a_new_child(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(SupervisorSpec(strategy=Strategy.REST_FOR_ONE, children=[worker("a", journal)]))
    ref = await sup.start_child(worker("b", journal))
    assert ref is node.lookup("/root/b")
    inner = await sup.start_child(ChildSpec("inner", SupervisorSpec(children=[worker("x", journal)])))
    assert inner.path == "/root/inner"
    assert [row.id for row in await sup.which_children()] == ["a", "b", "inner"]
    with pytest.raises(ChildExists):
        await sup.start_child(worker("b", journal))
    with pytest.raises(InvalidSpec):
        await sup.start_child(worker("s", journal, Restart.TRANSIENT, significant=True))
    # Appended at the end: a later sibling for rest_for_one.
    journal.clear()
    await crash(node.lookup("/root/a"), clock)
    assert journal.steps("start") == [("start", "a"), ("start", "b"), ("start", "x")]


async def test_start_child_that_fails_to_start_leaves_no_spec(node: Node) -> None:
    sup = await node.start(SupervisorSpec(children=[]))
    with pytest.raises(ActorStartError):
        await sup.start_child(ChildSpec("a", Worker, args=(Journal(), [True])))
    assert await sup.which_children() == []
    assert node.paths() == ["/root"]


async def test_tree_shows_every_actor_with_state_restarts_depth_and_lag(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    await node.start(await _tree_spec(journal))
    await crash(node.lookup("/root/inner/x"), clock)
    stuck = node.lookup("/root/a")
    await stuck.tell(Block())
    await clock.advance(0)
    for label in ("1", "2", "3"):
        await stuck.tell(Record(label))
    await clock.advance(2.5)
    await crash(node.lookup("/root/w"), clock)
    tree = node.tree()
    [root] = tree
    assert (root["path"], root["kind"], root["state"]) == ("/root", "supervisor", "running")
    assert [child["name"] for child in root["children"]] == ["a", "inner", "t", "w"]
    a = _find(tree, "/root/a")
    assert (a["state"], a["restarts"], a["mailbox"]["depth"]) == ("running", 0, 3)
    assert a["mailbox"]["consumer_lag_seconds"] == pytest.approx(2.5)
    x = _find(tree, "/root/inner/x")
    assert (x["kind"], x["state"], x["restarts"]) == ("worker", "running", 1)
    assert _find(tree, "/root/w")["state"] == "restarting"


async def test_node_supervisor_reaches_nested_supervisors_only(node: Node) -> None:
    journal = Journal()
    await node.start(await _tree_spec(journal))
    inner = node.supervisor("/root/inner")
    assert [row.id for row in await inner.which_children()] == ["x"]
    with pytest.raises(InvalidConfig):
        node.supervisor("/root/a")


async def test_a_management_call_waits_for_the_decision_in_progress(node: Node, clock: ManualClock) -> None:
    # Calls queue on the supervisor's system lane, like gen_server:call: while it restarts
    # a group (waiting up to 2 s for b to stop), which_children waits, then sees the result.
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            strategy=Strategy.ONE_FOR_ALL,
            children=[worker("a", journal), worker("b", journal, shutdown=2.0)],
        )
    )
    await node.lookup("/root/b").tell(Block())
    await crash(node.lookup("/root/a"), clock)
    call = asyncio.ensure_future(sup.which_children())
    await clock.advance(1.0)
    assert not call.done()
    await clock.advance(1.0)
    assert [(row.state, row.restarts) for row in call.result()] == [("running", 1), ("running", 1)]


async def test_a_management_call_to_a_supervisor_that_stops_first_raises_actor_stopped(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    inner = SupervisorSpec(children=[worker("x", journal, shutdown=5.0)])
    root = await node.start(SupervisorSpec(children=[ChildSpec("inner", inner)]))
    await node.lookup("/root/inner/x").tell(Block())
    await clock.advance(0)
    inner_ref = node.supervisor("/root/inner")
    stopping = asyncio.ensure_future(root.terminate_child("inner"))
    await clock.advance(0)
    call = asyncio.ensure_future(inner_ref.which_children())
    await clock.advance(5.0)
    assert stopping.done()
    with pytest.raises(ActorStopped):
        call.result()
    with pytest.raises(ActorStopped):
        await inner_ref.count_children()


async def test_tree_lists_kept_specs_without_a_slot_as_stopped(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(await _tree_spec(journal))
    await node.lookup("/root/t").tell(Finish())  # a transient child that ends normally keeps its spec
    await clock.advance(0)
    await sup.terminate_child("inner")
    [root] = node.tree()
    assert [(child["name"], child["state"]) for child in root["children"]] == [
        ("a", "running"),
        ("inner", "stopped"),
        ("t", "stopped"),
        ("w", "running"),
    ]
    inner = _find(node.tree(), "/root/inner")
    assert (inner["kind"], inner["restarts"], inner["mailbox"]["depth"], inner["children"]) == (
        "supervisor",
        0,
        0,
        [],
    )
    await sup.restart_child("inner")
    assert _find(node.tree(), "/root/inner/x")["state"] == "running"


async def test_tree_describes_a_kept_spec_as_its_idle_slot_would_be_described_stopped(node: Node) -> None:
    sup = await node.start(await _tree_spec(Journal()))
    live = _find(node.tree(), "/root/inner")
    await sup.terminate_child("inner")
    assert _find(node.tree(), "/root/inner") == {**live, "state": "stopped", "children": []}


async def test_a_call_still_queued_when_the_supervisor_stops_for_good_is_failed_with_its_exit_reason(
    node: Node, clock: ManualClock
) -> None:
    # The reply future itself is failed when the supervisor's slot ends, so nothing need race it.
    journal = Journal()
    inner = SupervisorSpec(children=[worker("x", journal, shutdown=5.0)])
    root = await node.start(SupervisorSpec(children=[ChildSpec("inner", inner, shutdown=1.0)]))
    await node.lookup("/root/inner/x").tell(Block())
    await clock.advance(0)
    inner_context = node.lookup("/root/inner")._context
    busy = asyncio.ensure_future(node.supervisor("/root/inner").terminate_child("x"))
    await clock.advance(0)
    reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    inner_context.mailbox.put_system(_Call(lambda sup: sup.which_children(), reply))
    stopping = asyncio.ensure_future(root.terminate_child("inner"))
    await clock.advance(1.0)  # inner's shutdown=1.0 runs out while it waits on x: it is cancelled
    assert not reply.done()
    await drive(clock, stopping, within=60.0)  # ... and ends once x has stopped
    assert reply.done()
    error = reply.exception()
    assert isinstance(error, ActorStopped)
    assert error.path == "/root/inner"
    assert "shutdown" in error.reason
    with pytest.raises(ActorStopped):
        await busy
