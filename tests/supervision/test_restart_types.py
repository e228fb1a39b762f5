"""Rule 3: PERMANENT always restarts, TRANSIENT only after an abnormal exit, TEMPORARY never
(its spec is dropped). A normal stop is ctx.stop(); an exception or a heartbeat timeout is abnormal."""

from __future__ import annotations

import pytest

from garrison import (
    ActorNotFound,
    ChildSpec,
    LifecycleEvent,
    ManualClock,
    Node,
    Restart,
    Restarted,
    SupervisorSpec,
)

from ._support import Block, Finish, Journal, Ping, Worker, crash, of_type, worker


class Watchdogged(Worker):
    heartbeat_timeout = 1.0


async def _exit(node: Node, clock: ManualClock, name: str, how: str) -> None:
    ref = node.lookup(f"/root/{name}")
    if how == "crash":
        await crash(ref, clock)
    elif how == "normal":
        await ref.tell(Finish())
        await clock.advance(0)
    else:  # heartbeat
        await ref.tell(Block())
        await clock.advance(2.0)


@pytest.mark.parametrize("how", ["crash", "normal", "heartbeat"])
async def test_a_permanent_child_is_always_restarted(node: Node, clock: ManualClock, how: str) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(intensity=5, children=[ChildSpec("p", Watchdogged, args=(journal,))])
    )
    await _exit(node, clock, "p", how)
    [row] = await sup.which_children()
    assert (row.state, row.restarts) == ("running", 1)
    assert journal.steps("start") == [("start", "p"), ("start", "p")]


@pytest.mark.parametrize("how", ["crash", "heartbeat"])
async def test_a_transient_child_is_restarted_after_an_abnormal_exit(
    node: Node, clock: ManualClock, how: str
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            intensity=5, children=[ChildSpec("t", Watchdogged, args=(journal,), restart=Restart.TRANSIENT)]
        )
    )
    await _exit(node, clock, "t", how)
    [row] = await sup.which_children()
    assert (row.state, row.restarts) == ("running", 1)


async def test_a_transient_child_that_stops_normally_is_not_restarted(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    events: list[LifecycleEvent] = []
    node.events.subscribe(events.append)
    sup = await node.start(SupervisorSpec(intensity=5, children=[worker("t", journal, Restart.TRANSIENT)]))
    await _exit(node, clock, "t", "normal")
    [row] = await sup.which_children()
    # The spec is kept (OTP), but nothing runs in it.
    assert (row.id, row.state, row.ref) == ("t", "undefined", None)
    assert journal.entries == [("start", "t"), ("stop", "t")]
    assert of_type(events, Restarted) == []
    with pytest.raises(ActorNotFound):
        node.lookup("/root/t")
    # ...and can be started again by hand.
    ref = await sup.restart_child("t")
    assert (await ref.ask(Ping()))[0] == "t"


@pytest.mark.parametrize("how", ["crash", "normal", "heartbeat"])
async def test_a_temporary_child_is_never_restarted_and_its_spec_is_dropped(
    node: Node, clock: ManualClock, how: str
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            intensity=5,
            children=[
                worker("keep", journal),
                ChildSpec("once", Watchdogged, args=(journal,), restart=Restart.TEMPORARY),
            ],
        )
    )
    await _exit(node, clock, "once", how)
    assert [row.id for row in await sup.which_children()] == ["keep"]
    assert journal.steps("start") == [("start", "keep"), ("start", "once")]
    assert (await sup.count_children()).specs == 1


async def test_a_temporary_child_exit_does_not_count_toward_intensity(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            intensity=0,
            children=[worker("keep", journal), worker("once", journal, Restart.TEMPORARY)],
        )
    )
    await _exit(node, clock, "once", "crash")
    assert [row.id for row in await sup.which_children()] == ["keep"]
    assert node.lookup("/root").is_alive


async def test_a_transient_normal_exit_does_not_count_toward_intensity(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            intensity=0, children=[worker("keep", journal), worker("t", journal, Restart.TRANSIENT)]
        )
    )
    await _exit(node, clock, "t", "normal")
    assert [row.state for row in await sup.which_children()] == ["running", "undefined"]
    assert node.lookup("/root").is_alive


async def test_a_permanent_normal_exit_is_restarted_and_counts_toward_intensity(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(SupervisorSpec(intensity=0, children=[worker("p", journal)]))
    await _exit(node, clock, "p", "normal")
    # OTP restarts a permanent child whatever the reason, and every restart costs intensity.
    assert not sup.ref.is_alive
    assert node.exit_code == 1
