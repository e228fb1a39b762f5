"""The garrison command: run a node, look at it (tree, top), read a journal; usage errors exit 64."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison import ExitCode
from garrison.cli import main
from garrison.observe._systemd import watchdog_interval
from garrison.persistence import EventCodec, SqliteJournal
from tests.observe._nodes import REPO, Deposited, Withdrawn, garrison

METRICS = re.compile(r"metrics on (http://[\d.]+:\d+)/metrics")


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("garrison: "), stderr
    return lines[0]


# -- garrison run ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.observe.no_such_module:spec", "cannot import module 'tests.observe.no_such_module'"),
        ("tests.observe._nodes:missing", "module 'tests.observe._nodes' has no attribute 'missing'"),
        ("tests.observe._nodes:not_a_spec", "is a int, not a SupervisorSpec"),
        ("tests.observe._nodes", "expected MODULE:NAME"),
    ],
)
def test_run_reports_a_bad_module_path_in_one_line_with_exit_code_64(target: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "garrison.cli", "run", target],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == ExitCode.USAGE == 64
    assert message in one_line_error(result.stderr)


def test_run_with_an_unreachable_redis_journal_is_one_line_and_exit_69(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "garrison"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "garrison.cli"]
    result = subprocess.run(
        [*command, "run", "tests.observe._nodes:calm", "--journal", "redis://127.0.0.1:1/0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == ExitCode.UNAVAILABLE == 69
    # The node logs that it stopped; the error itself is the one last line.
    assert result.stderr.strip().splitlines()[-1].startswith("garrison: cannot start node")
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in result.stderr.strip().splitlines()[-1]


def test_run_serves_the_tree_that_tree_and_top_show_and_stops_on_sigterm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "state.db"
    args = ("run", "tests.observe._nodes:make_calm", "--name", "desk-1", "--journal", str(journal))
    with garrison(tmp_path, *args, "--metrics-port", "0") as node:
        [url] = node.wait_for(METRICS)

        assert main(["tree", url]) == 0
        tree = capsys.readouterr().out.splitlines()
        assert tree[0].split() == ["PATH", "KIND", "STATE", "RESTARTS", "DEPTH", "LAG"]
        rows = [line.split() for line in tree[1:]]
        assert [row[0] for row in rows] == ["/root", "/root/worker", "/root/desk", "/root/desk/pricer"]
        assert rows[1][1:5] == ["worker", "running", "0", "0/1000"]
        assert tree[4].startswith("    /root/desk/pricer")  # indented by depth

        assert main(["top", url, "--once"]) == 0
        frame = capsys.readouterr().out
        assert "healthy" in frame
        assert re.search(r"loop lag p99 [\d.]+ms\s+max [\d.]+ms", frame), frame
        assert "dead letters 0" in frame
        for path in ("/root/worker", "/root/desk/pricer"):
            assert path in frame

        node.process.send_signal(signal.SIGTERM)
        assert node.wait() == 0, node.text()
    assert "node desk-1 stopped (exit code 0" in node.text()
    assert journal.exists()


def test_run_takes_the_crash_traceback_limit_from_its_settings(tmp_path: Path) -> None:
    """``--crash-traceback-limit 1``: of /root/flaky's three failures, only the first record
    carries the traceback; the other two say it was omitted."""
    args = ("run", "tests.observe._nodes:crashes_three_times", "--log-json", "--crash-traceback-limit", "1")
    with garrison(tmp_path, *args) as node:
        node.wait_for("actor /root/flaky failed", count=3)
        node.process.send_signal(signal.SIGTERM)
        assert node.wait() == 0, node.text()
    records = [json.loads(line) for line in node.text().splitlines() if line.startswith("{")]
    crashes = [r for r in records if r["message"].startswith("actor /root/flaky failed")]
    assert [r["traceback"] for r in crashes] == ["logged", "omitted", "omitted"], node.text()
    assert "incarnation 1 fails (on purpose)" in crashes[0]["message"]


@pytest.mark.parametrize("command", ["tree", "top"])
def test_an_unreachable_node_is_one_line_and_exit_code_69(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there

    assert main([command, f"127.0.0.1:{port}", *(["--once"] if command == "top" else [])]) == 69
    assert f"cannot reach node at http://127.0.0.1:{port}" in one_line_error(capsys.readouterr().err)


# -- systemd ------------------------------------------------------------------------------


@pytest.fixture(params=["abstract", "path"])
def notify_socket(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, str]]:
    """A unix datagram socket bound the way systemd binds NOTIFY_SOCKET, and its name."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    directory = None
    if request.param == "abstract":
        name = f"@garrison-test-{uuid.uuid4().hex}"
        server.bind(b"\0" + name[1:].encode())
    else:
        directory = tempfile.mkdtemp(prefix="gn-", dir="/tmp")  # unix socket paths are short
        name = os.path.join(directory, "notify")
        server.bind(name)
    server.settimeout(10.0)
    try:
        yield server, name
    finally:
        server.close()
        if directory is not None:
            os.unlink(name)
            os.rmdir(directory)


