"""Properties of event sourcing on a real journal, each example in its own file and event loop.

- replay equals live: whatever commands an account handled (with crashes
  and restarts in between), recovering it yields the state it had live;
- snapshot + tail equals a full replay, at any snapshot interval and read
  batch size;
- concurrent writers on one stream: a writer with a stale view gets
  SequenceConflict, and the stream is whole batches back to back, never an
  interleaving of two writers' events.
"""

from __future__ import annotations

import asyncio
from functools import reduce
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import event, given, settings
from hypothesis import strategies as st

from garrison import ChildSpec, Node, Started, SupervisorSpec
from garrison._errors import SequenceConflict
from garrison.persistence import SqliteJournal

from ._model import (
    Account,
    Balance,
    Batch,
    Crash,
    Deposit,
    Deposited,
    Get,
    Lifecycle,
    Renamed,
    Withdraw,
    Withdrawn,
    fold,
    in_fresh_file,
    read_all,
    stored_events,
)

PROPERTY = settings(max_examples=40, deadline=None)
ASK = 5.0


def account_class(snapshot_every: int | None) -> type[Account]:
    return SNAPSHOTTING[snapshot_every]


class EveryOne(Account):
    snapshot_every = 1


class EveryTwo(Account):
    snapshot_every = 2


class EveryFive(Account):
    snapshot_every = 5


SNAPSHOTTING: dict[int | None, type[Account]] = {None: Account, 1: EveryOne, 2: EveryTwo, 5: EveryFive}

events = st.one_of(
    st.builds(Deposited, st.integers(0, 1000)),
    st.builds(Withdrawn, st.integers(0, 1000)),
    st.builds(Renamed, st.text(max_size=8)),
)
commands = st.lists(
    st.one_of(
        st.builds(Deposit, st.integers(0, 1000)),
        st.builds(Withdraw, st.integers(0, 1000)),
        st.builds(Batch, st.lists(events, min_size=1, max_size=4).map(tuple)),
        st.just(Crash()),
    ),
    max_size=25,
)


async def recover(path: Path, actor: type[Account], read_batch: int = 10_000) -> tuple[Balance, int]:
    journal = SqliteJournal(path, read_batch=read_batch)
    async with Node("replay", journal=journal, handle_signals=False) as node:
        ref = await node.spawn(actor, name="acct")
        state, seq = await ref.ask(Get(), timeout=ASK)
    return state, seq


async def full_replay(path: Path) -> tuple[Balance, int]:
    """The state folded over every stored event, read and decoded by the test itself."""
    async with SqliteJournal(path) as journal:
        rows = await read_all(journal, "account-1")
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
    return reduce(fold, stored_events(rows), Balance()), len(rows)


async def run_live(path: Path, actor: type[Account], script: list[Any]) -> list[tuple[Balance, int]]:
    """Send ``script`` to a supervised account; return the state it reported after each command.

    A Crash makes it restart (recovering from the journal); the state it
    reports next is then the recovered one.
    """
    live: list[tuple[Balance, int]] = []
    spec = SupervisorSpec(children=[ChildSpec("acct", actor)], intensity=len(script) + 1, period=60.0)
    async with Node("live", journal=SqliteJournal(path), handle_signals=False) as node:
        lifecycle = Lifecycle(node)
        supervisor = await node.start(spec)
        ref = await supervisor.child("acct")
        starts = 1
        for command in script:
            if isinstance(command, Crash):
                await ref.tell(command)
                starts += 1
                await lifecycle.wait_for(Started, "/root/acct", count=starts)
                command = Get()
            state, seq = await ref.ask(command, timeout=ASK)
            live.append((state, seq))
    return live


@PROPERTY
@given(script=commands, snapshot_every=st.sampled_from([None, 1, 2, 5]))
def test_replay_equals_live(script: list[Any], snapshot_every: int | None) -> None:
    actor = account_class(snapshot_every)

    async def body(path: Path) -> None:
        live = await run_live(path, actor, script)
        expected = live[-1] if live else (Balance(), 0)

        assert await recover(path, actor) == expected
        assert await full_replay(path) == expected
        # Every state reported live equals a fold over the events stored up to then.
        async with SqliteJournal(path) as journal:
            stored = stored_events(await read_all(journal, "account-1"))
        for state, seq in live:
            assert state == reduce(fold, stored[:seq], Balance())

    in_fresh_file(body)


