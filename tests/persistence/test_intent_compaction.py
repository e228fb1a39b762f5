"""Intent-log compaction and stream trimming, on every journal backend (SQLite file, Redis).

What is pinned: opening reads a snapshot plus the events after it (the events it holds are
gone from the journal); an id settled before a compaction is recognised exactly as before;
the window of settled intents kept has the size asked for; trimming never goes past the
latest snapshot; a log sharing its stream with a writer that compacted reads the snapshot.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison import InvalidConfig, Node
from garrison._errors import JournalWriteError
from garrison.cli import main
from garrison.persistence import (
    EventSourcedActor,
    IntentHistoryMissing,
    IntentLog,
    IntentMoved,
    IntentRecorded,
    IntentState,
    IntentTransitionError,
    SqliteJournal,
    _intent_compaction,
    _intent_log,
    trim_to_snapshot,
)

from ._intent_model import STREAM, Order
from ._model import Balance, Deposit, FaultyJournal, Get, SnapshottingAccount

S = IntentState
MakeJournal = Callable[..., Any]
_encode = msgspec.msgpack.Encoder().encode


async def stored_seqs(journal: Any, stream: str = STREAM) -> list[int]:
    return [seq async for seq, _ in journal.read(stream)]


async def compactions_done(log: IntentLog[Order]) -> None:
    for _ in range(10_000):
        if not log.compacting:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("a compaction still runs after 10 s")


def order(n: int) -> Order:
    return Order(f"SYM{n % 7}", n + 1)


async def settle(log: IntentLog[Order], ids: list[str], state: IntentState = S.DONE) -> None:
    await log.record_many_nowait([(intent_id, order(n)) for n, intent_id in enumerate(ids)])
    await log.move_many_nowait([(intent_id, S.SENDING) for intent_id in ids])
    await log.move_many_nowait([(intent_id, state, "filled") for intent_id in ids])


async def test_compaction_keeps_open_intents_and_deletes_the_events_it_holds(
    make_journal: MakeJournal,
) -> None:
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=None).open()
        await settle(log, [f"done-{n}" for n in range(30)])
        await log.record("open-1", Order("AAA", 1))
        await log.move("open-1", S.SENDING)
        await log.move("open-1", S.UNKNOWN, "timeout")
        await log.record("open-2", Order("BBB", 2))
        highest = await journal.highest_seq(STREAM)
        assert len(await stored_seqs(journal)) == highest

        await log.compact()

        assert await stored_seqs(journal) == []
        assert await journal.highest_seq(STREAM) == highest
        snapshot = await journal.load_snapshot(STREAM)
        assert snapshot is not None and snapshot[0] == highest
        await log.move("open-2", S.SENDING)
        reopened = await IntentLog(journal, STREAM, Order).open()
        assert reopened.pending() == log.pending()
        assert [(i.id, i.state, i.attempts, i.detail) for i in reopened.pending()] == [
            ("open-1", S.UNKNOWN, 1, "timeout"),
            ("open-2", S.SENDING, 1, ""),
        ]
        assert reopened.intents() == log.intents()
        assert len(reopened) == len(log) == 32


async def test_an_id_settled_before_compaction_is_recognised_exactly_as_before(
    make_journal: MakeJournal,
) -> None:
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=None).open()
        await settle(log, ["cid-1"], S.DONE)
        await settle(log, ["cid-2"], S.REJECTED)
        before = [log.get("cid-1"), log.get("cid-2")]
        assert await log.record("cid-1", Order("OTHER", 99)) == before[0]
        await log.compact()
        highest = await journal.highest_seq(STREAM)

        for current in (log, await IntentLog(journal, STREAM, Order).open()):
            assert [current.get("cid-1"), current.get("cid-2")] == before
            assert "cid-1" in current and "cid-2" in current
            assert await current.record("cid-1", Order("OTHER", 99)) == before[0]
            assert await current.record_many_nowait([("cid-2", Order("X", 1)), ("cid-1", Order("Y", 2))]) == [
                before[1],
                before[0],
            ]
            assert not current.can_move("cid-1", S.SENDING)
            with pytest.raises(IntentTransitionError, match="cannot move from DONE to SENDING"):
                current.move_nowait("cid-1", S.SENDING)
            with pytest.raises(IntentTransitionError, match="cannot move from REJECTED to SENDING"):
                current.move_many_nowait([("cid-2", S.SENDING)])
            assert current.pending() == []
        assert await journal.highest_seq(STREAM) == highest  # nothing written by any of it


async def test_automatic_compaction_runs_every_n_settled_intents(make_journal: MakeJournal) -> None:
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=10).open()
        await settle(log, [f"a-{n}" for n in range(9)])
        assert not log.compacting
        assert await journal.load_snapshot(STREAM) is None
        await settle(log, ["a-9"])
        assert log.compacting
        await log.compact()  # waits for the automatic one, then runs one more
        assert await stored_seqs(journal) == []
        await log.record("new", order(1))
        reopened = await IntentLog(journal, STREAM, Order).open()
        assert [intent.id for intent in reopened.intents()] == [*(f"a-{n}" for n in range(10)), "new"]


async def test_the_window_keeps_at_least_retain_settled_of_the_latest_settled(
    make_journal: MakeJournal,
) -> None:
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=None, retain_settled=3).open()
        await settle(log, ["old-1", "old-2"])
        await log.compact()
        await settle(log, ["mid-1", "mid-2"])
        await log.compact()
        # The newer settled intents hold 2 < 3 without old-*: those are still kept.
        assert {"old-1", "old-2", "mid-1", "mid-2"} <= {i.id for i in log.intents()}
        await settle(log, ["new-1"])
        await log.compact()
        reopened = await IntentLog(journal, STREAM, Order, retain_settled=3).open()
        for current in (log, reopened):
            assert [intent.id for intent in current.intents()] == ["mid-1", "mid-2", "new-1"]
            assert current.get("old-1") is None and "old-1" not in current
        # Out of the window, an id is forgotten: recording it again records a new intent.
        again = await reopened.record("old-1", Order("AGAIN", 5))
        assert again.state is S.RECORDED and again.payload == Order("AGAIN", 5)


async def test_retain_settled_zero_forgets_settled_ids_at_compaction(make_journal: MakeJournal) -> None:
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=None, retain_settled=0).open()
        await settle(log, ["x"])
        await log.record("open", order(1))
        await log.compact()
        reopened = await IntentLog(journal, STREAM, Order, retain_settled=0).open()
        assert [intent.id for intent in reopened.intents()] == ["open"]
        moved = await reopened.move("open", S.DONE)
        assert (moved.id, moved.state, moved.payload) == ("open", S.DONE, order(1))


async def test_each_settled_intent_is_stored_once_in_the_settled_stream(make_journal: MakeJournal) -> None:
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=None, retain_settled=3).open()
        assert log.settled_stream == "intents.settled"
        await settle(log, ["a", "b"])
        await log.compact()
        await log.compact()  # nothing settled since: nothing more stored
        assert await stored_seqs(journal, "intents.settled") == [1]
        await settle(log, ["c", "d"])
        await log.compact()
        # a and b's chunk left the window (c and d hold 2 < 3 without it: not yet).
        assert await stored_seqs(journal, "intents.settled") == [1, 2]
        await settle(log, ["e"])
        await log.compact()
        assert await stored_seqs(journal, "intents.settled") == [2, 3]


async def test_archive_settled_keeps_every_settled_intent_in_the_settled_stream(
    make_journal: MakeJournal,
) -> None:
    async with make_journal() as journal:
        log = await IntentLog(
            journal, STREAM, Order, compact_every=None, retain_settled=1, archive_settled=True
        ).open()
        for batch in (["a", "b"], ["c"], ["d"]):
            await settle(log, batch)
            await log.compact()
        archived = [
            entry[0]
            async for _, payload in journal.read("intents.settled")
            for entry in msgspec.msgpack.decode(payload)["intents"]
        ]
        assert archived == ["a", "b", "c", "d"]
        reopened = await IntentLog(journal, STREAM, Order, retain_settled=1).open()
        assert [intent.id for intent in reopened.intents()] == ["d"]


async def test_a_failed_compaction_loses_nothing_and_the_next_one_stores_it(journal_path: Any) -> None:
    async with SqliteJournal(journal_path) as inner:
        journal = FaultyJournal(inner)
        log = await IntentLog(journal, STREAM, Order, compact_every=None).open()
        await settle(log, ["a", "b"])
        await log.record("open", order(1))
        highest = await journal.highest_seq(STREAM)
        journal.fail_append_before = True  # the settled stream's append
        with pytest.raises(JournalWriteError):
            await log.compact()
        journal.fail_snapshots = True
        with pytest.raises(JournalWriteError):
            await log.compact()
        assert len(await stored_seqs(journal)) == highest  # nothing deleted
        assert (await IntentLog(journal, STREAM, Order).open()).intents() == log.intents()
        journal.fail_snapshots = False
        await log.compact()
        assert await stored_seqs(journal) == []
        reopened = await IntentLog(journal, STREAM, Order).open()
        assert reopened.intents() == log.intents()
        assert [intent.id for intent in reopened.intents()] == ["a", "b", "open"]


async def test_a_failed_automatic_compaction_is_logged(
    journal_path: Any, log_records: list[dict[str, Any]]
) -> None:
    async with SqliteJournal(journal_path) as inner:
        journal = FaultyJournal(inner)
        log = await IntentLog(journal, STREAM, Order, compact_every=2).open()
        journal.fail_snapshots = True
        await settle(log, ["a", "b"])
        assert log.compacting
        with pytest.raises(JournalWriteError):
            await log.compact()  # waits for the automatic one (which logs), then fails the same way
        journal.fail_snapshots = False
        await log.compact()
        assert await stored_seqs(journal) == []
    warnings = [r for r in log_records if "intent log intents: compaction failed" in r["message"]]
    assert len(warnings) == 1 and warnings[0]["level"].name == "WARNING"


async def test_open_replays_the_events_after_the_snapshot(make_journal: MakeJournal) -> None:
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=None).open()
        await settle(log, ["s-1", "s-2"])
        await log.record("o-1", order(1))
        await log.compact()
        await log.move("o-1", S.SENDING)
        await log.record("o-2", order(2))
        await settle(log, ["s-3"])
        assert len(await stored_seqs(journal)) == 5
        reopened = await IntentLog(journal, STREAM, Order).open()
        assert reopened.intents() == log.intents()
        assert [intent.id for intent in reopened.pending()] == ["o-1", "o-2"]


async def test_a_writer_sharing_the_stream_reads_the_snapshot_after_another_compacted(
    make_journal: MakeJournal,
) -> None:
    async with make_journal() as first_journal, make_journal() as second_journal:
        first = await IntentLog(first_journal, STREAM, Order, compact_every=None).open()
        second = await IntentLog(second_journal, STREAM, Order, compact_every=None).open()
        await settle(first, ["a", "b"])
        await first.record("open", order(3))
        await first.compact()
        assert await stored_seqs(first_journal) == []
        # Second's next read finds the events it has not seen compacted away.
        await second.refresh()
        assert second.intents() == first.intents()
        assert await second.record("a", Order("DUP", 1)) == first.get("a")
        # A write of second conflicts, reads the snapshot, and goes on from it.
        await first.record("later", order(4))
        await first.compact()
        await second.move("open", S.SENDING)
        assert (await IntentLog(first_journal, STREAM, Order).open()).pending() == second.pending()


async def test_open_names_events_deleted_that_no_snapshot_holds(make_journal: MakeJournal) -> None:
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=None).open()
        await settle(log, ["a", "b"])
        await journal.delete_events(STREAM, 3)  # behind the log's back, with no snapshot
        with pytest.raises(IntentHistoryMissing, match=r"the events after seq 0 were deleted") as raised:
            await IntentLog(journal, STREAM, Order).open()
        assert (raised.value.stream, raised.value.after_seq, raised.value.found_seq) == (STREAM, 0, 4)


async def test_settled_chunks_lost_for_good_are_forgotten_with_a_warning(
    make_journal: MakeJournal, log_records: list[dict[str, Any]]
) -> None:
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=None).open()
        await settle(log, ["a"])
        await log.compact()
        await settle(log, ["b"])
        await log.record("open", order(1))
        await log.compact()
        await journal.delete_events("intents.settled", 1)  # behind the log's back: a's chunk
        reopened = await IntentLog(journal, STREAM, Order).open()
        assert [intent.id for intent in reopened.intents()] == ["b", "open"]
    warnings = [r for r in log_records if "1 chunks of settled intents named by the snapshot" in r["message"]]
    assert len(warnings) == 1 and warnings[0]["level"].name == "WARNING"


async def test_quarantined_events_are_not_mistaken_for_compacted_ones(make_journal: MakeJournal) -> None:
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=None).open()
        await log.record("a", order(1))
        await log.record("b", order(2))
        await log.move("a", S.SENDING)
        await log.record("c", order(3))
        await journal.quarantine(STREAM, 2, "test: a bad record")
        await journal.quarantine(STREAM, 4, "test: the last one too")
        reopened = await IntentLog(journal, STREAM, Order, compact_every=None).open()
        assert [(i.id, i.state) for i in reopened.intents()] == [("a", S.SENDING)]
        await reopened.record("d", order(4))  # after the highest seq: no conflict to resolve
        assert await journal.highest_seq(STREAM) == 5
        await log.refresh()  # the first log reads past them too
        assert "d" in log
        await reopened.compact()
        assert [i.id for i in (await IntentLog(journal, STREAM, Order).open()).intents()] == ["a", "d"]


async def test_settled_intents_are_stored_in_bounded_appends(
    make_journal: MakeJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_intent_compaction, "CHUNK", 2)
    monkeypatch.setattr(_intent_log, "CHUNK", 2)
    monkeypatch.setattr(_intent_log, "CHUNKS_PER_APPEND", 1)
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=None).open()
        await settle(log, [f"s-{n}" for n in range(5)])
        await log.compact()
        assert await stored_seqs(journal, "intents.settled") == [1, 2, 3]
        reopened = await IntentLog(journal, STREAM, Order).open()
        assert reopened.intents() == log.intents() and len(reopened) == 5


@pytest.mark.parametrize(
    ("field", "options"),
    [("compact_every", {"compact_every": 0}), ("retain_settled", {"retain_settled": -1})],
)
def test_compaction_settings_are_checked(field: str, options: dict[str, Any], tmp_path: Any) -> None:
    with pytest.raises(InvalidConfig, match=field):
        IntentLog(SqliteJournal(tmp_path / "j.db"), STREAM, Order, **options)


# -- trimming ------------------------------------------------------------------------


async def test_trim_to_snapshot_never_goes_past_the_latest_snapshot(make_journal: MakeJournal) -> None:
    async with make_journal() as journal:
        await journal.append("s", [b"\x01"] * 25, 0)
        with pytest.raises(InvalidConfig, match=r"is past the latest snapshot of 's' \(none saved\)"):
            await trim_to_snapshot(journal, "s", 5)
        assert await trim_to_snapshot(journal, "s") == 0
        await journal.save_snapshot("s", 12, b"state")
        with pytest.raises(
            InvalidConfig, match=r"up_to_seq=13 is invalid.*past the latest snapshot of 's' \(seq 12\)"
        ):
            await trim_to_snapshot(journal, "s", 13)
        assert await stored_seqs(journal, "s") == list(range(1, 26))
        assert await trim_to_snapshot(journal, "s", 4, step=3) == 4
        assert await stored_seqs(journal, "s") == list(range(5, 26))
        # from_seq only sizes the steps: what lies before it goes with the first one.
        assert await trim_to_snapshot(journal, "s", step=3, from_seq=10) == 12
        assert await stored_seqs(journal, "s") == list(range(13, 26))
        with pytest.raises(InvalidConfig, match="from_seq=0 is invalid"):
            await trim_to_snapshot(journal, "s", from_seq=0)
        assert await journal.highest_seq("s") == 25
        assert await journal.append("s", [b"\x02"], 25) == 26


class TrimmingAccount(SnapshottingAccount):
    trim_after_snapshot = True


async def test_an_event_sourced_actor_trims_its_stream_up_to_each_snapshot(make_journal: MakeJournal) -> None:
    journal = make_journal()
    async with Node("t", journal=journal, handle_signals=False) as node:
        ref = await node.spawn(TrimmingAccount, name="acct")
        for amount in range(1, 8):
            await ref.ask(Deposit(amount), timeout=5.0)
        assert await journal.load_snapshot("account-1") is not None
        assert await stored_seqs(journal, "account-1") == [7]
        assert await journal.highest_seq("account-1") == 7

    async with Node("t", journal=make_journal(), handle_signals=False) as node:
        ref = await node.spawn(TrimmingAccount, name="acct")
        assert await ref.ask(Get(), timeout=5.0) == (Balance(28, 7), 7)
        assert await ref.ask(Deposit(2), timeout=5.0) == (Balance(30, 8), 8)


def test_trim_after_snapshot_is_checked() -> None:
    with pytest.raises(InvalidConfig, match=r"Bad.trim_after_snapshot='yes' is invalid"):

        class Bad(EventSourcedActor[int]):
            trim_after_snapshot = "yes"  # type: ignore[assignment]


# -- property: compaction never changes what a reopened log knows -------------------------

_OPS = st.lists(
    st.tuples(st.sampled_from(["record", "send", "done", "reject", "compact"]), st.integers(0, 7)),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS, retain=st.integers(0, 4), every=st.sampled_from([None, 1, 3]))
async def test_reopening_after_any_compactions_equals_the_live_log(
    tmp_path: Any, ops: Any, retain: int, every: int | None
) -> None:
    # Writes queued without awaiting, manual and automatic compactions interleaved with them:
    # a log opened at any point knows the same intents as the live one.
    path = tmp_path / f"p-{abs(hash((tuple(ops), retain, every)))}.db"
    async with SqliteJournal(path) as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=every, retain_settled=retain).open()
        pending: list[Any] = []
        for op, n in ops:
            intent_id = f"id-{n}"
            target = {"send": S.SENDING, "done": S.DONE, "reject": S.REJECTED}.get(op)
            if op == "record":
                pending.append(log.record_nowait(intent_id, order(n)))
            elif op == "compact":
                pending.append(asyncio.ensure_future(log.compact()))
            elif target is not None and log.can_move(intent_id, target):
                pending.append(log.move_nowait(intent_id, target))
        await asyncio.gather(*pending)
        await compactions_done(log)  # a live log forgets at the capture, the journal once it is stored
        reopened = await IntentLog(journal, STREAM, Order, retain_settled=retain).open()
        assert {i.id: i for i in reopened.intents()} == {i.id: i for i in log.intents()}
        assert reopened.pending() == log.pending()
        await log.compact()
        reopened = await IntentLog(journal, STREAM, Order, retain_settled=retain).open()
        assert reopened.intents() == log.intents()
        await log.close()
    path.unlink()


async def test_a_stream_of_raw_events_compacts_when_opened(make_journal: MakeJournal) -> None:
    # How a long history gets compacted the first time: open reads it, then compacts.
    async with make_journal() as journal:
        events = [_encode(IntentRecorded(f"r-{n}", _encode(order(n)))) for n in range(50)]
        events += [_encode(IntentMoved(f"r-{n}", S.DONE)) for n in range(40)]
        await journal.append(STREAM, events, 0)
        log = await IntentLog(journal, STREAM, Order, compact_every=40, retain_settled=5).open()
        await log.compact()
        assert await stored_seqs(journal) == []
        reopened = await IntentLog(journal, STREAM, Order, retain_settled=5).open()
        assert [intent.id for intent in reopened.pending()] == [f"r-{n}" for n in range(40, 50)]
        assert len(reopened) == 15


async def test_close_stops_a_compaction_in_progress_and_loses_nothing(make_journal: MakeJournal) -> None:
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=2).open()
        await settle(log, ["a", "b"])
        await log.record("open", order(1))
        assert log.compacting
        await log.close()
        assert not log.compacting
        with pytest.raises(InvalidConfig, match="open it first"):
            log.get("a")
        reopened = await IntentLog(journal, STREAM, Order, compact_every=None).open()
        assert [intent.id for intent in reopened.intents()] == ["a", "b", "open"]
        await reopened.compact()
        assert [intent.id for intent in (await log.open()).intents()] == ["a", "b", "open"]


async def test_writes_resolve_to_their_intents_when_a_compaction_takes_them_at_once(
    make_journal: MakeJournal,
) -> None:
    async with make_journal() as journal:
        log = await IntentLog(journal, STREAM, Order, compact_every=1, retain_settled=0).open()
        records = log.record_many_nowait([("a", order(1)), ("b", order(2))])
        moves = log.move_many_nowait([("a", S.DONE), ("b", S.REJECTED, "no margin")])
        compaction = asyncio.ensure_future(log.compact())  # and a manual one, while the append runs
        assert [(i.id, i.state) for i in await records] == [("a", S.DONE), ("b", S.REJECTED)]
        await moves
        await compaction
        await log.record("c", order(3))
        moved = await log.move("c", S.DONE, "filled")
        assert (moved.id, moved.state, moved.detail, moved.payload) == ("c", S.DONE, "filled", order(3))
        await log.compact()
        assert "a" not in log and "c" not in log and len(log) == 0


_SHARED_OPS = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.sampled_from(["record", "send", "done", "compact", "refresh"]),
        st.integers(0, 5),
    ),
    max_size=30,
)


_EXAMPLES = itertools.count()


@pytest.mark.parametrize("backend", ["sqlite", "redis"], indirect=True)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_SHARED_OPS)
async def test_two_writers_compacting_one_stream_end_up_knowing_the_same_intents(
    make_journal: MakeJournal, ops: Any
) -> None:
    # SQLite refuses a stale writer's append at a seq another process deleted (the stream's
    # head guards it: test_sqlite_journal.py::test_a_stale_writer_cannot_append_at_a_deleted_seq).
    stream = f"intents-{next(_EXAMPLES)}"
    async with make_journal() as first_journal, make_journal() as second_journal:
        logs = [
            await IntentLog(journal, stream, Order, compact_every=2, retain_settled=100).open()
            for journal in (first_journal, second_journal)
        ]
        for writer, op, n in ops:
            log, intent_id = logs[writer], f"id-{n}"
            try:
                if op == "record":
                    await log.record(intent_id, order(n))
                elif op == "compact":
                    await log.compact()
                elif op == "refresh":
                    await log.refresh()
                elif log.can_move(intent_id, S.SENDING if op == "send" else S.DONE):
                    await log.move(intent_id, S.SENDING if op == "send" else S.DONE)
            except IntentTransitionError:
                pass  # the other writer moved it first: refused, nothing written
        for log in logs:
            await compactions_done(log)
            await log.refresh()
        reopened = await IntentLog(first_journal, stream, Order, retain_settled=100).open()
        known = [{i.id: i for i in log.intents()} for log in (*logs, reopened)]
        assert known[0] == known[1] == known[2]
        assert {i.id for i in reopened.pending()} == {
            i for i, intent in known[2].items() if not intent.terminal
        }
        for log in logs:
            await log.close()


def test_journal_list_counts_the_intents_of_a_compacted_log_and_writes_nothing(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "journal.db"
    settled = 10_000  # the default compact_every: opening this log in a program compacts it

    async def write() -> None:
        async with SqliteJournal(path) as journal:
            compacted = await IntentLog(journal, "compacted", Order, compact_every=None).open()
            await settle(compacted, ["a", "b"])
            await compacted.record("open", order(1))
            await compacted.compact()
            long = await IntentLog(journal, "long", Order, compact_every=None).open()
            for start in range(0, settled, 1_000):
                batch = [(f"l-{n}", order(n)) for n in range(start, start + 1_000)]
                await long.record_many_nowait(batch)
                await long.move_many_nowait([(intent_id, S.DONE) for intent_id, _ in batch])

    asyncio.run(write())
    assert main(["journal", "list", str(path), "--json"]) == 0
    rows = {row["stream"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert (rows["compacted"]["events"], rows["compacted"]["intents_open"]) == (0, 1)
    assert rows["compacted"]["intents_settled"] == 2
    assert (rows["long"]["events"], rows["long"]["snapshot_seq"]) == (2 * settled, None)
    assert rows["long"]["intents_settled"] == settled

    async def unchanged() -> None:
        async with SqliteJournal(path) as journal:
            assert await journal.load_snapshot("long") is None
            assert len(await stored_seqs(journal, "long")) == 2 * settled

    asyncio.run(unchanged())
