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
from garrison._errors import EventDecodeError, JournalCorrupt
from garrison.persistence import SqliteJournal

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


def overwrite_payload(path: Path, stream: str, seq: int, value: Any) -> None:
    """Change one stored event behind the journal's back, as a disk or another program might."""
    db = sqlite3.connect(path)
    try:
        changed = db.execute(
            "UPDATE events SET payload = ? WHERE stream = ? AND seq = ?", (value, stream, seq)
        ).rowcount
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
    overwrite_payload(journal_path, "account-1", 3, garbage)

    cause = await start_fails(journal_path, "account-1")

    assert_decode_error(cause, "account-1", 3, problem)
    assert await recovered_state(journal_path, "account-2") == (Balance(150, 5), 5)
    async with SqliteJournal(journal_path) as journal:
        assert [seq for seq, _ in await read_all(journal, "account-1")] == [1, 2, 3, 4, 5]


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
    db.close()

    cause = await start_fails(journal_path, "account-1", SnapshottingAccount)

    assert isinstance(cause, EventDecodeError)
    assert (cause.stream, cause.seq) == ("account-1", 3)


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
