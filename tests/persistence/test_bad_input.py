"""Bad input on disk: damaged event rows, unknown tags, bad snapshots, files that are not journals.

Each is a clear error naming where the damage is; nothing is skipped, and
nothing else in the journal is lost.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from garrison import ActorStartError, Node
from garrison._errors import EventDecodeError, InvalidConfig, JournalCorrupt
from garrison.persistence import QuarantinedEvent, SqliteJournal

from ._model import (
    Account,
    Balance,
    Deposit,
    Deposited,
    Get,
    SnapshottingAccount,
    assert_decode_error,
    read_all,
)
from ._storage import rechain, resum_snapshot

ASK = 5.0


class Unregistered(msgspec.Struct, frozen=True, tag=True):
    amount: int


async def write_accounts(path: Path, actor: type[Account] = Account) -> None:
    """Two accounts with five deposits each: account-1 gets 1..5, account-2 gets 10..50."""
    async with Node("t", journal=SqliteJournal(path), handle_signals=False) as node:
        for persistence_id, unit in (("account-1", 1), ("account-2", 10)):
            ref = await node.spawn(actor, name=persistence_id, kwargs={"persistence_id": persistence_id})
            for amount in range(1, 6):
                await ref.ask(Deposit(amount * unit), timeout=ASK)


def overwrite_payload(path: Path, stream: str, seq: int, value: Any, *, checksummed: bool = False) -> None:
    """Change one stored event behind the journal's back, as a disk or another program might
    (``checksummed``: and fix up the checksums, as if the journal had been given the event so)."""
    db = sqlite3.connect(path)
    try:
        changed = db.execute(
            "UPDATE events SET payload = ? WHERE stream = ? AND seq = ?", (value, stream, seq)
        ).rowcount
        if checksummed:
            rechain(db, stream)
        db.commit()
    finally:
        db.close()
    assert changed == 1


async def start_fails(path: Path, persistence_id: str, actor: type[Account] = Account) -> BaseException:
    async with Node("t", journal=SqliteJournal(path), handle_signals=False) as node:
        with pytest.raises(ActorStartError) as caught:
            await node.spawn(actor, name="acct", kwargs={"persistence_id": persistence_id})
    return caught.value.cause


async def recovered_state(path: Path, persistence_id: str) -> tuple[Balance, int]:
    async with Node("t", journal=SqliteJournal(path), handle_signals=False) as node:
        ref = await node.spawn(Account, name="acct", kwargs={"persistence_id": persistence_id})
        state, seq = await ref.ask(Get(), timeout=ASK)
    return state, seq


@pytest.mark.parametrize(
    ("garbage", "problem"),
    [
        (b"\xc1\xc1\xc1", "malformed"),  # not msgpack at all
        (b"\x82\xa4type\xa9Deposited\xa6amount", "malformed"),  # cut off mid-event
        (msgspec.msgpack.encode({"type": "Deposited", "amount": "ten"}), "schema"),
        ("a TEXT value", "not-bytes"),  # another program wrote text into the BLOB column
    ],
)
async def test_a_damaged_event_row_fails_recovery_naming_stream_and_seq_and_other_streams_recover(
    journal_path: Path, garbage: Any, problem: str
) -> None:
    await write_accounts(journal_path)
    overwrite_payload(journal_path, "account-1", 3, garbage, checksummed=True)

    cause = await start_fails(journal_path, "account-1")

    assert_decode_error(cause, "account-1", 3, problem)
    assert await recovered_state(journal_path, "account-2") == (Balance(150, 5), 5)
    async with SqliteJournal(journal_path) as journal:
        assert [seq for seq, _ in await read_all(journal, "account-1")] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "changed",
    [
        b"\xc1\xc1\xc1",
        msgspec.msgpack.encode(Deposited(3000)),  # a valid event of the right type: only the checksum knows
        "a TEXT value",
    ],
)
async def test_an_event_changed_on_disk_fails_recovery_as_corrupt_naming_stream_seq_and_checksums(
    journal_path: Path, changed: Any
) -> None:
    await write_accounts(journal_path)
    overwrite_payload(journal_path, "account-1", 3, changed)

    cause = await start_fails(journal_path, "account-1")

    assert isinstance(cause, JournalCorrupt)
    assert (cause.stream, cause.seq) == ("account-1", 3)
    assert cause.expected is not None and cause.found is not None and cause.expected != cause.found
    assert "garrison journal quarantine" in cause.problem
    assert await recovered_state(journal_path, "account-2") == (Balance(150, 5), 5)


async def test_a_quarantined_event_is_skipped_and_the_actor_is_told(journal_path: Path) -> None:
    await write_accounts(journal_path)
    overwrite_payload(journal_path, "account-1", 3, b"\xc1\xc1\xc1")
    async with SqliteJournal(journal_path) as journal:
        set_aside = await journal.quarantine("account-1", 3, "damaged on disk")
        assert (set_aside.seq, set_aside.payload, set_aside.reason) == (3, b"\xc1\xc1\xc1", "damaged on disk")
        assert await journal.highest_seq("account-1") == 5

    told: list[list[int]] = []

    class Told(Account):
        def on_quarantined(self, events: list[QuarantinedEvent]) -> None:
            told.append([event.seq for event in events])

    async with Node("t", journal=SqliteJournal(journal_path), handle_signals=False) as node:
        ref = await node.spawn(Told, name="acct", kwargs={"persistence_id": "account-1"})
        assert await ref.ask(Get(), timeout=ASK) == (Balance(1 + 2 + 4 + 5, 4), 5)
        await ref.ask(Deposit(6), timeout=ASK)  # the stream goes on after the set-aside seq
    assert told == [[3]]

    async with SqliteJournal(journal_path) as journal:
        await journal.restore("account-1", 3)  # back as it was stored: still damaged
        with pytest.raises(JournalCorrupt) as damaged:
            await read_all(journal, "account-1")
        assert (damaged.value.stream, damaged.value.seq) == ("account-1", 3)
        assert await journal.quarantined("account-1") == []
        with pytest.raises(InvalidConfig) as caught:
            await journal.restore("account-1", 3)
        assert caught.value.field == "seq"


async def test_an_event_with_an_unknown_tag_fails_recovery_naming_stream_and_seq(journal_path: Path) -> None:
    await write_accounts(journal_path)
    async with SqliteJournal(journal_path) as journal:
        await journal.append("account-1", [msgspec.msgpack.encode(Unregistered(7))], 5)

    cause = await start_fails(journal_path, "account-1")

    assert_decode_error(cause, "account-1", 6, "schema")
    assert await recovered_state(journal_path, "account-2") == (Balance(150, 5), 5)


async def test_a_snapshot_that_does_not_decode_fails_recovery_naming_stream_and_seq(
    journal_path: Path,
) -> None:
    await write_accounts(journal_path, SnapshottingAccount)  # snapshots at seq 3
    async with SqliteJournal(journal_path) as journal:
        snapshot = await journal.load_snapshot("account-1")
        assert snapshot is not None and snapshot[0] == 3
    db = sqlite3.connect(journal_path)
    db.execute("UPDATE snapshots SET state = ? WHERE stream = 'account-1'", (b"\x93\x01",))
    db.commit()

    damaged = await start_fails(journal_path, "account-1", SnapshottingAccount)
    resum_snapshot(db, "account-1")
    db.commit()
    db.close()
    undecodable = await start_fails(journal_path, "account-1", SnapshottingAccount)

    assert isinstance(damaged, JournalCorrupt)
    assert (damaged.stream, damaged.seq) == ("account-1", 3)
    assert isinstance(undecodable, EventDecodeError)
    assert (undecodable.stream, undecodable.seq) == ("account-1", 3)


async def test_a_node_given_a_file_that_is_not_sqlite_refuses_to_start_and_leaves_it_alone(
    journal_path: Path,
) -> None:
    content = b"%PDF-1.7\n" + bytes(range(256)) * 64
    write(journal_path, content)

    with pytest.raises(JournalCorrupt, match="not a SQLite database") as caught:
        async with Node("t", journal=SqliteJournal(journal_path), handle_signals=False):
            pass

    assert caught.value.path == str(journal_path)
    assert sha256(journal_path) == hashlib.sha256(content).hexdigest()


def write(path: Path, content: bytes) -> None:
    path.write_bytes(content)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_deposit_after_a_failed_recovery_elsewhere_is_not_affected(journal_path: Path) -> None:
    """Damage in one stream blocks only the actor that reads it."""
    await write_accounts(journal_path)
    overwrite_payload(journal_path, "account-1", 1, b"\xc1")

    async with Node("t", journal=SqliteJournal(journal_path), handle_signals=False) as node:
        with pytest.raises(ActorStartError):
            await node.spawn(Account, name="one", kwargs={"persistence_id": "account-1"})
        two = await node.spawn(Account, name="two", kwargs={"persistence_id": "account-2"})

        assert await two.ask(Deposit(1), timeout=ASK) == (Balance(151, 6), 6)

    async with SqliteJournal(journal_path) as journal:
        events = await read_all(journal, "account-2")
    codec = Account._codec
    assert codec is not None
    assert codec.decode(events[-1][1], "account-2", 6) == Deposited(1)
