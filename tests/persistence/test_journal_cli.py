"""``garrison journal list|inspect|verify|quarantine|restore|migrate`` on real journals.

Each tool reads or repairs a real SQLite file (or a namespace on a real
redis-server), prints what an operator needs, and exits with its documented
code: 0 done, 2 usage (unknown stream, bad argument), 65 damaged, 69 a Redis
that cannot be reached. Never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import msgspec
import pytest

from garrison import ExitCode, Node
from garrison.cli import main
from garrison.persistence import EventCodec, IntentLog, IntentState, SqliteJournal
from tests.observe._nodes import Deposited, Withdrawn
from tests.persistence.redis._server import shared_redis_url, unique_namespace

from ._model import Account, Balance, Get
from .test_sqlite_journal import write_v1_journal

CODEC = EventCodec([Deposited, Withdrawn])
TYPES = "tests.observe._nodes:Deposited,tests.observe._nodes:Withdrawn"


class Order(msgspec.Struct, frozen=True):
    symbol: str
    qty: int


async def fill(journal: SqliteJournal) -> None:
    """Two accounts, an intent log with one open and two settled intents, a snapshot."""
    events = [Deposited(100), Withdrawn(30, "fee"), Deposited(5)]
    await journal.append("account-1", [CODEC.encode(event) for event in events], 0)
    await journal.append("account-2", [CODEC.encode(Deposited(1))], 0)
    await journal.save_snapshot("account-1", 2, b"state")
    log = await IntentLog(journal, "intents", Order).open()
    for n in range(3):
        await log.record(f"o-{n}", Order("EURUSD", n + 1))
    await log.move("o-0", IntentState.SENDING)
    await log.move("o-0", IntentState.DONE)
    await log.move("o-1", IntentState.REJECTED)


@pytest.fixture
def journal_file(tmp_path: Path) -> Path:
    path = tmp_path / "journal.db"

    async def write() -> None:
        async with SqliteJournal(path) as journal:
            await fill(journal)

    asyncio.run(write())
    return path


def error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_list_shows_every_stream_with_its_seqs_snapshot_and_intents(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", "list", str(journal_file), "--json"]) == 0
    rows = {row["stream"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}

    assert sorted(rows) == ["account-1", "account-2", "intents"]
    assert rows["account-1"] == {
        "stream": "account-1",
        "events": 3,
        "first_seq": 1,
        "highest_seq": 3,
        "snapshot_seq": 2,
        "quarantined": 0,
    }
    assert (rows["intents"]["intents_open"], rows["intents"]["intents_settled"]) == (1, 2)

    assert main(["journal", "list", str(journal_file)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["STREAM", "EVENTS", "FIRST"]
    assert any(line.startswith("intents") and "1 open / 2 settled" in line for line in table)


def test_inspect_decodes_a_range_and_shows_intents_decoded(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "journal",
        "inspect",
        str(journal_file),
        "account-1",
        "--types",
        TYPES,
        "--from",
        "2",
        "--to",
        "2",
    ]
    assert main([*args, "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {
        "seq": 2,
        "tag": "Withdrawn",
        "event": {"type": "Withdrawn", "amount": 30, "reason": "fee"},
    }

    assert main(["journal", "inspect", str(journal_file), "intents", "--json", "--limit", "1"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {
        "seq": 1,
        "tag": "garrison.intent.recorded",
        "event": {"type": "garrison.intent.recorded", "id": "o-0", "payload": {"symbol": "EURUSD", "qty": 1}},
    }


def test_inspect_of_an_unknown_stream_exits_2_naming_it(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", "inspect", str(journal_file), "no-such-stream"]) == ExitCode.USAGE
    assert "no stream 'no-such-stream'" in error_line(capsys.readouterr().err)


def test_verify_passes_a_sound_journal_and_decodes_with_types(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", "verify", str(journal_file), "--types", TYPES]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "journal sound: 3 stream(s), 10 event(s) verified, 10 decoded" in captured.err


def test_verify_lists_each_problem_and_exits_65(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sqlite3.connect(journal_file)
    db.execute("UPDATE events SET payload = x'c1' WHERE stream = 'account-1' AND seq = 2")
    db.execute("DELETE FROM events WHERE stream = 'intents' AND seq = 3")
    db.execute("UPDATE snapshots SET state = x'00' WHERE stream = 'account-1'")
    db.commit()
    db.close()

    assert main(["journal", "verify", str(journal_file)]) == ExitCode.DAMAGED
    captured = capsys.readouterr()
    problems = captured.out.splitlines()
    assert problems[0].startswith("checksum: stream 'account-1' seq 2:")
    assert problems[1].startswith("snapshot: stream 'account-1' seq 2:")
    assert problems[2].startswith("missing: stream 'intents' seq 3:")
    assert len(problems) == 3
    assert "3 problem(s)" in captured.err


def test_verify_names_an_event_that_does_not_decode_with_the_types(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", "verify", str(journal_file), "--types", "tests.observe._nodes:Deposited"]) == 65
    (problem,) = capsys.readouterr().out.splitlines()
    assert problem.startswith("undecodable: stream 'account-1' seq 2:")


def test_quarantine_lets_the_actor_start_and_restore_puts_the_event_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_bad_input import overwrite_payload, write_accounts

    path = tmp_path / "accounts.db"
    asyncio.run(write_accounts(path))
    overwrite_payload(path, "account-1", 4, b"\xc1")

    assert main(["journal", "quarantine", str(path), "account-1", "4", "--reason", "disk damage"]) == 0
    assert "set aside stream 'account-1' seq 4" in capsys.readouterr().out
    assert main(["journal", "verify", str(path)]) == 0
    assert main(["journal", "list", str(path), "--json"]) == 0
    rows = {row["stream"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert (rows["account-1"]["events"], rows["account-1"]["quarantined"]) == (4, 1)

    async def balance() -> tuple[Balance, int]:
        async with Node("t", journal=SqliteJournal(path), handle_signals=False) as node:
            ref = await node.spawn(Account, name="acct", kwargs={"persistence_id": "account-1"})
            result: tuple[Balance, int] = await ref.ask(Get(), timeout=5.0)
            return result

    assert asyncio.run(balance()) == (Balance(1 + 2 + 3 + 5, 4), 5)

    assert main(["journal", "restore", str(path), "account-1", "4"]) == 0
    assert main(["journal", "verify", str(path)]) == ExitCode.DAMAGED
    assert main(["journal", "restore", str(path), "account-1", "4"]) == ExitCode.USAGE
    assert "no quarantined event 4" in capsys.readouterr().err.splitlines()[-1]
    assert main(["journal", "quarantine", str(path), "account-1", "99", "--reason", "x"]) == ExitCode.USAGE


def test_migrate_brings_a_version_1_file_to_this_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    write_v1_journal(path)

    assert main(["journal", "list", str(path)]) == ExitCode.DAMAGED
    assert "garrison journal migrate" in error_line(capsys.readouterr().err)
    assert main(["journal", "migrate", str(path)]) == 0
    assert main(["journal", "verify", str(path)]) == 0


def test_a_redis_journal_lists_and_verifies_and_an_unreachable_one_exits_69(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.persistence.redis._server import delete_namespace

    url = shared_redis_url()
    namespace = unique_namespace("journal-cli")

    async def write() -> None:
        from garrison.persistence import RedisJournal

        async with RedisJournal(url, namespace=namespace) as journal:
            await journal.append("account-1", [CODEC.encode(Deposited(7))], 0)

    try:
        asyncio.run(write())
        assert main(["journal", "list", url, "--namespace", namespace, "--json"]) == 0
        (row,) = map(json.loads, capsys.readouterr().out.splitlines())
        assert (row["stream"], row["events"], row["highest_seq"]) == ("account-1", 1, 1)
        assert main(["journal", "verify", url, "--namespace", namespace, "--types", TYPES]) == 0
        assert "journal sound: 1 stream(s)" in capsys.readouterr().err
    finally:
        asyncio.run(delete_namespace(url, namespace))

    assert main(["journal", "list", "redis://127.0.0.1:1/0"]) == ExitCode.UNAVAILABLE
    error_line(capsys.readouterr().err)
