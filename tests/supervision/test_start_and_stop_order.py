"""Rule 2 (orders): start in list order, a failed start fails the supervisor's start,
stop in reverse start order, one child at a time, each within its shutdown."""

from __future__ import annotations

import pytest

from garrison import (
    ActorNotFound,
    ActorStartError,
    ChildSpec,
    LifecycleEvent,
    ManualClock,
    Node,
    Stopped,
    Strategy,
    SupervisorSpec,
)

from ._support import Block, Boom, Journal, Worker, drive, of_type, worker


async def test_children_start_in_list_order_depth_first(node: Node) -> None:
    journal = Journal()
    market = SupervisorSpec(children=[worker("feed", journal), worker("book", journal)])
    spec = SupervisorSpec(
        children=[worker("journal", journal), ChildSpec("market", market), worker("risk", journal)]
    )
    await node.start(spec)
    assert journal.steps("start") == [
        ("start", "journal"),
        ("start", "feed"),
        ("start", "book"),
        ("start", "risk"),
    ]
    assert node.paths() == [
        "/root",
        "/root/journal",
        "/root/market",
        "/root/market/feed",
        "/root/market/book",
        "/root/risk",
    ]


async def test_a_child_that_fails_to_start_fails_the_supervisor_start(node: Node) -> None:
    journal = Journal()
    spec = SupervisorSpec(
        children=[
            worker("a", journal),
            worker("b", journal),
            ChildSpec("c", Worker, args=(journal, [True])),
            worker("d", journal),
        ]
    )
    with pytest.raises(ActorStartError) as error:
        await node.start(spec)
    assert isinstance(error.value.cause, ActorStartError)
    assert isinstance(error.value.cause.cause, Boom)
    # Started in order up to the failure, then the ones started are stopped in reverse; d never starts.
    assert journal.entries == [
        ("start", "a"),
        ("start", "b"),
        ("start-failed", "c"),
        ("stop", "b"),
        ("stop", "a"),
    ]
    assert node.paths() == []
    with pytest.raises(ActorNotFound):
        node.lookup("/root")


async def test_a_nested_start_failure_fails_every_supervisor_above(node: Node) -> None:
    journal = Journal()
    inner = SupervisorSpec(children=[worker("x", journal), ChildSpec("y", Worker, args=(journal, [True]))])
    spec = SupervisorSpec(children=[worker("a", journal), ChildSpec("inner", inner), worker("z", journal)])
    with pytest.raises(ActorStartError):
        await node.start(spec)
    assert journal.entries == [
        ("start", "a"),
        ("start", "x"),
        ("start-failed", "y"),
        ("stop", "x"),
        ("stop", "a"),
    ]
    assert node.paths() == []


async def test_stop_is_reverse_start_order_one_child_at_a_time_each_within_its_shutdown(
    clock: ManualClock,
) -> None:
    # Every child is stuck in a handler, so each stop lasts exactly its shutdown timeout:
    # one at a time, c (3 s) then b (2 s) then a (1 s) end at 3, 5 and 6; all at once would end at 3, 2, 1.
    journal = Journal()
    events: list[LifecycleEvent] = []
    node = Node("t", clock=clock, handle_signals=False)
    async with node:
        node.events.subscribe(events.append)
        await node.start(
            SupervisorSpec(
                children=[
                    worker(name, journal, shutdown=timeout)
                    for name, timeout in [("a", 1), ("b", 2), ("c", 3)]
                ]
            )
        )
        for name in "abc":
            await node.lookup(f"/root/{name}").tell(Block())
        await clock.advance(0)
        await drive(clock, node.shutdown(), within=10)
    stops = [(event.path, event.at) for event in of_type(events, Stopped)]
    assert stops == [("/root/c", 3.0), ("/root/b", 5.0), ("/root/a", 6.0), ("/root", 6.0)]
    assert all("did not stop within shutdown" in event.reason for event in of_type(events, Stopped)[:3])


async def test_orderly_stop_lets_each_child_run_on_stop_in_reverse_order(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    market = SupervisorSpec(
        strategy=Strategy.ONE_FOR_ALL, children=[worker("feed", journal), worker("book", journal)]
    )
    spec = SupervisorSpec(
        children=[worker("journal", journal), ChildSpec("market", market), worker("risk", journal)]
    )
    await node.start(spec)
    journal.clear()
    await drive(clock, node.shutdown(), within=1)
    assert journal.steps("stop") == [
        ("stop", "risk"),
        ("stop", "book"),
        ("stop", "feed"),
        ("stop", "journal"),
    ]
    assert node.paths() == []
