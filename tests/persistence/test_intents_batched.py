"""The intent log's batch calls: record_many_nowait, move_many_nowait, can_move.

A batch is the same writes as that many single calls, under one future and in one
journal append: pinned example by example, and as a property (batched == one by one,
live and after a replay). Every test runs on a real SQLite file.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison import InvalidConfig
from garrison._errors import EventDecodeError, JournalWriteError
from garrison.persistence import (
    IN_DOUBT,
    Intent,
    IntentLogBroken,
    IntentMoved,
    IntentRecorded,
    IntentState,
    IntentTransitionError,
    SqliteJournal,
)
from garrison.persistence._intent_log import MAX_EVENTS_PER_APPEND
from garrison.persistence._intent_model import TERMINAL

from ._intent_model import STREAM, Order, open_log, stored_events

S = IntentState

ALLOWED = {
    S.RECORDED: {S.SENDING, S.REJECTED, S.DONE, S.EXPIRED},
    S.SENDING: {S.SENDING, S.UNKNOWN, S.ACKED, S.REJECTED, S.DONE, S.EXPIRED},
    S.UNKNOWN: {S.SENDING, S.UNKNOWN, S.ACKED, S.REJECTED, S.DONE, S.EXPIRED},
    S.ACKED: {S.ACKED, S.DONE},
    S.REJECTED: set(),
    S.DONE: set(),
    S.EXPIRED: set(),
}


class CountingJournal:
    """A real journal that counts appends (and can fail the ``fail_on``-th)."""

    def __init__(self, inner: SqliteJournal, fail_on: int = 0) -> None:
        self.inner = inner
        self.fail_on = fail_on
        self.appends: list[int] = []

    async def append(self, stream: str, events: Any, expected_seq: int, *, acks: Any = ()) -> int:
        self.appends.append(len(events))
        if len(self.appends) == self.fail_on:
            raise JournalWriteError(stream, OSError("injected: the disk went away"))
        return await self.inner.append(stream, events, expected_seq, acks=acks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# -- record_many_nowait -------------------------------------------------------------------------


async def test_record_many_writes_one_append_and_resolves_to_the_intents_in_order(
    journal: SqliteJournal,
) -> None:
    counting = CountingJournal(journal)
    log = await open_log(counting)
    orders = [(f"o-{index}", Order("ACME", index)) for index in range(5)]

    intents = await log.record_many_nowait(orders)

    assert intents == [Intent(intent_id, order, S.RECORDED) for intent_id, order in orders]
    assert counting.appends == [5]
    assert [intent.id for intent in (await open_log(journal)).intents()] == [f"o-{i}" for i in range(5)]


async def test_record_many_is_idempotent_within_the_batch_and_across_calls(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    await log.record("known", Order("FIRST", 1))
    in_flight = log.record_nowait("queued", Order("QUEUED", 2))

    intents = await log.record_many_nowait(
        [
            ("known", Order("IGNORED", 9)),
            ("new", Order("NEW", 3)),
            ("queued", Order("IGNORED", 9)),
            ("new", Order("IGNORED", 9)),
        ]
    )

    assert [(intent.id, intent.payload.symbol) for intent in intents] == [
        ("known", "FIRST"),
        ("new", "NEW"),
        ("queued", "QUEUED"),
        ("new", "NEW"),
    ]
    assert (await in_flight).payload == Order("QUEUED", 2)
    assert [event["id"] for event in await stored_events(journal)] == ["known", "queued", "new"]


async def test_record_many_of_ids_only_in_flight_resolves_after_their_write(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    first = log.record_nowait("a", Order("A", 1))
    batch = log.record_many_nowait([("a", Order("A", 2))])
    assert not batch.done()
    assert await batch == [await first]
    assert await log.record_many_nowait([]) == []


async def test_record_many_with_one_bad_record_raises_and_queues_nothing(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    for bad in [[("ok", Order("A", 1)), ("", Order("A", 1))], [("ok", Order("A", 1)), ("x", "not an order")]]:
        with pytest.raises(InvalidConfig):
            log.record_many_nowait(bad)  # type: ignore[arg-type]
    assert "ok" not in log
    assert not log.can_move("ok", S.SENDING)
    await log.record("other", Order("B", 1))
    assert await journal.highest_seq(STREAM) == 1


# -- move_many_nowait ---------------------------------------------------------------------------


async def test_move_many_writes_one_append_checked_move_by_move_in_order(journal: SqliteJournal) -> None:
    counting = CountingJournal(journal)
    log = await open_log(counting)
    await log.record_many_nowait([("a", Order("A", 1)), ("b", Order("B", 1))])

    await log.move_many_nowait([("a", S.SENDING), ("b", S.SENDING, "out"), ("a", S.ACKED, "accepted")])

    assert counting.appends == [2, 3]
    assert log.get("a") == Intent("a", Order("A", 1), S.ACKED, "accepted", attempts=1)
    assert log.get("b") == Intent("b", Order("B", 1), S.SENDING, "out", attempts=1)
    assert (await open_log(journal)).intents() == log.intents()


@pytest.mark.parametrize(
    ("moves", "error"),
    [
        ([("a", S.SENDING), ("ghost", S.SENDING)], KeyError),
        ([("a", S.SENDING), ("b", S.ACKED)], IntentTransitionError),
        ([("a", S.SENDING), ("a", S.ACKED), ("a", S.SENDING)], IntentTransitionError),
        ([("a", S.SENDING), ("b", "sending")], InvalidConfig),
        ([("a", S.SENDING), ("b", S.SENDING, 7)], InvalidConfig),
    ],
    ids=[
        "unknown-id",
        "forbidden",
        "forbidden-after-an-earlier-move-in-the-batch",
        "bad-state",
        "bad-detail",
    ],
)
async def test_move_many_with_one_bad_move_raises_and_queues_none_of_them(
    journal: SqliteJournal, moves: list[Any], error: type[Exception]
) -> None:
    log = await open_log(journal)
    await log.record_many_nowait([("a", Order("A", 1)), ("b", Order("B", 1))])
    before = await journal.highest_seq(STREAM)

    with pytest.raises(error):
        log.move_many_nowait(moves)

    # The projection is as before: a and b are still RECORDED, so these moves are allowed.
    assert log.can_move("a", S.SENDING) and log.can_move("b", S.REJECTED)
    assert not log.can_move("a", S.ACKED)
    assert await journal.highest_seq(STREAM) == before
    await log.move_many_nowait([("a", S.SENDING), ("b", S.REJECTED, "refused")])
    assert [(intent.id, intent.state) for intent in log.intents()] == [("a", S.SENDING), ("b", S.REJECTED)]


async def test_can_move_sees_queued_writes(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    assert not log.can_move("a", S.SENDING)
    record = log.record_nowait("a", Order("A", 1))
    assert log.can_move("a", S.SENDING)  # the record is queued: a move after it keeps its place
    moved = log.move_many_nowait([("a", S.SENDING)])
    assert log.can_move("a", S.ACKED) and not log.can_move("a", S.RECORDED)
    await asyncio.gather(record, moved)
    log.move_nowait("a", S.DONE)
    assert not any(log.can_move("a", state) for state in IntentState)


async def test_an_empty_move_batch_resolves_at_once_and_writes_nothing(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    future = log.move_many_nowait([])
    assert future.done() and future.result() is None
    assert await journal.highest_seq(STREAM) == 0


async def test_batches_waiting_on_a_failed_append_see_the_log_broken(journal: SqliteJournal) -> None:
    failing = CountingJournal(journal, fail_on=2)
    log = await open_log(failing)
    await log.record_many_nowait([("a", Order("A", 1))])
    outcomes = await asyncio.gather(
        log.record_many_nowait([("b", Order("B", 1)), ("a", Order("A", 2))]),
        log.move_many_nowait([("a", S.SENDING), ("b", S.SENDING)]),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, IntentLogBroken) for outcome in outcomes), outcomes
    with pytest.raises(IntentLogBroken):
        log.move_many_nowait([("a", S.SENDING)])
    with pytest.raises(IntentLogBroken):
        log.record_many_nowait([("c", Order("C", 1))])
    await log.open()
    assert [(intent.id, intent.state) for intent in log.intents()] == [("a", S.RECORDED)]
    assert await log.record_many_nowait([("b", Order("B", 2))]) == [Intent("b", Order("B", 2), S.RECORDED)]


async def test_a_batch_another_writer_made_forbidden_fails_as_a_whole(journal: SqliteJournal) -> None:
    """Two writers on one stream (two processes sharing it): ours conflicts, re-reads the other's
    events, and a batch with a move they made illegal fails alone, writing nothing of it."""
    ours = await open_log(journal)
    await ours.record_many_nowait([("a", Order("A", 1)), ("b", Order("B", 1))])
    theirs = await open_log(journal)
    await theirs.move_many_nowait([("a", S.SENDING), ("a", S.ACKED), ("a", S.DONE)])

    doomed = ours.move_many_nowait([("b", S.SENDING), ("a", S.SENDING)])
    fine = ours.move_many_nowait([("b", S.REJECTED, "refused")])

    with pytest.raises(IntentTransitionError):
        await doomed
    await fine
    assert [(intent.id, intent.state) for intent in (await open_log(journal)).intents()] == [
        ("a", S.DONE),
        ("b", S.REJECTED),
    ]
    assert ours.intents() == (await open_log(journal)).intents()


async def test_a_large_queue_is_written_in_bounded_appends_and_a_batch_is_never_split(
    journal: SqliteJournal,
) -> None:
    counting = CountingJournal(journal)
    log = await open_log(counting)
    big = MAX_EVENTS_PER_APPEND + 10
    singles = [log.record_nowait(f"s-{index}", Order("S", index)) for index in range(3)]
    batch = log.record_many_nowait([(f"b-{index}", Order("B", index)) for index in range(big)])
    more = [log.record_nowait(f"t-{index}", Order("T", index)) for index in range(MAX_EVENTS_PER_APPEND)]
    await asyncio.gather(*singles, batch, *more)
    # The first append holds what fits beside the singles; the big batch goes whole, alone.
    assert counting.appends == [3, big, MAX_EVENTS_PER_APPEND]
    assert len(await open_log(journal)) == 3 + big + MAX_EVENTS_PER_APPEND


# -- the property: batched == one by one, live and after a replay --------------------------------

IDS = ["a", "b", "c", "d"]
Batch = tuple[str, list[Any]]
batches = st.lists(
    st.one_of(
        st.tuples(
            st.just("record"), st.lists(st.tuples(st.sampled_from(IDS), st.integers(0, 9)), max_size=4)
        ),
        st.tuples(
            st.just("move"),
            st.lists(
                st.tuples(st.sampled_from([*IDS, "ghost"]), st.sampled_from(list(IntentState))), max_size=5
            ),
        ),
        st.tuples(st.just("await"), st.just([])),
    ),
    max_size=12,
)


def valid_moves(states: dict[str, IntentState], moves: list[tuple[str, IntentState]]) -> bool:
    """Whether the model accepts every move in order (and if so, applies them to ``states``)."""
    trial = dict(states)
    for intent_id, state in moves:
        if intent_id not in trial or state not in ALLOWED[trial[intent_id]]:
            return False
        trial[intent_id] = state
    states.update(trial)
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=batches)
def test_batched_writes_equal_the_same_writes_one_by_one_live_and_after_a_replay(
    tmp_path_factory: pytest.TempPathFactory, steps: list[Batch]
) -> None:
    path = tmp_path_factory.mktemp("batched") / "journal.db"

    async def scenario() -> None:
        async with SqliteJournal(path, synchronous="NORMAL") as journal:
            batched = await open_log(journal, "batched")
            single = await open_log(journal, "single")
            model: dict[str, IntentState] = {}
            waiting: list[asyncio.Future[Any]] = []
            for kind, items in steps:
                if kind == "await":
                    await asyncio.gather(*waiting)
                    waiting = []
                elif kind == "record":
                    records = [(intent_id, Order(intent_id, quantity)) for intent_id, quantity in items]
                    waiting.append(batched.record_many_nowait(records))
                    waiting.extend(single.record_nowait(*record) for record in records)
                    for intent_id, _ in records:
                        model.setdefault(intent_id, S.RECORDED)
                elif valid_moves(model, items):
                    waiting.append(batched.move_many_nowait(items))
                    waiting.extend(single.move_nowait(intent_id, state) for intent_id, state in items)
                else:
                    with pytest.raises((KeyError, IntentTransitionError)):
                        batched.move_many_nowait(items)
                for intent_id in [*IDS, "ghost"]:
                    for state in IntentState:
                        assert batched.can_move(intent_id, state) == single.can_move(intent_id, state)
                for log in (batched, single):  # the bounds count what the queued writes leave
                    assert log.unsettled == sum(1 for state in model.values() if state not in TERMINAL)
                    assert log.stats.in_doubt == sum(1 for state in model.values() if state in IN_DOUBT)
            await asyncio.gather(*waiting)
            assert batched.intents() == single.intents()
            assert {intent.id: intent.state for intent in batched.intents()} == model
            assert await stored_events(journal, "batched") == await stored_events(journal, "single")
            reopened = await open_log(journal, "batched")
            assert reopened.intents() == batched.intents()
            assert reopened.unsettled == batched.unsettled
            in_doubt = [{intent.id for intent in log.in_doubt()} for log in (reopened, batched, single)]
            assert (
                in_doubt[0]
                == in_doubt[1]
                == in_doubt[2]
                == {intent_id for intent_id, state in model.items() if state in IN_DOUBT}
            )

    asyncio.run(scenario())


# -- replay --------------------------------------------------------------------------------------


async def opening_fails(journal: SqliteJournal, *stored: IntentRecorded | IntentMoved) -> EventDecodeError:
    """Store intent ``a`` recorded and SENDING, then ``stored``; return the error opening the log raises."""
    encode = msgspec.msgpack.encode
    first = [IntentRecorded("a", encode(Order("A", 1))), IntentMoved("a", S.SENDING)]
    await journal.append(STREAM, [encode(event) for event in (*first, *stored)], 0)
    with pytest.raises(EventDecodeError) as raised:
        await open_log(journal)
    return raised.value


async def test_a_stored_move_of_an_intent_never_recorded_names_its_stream_and_seq(
    journal: SqliteJournal,
) -> None:
    error = await opening_fails(journal, IntentMoved("ghost", S.SENDING))
    assert (error.stream, error.seq, error.problem) == (STREAM, 3, "inconsistent")
    assert "ghost" in str(error) and "before it was recorded" in str(error)


async def test_a_stored_record_whose_payload_does_not_decode_names_its_own_seq(
    journal: SqliteJournal,
) -> None:
    encode = msgspec.msgpack.encode
    error = await opening_fails(
        journal, IntentRecorded("b", encode({"not": "an order"})), IntentMoved("b", S.SENDING)
    )
    assert (error.stream, error.seq) == (STREAM, 3)


async def test_a_replay_equals_the_live_log_across_many_read_batches(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    ids = [f"o-{index}" for index in range(3000)]
    await log.record_many_nowait([(intent_id, Order("A", index)) for index, intent_id in enumerate(ids)])
    await log.move_many_nowait([(intent_id, S.SENDING) for intent_id in ids[::2]])
    await log.move_many_nowait([(intent_id, S.UNKNOWN, "timeout") for intent_id in ids[::4]])
    await log.move_many_nowait([(intent_id, S.SENDING) for intent_id in ids[::4]])
    await log.move_many_nowait([(intent_id, S.DONE) for intent_id in ids[1::2]])
    replayed = await open_log(journal)
    assert replayed.intents() == log.intents()
    assert replayed.get("o-0") == Intent("o-0", Order("A", 0), S.SENDING, attempts=2)
    assert len(replayed.pending()) == 1500
