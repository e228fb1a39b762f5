"""``IntentLog.refresh()`` with writes of its own still queued.

What is pinned: refresh folds in what another writer appended while this log's queued
records and moves stay applied on top, so ``unsettled``, ``in_doubt()``, ``stats`` and
``can_move`` stay exact; a queued move the other writer made forbidden fails alone with
IntentTransitionError and is never written; the stream as stored only ever holds moves the
lifecycle allows; on SQLite and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison import ManualClock
from garrison.persistence import (
    IN_DOUBT,
    IntentLog,
    IntentState,
    IntentTransitionError,
    SqliteJournal,
)
from garrison.persistence._intent_model import TERMINAL, TRANSITIONS

from ._intent_model import STREAM, Order, stored_events

S = IntentState
BOUND = 5000


async def open_bounded(journal: Any) -> IntentLog[Order]:
    log = IntentLog(journal, STREAM, Order, clock=ManualClock(), max_unsettled=BOUND, send_window=BOUND)
    return await log.open()


def assert_counts_match(log: IntentLog[Order], fresh: IntentLog[Order]) -> None:
    """``log`` (nothing queued any more) counts what a log opened from the journal counts."""
    assert log.unsettled == fresh.unsettled
    assert log.stats.unsettled == fresh.stats.unsettled
    assert log.stats.in_doubt == fresh.stats.in_doubt
    assert {intent.id for intent in log.in_doubt()} == {intent.id for intent in fresh.in_doubt()}
    assert {(intent.id, intent.state) for intent in log.pending()} == {
        (intent.id, intent.state) for intent in fresh.pending()
    }


async def test_refresh_keeps_queued_moves_counted(make_journal: Callable[..., Any]) -> None:
    """The reproduction: 100 intents a round recorded and moved to DONE without awaiting,
    refresh every third round. Every one settles, so none is left unsettled or in doubt."""
    async with make_journal() as journal:
        log = await open_bounded(journal)
        written: list[asyncio.Future[Any]] = []
        for round_ in range(20):
            ids = [f"{round_}-{k}" for k in range(100)]
            written.append(log.record_many_nowait([(i, Order("X", 1)) for i in ids]))
            for state in (S.SENDING, S.ACKED, S.DONE):
                written.append(log.move_many_nowait([(i, state) for i in ids]))
            if round_ % 3 == 1:
                await log.refresh()
                # Every intent recorded so far is projected DONE by its queued moves.
                assert log.unsettled == 0
                assert log.stats.in_doubt == 0
        await asyncio.wait_for(asyncio.gather(*written), 30)
        assert log.pending() == []
        assert log.unsettled == 0
        assert log.stats.in_doubt == 0
        assert log.in_doubt() == []
        fresh = await open_bounded(journal)
        assert_counts_match(log, fresh)


async def test_refresh_reads_the_other_writer_and_keeps_ours_on_top(make_journal: Callable[..., Any]) -> None:
    async with make_journal() as journal:
        ours = await open_bounded(journal)
        other = await open_bounded(journal)
        await ours.record("a", Order("A", 1))
        await other.refresh()
        await other.record("b", Order("B", 1))
        await other.move("a", S.SENDING)  # the other writer started sending ours
        queued = [ours.record_nowait("c", Order("C", 1)), ours.move_nowait("c", S.SENDING)]
        await ours.refresh()
        # Theirs read (a in doubt, b unsettled), ours still queued on top (c in doubt).
        assert ours.unsettled == 3
        assert ours.stats.in_doubt == 2
        assert ours.can_move("a", S.ACKED)
        assert ours.can_move("c", S.ACKED)
        await asyncio.wait_for(asyncio.gather(*queued), 10)
        assert {intent.id for intent in ours.in_doubt()} == {"a", "c"}
        assert_counts_match(ours, await open_bounded(journal))


async def test_a_queued_move_the_other_writer_forbade_fails_alone(make_journal: Callable[..., Any]) -> None:
    async with make_journal() as journal:
        ours = await open_bounded(journal)
        other = await open_bounded(journal)
        await ours.record_many_nowait([("a", Order("A", 1)), ("b", Order("B", 1))])
        await other.refresh()
        await other.move("a", S.REJECTED)
        # Ours, queued before we read that: a into SENDING then on (one group), b into SENDING.
        doomed = ours.move_nowait("a", S.SENDING)
        later = ours.move_nowait("a", S.ACKED)  # follows the doomed move: fails with it
        fine = ours.move_nowait("b", S.SENDING)
        assert (ours.unsettled, ours.stats.in_doubt) == (2, 1)  # a projected ACKED, b SENDING
        await ours.refresh()
        with pytest.raises(IntentTransitionError):
            await asyncio.wait_for(doomed, 10)
        with pytest.raises(IntentTransitionError):
            await asyncio.wait_for(later, 10)
        await asyncio.wait_for(fine, 10)
        rejected = ours.get("a")
        assert rejected is not None
        assert rejected.state is S.REJECTED
        assert ours.unsettled == 1
        assert [intent.id for intent in ours.in_doubt()] == ["b"]
        assert not ours.can_move("a", S.SENDING)
        assert_counts_match(ours, await open_bounded(journal))


def check_lifecycle(events: list[dict[str, Any]]) -> None:
    """Every stored move is one the lifecycle allows from the state the events before it left."""
    states: dict[str, IntentState] = {}
    for event in events:
        if event["type"] == "garrison.intent.recorded":
            states.setdefault(event["id"], S.RECORDED)
            continue
        state = IntentState(event["state"])
        assert state in TRANSITIONS[states[event["id"]]], event
        states[event["id"]] = state


IDS = [f"i{k}" for k in range(4)]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["ours-record", "other-record"]), st.sampled_from(IDS)),
        st.tuples(
            st.sampled_from(["ours-move", "other-move"]),
            st.sampled_from(IDS),
            st.sampled_from(list(IntentState)),
        ),
        st.tuples(st.sampled_from(["refresh", "yield"])),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(steps=STEPS)
def test_refresh_interleaved_with_a_second_writer(
    tmp_path_factory: pytest.TempPathFactory, steps: list[Any]
) -> None:
    """Records, moves (ours queued, the other's awaited) and refreshes in any order: once
    everything is written, our counts are what the journal says, and the stream as stored
    only holds allowed moves."""
    path: Path = tmp_path_factory.mktemp("refresh") / "journal.db"
    asyncio.run(asyncio.wait_for(run_steps(path, steps), 60))


async def run_steps(path: Path, steps: list[Any]) -> None:
    async with SqliteJournal(path) as journal:
        ours = await open_bounded(journal)
        other = await open_bounded(journal)
        queued: list[asyncio.Future[Any]] = []
        for step in steps:
            kind = step[0]
            if kind == "ours-record":
                queued.append(ours.record_nowait(step[1], Order("X", 1)))
            elif kind == "ours-move":
                if ours.can_move(step[1], step[2]):
                    queued.append(ours.move_nowait(step[1], step[2]))
            elif kind == "other-record":
                await other.refresh()
                await other.record(step[1], Order("Y", 2))
            elif kind == "other-move":
                await other.refresh()
                if other.can_move(step[1], step[2]):
                    with contextlib.suppress(IntentTransitionError):  # ours landed first and forbade it
                        await other.move(step[1], step[2])
            elif kind == "refresh":
                await ours.refresh()
                # Queued or not, nothing counts below zero or above what is known.
                assert 0 <= ours.stats.in_doubt <= ours.unsettled <= len(IDS)
            else:
                await asyncio.sleep(0)
        for outcome in await asyncio.gather(*queued, return_exceptions=True):
            assert (
                outcome is None
                or not isinstance(outcome, BaseException)
                or isinstance(outcome, IntentTransitionError)
            ), outcome
        # Nothing of ours queued any more: the counts are those of the intents as ours knows them.
        assert ours.unsettled == len(ours.pending())
        assert {intent.id for intent in ours.in_doubt()} == {
            intent.id for intent in ours.pending() if intent.state in IN_DOUBT
        }
        assert ours.stats.in_doubt == len(ours.in_doubt())
        await ours.refresh()
        fresh = await open_bounded(journal)
        assert_counts_match(ours, fresh)
        for intent_id in IDS:
            for state in IntentState:
                assert ours.can_move(intent_id, state) == fresh.can_move(intent_id, state)
        assert ours.unsettled == sum(intent.state not in TERMINAL for intent in fresh.intents())
        check_lifecycle(await stored_events(journal))


async def test_an_intent_the_other_writer_settled_lets_a_waiting_record_in(
    make_journal: Callable[..., Any],
) -> None:
    async with make_journal() as journal:
        ours = await IntentLog(journal, STREAM, Order, clock=ManualClock(), max_unsettled=1).open()
        other = await open_bounded(journal)
        await ours.record("a", Order("A", 1))
        waiting = asyncio.ensure_future(ours.record("b", Order("B", 1), wait=60))
        await asyncio.sleep(0)
        assert not waiting.done()
        await other.refresh()
        await other.move("a", S.DONE)
        await ours.refresh()  # a settled: its slot goes to the record waiting in line
        recorded = await asyncio.wait_for(waiting, 10)
        assert recorded.id == "b"
        assert ours.unsettled == 1
        assert ours.stats.backlog_waits == 1
        assert ours.stats.backlog_refused == 0
