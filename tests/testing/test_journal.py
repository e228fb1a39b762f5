"""The test node's journal: a real SqliteJournal, opened and closed with the node, whose I/O
takes no virtual time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from garrison import ChildSpec, InvalidConfig, ManualClock, Node, Restarted, SupervisorSpec
from garrison._errors import JournalClosed
from garrison.persistence import PackedEvents, SqliteJournal
from garrison.testing import ActorTestKit, TrackedJournal
from garrison.testing._waiting import finish_outside_work, outside_work
from tests.testing.actors import Add, Tally, Total


async def test_the_journal_fixture_is_a_real_sqlite_journal_in_tmp_path_on_the_node(
    node: Node, journal: TrackedJournal, tmp_path: Path
) -> None:
    assert node.journal is journal
    assert isinstance(journal.inner, SqliteJournal)
    assert journal.path == str(tmp_path / "journal.db")
    tally = await node.spawn(Tally)
    assert await tally.ask(Add(2)) == (2, 1)
    assert [seq async for seq, _ in journal.read("tally")] == [1]


async def test_the_kit_opens_its_journal_with_the_node_and_closes_it_at_shutdown(tmp_path: Path) -> None:
    kit = ActorTestKit(journal=tmp_path / "journal.db")
    assert kit.journal is not None and kit.node.journal is kit.journal
    async with kit:
        assert await kit.journal.append("s", [b"a"], 0) == 1
    with pytest.raises(JournalClosed):
        await kit.journal.highest_seq("s")


async def test_open_journal_gives_a_running_node_a_journal_the_node_closes(tmp_path: Path) -> None:
    async with ActorTestKit() as kit:
        journal = await kit.open_journal(tmp_path / "journal.db")
        assert kit.node.journal is journal is kit.journal
        assert await journal.append("s", [b"a"], 0) == 1
        with pytest.raises(InvalidConfig, match="has a journal already"):
            await kit.open_journal(tmp_path / "other.db")
    with pytest.raises(JournalClosed):
        await journal.highest_seq("s")


class SlowSqliteJournal(SqliteJournal):
    """A SqliteJournal on a slow disk: loading a snapshot takes 0.2 s of real time."""

    async def load_snapshot(self, stream: str) -> tuple[int, bytes] | None:
        await asyncio.to_thread(time.sleep, 0.2)
        return await super().load_snapshot(stream)


async def test_recovery_takes_no_virtual_time_however_long_the_journal_takes(tmp_path: Path) -> None:
    async with ActorTestKit(journal=SlowSqliteJournal(tmp_path / "journal.db")) as kit:
        await kit.node.start(SupervisorSpec(children=[ChildSpec("tally", Tally)]))
        tally = kit.node.lookup("/root/tally")
        assert await tally.ask(Add(3)) == (3, 1)
        kit.faults.crash(tally, on=Add)
        await tally.tell(Add(4))
        await kit.events.expect(Restarted(path="/root/tally"), within=0.1)
        assert kit.clock.now() == 0.0
        assert await tally.ask(Total()) == (3, 1)


class SlowReadingSqliteJournal(SqliteJournal):
    """A SqliteJournal on a slow disk: each run of events read for replay takes 0.2 s of real time."""

    async def read_packed(self, stream: str, after_seq: int = 0) -> AsyncGenerator[PackedEvents, None]:
        async for run in super().read_packed(stream, after_seq):
            await asyncio.to_thread(time.sleep, 0.2)
            yield run


async def test_replaying_events_takes_no_virtual_time_however_long_the_journal_takes(tmp_path: Path) -> None:
    async with ActorTestKit(journal=SlowReadingSqliteJournal(tmp_path / "journal.db")) as kit:
        await kit.node.start(SupervisorSpec(children=[ChildSpec("tally", Tally)]))
        tally = kit.node.lookup("/root/tally")
        assert await tally.ask(Add(3)) == (3, 1)
        assert await tally.ask(Add(5)) == (8, 2)
        kit.faults.crash(tally, on=Add)
        await tally.tell(Add(4))
        await kit.events.expect(Restarted(path="/root/tally"), within=0.1)
        assert kit.clock.now() == 0.0
        assert await tally.ask(Total()) == (8, 2)


async def test_a_journal_call_that_never_returns_fails_the_wait_after_the_real_limit() -> None:
    clock = ManualClock()
    stuck = asyncio.ensure_future(outside_work(clock).run(asyncio.Event().wait()))
    await asyncio.sleep(0)
    try:
        with pytest.raises(AssertionError, match=r"1 journal call\(s\) still in flight after 0.05s"):
            await finish_outside_work(clock, real_limit=0.05)
    finally:
        stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    assert outside_work(clock).in_flight == 0