def test_under_systemd_the_node_sends_ready_watchdog_and_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    server, name = notify_socket
    env = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000"}
    with garrison(tmp_path, "run", "tests.observe._nodes:calm", env=env) as node:
        received: list[str] = []
        deadline = time.monotonic() + 15
        while sum(message == "WATCHDOG=1" for message in received) < 3:
            assert time.monotonic() < deadline, received
            received.append(server.recv(4096).decode())
        node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while "STOPPING=1" not in received[-1]:
            assert time.monotonic() < deadline, received
            received.append(server.recv(4096).decode())
        assert node.wait() == 0, node.text()

    ready = [index for index, message in enumerate(received) if "READY=1" in message]
    assert len(ready) == 1, received
    assert "STATUS=node garrison running" in received[ready[0]]
    assert "node garrison running" in node.text()  # READY=1 only once the tree has started
    assert sum(message == "WATCHDOG=1" for message in received) >= 3
    assert received[-1].startswith("STOPPING=1")


def test_the_watchdog_is_ours_only_when_watchdog_pid_is_unset_or_names_this_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "4000000"}) == 2.0
    assert watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}) == 2.0
    assert watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None


# -- garrison journal inspect ----------------------------------------------------------------


@pytest.fixture
def journal_file(tmp_path: Path) -> Path:
    path = tmp_path / "journal.db"
    codec = EventCodec([Deposited, Withdrawn])
    events = [Deposited(100), Withdrawn(30, "fee"), Deposited(5)]

    async def write() -> None:
        async with SqliteJournal(path) as journal:
            await journal.append("account-1", [codec.encode(event) for event in events], 0)
            await journal.append("account-2", [codec.encode(Deposited(1))], 0)

    asyncio.run(write())
    return path


def test_journal_inspect_lists_the_raw_events_with_seq_and_tag(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", "inspect", str(journal_file), "account-1"]) == 0
    rows = [line.split(None, 2) for line in capsys.readouterr().out.splitlines()]

    assert [(seq, tag) for seq, tag, _ in rows] == [
        ("1", "Deposited"),
        ("2", "Withdrawn"),
        ("3", "Deposited"),
    ]
    assert json.loads(rows[1][2]) == {"type": "Withdrawn", "amount": 30, "reason": "fee"}


def test_journal_inspect_decodes_with_the_given_types_after_seq_up_to_a_limit(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    types = "tests.observe._nodes:Deposited,tests.observe._nodes:Withdrawn"
    args = ["journal", "inspect", str(journal_file), "account-1", "--types", types]
    assert main([*args, "--after", "1", "--limit", "1"]) == 0
    assert capsys.readouterr().out.split() == ["2", "Withdrawn", "Withdrawn(amount=30,", "reason='fee')"]

    assert main([*args, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"seq": 1, "tag": "Deposited", "event": {"type": "Deposited", "amount": 100}}
    assert [line["seq"] for line in lines] == [1, 2, 3]


def test_journal_inspect_names_an_event_the_types_cannot_decode(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["journal", "inspect", str(journal_file), "account-1", "--types", "tests.observe._nodes:Deposited"]
    assert main(args) == ExitCode.DAMAGED
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith("     1  Deposited")
    error = one_line_error(captured.err)
    assert "account-1" in error and "2" in error


def test_journal_inspect_of_a_missing_file_is_one_line_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.db"
    assert main(["journal", "inspect", str(missing), "account-1"]) == ExitCode.USAGE
    assert f"no journal at {missing}" in one_line_error(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"this is not sqlite " * 200, "not a SQLite database"), (b"", "an empty SQLite file, not a journal")],
)
def test_journal_inspect_of_a_file_that_is_not_a_journal_is_one_line_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "other.db"
    path.write_bytes(content)
    assert main(["journal", "inspect", str(path), "account-1"]) == ExitCode.DAMAGED
    assert message in one_line_error(capsys.readouterr().err)
    assert path.read_bytes() == content


def test_journal_inspect_rejects_types_that_are_not_structs(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["journal", "inspect", str(journal_file), "account-1", "--types", "tests.observe._nodes:calm"]
    assert main(args) == ExitCode.USAGE
    assert "not a msgspec.Struct class" in one_line_error(capsys.readouterr().err)
