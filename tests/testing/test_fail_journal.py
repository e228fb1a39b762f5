"""faults.fail_journal: the node's journal fails appends on cue, before or after the write,
and comes out again leaving the real journal in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from garrison import ChildSpec, Failed, InvalidConfig, Node, Restarted, SupervisorSpec
from garrison._errors import JournalWriteError, PersistFailed
from garrison.persistence import Journal
from garrison.testing import (
    ActorTestKit,
    EventRecorder,
    Faults,
    InjectedFault,
    NodeGuard,
    TrackedJournal,
)
from tests.testing.actors import Add, Added, Tally, Total


async def append(node: Node, stream: str, *payloads: bytes, after: int) -> int:
    """Append through ``node.journal``, as an event-sourced actor does (the fault, while one is in)."""
    assert node.journal is not None
    return await node.journal.append(stream, payloads, after)


async def stored(journal: Journal, stream: str) -> list[bytes]:
    return [payload async for _, payload in journal.read(stream)]


async def supervised_tally(node: Node) -> Any:
    await node.start(SupervisorSpec(intensity=10, period=60.0, children=[ChildSpec("tally", Tally)]))
    return node.lookup("/root/tally")


async def test_before_write_lets_after_appends_through_then_fails_one_without_writing_it(
    node: Node, journal: TrackedJournal, faults: Faults
) -> None:
    assert await append(node, "s", b"a", after=0) == 1
    fault = faults.fail_journal(after=1)
    assert await append(node, "s", b"b", after=1) == 2
    with pytest.raises(JournalWriteError, match="injected journal failure before write") as failure:
        await append(node, "s", b"c", after=2)
    assert isinstance(failure.value.cause, InjectedFault)
    assert await stored(journal, "s") == [b"a", b"b"]
    assert await journal.highest_seq("s") == 2
    assert fault.fired == 1
    assert await append(node, "s", b"c", after=2) == 3
    assert fault.fired == 1


async def test_after_write_makes_the_append_durable_and_still_raises(
    node: Node, journal: TrackedJournal, faults: Faults
) -> None:
    fault = faults.fail_journal(mode="after_write")
    with pytest.raises(JournalWriteError, match="injected journal failure after write"):
        await append(node, "s", b"a", b"b", after=0)
    assert await stored(journal, "s") == [b"a", b"b"]
    assert fault.fired == 1
    assert await append(node, "s", b"c", after=2) == 3


@pytest.mark.parametrize(("mode", "recovered"), [("before_write", (10, 1)), ("after_write", (15, 2))])
async def test_a_failed_persist_stops_the_actor_and_its_restart_recovers_what_is_durable(
    node: Node,
    journal: TrackedJournal,
    faults: Faults,
    events: EventRecorder,
    node_guard: NodeGuard,
    mode: Any,
    recovered: tuple[int, int],
) -> None:
    tally = await supervised_tally(node)
    assert await tally.ask(Add(10)) == (10, 1)
    faults.fail_journal(mode=mode)
    with pytest.raises(PersistFailed):
        await tally.ask(Add(5))
    failed = await events.expect(Failed(path="/root/tally"))
    assert failed.error_type == "PersistFailed"
    await events.expect(Restarted(path="/root/tally"))
    assert await tally.ask(Total()) == recovered
    assert node_guard.unexpected == []


async def test_times_none_fails_every_append_to_the_chosen_stream_only(
    node: Node, journal: TrackedJournal, faults: Faults
) -> None:
    fault = faults.fail_journal(times=None, stream="a")
    for attempt in range(3):
        with pytest.raises(JournalWriteError):
            await append(node, "a", b"x", after=0)
        assert await append(node, "b", b"y", after=attempt) == attempt + 1
    assert (fault.matched, fault.fired) == (3, 3)
    assert await stored(journal, "a") == []


async def test_error_chooses_what_a_failed_append_raises(
    node: Node, journal: TrackedJournal, faults: Faults
) -> None:
    with faults.fail_journal(error=OSError(28, "disk full")), pytest.raises(OSError, match="disk full"):
        await append(node, "s", b"a", after=0)
    with (
        faults.fail_journal(error=TimeoutError),
        pytest.raises(TimeoutError, match="injected journal failure before write of an append to 's'"),
    ):
        await append(node, "s", b"a", after=0)
    with (
        faults.fail_journal(error=lambda stream: KeyError(f"no {stream}")),
        pytest.raises(KeyError, match="no s"),
    ):
        await append(node, "s", b"a", after=0)
    assert await append(node, "s", b"a", after=0) == 1


async def test_removing_the_fault_puts_the_real_journal_back_and_leaves_nothing_behind(
    node: Node, journal: TrackedJournal, faults: Faults
) -> None:
    fault = faults.fail_journal(times=None)
    assert node.journal is fault
    assert fault.inner is journal
    assert faults.installed == [fault]
    fault.remove()
    fault.remove()
    assert node.journal is journal
    assert not fault.active
    assert faults.installed == []
    assert await fault.append("s", [b"a"], 0) == 1  # a reference kept to it no longer fails
    assert await journal.append("s", [b"b"], 1) == 2
    assert fault.fired == 0


async def test_faults_stacked_on_one_journal_come_out_in_any_order(
    node: Node, journal: TrackedJournal, faults: Faults
) -> None:
    lower = faults.fail_journal(after=5)
    upper = faults.fail_journal(after=5)
    assert (node.journal, upper.inner, lower.inner) == (upper, lower, journal)
    lower.remove()
    assert (node.journal, upper.inner) == (upper, journal)
    upper.remove()
    assert node.journal is journal


async def test_standalone_faults_take_a_journal_fault_out_when_they_close(
    node: Node, journal: TrackedJournal
) -> None:
    async with Faults(node=node) as faults:
        faults.fail_journal(times=None)
        with pytest.raises(JournalWriteError):
            await append(node, "s", b"a", after=0)
    assert node.journal is journal
    assert await journal.append("s", [b"a"], 0) == 1


async def test_fail_journal_rejects_bad_arguments_and_a_node_without_a_journal(
    node: Node, faults: Faults
) -> None:
    for arguments, problem in (
        ({"after": -1}, "after=-1 is invalid"),
        ({"times": 0}, "times=0 is invalid"),
        ({"mode": "sometimes"}, "mode='sometimes' is invalid"),
        ({"stream": ""}, "stream='' is invalid"),
    ):
        with pytest.raises(InvalidConfig, match=problem):
            faults.fail_journal(**arguments)
    with pytest.raises(InvalidConfig, match="has no journal to fail: use the `journal` fixture"):
        faults.fail_journal()
    with pytest.raises(InvalidConfig, match=r"Faults\(\) without a guard needs fail_journal\(node=...\)"):
        Faults().fail_journal()
    assert faults.installed == []
    assert node.journal is None


async def test_a_persist_failure_from_the_fault_is_expected_but_a_real_one_is_not(tmp_path: Path) -> None:
    kit = await ActorTestKit(journal=tmp_path / "journal.db").start()
    try:
        tally = await supervised_tally(kit.node)
        kit.faults.fail_journal()
        await tally.tell(Add(1))
        await kit.events.expect(Restarted(path="/root/tally"))
        assert kit.guard.unexpected == []
        # A second writer on the tally's stream: the tally's next persist conflicts, no fault involved.
        assert kit.journal is not None and Tally._codec is not None
        await kit.journal.append("tally", [Tally._codec.encode(Added(100), "tally")], 0)
        await tally.tell(Add(2))
        await kit.events.expect(Restarted(path="/root/tally"))
        [line] = kit.guard.unexpected
        assert "actor /root/tally failed handling Add" in line
        assert "PersistFailed" in line and "SequenceConflict" in line
        assert await tally.ask(Total()) == (100, 1)
    finally:
        await kit.close(check=False)
