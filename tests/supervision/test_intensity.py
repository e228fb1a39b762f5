"""Rule 4: restart intensity. One sliding window per supervisor over all its children, on the
node clock; a restart is allowed while the restarts in the last ``period`` seconds, this one
included, number at most ``intensity``. Exceeded: the supervisor stops its children in reverse
start order and exits with RestartIntensityExceeded, which its parent handles as any child exit."""

from __future__ import annotations

import asyncio

import pytest

from garrison import (
    ChildSpec,
    ExitKind,
    GaveUp,
    LifecycleEvent,
    ManualClock,
    Node,
    Restart,
    RestartIntensityExceeded,
    Strategy,
    SupervisorSpec,
)

from ._support import Crash, Journal, Worker, crash, of_type, worker


async def test_intensity_zero_gives_up_on_the_first_crash(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    events: list[LifecycleEvent] = []
    node.events.subscribe(events.append)
    sup = await node.start(SupervisorSpec(intensity=0, children=[worker("a", journal), worker("b", journal)]))
    await crash(node.lookup("/root/a"), clock)
    assert not sup.ref.is_alive
    assert journal.steps("start") == [("start", "a"), ("start", "b")]
    [gave_up] = of_type(events, GaveUp)
    assert gave_up.path == "/root"
    assert "intensity=0" in gave_up.reason


async def test_restarts_up_to_intensity_within_the_period_are_allowed_and_one_more_gives_up(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(SupervisorSpec(intensity=3, period=10.0, children=[worker("a", journal)]))
    for _ in range(3):
        await crash(node.lookup("/root/a"), clock)
        await clock.advance(1.0)
    assert [row.restarts for row in await sup.which_children()] == [3]
    await crash(node.lookup("/root/a"), clock)
    assert not sup.ref.is_alive


async def test_the_window_slides_and_its_boundary_is_inclusive(node: Node, clock: ManualClock) -> None:
    # OTP keeps restart stamps >= now - period: a restart exactly `period` after another still counts it.
    journal = Journal()
    sup = await node.start(SupervisorSpec(intensity=1, period=5.0, children=[worker("a", journal)]))
    await crash(node.lookup("/root/a"), clock)  # t=0: 1 in window
    await clock.advance(5.25)
    await crash(node.lookup("/root/a"), clock)  # t=5.25: the t=0 one has left the window
    assert [row.restarts for row in await sup.which_children()] == [2]
    await clock.advance(5.0)
    await crash(node.lookup("/root/a"), clock)  # t=10.25: the t=5.25 one is exactly on the boundary
    assert not sup.ref.is_alive


async def test_the_window_is_shared_by_all_children(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(intensity=2, period=5.0, children=[worker(name, journal) for name in "abc"])
    )
    await crash(node.lookup("/root/a"), clock)
    await crash(node.lookup("/root/b"), clock)
    assert sup.ref.is_alive
    await crash(node.lookup("/root/c"), clock)
    assert not sup.ref.is_alive


@pytest.mark.parametrize("strategy", [Strategy.REST_FOR_ONE, Strategy.ONE_FOR_ALL])
async def test_a_group_restart_counts_once(node: Node, clock: ManualClock, strategy: Strategy) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(strategy=strategy, intensity=1, children=[worker(name, journal) for name in "abcd"])
    )
    await crash(node.lookup("/root/a"), clock)  # four children restarted: one restart
    assert sup.ref.is_alive
    assert [row.restarts for row in await sup.which_children()] == [1, 1, 1, 1]
    await crash(node.lookup("/root/d"), clock)
    assert not sup.ref.is_alive


async def test_a_failed_start_attempt_during_a_restart_counts_again(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    refuse: list[bool] = []
    sup = await node.start(
        SupervisorSpec(intensity=2, children=[ChildSpec("a", Worker, args=(journal, refuse))])
    )
    refuse.append(True)  # the next start fails once
    await crash(node.lookup("/root/a"), clock)  # restart #1 fails, restart #2 succeeds: 2 <= 2
    assert journal.steps("start", "start-failed") == [
        ("start", "a"),
        ("start-failed", "a"),
        ("start", "a"),
    ]
    assert sup.ref.is_alive
    await clock.advance(1.0)
    await crash(node.lookup("/root/a"), clock)  # a third restart inside the window
    assert not sup.ref.is_alive


async def test_a_child_that_never_starts_again_makes_the_supervisor_give_up(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    refuse: list[bool] = []
    sup = await node.start(
        SupervisorSpec(intensity=3, children=[ChildSpec("a", Worker, args=(journal, refuse))])
    )
    refuse.extend([True] * 100)
    await crash(node.lookup("/root/a"), clock)
    assert not sup.ref.is_alive
    # The crash is restart 1; attempts 1..3 fail, each failure asks for another restart; the 4th gives up.
    assert len(journal.steps("start-failed")) == 3


async def test_manual_restart_child_and_terminate_child_do_not_count(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(SupervisorSpec(intensity=1, children=[worker("a", journal)]))
    for _ in range(5):
        await sup.terminate_child("a")
        await sup.restart_child("a")
    await crash(node.lookup("/root/a"), clock)  # the first counted restart
    assert sup.ref.is_alive
    assert [row.state for row in await sup.which_children()] == ["running"]


async def test_giving_up_stops_the_remaining_children_in_reverse_start_order_and_fails_with_the_error(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(SupervisorSpec(intensity=0, children=[worker(name, journal) for name in "abcd"]))
    journal.clear()
    await crash(node.lookup("/root/b"), clock)
    assert journal.entries == [("stop", "d"), ("stop", "c"), ("stop", "a")]
    reason = await asyncio.wait_for(sup.ref.wait_terminated(), 1.0)
    # OTP's `shutdown` exit, carrying the reason.
    assert reason.kind is ExitKind.SHUTDOWN
    assert isinstance(reason.error, RestartIntensityExceeded)
    assert reason.error.path == "/root"
    assert "b:" in str(reason.error) and "Boom" in str(reason.error)


async def test_a_permanent_child_supervisor_that_gives_up_is_restarted_by_its_parent(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    inner = SupervisorSpec(intensity=0, children=[worker("x", journal), worker("y", journal)])
    root = await node.start(
        SupervisorSpec(intensity=1, children=[worker("a", journal), ChildSpec("inner", inner)])
    )
    journal.clear()
    await crash(node.lookup("/root/inner/x"), clock)
    assert journal.entries == [("stop", "y"), ("start", "x"), ("start", "y")]
    assert [(row.id, row.state, row.restarts) for row in await root.which_children()] == [
        ("a", "running", 0),
        ("inner", "running", 1),
    ]
    # That restart cost the parent one unit: the next escalation exceeds intensity=1.
    await crash(node.lookup("/root/inner/y"), clock)
    assert not root.ref.is_alive
    assert node.exit_code == 1


async def test_a_supervisor_that_gives_up_as_a_transient_child_is_not_restarted_by_its_parent(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    inner = SupervisorSpec(intensity=0, children=[worker("x", journal)])
    root = await node.start(
        SupervisorSpec(
            intensity=0,  # a restart of inner would make root give up too
            children=[worker("a", journal), ChildSpec("inner", inner, restart=Restart.TRANSIENT)],
        )
    )
    await crash(node.lookup("/root/inner/x"), clock)
    assert root.ref.is_alive
    assert [(row.id, row.state) for row in await root.which_children()] == [
        ("a", "running"),
        ("inner", "undefined"),
    ]
    assert node.exit_code == 0


async def test_escalation_climbs_until_a_supervisor_can_restart(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    events: list[LifecycleEvent] = []
    node.events.subscribe(events.append)
    leaf = SupervisorSpec(intensity=0, children=[worker("x", journal)])
    middle = SupervisorSpec(intensity=0, children=[ChildSpec("leaf", leaf)])
    root = await node.start(SupervisorSpec(intensity=1, children=[ChildSpec("middle", middle)]))
    await crash(node.lookup("/root/middle/leaf/x"), clock)
    assert [event.path for event in of_type(events, GaveUp)] == ["/root/middle/leaf", "/root/middle"]
    assert root.ref.is_alive
    assert node.lookup("/root/middle/leaf/x").is_alive
    assert [row.restarts for row in await root.which_children()] == [1]


async def test_when_the_root_gives_up_the_node_shuts_down_with_a_non_zero_exit_code(
    clock: ManualClock,
) -> None:
    journal = Journal()
    async with Node("t", clock=clock, handle_signals=False) as node:
        await node.start(SupervisorSpec(intensity=0, children=[worker("a", journal)]))
        await crash(node.lookup("/root/a"), clock)
        await asyncio.wait_for(node.wait_closed(), 1.0)
        assert node.exit_code == 1
    assert not node.running
    assert node.paths() == []


async def test_the_window_reads_the_node_clock(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(SupervisorSpec(intensity=1, period=0.5, children=[worker("a", journal)]))
    for _ in range(10):
        await crash(node.lookup("/root/a"), clock)
        await clock.advance(0.6)  # sub-second resolution: each crash sits alone in its window
    assert sup.ref.is_alive
    assert [row.restarts for row in await sup.which_children()] == [10]


async def test_a_large_intensity_with_a_child_that_never_starts_again_still_gives_up_cleanly(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    refuse: list[bool] = []
    sup = await node.start(
        SupervisorSpec(intensity=3000, children=[ChildSpec("a", Worker, args=(journal, refuse))])
    )
    refuse.extend([True] * 5000)
    await crash(node.lookup("/root/a"), clock)
    await clock.advance(0)
    assert not sup.ref.is_alive
    assert len(journal.steps("start-failed")) == 3000
    reason = await asyncio.wait_for(sup.ref.wait_terminated(), 1.0)
    assert isinstance(reason.error, RestartIntensityExceeded)


async def test_a_retry_after_a_failed_start_lets_management_calls_in(node: Node, clock: ManualClock) -> None:
    # OTP retries a failed restart through its own mailbox (try_again_restart), so calls interleave.
    journal = Journal()
    refuse: list[bool] = []
    sup = await node.start(
        SupervisorSpec(intensity=10_000, children=[ChildSpec("a", Worker, args=(journal, refuse))])
    )
    refuse.extend([True] * 1_000_000)
    await node.lookup("/root/a").tell(Crash())
    await asyncio.sleep(0)  # a crashes; its exit is queued ahead of the call below
    [row] = await sup.which_children()  # answered between two attempts, while it keeps failing
    assert row.state == "restarting"
    await sup.terminate_child("a")  # and the retries stop
    attempts = len(journal.steps("start-failed"))
    await clock.advance(1.0)
    assert len(journal.steps("start-failed")) == attempts
    assert sup.ref.is_alive
    assert [(row.id, row.state) for row in await sup.which_children()] == [("a", "undefined")]
