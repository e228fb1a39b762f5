"""EventSourcedActor: journal first, apply after; snapshots; recovery before the first message;
a failed write stops the actor and its restart reads back what is durable."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from garrison import (
    ActorStartError,
    ChildSpec,
    Failed,
    InvalidConfig,
    Node,
    Restart,
    Started,
    SupervisorSpec,
)
from garrison._errors import FatalError, JournalWriteError, PersistFailed, SequenceConflict
from garrison.persistence import EventSourcedActor, SqliteJournal, StateCodec

from ._model import (
    Account,
    Balance,
    Batch,
    Crash,
    Deposit,
    Deposited,
    FaultyJournal,
    Get,
    Lifecycle,
    Renamed,
    SnapshottingAccount,
    Withdraw,
    Withdrawn,
    read_all,
    stored_events,
)

ASK = 5.0


class Unregistered(msgspec.Struct, frozen=True, tag=True):
    amount: int


def account_spec(actor: type[Account] = Account, *, intensity: int = 3, **kwargs: Any) -> SupervisorSpec:
    return SupervisorSpec(
        children=[ChildSpec("acct", actor, kwargs=kwargs)], intensity=intensity, period=60.0
    )


async def supervised_account(node: Node, **kwargs: Any) -> tuple[Any, Lifecycle]:
    """Start /root with one Account child ``acct``; returns its ref and a lifecycle recorder."""
    lifecycle = Lifecycle(node)
    supervisor = await node.start(account_spec(**kwargs))
    return await supervisor.child("acct"), lifecycle


async def state_of(ref: Any) -> tuple[Balance, int]:
    state, seq = await ref.ask(Get(), timeout=ASK)
    return state, seq


# -- persist -------------------------------------------------------------------------------------


async def test_a_new_account_starts_from_its_initial_state_at_seq_zero(journal_path: Path) -> None:
    async with Node("t", journal=SqliteJournal(journal_path), handle_signals=False) as node:
        ref = await node.spawn(Account, name="acct")

        assert await state_of(ref) == (Balance(), 0)


async def test_persist_journals_the_event_and_then_applies_it(journal_path: Path) -> None:
    journal = SqliteJournal(journal_path)
    async with Node("t", journal=journal, handle_signals=False) as node:
        ref = await node.spawn(Account, name="acct")

        assert await ref.ask(Deposit(5), timeout=ASK) == (Balance(5, 1), 1)
        assert await ref.ask(Withdraw(2), timeout=ASK) == (Balance(3, 2), 2)

        assert stored_events(await read_all(journal, "account-1")) == [Deposited(5), Withdrawn(2)]


async def test_the_state_changes_only_after_the_journal_has_the_events(journal_path: Path) -> None:
    journal = FaultyJournal(SqliteJournal(journal_path))
    instances: list[Account] = []
    states_while_appending: list[Balance] = []
    journal.before_append = lambda: states_while_appending.append(instances[-1].state)
    async with Node("t", journal=journal, handle_signals=False) as node:  # type: ignore[arg-type]
        ref = await node.spawn(Account, name="acct", kwargs={"instances": instances})

        await ref.ask(Deposit(5), timeout=ASK)
        await ref.ask(Batch((Deposited(1), Withdrawn(2))), timeout=ASK)

    assert states_while_appending == [Balance(0, 0), Balance(5, 1)]


async def test_a_multi_event_persist_is_one_append_applied_in_order(journal_path: Path) -> None:
    journal = FaultyJournal(SqliteJournal(journal_path))
    async with Node("t", journal=journal, handle_signals=False) as node:  # type: ignore[arg-type]
        ref = await node.spawn(Account, name="acct")
        await ref.ask(Deposit(10), timeout=ASK)

        state, seq = await ref.ask(Batch((Withdrawn(3), Renamed("ada"), Deposited(1))), timeout=ASK)

        assert (state, seq) == (Balance(8, 4, "ada"), 4)
        assert journal.appends == [("account-1", 1, 0), ("account-1", 3, 1)]
        assert [s for s, _ in await read_all(journal.inner, "account-1")] == [1, 2, 3, 4]


async def test_a_persist_with_an_unregistered_event_writes_and_changes_nothing(journal_path: Path) -> None:
    journal = SqliteJournal(journal_path)
    async with Node("t", journal=journal, handle_signals=False) as node:
        ref = await node.spawn(Account, name="acct")
        await ref.ask(Deposit(10), timeout=ASK)

        with pytest.raises(InvalidConfig, match="Unregistered"):
            await ref.ask(Batch((Deposited(1), Unregistered(2))), timeout=ASK)

        assert await state_of(ref) == (Balance(10, 1), 1)
        assert await journal.highest_seq("account-1") == 1


async def test_persistence_id_defaults_to_the_actor_path(journal_path: Path) -> None:
    class PathAccount(EventSourcedActor[Balance]):
        events = (Deposited,)

        def initial_state(self) -> Balance:
            return Balance()

        def apply(self, state: Balance, event: Any) -> Balance:
            return Balance(state.balance + event.amount, state.operations + 1)

        async def on_receive(self, message: Any) -> Any:
            await self.persist(Deposited(message))
            return self.stream

    journal = SqliteJournal(journal_path)
    async with Node("t", journal=journal, handle_signals=False) as node:
        ref = await node.spawn(PathAccount, name="wallet")

        assert await ref.ask(4, timeout=ASK) == "/wallet"
        assert await journal.highest_seq("/wallet") == 1


# -- recovery --------------------------------------------------------------------------------------


async def test_a_new_node_on_the_same_file_recovers_state_and_seq(journal_path: Path) -> None:
    async with Node("t", journal=SqliteJournal(journal_path), handle_signals=False) as node:
        ref = await node.spawn(Account, name="acct")
        for amount in (5, 7, 11):
            await ref.ask(Deposit(amount), timeout=ASK)
        await ref.ask(Withdraw(3), timeout=ASK)

    async with Node("t", journal=SqliteJournal(journal_path), handle_signals=False) as node:
        ref = await node.spawn(Account, name="acct")

        assert await state_of(ref) == (Balance(20, 4), 4)
        assert await ref.ask(Deposit(1), timeout=ASK) == (Balance(21, 5), 5)


async def test_a_crashed_account_is_restarted_with_its_state_recovered(journal_path: Path) -> None:
    async with Node("t", journal=SqliteJournal(journal_path), handle_signals=False) as node:
        ref, lifecycle = await supervised_account(node)
        await ref.ask(Deposit(5), timeout=ASK)
        await ref.ask(Deposit(6), timeout=ASK)

        await ref.tell(Crash())
        await lifecycle.wait_for(Started, "/root/acct", count=2)

        assert await state_of(ref) == (Balance(11, 2), 2)


async def test_messages_sent_during_recovery_wait_and_see_the_recovered_state(journal_path: Path) -> None:
    async with Node("t", journal=SqliteJournal(journal_path), handle_signals=False) as node:
        ref = await node.spawn(Account, name="acct")
        for _ in range(5):
            await ref.ask(Deposit(10), timeout=ASK)

    journal = FaultyJournal(SqliteJournal(journal_path))
    journal.recovery_gate = asyncio.Event()
    seen: list[tuple[int, Any]] = []
    async with Node("t", journal=journal, handle_signals=False) as node:  # type: ignore[arg-type]
        spawning = asyncio.ensure_future(node.spawn(Account, name="acct", kwargs={"seen": seen}))
        await asyncio.wait_for(journal.recovering.wait(), ASK)
        ref = node.lookup("/acct")
        for amount in (1, 2, 3):
            ref.tell_nowait(Deposit(amount))
        assert ref.mailbox_metrics().depth == 3
        assert seen == []

        journal.recovery_gate.set()
        await asyncio.wait_for(spawning, ASK)

        assert await state_of(ref) == (Balance(56, 8), 8)
        assert [balance for balance, _ in seen[:3]] == [50, 51, 53]


async def test_recovery_reads_the_journal_in_bounded_batches(journal_path: Path) -> None:
    codec = Account._codec
    assert codec is not None
    async with SqliteJournal(journal_path) as writer:
        await writer.append("account-1", [codec.encode(Deposited(1)) for _ in range(35)], 0)

    journal = FaultyJournal(SqliteJournal(journal_path, read_batch=10))
    async with Node("t", journal=journal, handle_signals=False) as node:  # type: ignore[arg-type]
        ref = await node.spawn(Account, name="acct")

        assert await state_of(ref) == (Balance(35, 35), 35)
        assert journal.batches == [10, 10, 10, 5]


async def test_an_actor_without_a_journal_fails_to_start_saying_so() -> None:
    async with Node("t", handle_signals=False) as node:
        with pytest.raises(ActorStartError) as caught:
            await node.spawn(Account, name="acct")

    assert isinstance(caught.value.cause, InvalidConfig)
    assert "Node(journal=SqliteJournal(...))" in str(caught.value.cause)


async def test_an_actor_that_declares_no_events_fails_to_start_saying_so(journal_path: Path) -> None:
    class NoEvents(EventSourcedActor[int]):
        def initial_state(self) -> int:
            return 0

    async with Node("t", journal=SqliteJournal(journal_path), handle_signals=False) as node:
        with pytest.raises(ActorStartError, match="declare the event types"):
            await node.spawn(NoEvents, name="n")


def test_bad_class_settings_are_refused_when_the_class_is_defined() -> None:
    class Untagged(msgspec.Struct, frozen=True):
        amount: int

    with pytest.raises(InvalidConfig, match="snapshot_every"):

        class EveryZero(Account):
            snapshot_every = 0

    with pytest.raises(InvalidConfig, match="need a type tag"):

        class UntaggedEvents(Account):
            events = (Untagged,)


# -- snapshots -------------------------------------------------------------------------------------


async def test_a_snapshot_is_saved_every_n_events(journal_path: Path) -> None:
    journal = SqliteJournal(journal_path)
    codec = StateCodec(Balance)
    async with Node("t", journal=journal, handle_signals=False) as node:
        ref = await node.spawn(SnapshottingAccount, name="acct")
        await ref.ask(Deposit(1), timeout=ASK)
        await ref.ask(Deposit(2), timeout=ASK)
        assert await journal.load_snapshot("account-1") is None

        await ref.ask(Deposit(3), timeout=ASK)
        assert await journal.load_snapshot("account-1") == (3, codec.encode(Balance(6, 3)))

        await ref.ask(Batch((Deposited(4), Deposited(5), Deposited(6), Deposited(7))), timeout=ASK)
        # One multi-event persist crossing the boundary at 6: one snapshot, at its end.
        assert await journal.load_snapshot("account-1") == (7, codec.encode(Balance(28, 7)))


async def test_recovery_loads_the_snapshot_and_replays_only_later_events(journal_path: Path) -> None:
    async with Node("t", journal=SqliteJournal(journal_path), handle_signals=False) as node:
        ref = await node.spawn(SnapshottingAccount, name="acct")
        for amount in range(1, 9):
            await ref.ask(Deposit(amount), timeout=ASK)

    journal = FaultyJournal(SqliteJournal(journal_path))
    async with Node("t", journal=journal, handle_signals=False) as node:  # type: ignore[arg-type]
        ref = await node.spawn(SnapshottingAccount, name="acct")

        assert await state_of(ref) == (Balance(36, 8), 8)
        assert journal.reads_after == [6]
        assert journal.batches == [2]


async def test_events_deleted_up_to_the_snapshot_are_not_needed_for_recovery(journal_path: Path) -> None:
    journal = SqliteJournal(journal_path)
    async with Node("t", journal=journal, handle_signals=False) as node:
        ref = await node.spawn(SnapshottingAccount, name="acct")
        for amount in range(1, 8):
            await ref.ask(Deposit(amount), timeout=ASK)
        snapshot = await journal.load_snapshot("account-1")
        assert snapshot is not None
        await journal.delete_events("account-1", snapshot[0])

    async with Node("t", journal=SqliteJournal(journal_path), handle_signals=False) as node:
        ref = await node.spawn(SnapshottingAccount, name="acct")

        assert await state_of(ref) == (Balance(28, 7), 7)
        assert await ref.ask(Deposit(2), timeout=ASK) == (Balance(30, 8), 8)


async def test_a_failed_snapshot_is_logged_and_the_account_carries_on(
    journal_path: Path, log_records: list[dict[str, Any]]
) -> None:
    journal = FaultyJournal(SqliteJournal(journal_path))
    journal.fail_snapshots = True
    async with Node("t", journal=journal, handle_signals=False) as node:  # type: ignore[arg-type]
        ref = await node.spawn(SnapshottingAccount, name="acct")
        for amount in range(1, 5):
            await ref.ask(Deposit(amount), timeout=ASK)

        assert await state_of(ref) == (Balance(10, 4), 4)
        assert await journal.load_snapshot("account-1") is None

    warnings = [r for r in log_records if "snapshot of account-1 at seq 3 failed" in r["message"]]
    assert len(warnings) == 1 and warnings[0]["level"].name == "WARNING"


# -- journal failures --------------------------------------------------------------------------------


async def test_a_failed_write_stops_the_account_and_its_restart_has_only_what_is_durable(
    journal_path: Path,
) -> None:
    journal = FaultyJournal(SqliteJournal(journal_path))
    async with Node("t", journal=journal, handle_signals=False) as node:  # type: ignore[arg-type]
        ref, lifecycle = await supervised_account(node)
        await ref.ask(Deposit(5), timeout=ASK)

        journal.fail_append_before = True
        with pytest.raises(PersistFailed) as caught:
            await ref.ask(Deposit(100), timeout=ASK)

        assert isinstance(caught.value.cause, JournalWriteError)
        assert caught.value.persistence_id == "account-1"
        await lifecycle.wait_for(Started, "/root/acct", count=2)
        failed = await lifecycle.wait_for(Failed, "/root/acct")
        assert failed.error_type == "PersistFailed"  # type: ignore[attr-defined]
        assert await state_of(ref) == (Balance(5, 1), 1)
        assert await ref.ask(Deposit(1), timeout=ASK) == (Balance(6, 2), 2)


async def test_a_write_that_landed_but_was_not_confirmed_is_recovered_after_the_restart(
    journal_path: Path,
) -> None:
    journal = FaultyJournal(SqliteJournal(journal_path))
    async with Node("t", journal=journal, handle_signals=False) as node:  # type: ignore[arg-type]
        ref, lifecycle = await supervised_account(node)
        await ref.ask(Deposit(5), timeout=ASK)

        journal.fail_append_after = True
        with pytest.raises(PersistFailed):
            await ref.ask(Deposit(100), timeout=ASK)

        await lifecycle.wait_for(Started, "/root/acct", count=2)
        assert await state_of(ref) == (Balance(105, 2), 2)


async def test_a_failed_persist_while_handling_a_tell_restarts_the_account_too(journal_path: Path) -> None:
    journal = FaultyJournal(SqliteJournal(journal_path))
    async with Node("t", journal=journal, handle_signals=False) as node:  # type: ignore[arg-type]
        ref, lifecycle = await supervised_account(node)
        await ref.ask(Deposit(5), timeout=ASK)

        journal.fail_append_before = True
        await ref.tell(Deposit(100))
        await ref.tell(Deposit(1))  # waits in the mailbox, which outlives the incarnation

        await lifecycle.wait_for(Started, "/root/acct", count=2)
        assert await state_of(ref) == (Balance(6, 2), 2)
        [letter] = node.dead_letters.recent()
        assert (letter.message, letter.kind) == (Deposit(100), "crashed")
        assert isinstance(letter.error, PersistFailed)


async def test_a_failed_write_on_a_closed_journal_stops_the_account_and_the_supervisor_gives_up(
    journal_path: Path,
) -> None:
    journal = SqliteJournal(journal_path)
    async with Node("t", journal=journal, handle_signals=False) as node:
        ref, lifecycle = await supervised_account(node, intensity=0)
        await ref.ask(Deposit(5), timeout=ASK)

        await journal.close()
        with pytest.raises(PersistFailed, match=r"journal .* is closed"):
            await ref.ask(Deposit(1), timeout=ASK)
        await lifecycle.wait_for(Failed, "/root/acct")

    async with SqliteJournal(journal_path) as reopened:
        assert await reopened.highest_seq("account-1") == 1


async def test_a_second_live_writer_on_one_id_gets_a_conflict_and_recovers_the_first_ones_events(
    journal_path: Path,
) -> None:
    journal = SqliteJournal(journal_path)
    spec = SupervisorSpec(
        children=[
            ChildSpec("a", Account, kwargs={"persistence_id": "shared"}),
            ChildSpec("b", Account, kwargs={"persistence_id": "shared"}, restart=Restart.PERMANENT),
        ],
        intensity=3,
        period=60.0,
    )
    async with Node("t", journal=journal, handle_signals=False) as node:
        lifecycle = Lifecycle(node)
        supervisor = await node.start(spec)
        a, b = await supervisor.child("a"), await supervisor.child("b")
        await a.ask(Deposit(5), timeout=ASK)

        with pytest.raises(PersistFailed) as caught:
            await b.ask(Deposit(3), timeout=ASK)

        assert isinstance(caught.value.cause, SequenceConflict)
        await lifecycle.wait_for(Started, "/root/b", count=2)
        assert await b.ask(Deposit(3), timeout=ASK) == (Balance(8, 2), 2)
        assert stored_events(await read_all(journal, "shared")) == [Deposited(5), Deposited(3)]


class StrictAccount(Account):
    """Its apply refuses an overdraft: a bug, since the event is already journaled by then."""

    def apply(self, state: Balance, event: Any) -> Balance:
        if isinstance(event, Withdrawn) and event.amount > state.balance:
            raise ValueError(f"overdraft: {event.amount} > {state.balance}")
        return super().apply(state, event)


async def test_an_apply_that_raises_after_the_write_stops_the_account_even_inside_an_ask(
    journal_path: Path,
) -> None:
    """The event is durable, so this incarnation's state is behind the journal: it must not
    answer the asker as if nothing happened and go on serving a state that misses it."""
    journal = SqliteJournal(journal_path)
    async with Node("t", journal=journal, handle_signals=False) as node:
        ref, lifecycle = await supervised_account(node, actor=StrictAccount, intensity=0)
        await ref.ask(Deposit(5), timeout=ASK)

        with pytest.raises(FatalError, match=r"Withdrawn.*'account-1'.*seq 2") as caught:
            await ref.ask(Withdraw(50), timeout=ASK)

        assert isinstance(caught.value.__cause__, ValueError)
        await lifecycle.wait_for(Failed, "/root/acct")
        assert stored_events(await read_all(journal, "account-1")) == [Deposited(5), Withdrawn(50)]
