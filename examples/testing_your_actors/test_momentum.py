"""Testing a strategy actor with garrison.testing — the patterns of docs/testing.md.

The fixtures come from the garrison pytest plugin: ``node`` runs on the
virtual ``clock``, ``probe`` stands in for the actors the strategy talks to,
``faults`` injects crashes and journal failures, ``events`` records lifecycle
events, ``journal`` gives the node a real SqliteJournal. The test fails if an
actor crashes, or a message is dead-lettered, without the test expecting it.
"""

from typing import Literal

import pytest

from garrison import ChildSpec, Failed, GaveUp, Node, PersistFailed, Restarted, SupervisorSpec
from garrison.persistence import Journal
from garrison.testing import EventRecorder, Faults, TestProbe

from .book import Book, Fill, GetPosition
from .momentum import Momentum, PlaceOrder, Tick


# 1. Probe a strategy: the probe is the order router; assert what the strategy sends.
async def test_momentum_buys_after_three_rising_ticks(node: Node, probe: TestProbe) -> None:
    strategy = await node.spawn(Momentum, args=(probe,))
    for price in (100.0, 101.0, 102.0):
        await strategy.tell(Tick("ACME", price))
    await probe.expect_no_message(within=1.0)
    await strategy.tell(Tick("ACME", 103.0))
    assert await probe.expect(PlaceOrder) == PlaceOrder("ACME", "buy", 10)


# 2. Crash it and watch it restart: the supervisor restarts it with fresh state, the ref still works.
async def test_momentum_restarts_with_a_fresh_streak_after_a_crash(
    node: Node, probe: TestProbe, faults: Faults, events: EventRecorder
) -> None:
    await node.start(SupervisorSpec(children=[ChildSpec("momentum", Momentum, args=(probe,))]))
    strategy = node.lookup("/root/momentum")
    faults.crash(strategy, on=Tick, nth=3)
    for price in (100.0, 101.0, 102.0):
        await strategy.tell(Tick("ACME", price))
    await events.expect(Failed(path="/root/momentum", message_type="Tick"))
    await events.expect(Restarted(path="/root/momentum"))
    for price in (103.0, 104.0, 105.0):
        await strategy.tell(Tick("ACME", price))
    await probe.expect_no_message()  # the streak restarted from nothing
    await strategy.tell(Tick("ACME", 106.0))
    await probe.expect(PlaceOrder("ACME", "buy", 10))


# ... and when it keeps crashing, its supervisor gives up (virtual time: no sleeping).
async def test_a_crash_loop_exhausts_the_restart_intensity(
    node: Node, probe: TestProbe, faults: Faults, events: EventRecorder
) -> None:
    spec = SupervisorSpec(intensity=2, period=5.0, children=[ChildSpec("momentum", Momentum, args=(probe,))])
    await node.start(spec)
    strategy = node.lookup("/root/momentum")
    faults.crash(strategy, on=Tick, times=None)
    for price in (100.0, 101.0, 102.0):
        await strategy.tell(Tick("ACME", price))
        await events.expect(Failed(path="/root/momentum"))
    await events.expect(GaveUp(path="/root"))


# 3. Replay its journal: the book's positions survive a crash, rebuilt from what was journaled.
async def test_the_book_recovers_its_positions_from_the_journal_after_a_crash(
    node: Node, journal: Journal, faults: Faults, events: EventRecorder
) -> None:
    await node.start(SupervisorSpec(children=[ChildSpec("book", Book)]))
    book = node.lookup("/root/book")
    await book.ask(Fill("ACME", 10))
    assert await book.ask(Fill("ACME", -4)) == 6
    faults.crash(book, on=Fill)
    await book.tell(Fill("ACME", 100))  # crashes before persisting
    await events.expect(Restarted(path="/root/book"))  # published once recovery is done
    assert await book.ask(GetPosition("ACME")) == 6
    assert [seq async for seq, _ in journal.read("book")] == [1, 2]


# ... and a journal write that fails stops it: its restart keeps exactly what is durable.
# "before_write": the fill was never written; "after_write": it was, but persist heard it failed.
@pytest.mark.parametrize(("mode", "position"), [("before_write", 10), ("after_write", 15)])
async def test_a_failed_write_stops_the_book_and_recovery_reads_back_what_is_durable(
    node: Node,
    journal: Journal,
    faults: Faults,
    events: EventRecorder,
    mode: Literal["before_write", "after_write"],
    position: int,
) -> None:
    await node.start(SupervisorSpec(children=[ChildSpec("book", Book)]))
    book = node.lookup("/root/book")
    await book.ask(Fill("ACME", 10))
    faults.fail_journal(mode=mode)
    with pytest.raises(PersistFailed):
        await book.ask(Fill("ACME", 5))
    await events.expect(Restarted(path="/root/book"))
    assert await book.ask(GetPosition("ACME")) == position
