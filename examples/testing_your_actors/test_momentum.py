"""Testing a strategy actor with garrison.testing — the patterns of docs/testing.md.

The fixtures come from the garrison pytest plugin: ``garrison_node`` runs on
the virtual ``garrison_clock``, ``garrison_probe`` stands in for the actors the
strategy talks to, ``garrison_faults`` injects crashes and journal failures,
``garrison_events`` records lifecycle events, ``garrison_journal`` gives the
node a real SqliteJournal. The test fails if an actor crashes, or a message is
dead-lettered, without the test expecting it.
"""

from typing import Literal

import pytest

from garrison import ChildSpec, Failed, GaveUp, Node, PersistFailed, Restarted, SupervisorSpec
from garrison.persistence import Journal
from garrison.testing import EventRecorder, Faults, TestProbe

from .book import Book, Fill, GetPosition
from .momentum import Momentum, PlaceOrder, Tick


# 1. Probe a strategy: the probe is the order router; assert what the strategy sends.
async def test_momentum_buys_after_three_rising_ticks(garrison_node: Node, garrison_probe: TestProbe) -> None:
    strategy = await garrison_node.spawn(Momentum, args=(garrison_probe,))
    for price in (100.0, 101.0, 102.0):
        await strategy.tell(Tick("ACME", price))
    await garrison_probe.expect_no_message(within=1.0)
    await strategy.tell(Tick("ACME", 103.0))
    assert await garrison_probe.expect(PlaceOrder) == PlaceOrder("ACME", "buy", 10)


# 2. Crash it and watch it restart: the supervisor restarts it with fresh state, the ref still works.
async def test_momentum_restarts_with_a_fresh_streak_after_a_crash(
    garrison_node: Node, garrison_probe: TestProbe, garrison_faults: Faults, garrison_events: EventRecorder
) -> None:
    await garrison_node.start(
        SupervisorSpec(children=[ChildSpec("momentum", Momentum, args=(garrison_probe,))])
    )
    strategy = garrison_node.lookup("/root/momentum")
    garrison_faults.crash(strategy, on=Tick, nth=3)
    for price in (100.0, 101.0, 102.0):
        await strategy.tell(Tick("ACME", price))
    await garrison_events.expect(Failed(path="/root/momentum", message_type="Tick"))
    await garrison_events.expect(Restarted(path="/root/momentum"))
    for price in (103.0, 104.0, 105.0):
        await strategy.tell(Tick("ACME", price))
    await garrison_probe.expect_no_message()  # the streak restarted from nothing
    await strategy.tell(Tick("ACME", 106.0))
    await garrison_probe.expect(PlaceOrder("ACME", "buy", 10))


# ... and when it keeps crashing, its supervisor gives up (virtual time: no sleeping).
async def test_a_crash_loop_exhausts_the_restart_intensity(
    garrison_node: Node, garrison_probe: TestProbe, garrison_faults: Faults, garrison_events: EventRecorder
) -> None:
    spec = SupervisorSpec(
        intensity=2, period=5.0, children=[ChildSpec("momentum", Momentum, args=(garrison_probe,))]
    )
    await garrison_node.start(spec)
    strategy = garrison_node.lookup("/root/momentum")
    garrison_faults.crash(strategy, on=Tick, times=None)
    for price in (100.0, 101.0, 102.0):
        await strategy.tell(Tick("ACME", price))
        await garrison_events.expect(Failed(path="/root/momentum"))
    await garrison_events.expect(GaveUp(path="/root"))


# 3. Replay its journal: the book's positions survive a crash, rebuilt from what was journaled.
async def test_the_book_recovers_its_positions_from_the_journal_after_a_crash(
    garrison_node: Node, garrison_journal: Journal, garrison_faults: Faults, garrison_events: EventRecorder
) -> None:
    await garrison_node.start(SupervisorSpec(children=[ChildSpec("book", Book)]))
    book = garrison_node.lookup("/root/book")
    await book.ask(Fill("ACME", 10))
    assert await book.ask(Fill("ACME", -4)) == 6
    garrison_faults.crash(book, on=Fill)
    await book.tell(Fill("ACME", 100))  # crashes before persisting
    await garrison_events.expect(Restarted(path="/root/book"))  # published once recovery is done
    assert await book.ask(GetPosition("ACME")) == 6
    assert [seq async for seq, _ in garrison_journal.read("book")] == [1, 2]


# ... and a garrison_journal write that fails stops it: its restart keeps exactly what is durable.
# "before_write": the fill was never written; "after_write": it was, but persist heard it failed.
@pytest.mark.parametrize(("mode", "position"), [("before_write", 10), ("after_write", 15)])
async def test_a_failed_write_stops_the_book_and_recovery_reads_back_what_is_durable(
    garrison_node: Node,
    garrison_journal: Journal,
    garrison_faults: Faults,
    garrison_events: EventRecorder,
    mode: Literal["before_write", "after_write"],
    position: int,
) -> None:
    await garrison_node.start(SupervisorSpec(children=[ChildSpec("book", Book)]))
    book = garrison_node.lookup("/root/book")
    await book.ask(Fill("ACME", 10))
    garrison_faults.fail_journal(mode=mode)
    with pytest.raises(PersistFailed):
        await book.ask(Fill("ACME", 5))
    await garrison_events.expect(Restarted(path="/root/book"))
    assert await book.ask(GetPosition("ACME")) == position
