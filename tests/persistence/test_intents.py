"""The intent log: deterministic ids, idempotent records, the lifecycle, crashes, broken writes.

Every test runs on a real SQLite file; the crash test SIGKILLs a real process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison import InvalidConfig
from garrison._errors import EventDecodeError, JournalClosed, JournalWriteError
from garrison.persistence import (
    Ack,
    Intent,
    IntentLog,
    IntentLogBroken,
    IntentState,
    IntentTransitionError,
    SqliteJournal,
    client_order_id,
    deterministic_id,
)
from garrison.testing import ChildProcess

from ._intent_model import STREAM, Order, open_log, stored_events

WORKER = str(Path(__file__).with_name("_intent_worker.py"))
VENUE_ID = re.compile(r"^[A-Za-z0-9_-]*$")
S = IntentState


class Cancel(msgspec.Struct, frozen=True):
    order_id: str


def recorded_ids(events: Sequence[dict[str, Any]]) -> list[str]:
    return [event["id"] for event in events if event["type"] == "garrison.intent.recorded"]


# -- deterministic ids --------------------------------------------------------------


def test_deterministic_id_is_pinned_across_releases() -> None:
    # Ids are stored and sent to brokers: changing the derivation would orphan
    # every intent recorded by an earlier version. These values must never change.
    assert deterministic_id("momentum-1", 42) == "R3GwRKXlWESy1eYK_Kz6DyNldIuUI3P9"
    assert (
        client_order_id("momentum-1", 42, length=36, prefix="GAR-") == "GAR-R3GwRKXlWESy1eYK_Kz6DyNldIuUI3P9"
    )
    assert deterministic_id("x", length=8) == "cxdVxgaU"


async def test_deterministic_ids_are_the_same_in_another_process() -> None:
    specs = [
        [["momentum-1", 42], 32, ""],
        [["momentum-1", 43], 36, "GAR-"],
        [["ünïcode-strat", -7, 2**63], 20, "x_"],
        [[0], 8, ""],
    ]
    async with await ChildProcess.start(sys.executable, WORKER, "ids", json.dumps(specs)) as child:
        line = await child.wait_for_output(re.compile(r"^\["), timeout=20)
        assert await child.wait(timeout=20) == 0
    assert json.loads(line) == [
        deterministic_id(*parts, length=length, prefix=prefix) for parts, length, prefix in specs
    ]


def test_every_allowed_length_and_prefix_fits_venue_limits() -> None:
    for length in range(8, 37):
        for prefix_length in range(length - 7):
            prefix = "P-_9"[prefix_length % 4] * prefix_length
            identifier = deterministic_id("strategy", 7, length=length, prefix=prefix)
            assert len(identifier) == length <= 36
            assert identifier.startswith(prefix)
            assert VENUE_ID.match(identifier), identifier


def test_client_order_id_is_the_deterministic_id_of_strategy_and_signal() -> None:
    assert client_order_id("s", 1) == deterministic_id("s", 1)
    assert client_order_id("s", 1, length=20, prefix="A") == deterministic_id("s", 1, length=20, prefix="A")


def test_ids_distinguish_types_order_and_grouping_of_parts() -> None:
    variants = [("a", 1), ("a", "1"), ("a1",), (1, "a"), ("a", 1, 0), ("a", 10), ("", "a", 1)]
    ids = [deterministic_id(*parts) for parts in variants]
    assert len(set(ids)) == len(ids)


def test_no_collisions_among_many_ids_at_the_shortest_length() -> None:
    # 48 bits of digest: 100k ids collide with probability ~ n^2 / 2^49 ≈ 2e-5 (see the docstring).
    ids = {deterministic_id("strategy", seq, length=8) for seq in range(100_000)}
    assert len(ids) == 100_000


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"length": 7}, "length"),
        ({"length": 37}, "length"),
        ({"length": True}, "length"),
        ({"length": 32.0}, "length"),
        ({"length": "32"}, "length"),
        ({"prefix": "has space"}, "prefix"),
        ({"prefix": "dot."}, "prefix"),
        ({"prefix": "é"}, "prefix"),
        ({"prefix": "x" * 25}, "prefix"),  # 32 - 25 = 7 characters of digest: too few
        ({"prefix": "x" * 8, "length": 15}, "prefix"),
        ({"prefix": None}, "prefix"),
    ],
)
def test_bad_length_or_prefix_raises_invalid_config_naming_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidConfig) as raised:
        deterministic_id("s", 1, **kwargs)
    assert raised.value.field == field
    assert field in str(raised.value)


def test_the_longest_allowed_prefix_leaves_eight_characters_of_digest() -> None:
    assert deterministic_id("s", 1, prefix="x" * 24) == "x" * 24 + deterministic_id("s", 1, length=8)


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ((), "parts"),
        (("s", 1.5), "parts[1]"),
        ((True,), "parts[0]"),
        (("s", b"bytes"), "parts[1]"),
        ((None,), "parts[0]"),
        (("s", 2**64), "parts[1]"),
        ((-(2**63) - 1,), "parts[0]"),
        (("lone \ud800 surrogate",), "parts[0]"),
    ],
)
def test_bad_parts_raise_invalid_config_naming_the_part(parts: tuple[Any, ...], field: str) -> None:
    with pytest.raises(InvalidConfig) as raised:
        deterministic_id(*parts)
    assert raised.value.field == field


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.one_of(st.text(), st.integers(-(2**63), 2**64 - 1)), min_size=1, max_size=4),
    length=st.integers(8, 36),
    data=st.data(),
)
def test_every_id_is_length_characters_of_the_venue_alphabet(
    parts: list[str | int], length: int, data: st.DataObject
) -> None:
    prefix = data.draw(st.from_regex(rf"\A[A-Za-z0-9_-]{{0,{length - 8}}}\Z"), label="prefix")
    identifier = deterministic_id(*parts, length=length, prefix=prefix)
    assert re.fullmatch(rf"[A-Za-z0-9_-]{{{length}}}", identifier)
    assert identifier.startswith(prefix)
    assert identifier == deterministic_id(*parts, length=length, prefix=prefix)


# -- record: idempotence ------------------------------------------------------------------


async def test_a_second_record_of_the_same_id_returns_the_first_and_writes_nothing(
    journal: SqliteJournal,
) -> None:
    log = await open_log(journal)
    first = await log.record("o-1", Order("ACME", 10))
    assert first == Intent("o-1", Order("ACME", 10), S.RECORDED)
    assert await journal.highest_seq(STREAM) == 1

    again = await log.record("o-1", Order("OTHER", 99))

    assert again == first
    assert await journal.highest_seq(STREAM) == 1
    reopened = await open_log(journal)
    assert reopened.intents() == [first]


async def test_a_duplicate_after_a_restart_writes_nothing(journal: SqliteJournal) -> None:
    await (await open_log(journal)).record("o-1", Order("ACME", 10))
    restarted = await open_log(journal)
    assert (await restarted.record("o-1", Order("OTHER", 1))).payload == Order("ACME", 10)
    assert await journal.highest_seq(STREAM) == 1


async def test_concurrent_duplicates_share_one_write_and_all_return_the_first(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    results = await asyncio.gather(*(log.record("o-1", Order("ACME", quantity)) for quantity in range(20)))
    assert {result.payload for result in results} == {Order("ACME", 0)}
    assert await journal.highest_seq(STREAM) == 1
    assert recorded_ids(await stored_events(journal)) == ["o-1"]


async def test_concurrent_records_of_distinct_ids_are_folded_into_few_appends(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    appends_before = journal.appends
    await asyncio.gather(*(log.record(f"o-{index}", Order("ACME", index)) for index in range(50)))
    assert journal.appends - appends_before <= 2
    assert recorded_ids(await stored_events(journal)) == [f"o-{index}" for index in range(50)]


async def test_a_cancelled_record_still_completes_and_can_be_moved(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    task = asyncio.ensure_future(log.record("o-1", Order("ACME", 1)))
    await asyncio.sleep(0)  # let it queue its write
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    duplicate = await log.record("o-1", Order("OTHER", 2))  # shares the write still in flight
    moved = await log.move("o-1", S.SENDING)

    assert duplicate.payload == Order("ACME", 1)
    assert moved.state is S.SENDING
    assert recorded_ids(await stored_events(journal)) == ["o-1"]


async def test_a_payload_of_the_wrong_type_is_refused_before_anything_is_written(
    journal: SqliteJournal,
) -> None:
    log = await open_log(journal)
    with pytest.raises(InvalidConfig) as raised:
        await log.record("o-1", {"symbol": "ACME"})  # type: ignore[arg-type]
    assert raised.value.field == "payload"
    with pytest.raises(InvalidConfig):
        await log.record("o-2", object())  # type: ignore[arg-type]
    assert await journal.highest_seq(STREAM) == 0
    assert (await log.record("o-1", Order("ACME", 1))).state is S.RECORDED  # the log is still usable


async def test_bad_ids_and_an_unopened_log_raise_invalid_config(journal: SqliteJournal) -> None:
    unopened = IntentLog(journal, STREAM, Order)
    with pytest.raises(InvalidConfig, match="open it first"):
        await unopened.record("o-1", Order("ACME", 1))
    with pytest.raises(InvalidConfig, match="open it first"):
        unopened.pending()
    log = await open_log(journal)
    for bad in ("", None, 7):
        with pytest.raises(InvalidConfig) as raised:
            await log.record(bad, Order("ACME", 1))  # type: ignore[arg-type]
        assert raised.value.field == "intent_id"
    with pytest.raises(InvalidConfig) as raised:
        IntentLog(journal, "", Order)
    assert raised.value.field == "stream"
    assert await journal.highest_seq(STREAM) == 0


Record = tuple[str, int, int]  # intent id, payload quantity, yields before calling record
records = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 9), st.integers(0, 4)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(groups=st.lists(records, min_size=1, max_size=4))
def test_record_is_idempotent_under_any_interleaving_of_duplicates(
    tmp_path_factory: pytest.TempPathFactory, groups: list[list[Record]]
) -> None:
    path = tmp_path_factory.mktemp("interleaving") / "journal.db"

    async def scenario() -> None:
        async with SqliteJournal(path, synchronous="NORMAL") as journal:
            log = await open_log(journal)
            winners: dict[str, Order] = {}
            for group in groups:

                async def issue(intent_id: str, quantity: int, yields: int) -> Intent[Order]:
                    for _ in range(yields):
                        await asyncio.sleep(0)
                    return await log.record(intent_id, Order(intent_id, quantity))

                results = await asyncio.gather(*(issue(*op) for op in group))
                # Calls start in order of (yields, position): the earliest call of an id wins.
                for (intent_id, quantity, _), _position in sorted(
                    zip(group, itertools.count(), strict=False), key=lambda item: (item[0][2], item[1])
                ):
                    winners.setdefault(intent_id, Order(intent_id, quantity))
                for (intent_id, _, _), result in zip(group, results, strict=True):
                    assert result == Intent(intent_id, winners[intent_id], S.RECORDED)

            events = await stored_events(journal)
            assert Counter(recorded_ids(events)) == Counter(set(winners))
            assert len(events) == len(winners)
            reopened = await open_log(journal)
            assert reopened.intents() == log.intents()
            assert {intent.id: intent.payload for intent in reopened.intents()} == winners

    asyncio.run(scenario())


async def test_open_refuses_to_read_back_while_writes_are_in_flight(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    in_flight = asyncio.ensure_future(log.record("o-1", Order("ACME", 1)))
    await asyncio.sleep(0)  # the record is queued, its append not yet confirmed
    with pytest.raises(InvalidConfig, match="in flight"):
        await log.open()
    assert (await in_flight).state is S.RECORDED
    await log.open()
    assert [intent.id for intent in log.intents()] == ["o-1"]


# -- the lifecycle -----------------------------------------------------------------------------

ALLOWED = {
    S.RECORDED: {S.SENDING, S.REJECTED, S.DONE, S.EXPIRED},
    S.SENDING: {S.SENDING, S.UNKNOWN, S.ACKED, S.REJECTED, S.DONE, S.EXPIRED},
    S.UNKNOWN: {S.SENDING, S.UNKNOWN, S.ACKED, S.REJECTED, S.DONE, S.EXPIRED},
    S.ACKED: {S.ACKED, S.DONE},
    S.REJECTED: set(),
    S.DONE: set(),
    S.EXPIRED: set(),
}
PATH_TO = {
    S.RECORDED: [],
    S.SENDING: [S.SENDING],
    S.UNKNOWN: [S.SENDING, S.UNKNOWN],
    S.ACKED: [S.SENDING, S.ACKED],
    S.REJECTED: [S.SENDING, S.REJECTED],
    S.DONE: [S.SENDING, S.ACKED, S.DONE],
    S.EXPIRED: [S.EXPIRED],
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(IntentState, IntentState)))
async def test_transitions_follow_the_lifecycle(
    journal: SqliteJournal, current: IntentState, target: IntentState
) -> None:
    log = await open_log(journal)
    await log.record("o-1", Order("ACME", 1))
    for state in PATH_TO[current]:
        await log.move("o-1", state)
    before = await journal.highest_seq(STREAM)
    assert log.get("o-1") is not None and log.get("o-1").state is current  # type: ignore[union-attr]

    if target in ALLOWED[current]:
        moved = await log.move("o-1", target, detail="why")
        assert (moved.state, moved.detail) == (target, "why")
        assert await journal.highest_seq(STREAM) == before + 1
    else:
        with pytest.raises(IntentTransitionError) as raised:
            await log.move("o-1", target)
        assert raised.value.intent_id == "o-1"
        assert current.name in str(raised.value) and target.name in str(raised.value)
        assert await journal.highest_seq(STREAM) == before
        assert log.get("o-1").state is current  # type: ignore[union-attr]
    assert (await open_log(journal)).intents() == log.intents()


async def test_terminal_states_are_rejected_done_and_expired(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    terminal = {state for state in IntentState if not ALLOWED[state]}
    assert terminal == {S.REJECTED, S.DONE, S.EXPIRED}
    for state in IntentState:
        await log.record(state.value, Order("ACME", 1))
        for step in PATH_TO[state]:
            await log.move(state.value, step)
        assert log.get(state.value).terminal is (state in terminal)  # type: ignore[union-attr]


async def test_moving_an_unknown_intent_raises_key_error_and_writes_nothing(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    with pytest.raises(KeyError, match="never recorded"):
        await log.move("ghost", S.SENDING)
    with pytest.raises(InvalidConfig) as raised:
        await log.move("ghost", "sending")  # type: ignore[arg-type]
    assert raised.value.field == "state"
    assert await journal.highest_seq(STREAM) == 0


async def test_attempts_count_every_entry_into_sending_and_survive_a_restart(journal: SqliteJournal) -> None:
    log = await open_log(journal)
    await log.record("o-1", Order("ACME", 1))
    for state in (S.SENDING, S.UNKNOWN, S.SENDING, S.SENDING, S.UNKNOWN, S.SENDING, S.ACKED):
        await log.move("o-1", state, detail=f"to {state.name}")
    live = log.get("o-1")
    assert live is not None and (live.attempts, live.state, live.detail) == (4, S.ACKED, "to ACKED")
    assert (await open_log(journal)).get("o-1") == live


async def test_pending_after_a_restart_lists_non_terminal_intents_in_record_order(
    journal: SqliteJournal,
) -> None:
    log = await open_log(journal)
    final_states = {
        "c": S.SENDING,
        "a": S.RECORDED,
        "f": S.DONE,
        "b": S.UNKNOWN,
        "e": S.REJECTED,
        "d": S.ACKED,
    }
    for intent_id in final_states:
        await log.record(intent_id, Order(intent_id, 1))
    for intent_id, state in final_states.items():
        for step in PATH_TO[state]:
            await log.move(intent_id, step)

    pending = (await open_log(journal)).pending()

    assert [(intent.id, intent.state) for intent in pending] == [
        ("c", S.SENDING),
        ("a", S.RECORDED),
        ("b", S.UNKNOWN),
        ("d", S.ACKED),
    ]
    assert {intent.id: intent.may_have_happened for intent in pending} == {
        "c": True,
        "a": False,
        "b": True,
        "d": True,
    }
    assert pending == log.pending()


async def test_a_log_reopened_with_another_payload_type_names_the_stream_and_seq(
    journal: SqliteJournal,
) -> None:
    log = await open_log(journal)
    await log.record("o-1", Order("ACME", 1))
    with pytest.raises(EventDecodeError) as raised:
        await IntentLog(journal, STREAM, Cancel).open()
    assert (raised.value.stream, raised.value.seq) == (STREAM, 1)


async def test_logs_on_different_streams_are_independent(journal: SqliteJournal) -> None:
    first = await open_log(journal, "intents-a")
    second = await open_log(journal, "intents-b")
    await first.record("o-1", Order("A", 1))
    await second.record("o-1", Order("B", 1))
    assert (await open_log(journal, "intents-a")).get("o-1").payload == Order("A", 1)  # type: ignore[union-attr]
    assert (await open_log(journal, "intents-b")).get("o-1").payload == Order("B", 1)  # type: ignore[union-attr]


# -- broken writes ------------------------------------------------------------------------------


class FailingJournal:
    """A real journal whose ``fail_on``-th append raises; with ``commit_first`` the
    failing append is committed first (durable, but unconfirmed)."""

    def __init__(self, inner: SqliteJournal, fail_on: int, *, commit_first: bool = False) -> None:
        self.inner = inner
        self.fail_on = fail_on
        self.commit_first = commit_first
        self.calls = 0

    async def append(
        self, stream: str, events: Sequence[bytes], expected_seq: int, *, acks: Sequence[Ack] = ()
    ) -> int:
        self.calls += 1
        if self.calls == self.fail_on:
            if self.commit_first:
                await self.inner.append(stream, events, expected_seq, acks=acks)
            raise JournalWriteError(stream, OSError("injected: the disk went away"))
        return await self.inner.append(stream, events, expected_seq, acks=acks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def assert_broken_everywhere(log: IntentLog[Order]) -> None:
    with pytest.raises(IntentLogBroken):
        await log.record("new", Order("ACME", 1))
    with pytest.raises(IntentLogBroken):
        await log.record("a", Order("ACME", 1))  # even an id already durable
    with pytest.raises(IntentLogBroken):
        await log.move("a", S.SENDING)
    with pytest.raises(IntentLogBroken):
        log.pending()
    with pytest.raises(IntentLogBroken):
        log.get("a")
    with pytest.raises(IntentLogBroken):
        log.intents()


@pytest.mark.parametrize("commit_first", [False, True], ids=["lost", "durable-but-unconfirmed"])
async def test_a_failed_write_breaks_the_log_until_it_is_reopened(
    journal: SqliteJournal, commit_first: bool
) -> None:
    failing = FailingJournal(journal, fail_on=3, commit_first=commit_first)
    log = await open_log(failing)
    await log.record("a", Order("ACME", 1))
    await log.record("b", Order("ACME", 2))

    with pytest.raises(IntentLogBroken) as raised:
        await log.record("c", Order("ACME", 3))
    assert isinstance(raised.value.cause, JournalWriteError)
    assert raised.value.stream == STREAM
    seq = await journal.highest_seq(STREAM)
    await assert_broken_everywhere(log)
    assert await journal.highest_seq(STREAM) == seq  # nothing more was written

    await log.open()
    assert [intent.id for intent in log.intents()] == (["a", "b", "c"] if commit_first else ["a", "b"])
    assert log.intents() == (await open_log(journal)).intents()
    again = await log.record("c", Order("ACME", 30))
    assert again.payload == Order("ACME", 3 if commit_first else 30)
    assert recorded_ids(await stored_events(journal)) == ["a", "b", "c"]
    assert (await log.move("c", S.SENDING)).state is S.SENDING


async def test_every_call_waiting_on_a_failed_batch_sees_the_log_broken(journal: SqliteJournal) -> None:
    failing = FailingJournal(journal, fail_on=2)
    log = await open_log(failing)
    await log.record("a", Order("ACME", 1))
    outcomes = await asyncio.gather(
        log.record("b", Order("ACME", 2)),
        log.record("b", Order("ACME", 3)),
        log.record("c", Order("ACME", 4)),
        log.move("a", S.SENDING),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, IntentLogBroken) for outcome in outcomes), outcomes
    assert failing.calls == 2  # one batch, one failed append
    await log.open()
    assert [(intent.id, intent.state) for intent in log.intents()] == [("a", S.RECORDED)]


async def test_closing_the_journal_under_the_log_breaks_it_and_reopening_recovers(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "journal.db")
    await journal.open()
    try:
        log = await open_log(journal)
        await log.record("a", Order("ACME", 1))
        await journal.close()

        with pytest.raises(IntentLogBroken) as raised:
            await log.move("a", S.SENDING)
        assert isinstance(raised.value.cause, JournalClosed)
        with pytest.raises(IntentLogBroken):
            await log.record("b", Order("ACME", 2))

        await journal.open()
        await log.open()
        assert [(intent.id, intent.state) for intent in log.intents()] == [("a", S.RECORDED)]
        assert (await log.move("a", S.SENDING)).state is S.SENDING
    finally:
        await journal.close()


# -- crashes ---------------------------------------------------------------------------------


async def test_acknowledged_records_and_moves_survive_sigkill_and_nothing_is_duplicated(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "journal.db")
    count = 40
    ids = [client_order_id("strat-1", index) for index in range(count)]
    rng = random.Random(0x5EED)
    acknowledged_records: set[str] = set()
    acknowledged_sending: set[str] = set()

    async def check(*, complete: bool) -> None:
        async with SqliteJournal(path) as journal:
            log = await open_log(journal)
            events = await stored_events(journal)
        recorded = Counter(recorded_ids(events))
        sending = Counter(
            event["id"]
            for event in events
            if event["type"] == "garrison.intent.moved" and event["state"] == "sending"
        )
        assert max(recorded.values(), default=1) == 1, "an intent was recorded twice"
        assert max(sending.values(), default=1) == 1, "an intent was sent twice"
        assert acknowledged_records <= set(recorded)
        for intent_id in acknowledged_sending:
            intent = log.get(intent_id)
            assert intent is not None and intent.state is S.SENDING and intent.attempts == 1
        assert set(recorded) <= set(ids)
        if complete:
            # The worker records in index order, in every run: the log keeps that order.
            assert [intent.id for intent in log.intents()] == ids
            assert all(intent.state is S.SENDING for intent in log.intents())

    def note(lines: list[str]) -> None:
        for line in lines:
            kind, _, intent_id = line.partition(" ")
            if kind == "recorded":
                acknowledged_records.add(intent_id)
            elif kind == "sending":
                acknowledged_sending.add(intent_id)

    kills = 0
    for _ in range(4):
        # Kill while there is work left: at a random line about one of the next intents to write.
        remaining = [intent_id for intent_id in ids if intent_id not in acknowledged_sending]
        victim = rng.choice(remaining[: max(1, len(remaining) // 3)])
        target = f"{rng.choice(['recorded', 'sending'])} {victim}"
        async with await ChildProcess.start(sys.executable, WORKER, "intents", path, str(count)) as child:
            status = await child.kill(after_output=re.compile(rf"^{re.escape(target)}$"), timeout=20)
            kills += status == -9 and "done" not in child.output
            note(child.output)
        await check(complete=False)
    assert kills >= 2, f"only {kills} of 4 runs were killed before they finished"

    async with await ChildProcess.start(sys.executable, WORKER, "intents", path, str(count)) as child:
        await child.wait_for_output(re.compile(r"^done$"), timeout=20)
        assert await child.wait(timeout=20) == 0
        note(child.output)
    assert acknowledged_records == acknowledged_sending == set(ids)
    await check(complete=True)
