"""`garrison run --config` and `garrison config show`: the file, the environment and the flags
reach the node and its spec factory; a configuration error is one line and exit code 78."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from garrison import ExitCode
from garrison.cli import main
from tests.observe._nodes import REPO, RUNNING, garrison

METRICS = re.compile(r"metrics on (http://[\d.]+:\d+)/metrics")


def run_garrison(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "garrison.cli", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("garrison: configuration: "), stderr
    return lines[0]


def test_run_takes_the_file_then_the_environment_then_the_flags(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    journal = tmp_path / "state.db"
    config.write_text(
        f'[node]\nname = "from-file"\n[journal]\nurl = "{journal}"\n'
        "[metrics]\nport = 1\n[desk]\nworkers = 2\n"
    )
    env = {"GARRISON_METRICS_PORT": "0", "GARRISON_DESK_WORKERS": "3"}
    args = ("run", "tests.observe._nodes:desk", "--config", str(config), "--name", "from-flag")
    with garrison(tmp_path, *args, env=env) as node:
        node.wait_for(RUNNING)
        [url] = node.wait_for(METRICS)  # port 0 from the environment beat the file's 1
        node.process.send_signal(signal.SIGTERM)
        assert node.wait() == 0, node.text()
    log = node.text()
    assert "node from-flag running tests.observe._nodes:desk" in log
    assert "started worker-3" in log and "worker-4" not in log
    assert url.startswith("http://127.0.0.1:")
    assert journal.exists()


@pytest.mark.parametrize(
    ("toml", "env", "keys"),
    [
        ('[node]\nnmae = "x"\n', {}, ["node.nmae"]),
        ("[metrics]\nport = 70000\n", {}, ["metrics.port"]),
        ("", {"GARRISON_LOG_LEVEL": "loud"}, ["log.level"]),
        ("[desk]\nworkers = 1\n[dsek]\nworkers = 2\n", {}, ["dsek"]),
        ('[desk]\nworkers = "many"\n', {}, ["desk.workers"]),
        ("[heart]\nenabled = true\ntimeout = 0\n", {}, ["heart.timeout"]),
    ],
    ids=["unknown-key", "bad-port", "bad-level", "unread-section", "bad-section-value", "bad-heart"],
)
def test_a_configuration_error_is_one_line_naming_the_key_and_exit_78(
    tmp_path: Path, toml: str, env: dict[str, str], keys: list[str]
) -> None:
    config = tmp_path / "node.toml"
    config.write_text(toml)

    result = run_garrison("run", "tests.observe._nodes:desk", "--config", str(config), env=env)

    assert result.returncode == ExitCode.CONFIG == 78, result.stderr
    line = one_line(result.stderr)
    for key in keys:
        assert f"{key} (" in line
    assert "Traceback" not in result.stderr


def test_config_show_prints_every_key_with_its_source_and_checks_the_sections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[node]\nname = "desk-1"\n[desk]\nsymbols = ["ACME", "GLOBEX"]\n')
    monkeypatch.setenv("GARRISON_DESK_WORKERS", "4")
    monkeypatch.delenv("GARRISON_CONFIG", raising=False)

    assert main(["config", "show", "tests.observe._nodes:desk", "--config", str(config), "--log-json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {
        line.split("=")[0].strip(): line.rsplit("# ", 1)[1] for line in lines if "=" in line and "#" in line
    }
    assert rows["name"] == str(config)
    assert rows["json"] == "--log-json"
    assert rows["workers"] == "GARRISON_DESK_WORKERS"
    assert '"ACME", "GLOBEX"' in next(line for line in lines if line.startswith("symbols"))
    assert "[desk]" in lines and "[heart]" in lines

    assert main(["config", "show", "--config", str(config), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["node.name"] == {"value": "desk-1", "source": str(config)}
    assert "desk.workers" not in shown  # no factory given: its section is not read

    config.write_text("[node]\nname = 3\n")
    assert main(["config", "show", "--config", str(config)]) == ExitCode.CONFIG
    assert "node.name (" in capsys.readouterr().err