@PROPERTY
@given(
    script=st.lists(st.builds(Batch, st.lists(events, min_size=1, max_size=5).map(tuple)), max_size=15),
    snapshot_every=st.sampled_from([1, 2, 5]),
    read_batch=st.integers(1, 6),
    delete_to_snapshot=st.booleans(),
)
def test_snapshot_plus_tail_equals_a_full_replay(
    script: list[Batch], snapshot_every: int, read_batch: int, delete_to_snapshot: bool
) -> None:
    actor = account_class(snapshot_every)

    async def body(path: Path) -> None:
        await run_live(path, actor, list(script))
        replayed = await full_replay(path)
        if delete_to_snapshot:
            async with SqliteJournal(path) as journal:
                snapshot = await journal.load_snapshot("account-1")
                if snapshot is not None:
                    await journal.delete_events("account-1", snapshot[0])

        assert await recover(path, actor, read_batch) == replayed
        # Even a class that does not take snapshots starts from the stored one.
        assert await recover(path, Account, read_batch) == replayed

    in_fresh_file(body)


class Tagged(msgspec.Struct, frozen=True, array_like=True):
    writer: int
    batch: int
    index: int
    size: int


writers_plans = st.lists(
    st.lists(st.tuples(st.integers(1, 4), st.integers(0, 3)), min_size=1, max_size=6),
    min_size=2,
    max_size=4,
)


@PROPERTY
@given(plans=writers_plans, separate_connections=st.booleans(), retry=st.booleans())
def test_concurrent_writers_on_one_stream_conflict_and_never_interleave(
    plans: list[list[tuple[int, int]]], separate_connections: bool, retry: bool
) -> None:
    """Each writer appends its batches (size, yields-before) with the seq it last saw.

    On SequenceConflict it catches up (highest_seq) and retries the batch, or
    drops it. Writers share one journal (one group-committing writer task) or
    each has its own connection to the file, as separate processes would.
    """

    async def body(path: Path) -> None:
        count = len(plans) if separate_connections else 1
        journals = [SqliteJournal(path) for _ in range(count)]
        for journal in journals:
            await journal.open()
        committed: list[tuple[int, int, int]] = []  # (writer, batch, highest)
        conflicts = 0

        async def write(writer: int, plan: list[tuple[int, int]]) -> None:
            nonlocal conflicts
            journal = journals[writer % count]
            seen = 0
            for batch, (size, pause) in enumerate(plan):
                payloads = [msgspec.msgpack.encode(Tagged(writer, batch, i, size)) for i in range(size)]
                while True:
                    for _ in range(pause):
                        await asyncio.sleep(0)
                    try:
                        seen = await journal.append("shared", payloads, seen)
                    except SequenceConflict as conflict:
                        conflicts += 1
                        assert conflict.expected_seq == seen and conflict.actual_seq != seen
                        seen = await journal.highest_seq("shared")
                        if retry:
                            continue
                        break
                    committed.append((writer, batch, seen))
                    break

        try:
            await asyncio.gather(*(write(writer, plan) for writer, plan in enumerate(plans)))
            rows = await read_all(journals[0], "shared")
        finally:
            for journal in journals:
                await journal.close()

        event(f"conflicts: {'some' if conflicts else 'none'}")
        decoded = [msgspec.msgpack.decode(payload, type=Tagged) for _, payload in rows]
        assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
        # Whole batches back to back: each batch is its events 0..size-1 in a row.
        position = 0
        stored_batches: list[tuple[int, int, int]] = []
        while position < len(decoded):
            first = decoded[position]
            batch = decoded[position : position + first.size]
            assert [(e.writer, e.batch, e.index) for e in batch] == [
                (first.writer, first.batch, i) for i in range(first.size)
            ]
            position += first.size
            stored_batches.append((first.writer, first.batch, position))
        assert sorted(stored_batches) == sorted(committed)
        for writer in range(len(plans)):
            mine = [batch for w, batch, _ in stored_batches if w == writer]
            assert mine == sorted(set(mine))  # in the writer's order, none twice
        if not retry:
            assert len(committed) + conflicts == sum(len(plan) for plan in plans)

    in_fresh_file(body)
