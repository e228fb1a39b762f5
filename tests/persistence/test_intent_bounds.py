"""Bounded progress in the intent log (#24): order expiry, a bounded backlog, a bounded send window.

What is pinned: every intent carries its creation time (the log's clock) and time-to-live,
through replay and compaction, on every backend; EXPIRED is terminal and reachable only from
RECORDED, SENDING and UNKNOWN; ``expired(now)`` lists what may still expire; records beyond
``max_unsettled`` and moves into the dead zone beyond ``send_window`` are refused with a named
error or wait in line, woken in order; the counts are rebuilt from the journal on open; a
journal written before these fields existed still opens.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from garrison import InvalidConfig, ManualClock
from garrison.cli import main
from garrison.persistence import (
    EXPIRES_AFTER_LOOKUP,
    IN_DOUBT,
    IntentBacklogFull,
    IntentLog,
    IntentLogBroken,
    IntentState,
    IntentTransitionError,
    SendWindowFull,
    SqliteJournal,
)

from ._intent_model import STREAM, Order, stored_events
from ._model import FaultyJournal

S = IntentState
MakeJournal = Callable[..., Any]
FIXTURE = Path(__file__).parent / "fixtures" / "intents_v1.db"


def order(n: int) -> Order:
    return Order(f"SYM{n % 7}", n + 1)


async def bounded_log(journal: Any, clock: ManualClock | None = None, **options: Any) -> IntentLog[Order]:
    return await IntentLog(journal, STREAM, Order, clock=clock, **options).open()


def states(log: IntentLog[Order]) -> list[tuple[str, IntentState, float | None, float | None]]:
    return [(intent.id, intent.state, intent.created, intent.ttl) for intent in log.intents()]


# -- expiry ----------------------------------------------------------------------------------------


async def test_an_intent_carries_its_creation_time_and_ttl_and_expired_lists_it_once_due(
    journal: SqliteJournal,
) -> None:
    clock = ManualClock(start=1000.0)
    log = await bounded_log(journal, clock, default_ttl=5.0)
    first = await log.record("o-1", order(1))
    await clock.advance(2)
    second = await log.record("o-2", order(2), ttl=30.0)
    assert (first.created, first.ttl, first.expires_at) == (1000.0, 5.0, 1005.0)
    assert (second.created, second.ttl, second.expires_at) == (1002.0, 30.0, 1032.0)

    assert log.expired(1004.9) == []
    assert [intent.id for intent in log.expired(1005.0)] == ["o-1"]
    assert [intent.id for intent in log.expired(1032.0)] == ["o-1", "o-2"]
    assert first.expired_at(1005.0) and not second.expired_at(1005.0)


async def test_expired_lists_what_may_still_expire_and_expiry_is_terminal(journal: SqliteJournal) -> None:
    clock = ManualClock()
    log = await bounded_log(journal, clock, default_ttl=1.0)
    for n in range(5):
        await log.record(f"o-{n}", order(n))
    await log.move("o-1", S.SENDING)
    await log.move("o-2", S.SENDING)
    await log.move("o-2", S.UNKNOWN, "timeout")
    await log.move("o-3", S.SENDING)
    await log.move("o-3", S.ACKED)  # the venue has it: followed, never expired
    log.move_nowait("o-4", S.REJECTED)  # queued, not durable yet: no longer a candidate

    assert [intent.id for intent in log.expired(1.0)] == ["o-0", "o-1", "o-2"]

    await log.move("o-0", S.EXPIRED, "not sent before its ttl")
    await log.move("o-2", S.EXPIRED, "looked up: absent at the venue")
    assert [intent.id for intent in log.expired(1.0)] == ["o-1"]
    expired = log.get("o-0")
    assert expired is not None and expired.terminal and expired.state is S.EXPIRED
    assert not expired.may_have_happened
    with pytest.raises(IntentTransitionError):
        await log.move("o-0", S.SENDING)
    with pytest.raises(IntentTransitionError):
        await log.move("o-3", S.EXPIRED)
    assert log.stats.expired == 2
    assert EXPIRES_AFTER_LOOKUP == IN_DOUBT == {S.SENDING, S.UNKNOWN}


async def test_an_intent_without_a_ttl_never_expires(journal: SqliteJournal) -> None:
    clock = ManualClock()
    log = await bounded_log(journal, clock)
    intent = await log.record("o-1", order(1))
    assert (intent.created, intent.ttl, intent.expires_at) == (0.0, None, None)
    assert log.expired(1e12) == []


async def test_expiry_and_creation_time_survive_replay_and_compaction(make_journal: MakeJournal) -> None:
    clock = ManualClock(start=50.0)
    async with make_journal() as journal:
        log = await bounded_log(journal, clock, default_ttl=10.0, compact_every=None)
        for n in range(6):
            await log.record(f"o-{n}", order(n), ttl=float(n + 1))
            await clock.advance(1)
        await log.move("o-0", S.EXPIRED, "never sent")
        await log.move("o-1", S.SENDING)
        await log.move("o-1", S.UNKNOWN)
        await log.move("o-1", S.EXPIRED, "absent at the venue")
        await log.move("o-2", S.SENDING)
        before = states(log)
        assert [row[1] for row in before] == [
            S.EXPIRED,
            S.EXPIRED,
            S.SENDING,
            S.RECORDED,
            S.RECORDED,
            S.RECORDED,
        ]

        assert states(await bounded_log(journal, clock)) == before  # from the events

        await log.compact()
        await log.record("o-6", order(6))  # after the snapshot
        after = states(await bounded_log(journal, clock))  # from the snapshot, its window and events
        assert after == [*before, ("o-6", S.RECORDED, 56.0, 10.0)]
        reopened = await bounded_log(journal, clock)
        assert reopened.get("o-0") == log.get("o-0")
        assert [intent.id for intent in reopened.expired(59.0)] == ["o-2", "o-3", "o-4"]


async def test_ttl_and_bounds_are_checked(journal: SqliteJournal) -> None:
    clock = ManualClock()
    for field, options in [
        ("max_unsettled", {"max_unsettled": 0}),
        ("send_window", {"send_window": -1}),
        ("default_ttl", {"default_ttl": 0.0, "clock": clock}),
        ("default_ttl", {"default_ttl": 5.0}),  # no clock to expire by
        ("clock", {"clock": 12.0}),
    ]:
        with pytest.raises(InvalidConfig) as raised:
            IntentLog(journal, STREAM, Order, **options)
        assert raised.value.field == field

    log = await bounded_log(journal, clock)
    for ttl in (0.0, -1.0, float("inf"), "5"):
        with pytest.raises(InvalidConfig) as raised:
            log.record_nowait("o-1", order(1), ttl=ttl)  # type: ignore[arg-type]
        assert raised.value.field == "ttl"
    with pytest.raises(InvalidConfig) as raised:
        await (await bounded_log(journal)).record("o-1", order(1), ttl=5.0)
    assert raised.value.field == "ttl" and "clock" in str(raised.value)
    with pytest.raises(InvalidConfig) as raised:
        await log.record("o-1", order(1), wait=-1.0)
    assert raised.value.field == "wait"
    assert len(log) == 0


# -- the backlog -------------------------------------------------------------------------------------


async def test_a_record_beyond_max_unsettled_is_refused_with_the_count_and_the_bound(
    journal: SqliteJournal,
) -> None:
    log = await bounded_log(journal, max_unsettled=2)
    await log.record("o-1", order(1))
    log.record_nowait("o-2", order(2))
    with pytest.raises(IntentBacklogFull) as raised:
        log.record_nowait("o-3", order(3))
    assert (raised.value.stream, raised.value.count, raised.value.bound) == (STREAM, 2, 2)
    assert "max_unsettled=2" in str(raised.value)
    with pytest.raises(IntentBacklogFull):
        await log.record("o-3", order(3))
    with pytest.raises(IntentBacklogFull):
        log.record_many_nowait([("o-1", order(1)), ("o-3", order(3))])  # o-1 is known; o-3 needs room
    assert (await log.record("o-2", order(2))).id == "o-2"  # a known id never needs room
    assert "o-3" not in log and log.unsettled == 2

    await log.move("o-1", S.REJECTED)
    assert log.unsettled == 1
    assert (await log.record("o-3", order(3))).state is S.RECORDED
    stats = log.stats
    assert (stats.unsettled, stats.max_unsettled, stats.backlog_refused, stats.backlog_waits) == (2, 2, 3, 0)


async def test_waiting_records_get_room_in_the_order_they_came(journal: SqliteJournal) -> None:
    clock = ManualClock()
    log = await bounded_log(journal, clock, max_unsettled=1)
    await log.record("first", order(0))
    recorded: list[str] = []

    async def record(intent_id: str) -> None:
        await log.record(intent_id, order(1), wait=60.0)
        recorded.append(intent_id)

    waiters = [asyncio.create_task(record(f"w-{n}")) for n in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(IntentBacklogFull):
        log.record_nowait("late", order(9))  # never ahead of those waiting
    settled = "first"
    for n in range(3):
        await log.move(settled, S.DONE)
        await asyncio.wait_for(asyncio.shield(waiters[n]), timeout=10)
        assert recorded == [f"w-{k}" for k in range(n + 1)]
        assert log.unsettled == 1
        settled = f"w-{n}"
    assert log.stats.backlog_waits == 3


async def test_a_record_that_waits_in_vain_is_refused_when_its_wait_runs_out(journal: SqliteJournal) -> None:
    clock = ManualClock()
    log = await bounded_log(journal, clock, max_unsettled=1)
    await log.record("o-1", order(1))
    waiting = asyncio.create_task(log.record("o-2", order(2), wait=5.0))
    await clock.advance(4.9)
    assert not waiting.done()
    await clock.advance(0.1)
    with pytest.raises(IntentBacklogFull):
        await asyncio.wait_for(waiting, timeout=10)
    assert log.stats.backlog_refused == 1 and "o-2" not in log
    # Its place in line is gone: room that frees later goes to the next caller.
    await log.move("o-1", S.DONE)
    assert (await log.record("o-3", order(3))).id == "o-3"


async def test_a_cancelled_waiter_gives_its_room_to_the_next(journal: SqliteJournal) -> None:
    clock = ManualClock()
    log = await bounded_log(journal, clock, max_unsettled=1)
    await log.record("o-1", order(1))
    cancelled = asyncio.create_task(log.record("o-2", order(2), wait=60.0))
    patient = asyncio.create_task(log.record("o-3", order(3), wait=60.0))
    await asyncio.sleep(0)
    cancelled.cancel()
    await log.move("o-1", S.DONE)
    assert (await asyncio.wait_for(patient, timeout=10)).id == "o-3"
    assert "o-2" not in log and log.unsettled == 1


async def test_a_batch_of_records_is_all_or_nothing_under_the_bound(journal: SqliteJournal) -> None:
    log = await bounded_log(journal, max_unsettled=3)
    await log.record_many_nowait([("a", order(1)), ("b", order(2))])
    with pytest.raises(IntentBacklogFull) as raised:
        log.record_many_nowait([("c", order(3)), ("d", order(4))])
    assert raised.value.count == 2
    assert "c" not in log and log.can_move("c", S.SENDING) is False
    await log.move_many_nowait([("a", S.SENDING), ("a", S.DONE), ("b", S.EXPIRED)])
    assert log.unsettled == 0
    assert [i.id for i in await log.record_many_nowait([("c", order(3)), ("d", order(4))])] == ["c", "d"]
    assert log.unsettled == 2


# -- the send window ---------------------------------------------------------------------------------


async def test_moves_into_the_dead_zone_beyond_the_send_window_are_refused(journal: SqliteJournal) -> None:
    clock = ManualClock()
    log = await bounded_log(journal, clock, send_window=2)
    for n in range(4):
        await log.record(f"o-{n}", order(n))
    await log.move("o-0", S.SENDING)
    await clock.advance(3)
    await log.move("o-1", S.SENDING)
    with pytest.raises(SendWindowFull) as raised:
        log.move_nowait("o-2", S.SENDING)
    assert (raised.value.stream, raised.value.count, raised.value.bound) == (STREAM, 2, 2)
    assert log.can_move("o-2", S.SENDING)  # the lifecycle allows it; the window does not, yet
    await log.move("o-0", S.UNKNOWN, "timeout")  # still in doubt: no new room needed
    await log.move("o-0", S.SENDING)  # attempt again
    assert [intent.id for intent in log.in_doubt()] == ["o-0", "o-1"]
    assert log.oldest_in_doubt_age(10.0) == 10.0  # o-0 was recorded at 0

    await log.move("o-1", S.ACKED)
    await log.move("o-2", S.SENDING)
    assert [intent.id for intent in log.in_doubt()] == ["o-0", "o-2"]
    await log.move("o-0", S.EXPIRED, "absent at the venue")
    await log.move("o-2", S.REJECTED)
    assert log.in_doubt() == [] and log.oldest_in_doubt_age(10.0) is None
    assert (log.stats.in_doubt, log.stats.send_window, log.stats.window_refused) == (0, 2, 1)


async def test_a_move_waits_in_line_for_the_send_window(journal: SqliteJournal) -> None:
    clock = ManualClock()
    log = await bounded_log(journal, clock, send_window=1)
    for n in range(3):
        await log.record(f"o-{n}", order(n))
    await log.move("o-0", S.SENDING)
    await log.record("done", order(9))
    await log.move("done", S.DONE)
    with pytest.raises(IntentTransitionError):
        await log.move("done", S.SENDING, wait=30.0)  # refused before any wait
    with pytest.raises(KeyError):
        await log.move("ghost", S.SENDING, wait=30.0)
    second = asyncio.create_task(log.move("o-1", S.SENDING, wait=30.0))
    third = asyncio.create_task(log.move("o-2", S.SENDING, wait=30.0))
    await asyncio.sleep(0)
    assert not second.done()
    await log.move("o-0", S.ACKED)
    assert (await asyncio.wait_for(second, timeout=10)).state is S.SENDING
    assert not third.done()
    await clock.advance(30)
    with pytest.raises(SendWindowFull):
        await asyncio.wait_for(third, timeout=10)
    assert (log.stats.window_waits, log.stats.window_refused) == (2, 1)
    assert [intent.id for intent in log.in_doubt()] == ["o-1"]


async def test_a_batch_of_moves_counts_where_it_leaves_each_intent(journal: SqliteJournal) -> None:
    log = await bounded_log(journal, send_window=2, max_unsettled=10)
    await log.record_many_nowait([(f"o-{n}", order(n)) for n in range(4)])
    await log.move_many_nowait([("o-0", S.SENDING), ("o-0", S.ACKED), ("o-1", S.SENDING), ("o-2", S.SENDING)])
    assert [intent.id for intent in log.in_doubt()] == ["o-1", "o-2"]
    with pytest.raises(SendWindowFull):
        log.move_many_nowait([("o-0", S.DONE), ("o-3", S.SENDING)])  # 3 in doubt at the end
    with pytest.raises(SendWindowFull):
        log.move_many_nowait([("o-3", S.SENDING)])
    assert log.can_move("o-0", S.DONE) and log.stats.in_doubt == 2  # nothing of the batches counted
    await log.move_many_nowait([("o-1", S.DONE), ("o-3", S.SENDING), ("o-3", S.UNKNOWN)])
    assert [intent.id for intent in log.in_doubt()] == ["o-2", "o-3"]
    assert log.unsettled == 3


async def test_the_counts_are_rebuilt_from_the_journal_on_open(make_journal: MakeJournal) -> None:
    clock = ManualClock(start=100.0)
    async with make_journal() as journal:
        log = await bounded_log(journal, clock, max_unsettled=5, send_window=2, compact_every=None)
        for n in range(5):
            await log.record(f"o-{n}", order(n))
            await clock.advance(1)
        await log.move("o-0", S.SENDING)
        await log.move("o-1", S.SENDING)
        await log.move("o-1", S.UNKNOWN)
        await log.move("o-2", S.DONE)
        await log.compact()
        await log.move("o-3", S.EXPIRED)

        reopened = await bounded_log(journal, clock, max_unsettled=3, send_window=2)
        assert reopened.unsettled == 2 + 0 + 1  # o-0, o-1 in doubt; o-4 recorded
        assert [intent.id for intent in reopened.in_doubt()] == ["o-0", "o-1"]
        assert reopened.oldest_in_doubt_age(110.0) == 10.0
        with pytest.raises(IntentBacklogFull):
            reopened.record_nowait("o-5", order(5))
        with pytest.raises(SendWindowFull):
            reopened.move_nowait("o-4", S.SENDING)


# -- an old journal ---------------------------------------------------------------------------------


class OldOrder(msgspec.Struct, frozen=True):
    """The payload type the fixture was written with (see fixtures/make_intents_v1_journal.py)."""

    symbol: str
    qty: int


async def test_a_journal_written_before_expiry_still_opens_and_its_intents_never_expire(
    tmp_path: Path,
) -> None:
    path = tmp_path / "intents_v1.db"
    shutil.copy(FIXTURE, path)
    clock = ManualClock(start=10.0)
    async with SqliteJournal(path) as journal:
        log = await IntentLog(journal, STREAM, OldOrder, clock=clock, default_ttl=1.0, send_window=3).open()
        assert [(i.id, i.state, i.created, i.ttl) for i in log.intents()] == [
            ("o-1", S.DONE, None, None),
            ("o-2", S.REJECTED, None, None),
            ("o-3", S.ACKED, None, None),
            ("o-4", S.UNKNOWN, None, None),
            ("o-5", S.SENDING, None, None),
            ("o-6", S.RECORDED, None, None),
            ("o-7", S.RECORDED, None, None),
        ]
        assert log.get("o-6") == log.get("o-6") and log.get("o-6").payload == OldOrder("ACME", 6)  # type: ignore[union-attr]
        assert log.expired(1e9) == []
        assert [intent.id for intent in log.in_doubt()] == ["o-4", "o-5"]
        assert log.oldest_in_doubt_age(100.0) is None  # recorded before intents carried the time
        new = await log.record("o-8", OldOrder("ACME", 8))
        await log.move("o-6", S.EXPIRED)
        await log.compact()
        reopened = await IntentLog(journal, STREAM, OldOrder, clock=clock).open()
        assert reopened.intents() == log.intents()
        assert [intent.id for intent in reopened.expired(11.0)] == ["o-8"] == [new.id]


def test_the_journal_cli_counts_expired_intents_as_settled(
    journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def write() -> None:
        async with SqliteJournal(journal_path) as journal:
            log = await bounded_log(journal, ManualClock(), default_ttl=1.0)
            await log.record_many_nowait([(f"o-{n}", order(n)) for n in range(3)])
            await log.move("o-0", S.EXPIRED)

    asyncio.run(write())
    capsys.readouterr()
    assert main(["journal", "list", str(journal_path), "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["intents_open"], row["intents_settled"], row["intents_expired"]) == (2, 1, 1)
    assert main(["journal", "list", str(journal_path)]) == 0
    assert "2 open / 1 settled (1 expired)" in capsys.readouterr().out


async def test_a_broken_log_tells_its_waiters_at_once(journal: SqliteJournal) -> None:
    faulty = FaultyJournal(journal)
    clock = ManualClock()
    log = await IntentLog(faulty, STREAM, Order, clock=clock, max_unsettled=1, send_window=1).open()
    await log.record("o-1", order(1))
    await log.move("o-1", S.SENDING)
    record_waiter = asyncio.create_task(log.record("o-2", order(2), wait=600.0))
    await asyncio.sleep(0)
    assert not record_waiter.done()
    faulty.fail_append_before = True
    with pytest.raises(IntentLogBroken):
        await log.move("o-1", S.UNKNOWN)
    with pytest.raises(IntentLogBroken):
        await asyncio.wait_for(record_waiter, timeout=10)  # not after 600 s of node clock

    faulty.fail_append_before = False
    await log.open()
    assert (log.unsettled, log.stats.in_doubt) == (1, 1)
    assert "o-2" not in log
    assert [intent.id for intent in log.in_doubt()] == ["o-1"]


async def test_a_record_without_expiry_is_stored_as_before(journal: SqliteJournal) -> None:
    log = await bounded_log(journal)
    await log.record("o-1", order(1))
    clocked = await IntentLog(journal, "clocked", Order, clock=ManualClock(start=7.0)).open()
    await clocked.record("o-1", order(1), ttl=2.5)
    (plain,) = await stored_events(journal)
    (stamped,) = await stored_events(journal, "clocked")
    assert set(plain) == {"type", "id", "payload"}  # as garrison stored records before #24
    assert (stamped["created"], stamped["ttl"]) == (7.0, 2.5)


async def test_a_record_that_waited_for_room_is_as_old_as_the_call(journal: SqliteJournal) -> None:
    clock = ManualClock(start=100.0)
    log = await bounded_log(journal, clock, max_unsettled=1, default_ttl=10.0)
    await log.record("o-1", order(1))
    with pytest.raises(InvalidConfig):
        await log.record("o-2", order(2), ttl=-1.0, wait=60.0)  # refused before any wait
    waiting = asyncio.create_task(log.record("o-2", order(2), wait=60.0))
    await clock.advance(4)
    await log.move("o-1", S.DONE)
    recorded = await asyncio.wait_for(waiting, timeout=10)
    assert (recorded.created, recorded.expires_at) == (100.0, 110.0)  # its wait counts against its ttl
