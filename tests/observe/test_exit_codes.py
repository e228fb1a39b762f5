"""The exit-code contract: each failure class of the garrison command ends with its ExitCode
(sysexits numbering), one line on stderr and no traceback unless --debug; heart gives up on the
codes a restart cannot fix."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from loguru import logger

import garrison.cli._view
from garrison import NO_RESTART_EXIT_CODES, ExitCode
from garrison.cli import main
from garrison.observe import Heart, HeartConfig
from tests.observe._nodes import REPO


def garrison_command(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "garrison", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def last_line(stderr: str) -> str:
    """The error line: the node may log its own stop before it; nothing may follow it."""
    lines = stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    assert "Traceback" not in stderr, stderr
    assert lines[-1].startswith("garrison: "), stderr
    return lines[-1]


def test_the_codes_follow_sysexits_and_name_what_a_restart_cannot_fix() -> None:
    assert (ExitCode.OK, ExitCode.USAGE, ExitCode.DAMAGED, ExitCode.UNAVAILABLE) == (0, 64, 65, 69)
    assert (ExitCode.INTERNAL, ExitCode.STALLED, ExitCode.CONFIG) == (70, 75, 78)
    assert {int(code) for code in NO_RESTART_EXIT_CODES} == {64, 65, 78}


def test_a_bad_command_line_exits_64_with_argparse_usage() -> None:
    result = garrison_command("run", "tests.observe._nodes:calm", "--no-such-option")
    assert result.returncode == ExitCode.USAGE
    assert "unrecognized arguments: --no-such-option" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_command_exits_64() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"])
    assert exited.value.code == ExitCode.USAGE


def test_a_damaged_journal_at_start_exits_65(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not a database at all" * 100)
    result = garrison_command("run", "tests.observe._nodes:calm", "--journal", str(corrupt))
    assert result.returncode == ExitCode.DAMAGED, result.stderr
    assert last_line(result.stderr).startswith("garrison: cannot start node garrison:")


def test_a_journal_in_a_missing_folder_is_a_configuration_error_78(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "state.db"
    result = garrison_command("run", "tests.observe._nodes:calm", "--journal", str(missing))
    assert result.returncode == ExitCode.CONFIG, result.stderr
    line = last_line(result.stderr)
    assert str(missing) in line and "check that its folder exists" in line
    assert not missing.parent.exists()


def test_a_metrics_port_in_use_is_a_temporary_failure_75() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = garrison_command("run", "tests.observe._nodes:calm", "--metrics-port", str(port))
    assert result.returncode == ExitCode.STALLED == 75, result.stderr
    assert last_line(result.stderr).startswith("garrison: cannot start node garrison:")


def test_a_tree_that_fails_to_start_exits_1() -> None:
    result = garrison_command("run", "tests.observe._nodes:never_starts")
    assert result.returncode == ExitCode.FAILED, result.stderr
    assert "the supervision tree failed to start" in result.stderr


def test_an_unexpected_error_is_one_line_and_70_and_the_traceback_only_with_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(options: object) -> int:
        raise KeyError("a bug in garrison")

    monkeypatch.setattr(garrison.cli._view, "tree_command", broken)

    assert main(["tree", "127.0.0.1:1"]) == ExitCode.INTERNAL == 70
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "garrison: internal error: KeyError: 'a bug in garrison' (run with --debug for the traceback)"
    ]

    assert main(["tree", "127.0.0.1:1", "--debug"]) == ExitCode.INTERNAL
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1] == "garrison: internal error: KeyError: 'a bug in garrison'"


def test_debug_before_the_command_shows_the_traceback_of_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--debug", "run", "tests.observe.no_such_module:spec"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "garrison: cannot import module 'tests.observe.no_such_module'" in err


@pytest.mark.parametrize("code", sorted(NO_RESTART_EXIT_CODES))
def test_heart_does_not_restart_a_node_that_exits_with_a_code_a_restart_cannot_fix(code: int) -> None:
    records: list[str] = []
    sink = logger.add(lambda message: records.append(message.record["message"]), level="INFO")
    try:
        heart = Heart(
            [sys.executable, "-c", f"import sys; sys.exit({code})"], HeartConfig(backoff=0.01), logger
        )
        assert heart.run() == code
    finally:
        logger.remove(sink)
    assert heart.restarts == 0
    assert sum("started node pid" in record for record in records) == 1
    assert any("which a restart cannot fix; heart exits" in record for record in records), records


def test_heart_restarts_a_node_that_exits_70() -> None:
    heart = Heart(
        [sys.executable, "-c", "import sys; sys.exit(70)"],
        HeartConfig(backoff=0.01, intensity=1),
        logger,
    )
    assert heart.run() == ExitCode.INTERNAL
    assert heart.restarts == 1


def test_version_prints_the_installed_version_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import metadata

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"garrison {metadata.version('garrison')}"


def test_the_documented_systemd_unit_prevents_restarts_on_exactly_those_codes_and_avoids_exporter_ports() -> (
    None
):
    import re

    page = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```ini\n(.*?)```", page, flags=re.DOTALL)
    [unit] = [block for block in blocks if "ExecStart=" in block]  # not the credentials snippet
    [prevent] = re.findall(r"^RestartPreventExitStatus=(.*)$", unit, flags=re.MULTILINE)
    assert {int(code) for code in prevent.split()} == {int(code) for code in NO_RESTART_EXIT_CODES}
    ports = {int(port) for port in re.findall(r"--metrics-port (\d+)", unit)}
    assert ports and not any(9100 <= port <= 9999 for port in ports), ports  # Prometheus exporters' range
