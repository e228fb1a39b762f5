"""Rule 6: shutdown. 0 cancels at once; T lets the message in flight finish for up to T seconds,
runs on_stop, then cancels; None waits forever. ``async with ctx.critical():`` defers cancellation
to the end of the block."""

from __future__ import annotations

from typing import Any

from garrison import ChildSpec, ManualClock, Node, Strategy, SupervisorSpec

from ._support import Block, Journal, Record, Work, Worker, crash, drive, worker


class Careful(Worker):
    """Does ``Work`` inside a critical section, recording when the section ends and what follows it."""

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Work):
            async with self.ctx.critical():
                await self.ctx.node.clock.sleep(message.seconds)
                self.journal.add("critical-done", self.name, self.now())
            self.journal.add("after-critical", self.name, self.now())
            return None
        return await super().on_receive(message)


class StubbornStop(Worker):
    """An on_stop that never returns."""

    async def on_stop(self) -> None:
        self.journal.add("stopping", self.name, self.now())
        await self.ctx.node.clock.sleep(1e9)


async def _busy(node: Node, clock: ManualClock, spec: ChildSpec, message: Any) -> Any:
    sup = await node.start(SupervisorSpec(children=[spec]))
    await node.lookup(f"/root/{spec.id}").tell(message)
    await clock.advance(0)
    return sup


async def test_shutdown_zero_cancels_at_once_without_on_stop(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await _busy(node, clock, worker("a", journal, shutdown=0), Work(10.0))
    await drive(clock, sup.terminate_child("a"), within=1.0)
    assert clock.now() == 0.0
    assert journal.steps("done", "stop") == []
    [letter] = [letter for letter in node.dead_letters.recent() if letter.message == Work(10.0)]
    assert "killed" in letter.reason


async def test_shutdown_timeout_lets_the_message_in_flight_finish_then_runs_on_stop(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await _busy(node, clock, worker("a", journal, shutdown=5.0), Work(2.0))
    await drive(clock, sup.terminate_child("a"), within=10.0)
    assert journal.timeline[-2:] == [(2.0, "done", "a"), (2.0, "stop", "a")]
    assert clock.now() == 2.0


async def test_shutdown_timeout_cancels_a_handler_that_ignores_stop(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await _busy(node, clock, worker("a", journal, shutdown=3.0), Block())
    await clock.advance(2.9)
    stopping = drive(clock, sup.terminate_child("a"), within=10.0)
    await stopping
    assert clock.now() == 2.9 + 3.0
    assert journal.steps("stop") == []  # the handler never finished, so on_stop never ran
    assert not (await sup.which_children())[0].ref


async def test_shutdown_timeout_also_bounds_on_stop(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(children=[ChildSpec("a", StubbornStop, args=(journal,), shutdown=4.0)])
    )
    await drive(clock, sup.terminate_child("a"), within=10.0)
    assert journal.steps("stopping") == [("stopping", "a")]
    assert clock.now() == 4.0


async def test_shutdown_none_waits_for_the_message_in_flight_however_long(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await _busy(node, clock, worker("a", journal, shutdown=None), Work(1000.0))
    await drive(clock, sup.terminate_child("a"), within=2000.0)
    assert journal.timeline[-2:] == [(1000.0, "done", "a"), (1000.0, "stop", "a")]


async def test_a_child_supervisor_waits_for_its_children_by_default(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    inner = SupervisorSpec(children=[worker("x", journal, shutdown=None)])
    sup = await node.start(SupervisorSpec(children=[ChildSpec("inner", inner)]))
    await node.lookup("/root/inner/x").tell(Work(600.0))
    await clock.advance(0)
    await drive(clock, sup.terminate_child("inner"), within=1000.0)
    assert journal.timeline[-2:] == [(600.0, "done", "x"), (600.0, "stop", "x")]


async def test_critical_section_defers_immediate_cancellation_to_its_end(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await _busy(node, clock, ChildSpec("a", Careful, args=(journal,), shutdown=0), Work(5.0))
    await drive(clock, sup.terminate_child("a"), within=10.0)
    assert journal.steps("critical-done", "after-critical", "stop") == [("critical-done", "a")]
    assert journal.when("critical-done", "a") == 5.0


async def test_critical_section_outlasts_the_shutdown_timeout(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await _busy(node, clock, ChildSpec("a", Careful, args=(journal,), shutdown=1.0), Work(5.0))
    await drive(clock, sup.terminate_child("a"), within=10.0)
    # The stop timed out at t=1 inside the block: cancelled when the block ended, at t=5.
    assert journal.steps("critical-done", "after-critical", "stop") == [("critical-done", "a")]
    assert clock.now() == 5.0


async def test_messages_still_queued_at_stop_go_to_dead_letters(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await _busy(node, clock, worker("a", journal, shutdown=5.0), Work(1.0))
    ref = node.lookup("/root/a")
    for label in ("x", "y"):
        await ref.tell(Record(label))
    await drive(clock, sup.terminate_child("a"), within=5.0)
    assert journal.steps("got") == []
    assert [letter.message for letter in node.dead_letters.recent()] == [Record("x"), Record("y")]


async def test_a_group_restart_waits_for_each_collateral_sibling_within_its_shutdown(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    await node.start(
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            intensity=5,
            children=[worker("a", journal), worker("b", journal, shutdown=2.0)],
        )
    )
    await node.lookup("/root/b").tell(Block())
    await clock.advance(0)
    journal.clear()
    await crash(node.lookup("/root/a"), clock)
    assert journal.entries == []  # b is given its 2 s to stop before anything restarts
    await clock.advance(2.0)
    assert journal.timeline == [(2.0, "start", "a"), (2.0, "start", "b")]


class FailsLate(Worker):
    """``Work`` ends in an exception instead of finishing."""

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Work):
            await self.ctx.node.clock.sleep(message.seconds)
            raise RuntimeError("failed while being stopped")
        return await super().on_receive(message)


async def test_a_sibling_that_fails_while_being_stopped_is_restarted_once(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            intensity=5,
            children=[worker("a", journal), ChildSpec("b", FailsLate, args=(journal,), shutdown=5.0)],
        )
    )
    await node.lookup("/root/b").tell(Work(1.0))
    await clock.advance(0)
    journal.clear()
    await crash(node.lookup("/root/a"), clock)
    await clock.advance(10.0)
    assert journal.entries == [("start", "a"), ("start", "b")]
    assert [(row.state, row.restarts) for row in await sup.which_children()] == [
        ("running", 1),
        ("running", 1),
    ]
