"""Rule 8: auto_shutdown with significant children. NEVER ignores them (and rejects
significant=True); ANY_SIGNIFICANT stops the supervisor when any significant child exits on its
own without restart; ALL_SIGNIFICANT when the last one has."""

from __future__ import annotations

import asyncio

from garrison import (
    AutoShutdown,
    ChildSpec,
    ExitKind,
    ManualClock,
    Node,
    Restart,
    Strategy,
    SupervisorSpec,
)

from ._support import Finish, Journal, crash, worker


async def _finish(node: Node, clock: ManualClock, path: str) -> None:
    await node.lookup(path).tell(Finish())
    await clock.advance(0)


async def test_any_significant_stops_the_supervisor_when_a_significant_child_ends_normally(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
            children=[
                worker("a", journal),
                worker("session", journal, Restart.TRANSIENT, significant=True),
                worker("c", journal),
            ],
        )
    )
    journal.clear()
    await _finish(node, clock, "/root/session")
    assert journal.entries == [("stop", "session"), ("stop", "c"), ("stop", "a")]
    reason = await asyncio.wait_for(sup.ref.wait_terminated(), 1.0)
    assert reason.kind is ExitKind.SHUTDOWN and reason.error is None
    assert "auto_shutdown" in str(reason)
    # At the root, an auto shutdown is an orderly end of the node: exit code 0.
    await asyncio.wait_for(node.wait_closed(), 1.0)
    assert node.exit_code == 0


async def test_a_significant_transient_child_that_crashes_is_restarted_instead(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
            children=[worker("session", journal, Restart.TRANSIENT, significant=True)],
        )
    )
    await crash(node.lookup("/root/session"), clock)
    assert sup.ref.is_alive
    assert [(row.state, row.restarts) for row in await sup.which_children()] == [("running", 1)]


async def test_a_significant_temporary_child_triggers_it_whatever_the_reason(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
            children=[worker("a", journal), worker("job", journal, Restart.TEMPORARY, significant=True)],
        )
    )
    await crash(node.lookup("/root/job"), clock)
    assert not sup.ref.is_alive


async def test_all_significant_waits_for_the_last_significant_child(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            auto_shutdown=AutoShutdown.ALL_SIGNIFICANT,
            children=[
                worker("plain", journal, Restart.TRANSIENT),
                worker("s1", journal, Restart.TRANSIENT, significant=True),
                worker("s2", journal, Restart.TEMPORARY, significant=True),
            ],
        )
    )
    await _finish(node, clock, "/root/plain")  # not significant
    await _finish(node, clock, "/root/s1")
    assert sup.ref.is_alive
    assert [(row.id, row.state) for row in await sup.which_children()] == [
        ("plain", "undefined"),
        ("s1", "undefined"),
        ("s2", "running"),
    ]
    await _finish(node, clock, "/root/s2")
    assert not sup.ref.is_alive


async def test_never_ignores_children_that_end(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(SupervisorSpec(children=[worker("t", journal, Restart.TRANSIENT)]))
    await _finish(node, clock, "/root/t")
    assert sup.ref.is_alive


async def test_terminate_child_of_a_significant_child_is_not_a_trigger(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
            children=[worker("a", journal), worker("session", journal, Restart.TRANSIENT, significant=True)],
        )
    )
    await sup.terminate_child("session")
    await clock.advance(0)
    assert sup.ref.is_alive


async def test_a_significant_sibling_stopped_as_collateral_is_not_a_trigger(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            strategy=Strategy.ONE_FOR_ALL,
            intensity=5,
            auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
            children=[worker("a", journal), worker("job", journal, Restart.TEMPORARY, significant=True)],
        )
    )
    await crash(node.lookup("/root/a"), clock)
    assert sup.ref.is_alive
    assert [row.id for row in await sup.which_children()] == ["a"]


async def test_a_transient_child_supervisor_that_shuts_itself_down_is_not_restarted(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    session = SupervisorSpec(
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
        children=[worker("conn", journal, Restart.TRANSIENT, significant=True), worker("pump", journal)],
    )
    root = await node.start(
        SupervisorSpec(
            intensity=0,
            children=[worker("a", journal), ChildSpec("session", session, restart=Restart.TRANSIENT)],
        )
    )
    await _finish(node, clock, "/root/session/conn")
    assert root.ref.is_alive
    assert [(row.id, row.state) for row in await root.which_children()] == [
        ("a", "running"),
        ("session", "undefined"),
    ]
