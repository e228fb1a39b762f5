"""Rule 7: backoff (beyond OTP). Per-child exponential delay with jitter, reset after a quiet
period; the child is reported as restarting while it waits; the restart counts in the intensity
window when it is decided (at failure time), and a group restart waits for the backoff child."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from garrison import (
    Backoff,
    ChildSpec,
    GaveUp,
    LifecycleEvent,
    ManualClock,
    Node,
    Restarted,
    Strategy,
    SupervisorRef,
    SupervisorSpec,
)
from garrison.testing import LogCapture

from ._support import Crash, Journal, Record, Work, Worker, crash, of_type, worker


def _row_state(tree: list[dict[str, Any]], path: str) -> str:
    for entry in tree:
        if entry["path"] == path:
            return str(entry["state"])
        if path.startswith(entry["path"] + "/"):
            return _row_state(entry["children"], path)
    raise AssertionError(f"{path} not in the tree")


async def _restart_times(node: Node, clock: ManualClock, crashes: int, gap: float = 0.0) -> list[float]:
    """Crash /root/a ``crashes`` times, each as soon as it is back (after ``gap``); when it came back."""
    events: list[Any] = []
    node.events.subscribe(events.append)
    for _ in range(crashes):
        await clock.advance(gap)
        before = len(of_type(events, Restarted))
        await crash(node.lookup("/root/a"), clock)
        while len(of_type(events, Restarted)) == before:
            deadline = clock.next_deadline()
            assert deadline is not None, "no restart is scheduled"
            await clock.advance(deadline - clock.now())
    return [event.at for event in of_type(events, Restarted)]


async def test_backoff_delays_grow_exponentially_up_to_max(node: Node, clock: ManualClock) -> None:
    backoff = Backoff(initial=1.0, max=8.0, multiplier=2.0, jitter=0.0)
    await node.start(
        SupervisorSpec(intensity=100, period=1.0, children=[worker("a", Journal(), backoff=backoff)])
    )
    # Crashes at 0, 1, 3, 7, 15, 23: delays 1, 2, 4, 8, 8, 8.
    assert await _restart_times(node, clock, 6) == [1.0, 3.0, 7.0, 15.0, 23.0, 31.0]


async def test_the_child_is_reported_as_restarting_while_it_waits(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(children=[worker("a", journal, backoff=Backoff(initial=2.0, max=2.0, jitter=0.0))])
    )
    ref = node.lookup("/root/a")
    journal.clear()
    await crash(ref, clock)
    await clock.advance(1.999)
    [row] = await sup.which_children()
    assert (row.state, row.ref) == ("restarting", ref)
    assert _row_state(node.tree(), "/root/a") == "restarting"
    assert journal.entries == []
    await clock.advance(0.001)
    assert journal.timeline == [(2.0, "start", "a")]
    assert [row.state for row in await sup.which_children()] == ["running"]
    assert _row_state(node.tree(), "/root/a") == "running"


async def test_messages_sent_while_waiting_are_kept_for_the_restarted_child(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    await node.start(
        SupervisorSpec(children=[worker("a", journal, backoff=Backoff(initial=1.0, jitter=0.0))])
    )
    ref = node.lookup("/root/a")
    await crash(ref, clock)
    await ref.tell(Record("while-waiting"))
    await clock.advance(0.5)
    assert journal.steps("got") == []
    await clock.advance(0.5)
    assert journal.timeline[-2:] == [(1.0, "start", "a"), (1.0, "got", "while-waiting")]


async def test_jitter_stretches_the_delay_by_at_most_its_fraction() -> None:
    backoff = Backoff(initial=1.0, max=1.0, jitter=0.5)
    restarted_at = []
    for seed in (1, 2, 3, 1):
        clock = ManualClock()
        async with Node("t", clock=clock, handle_signals=False, seed=seed) as node:
            await node.start(SupervisorSpec(children=[worker("a", Journal(), backoff=backoff)]))
            [at] = await _restart_times(node, clock, 1)
            restarted_at.append(at)
    assert all(1.0 <= at < 1.5 for at in restarted_at)
    assert restarted_at[0] == restarted_at[3]  # the same seed replays the same delays
    assert len(set(restarted_at)) > 1


async def test_backoff_resets_after_a_quiet_period(node: Node, clock: ManualClock) -> None:
    backoff = Backoff(initial=1.0, max=8.0, jitter=0.0, reset_after=10.0)
    await node.start(SupervisorSpec(intensity=100, children=[worker("a", Journal(), backoff=backoff)]))
    early = await _restart_times(node, clock, 3)  # delays 1, 2, 4
    assert early == [1.0, 3.0, 7.0]
    await clock.advance(9.5)  # ran 9.5 s since its last restart: not quiet long enough
    later = await _restart_times(node, clock, 1)
    assert later[-1] == 7.0 + 9.5 + 8.0
    await clock.advance(10.0)  # quiet for 10 s: the count starts again
    latest = await _restart_times(node, clock, 1)
    assert latest[-1] == 7.0 + 9.5 + 8.0 + 10.0 + 1.0


async def test_the_default_quiet_period_is_halfway_between_initial_and_max(
    node: Node, clock: ManualClock
) -> None:
    backoff = Backoff(initial=1.0, max=9.0, jitter=0.0)
    assert backoff.quiet_period == 5.0
    await node.start(SupervisorSpec(intensity=100, children=[worker("a", Journal(), backoff=backoff)]))
    assert await _restart_times(node, clock, 2) == [1.0, 3.0]
    await clock.advance(5.0)
    assert (await _restart_times(node, clock, 1))[-1] == 3.0 + 5.0 + 1.0


async def test_a_backoff_restart_counts_in_the_intensity_window_when_it_is_decided(
    node: Node, clock: ManualClock
) -> None:
    # a's restart is due at t=10, but it was counted at t=0: b's crash at t=1 is the second
    # restart within 5 s, so the supervisor gives up before a has even been restarted.
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            intensity=1,
            period=5.0,
            children=[
                worker("a", journal, backoff=Backoff(initial=10.0, max=10.0, jitter=0.0)),
                worker("b", journal),
            ],
        )
    )
    await crash(node.lookup("/root/a"), clock)
    await clock.advance(1.0)
    assert sup.ref.is_alive
    await crash(node.lookup("/root/b"), clock)
    assert not sup.ref.is_alive
    assert journal.steps("start") == [("start", "a"), ("start", "b")]


async def test_a_backoff_longer_than_the_period_lets_restarts_leave_the_window(
    node: Node, clock: ManualClock
) -> None:
    backoff = Backoff(initial=6.0, max=6.0, jitter=0.0)
    sup = await node.start(
        SupervisorSpec(intensity=1, period=5.0, children=[worker("a", Journal(), backoff=backoff)])
    )
    assert await _restart_times(node, clock, 5) == [6.0, 12.0, 18.0, 24.0, 30.0]
    assert sup.ref.is_alive


async def test_a_group_restart_with_a_backoff_child_delays_the_whole_group(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            children=[
                worker("a", journal),
                worker("b", journal, backoff=Backoff(initial=2.0, max=2.0, jitter=0.0)),
                worker("c", journal),
            ],
        )
    )
    journal.clear()
    await crash(node.lookup("/root/b"), clock)
    assert journal.timeline == [(0.0, "stop", "c")]
    assert [row.state for row in await sup.which_children()] == ["running", "restarting", "restarting"]
    await clock.advance(2.0)
    assert journal.timeline[1:] == [(2.0, "start", "b"), (2.0, "start", "c")]
    assert [row.state for row in await sup.which_children()] == ["running", "running", "running"]


async def test_terminate_child_cancels_a_pending_backoff_restart(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(children=[worker("a", journal, backoff=Backoff(initial=1.0, jitter=0.0))])
    )
    await crash(node.lookup("/root/a"), clock)
    await sup.terminate_child("a")
    await clock.advance(10.0)
    assert [row.state for row in await sup.which_children()] == ["undefined"]
    assert journal.steps("start") == [("start", "a")]


async def test_terminating_a_waiting_child_still_restarts_the_siblings_that_waited_with_it(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            children=[
                worker("b", journal, backoff=Backoff(initial=5.0, max=5.0, jitter=0.0)),
                worker("c", journal),
            ],
        )
    )
    await crash(node.lookup("/root/b"), clock)
    await sup.terminate_child("b")
    await clock.advance(10.0)
    # c was stopped only because b failed; OTP's terminate_child(b) would not touch a running c.
    assert [(row.id, row.state) for row in await sup.which_children()] == [
        ("b", "undefined"),
        ("c", "running"),
    ]
    assert (await sup.count_children()).active == 1


async def test_a_child_that_keeps_failing_to_start_keeps_backing_off(node: Node, clock: ManualClock) -> None:
    # Time passing is not a quiet period: the child never ran, so the delays keep growing.
    journal = Journal()
    refuse: list[bool] = []
    backoff = Backoff(initial=1.0, max=8.0, jitter=0.0)
    await node.start(
        SupervisorSpec(
            intensity=100, children=[ChildSpec("a", Worker, args=(journal, refuse), backoff=backoff)]
        )
    )
    refuse.extend([True] * 6)
    await crash(node.lookup("/root/a"), clock)
    await clock.advance(60.0)
    assert [at for at, step, _ in journal.timeline if step == "start-failed"] == [
        1.0,
        3.0,
        7.0,
        15.0,
        23.0,
        31.0,
    ]
    assert journal.when("start", "a") == 39.0


@pytest.mark.parametrize(("intensity", "gives_up_at"), [(5, None), (4, 7.5)])
async def test_the_documented_backoff_and_intensity_example(
    node: Node, clock: ManualClock, intensity: int, gives_up_at: float | None
) -> None:
    # docs/supervision.md: Backoff(initial=0.5, max=8) and a child that can never start again
    # fail at 0, 0.5, 1.5, 3.5, 7.5, then every 8 s: 5 restarts in the first 10 s, 2 after that.
    journal = Journal()
    refuse: list[bool] = []
    events: list[LifecycleEvent] = []
    node.events.subscribe(events.append)
    backoff = Backoff(initial=0.5, max=8.0, jitter=0.0)
    sup = await node.start(
        SupervisorSpec(
            intensity=intensity,
            period=10.0,
            children=[ChildSpec("a", Worker, args=(journal, refuse), backoff=backoff)],
        )
    )
    refuse.extend([True] * 1000)
    await crash(node.lookup("/root/a"), clock)
    await clock.advance(100.0)
    if gives_up_at is None:
        assert sup.ref.is_alive
        failed_at = [at for at, step, _ in journal.timeline if step == "start-failed"]
        assert failed_at[:6] == [0.5, 1.5, 3.5, 7.5, 15.5, 23.5]
    else:
        assert not sup.ref.is_alive
        [gave_up] = of_type(events, GaveUp)
        assert gave_up.at == gives_up_at


# A backoff timer that fires while the supervisor is busy queues its restart behind whatever
# arrived first. When what arrived first restarts the same child (a sibling's group restart,
# terminate_child), the queued restart is stale and must not start the child a second time.


async def _busy_until(node: Node, clock: ManualClock, sup: SupervisorRef, child_id: str, until: float) -> Any:
    """Keep ``sup`` inside terminate_child(child_id) until ``until``: the child is mid-Work."""
    await node.lookup(f"/root/{child_id}").tell(Work(until - clock.now()))
    await clock.advance(0)
    busy = asyncio.ensure_future(sup.terminate_child(child_id))
    await clock.advance(0)
    return busy


def _restart_counts(events: list[LifecycleEvent], path: str) -> list[int]:
    return [event.restarts for event in of_type(events, Restarted) if event.path == path]


_TWO_SECOND_BACKOFF = Backoff(initial=2.0, max=2.0, jitter=0.0)


async def _supervise(
    node: Node, strategy: Strategy, *children: ChildSpec
) -> tuple[SupervisorRef, list[LifecycleEvent]]:
    """Start the root supervisor over ``children``; return it and every lifecycle event from now on."""
    events: list[LifecycleEvent] = []
    node.events.subscribe(events.append)
    sup = await node.start(SupervisorSpec(strategy=strategy, intensity=10, children=list(children)))
    return sup, events


async def _starts_until_t3(
    clock: ManualClock, journal: Journal, *queued: Awaitable[Any]
) -> list[tuple[str, str]]:
    """Run to t=3, when the busy supervisor is free and ``queued`` are done; the starts from now on."""
    journal.clear()
    await clock.advance(3.0)
    for call in queued:
        await call
    return journal.steps("start")


async def _child_rows(sup: SupervisorRef) -> list[tuple[str, str, int]]:
    return [(row.id, row.state, row.restarts) for row in await sup.which_children()]


async def test_a_due_backoff_restart_is_dropped_when_a_rest_for_one_group_restart_started_the_child(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup, events = await _supervise(
        node,
        Strategy.REST_FOR_ONE,
        worker("slow", journal, shutdown=10.0),
        worker("a", journal),
        worker("b", journal, backoff=_TWO_SECOND_BACKOFF),
        worker("c", journal),
    )
    await crash(node.lookup("/root/b"), clock)  # b (and c with it) wait until t=2
    busy = await _busy_until(node, clock, sup, "slow", until=3.0)
    await crash(node.lookup("/root/a"), clock)  # queued before b's timer fires at t=2
    # a's group restart (a, b, c) at t=3 took b's pending restart with it.
    assert await _starts_until_t3(clock, journal, busy) == [("start", "a"), ("start", "b"), ("start", "c")]
    assert _restart_counts(events, "/root/b") == [1]
    assert _restart_counts(events, "/root/c") == [1]
    await clock.advance(10.0)
    assert journal.steps("start") == [("start", "a"), ("start", "b"), ("start", "c")]
    assert await _child_rows(sup) == [
        ("slow", "undefined", 0),
        ("a", "running", 1),
        ("b", "running", 1),
        ("c", "running", 1),
    ]


async def test_a_due_backoff_restart_is_dropped_when_a_one_for_all_group_restart_started_the_child(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup, events = await _supervise(
        node,
        Strategy.ONE_FOR_ALL,
        worker("a", journal, backoff=_TWO_SECOND_BACKOFF),
        worker("b", journal),
    )
    await crash(node.lookup("/root/a"), clock)  # a and b wait until t=2
    # Children added during the wait run at once; one of them crashing restarts everyone.
    await sup.start_child(worker("slow", journal, shutdown=10.0))
    await sup.start_child(worker("n", journal))
    busy = await _busy_until(node, clock, sup, "slow", until=3.0)
    await crash(node.lookup("/root/n"), clock)  # queued before a's timer fires at t=2
    assert await _starts_until_t3(clock, journal, busy) == [("start", "a"), ("start", "b"), ("start", "n")]
    assert _restart_counts(events, "/root/a") == [1]
    assert _restart_counts(events, "/root/b") == [1]
    await clock.advance(10.0)
    assert await _child_rows(sup) == [
        ("a", "running", 1),
        ("b", "running", 1),
        ("slow", "undefined", 0),
        ("n", "running", 1),
    ]


async def test_a_due_backoff_restart_is_dropped_when_terminate_child_already_released_the_siblings(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup, events = await _supervise(
        node,
        Strategy.REST_FOR_ONE,
        worker("slow", journal, shutdown=10.0),
        worker("b", journal, backoff=_TWO_SECOND_BACKOFF),
        worker("c", journal),
    )
    await crash(node.lookup("/root/b"), clock)  # b (and c with it) wait until t=2
    busy = await _busy_until(node, clock, sup, "slow", until=3.0)
    terminated = asyncio.ensure_future(sup.terminate_child("b"))  # queued before b's timer fires
    await clock.advance(0)
    # terminate_child(b) starts c, which waited only for b; b's own timer must not start it again.
    assert await _starts_until_t3(clock, journal, busy, terminated) == [("start", "c")]
    assert _restart_counts(events, "/root/b") == []
    assert _restart_counts(events, "/root/c") == [1]
    await clock.advance(10.0)
    assert await _child_rows(sup) == [
        ("slow", "undefined", 0),
        ("b", "undefined", 0),
        ("c", "running", 1),
    ]


@pytest.mark.parametrize("strategy", [Strategy.REST_FOR_ONE, Strategy.ONE_FOR_ALL])
async def test_a_sibling_whose_start_failed_waits_for_the_backoff_group_it_was_folded_into(
    node: Node, clock: ManualClock, strategy: Strategy
) -> None:
    # At t=2 k restarts and crashes at once on a queued message, then m fails to start: k's
    # exit is queued before m's retry, so k's next restart (delay 4) takes m and n with it.
    # m's retry must then do nothing: it used to start m and n at t=2 and again with k at t=6
    # (rest_for_one), or fold k's wait in and start all three at t=2 (one_for_all).
    journal = Journal()
    refuse: list[bool] = []
    sup = await node.start(
        SupervisorSpec(
            strategy=strategy,
            intensity=10,
            children=[
                worker("k", journal, backoff=Backoff(initial=2.0, max=8.0, jitter=0.0)),
                ChildSpec("m", Worker, args=(journal, refuse)),
                worker("n", journal),
            ],
        )
    )
    await crash(node.lookup("/root/k"), clock)
    await node.lookup("/root/k").tell(Crash("again"))
    refuse.append(True)
    journal.clear()
    with LogCapture(clock=clock) as logs:
        await clock.advance(20.0)
    # m's failed start is still reported, with what happens next.
    [report] = logs.find("m refuses to start; supervisor /root", level="ERROR")
    assert report.message.endswith("restarts it with 'k' (backoff)")
    assert journal.timeline == [
        (2.0, "start", "k"),
        (2.0, "start-failed", "m"),
        (6.0, "start", "k"),
        (6.0, "start", "m"),
        (6.0, "start", "n"),
    ]
    assert await _child_rows(sup) == [
        ("k", "running", 2),
        ("m", "running", 2),
        ("n", "running", 1),
    ]
