"""``garrison run --loop``: uvloop when installed (auto), asyncio's loop on request, and a named
error (exit 69) for --loop uvloop where uvloop is not installed."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from garrison import ExitCode
from garrison.cli._loops import choose_loop
from tests.observe._nodes import REPO, garrison

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
needs_uvloop = pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed (garrison[fast])")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("asyncio", "asyncio"), ("auto", "uvloop" if HAVE_UVLOOP else "asyncio")],
)
def test_the_node_runs_on_the_loop_chosen_and_says_which(tmp_path: Path, choice: str, expected: str) -> None:
    with garrison(tmp_path, "run", "tests.observe._nodes:calm", "--loop", choice) as node:
        node.wait_for(f"node garrison runs on the {expected}")
        node.process.send_signal(signal.SIGTERM)
        assert node.wait() == ExitCode.OK, node.text()


@needs_uvloop
def test_uvloop_on_request_runs_the_node_on_a_uvloop_loop(tmp_path: Path) -> None:
    with garrison(tmp_path, "run", "tests.observe._nodes:calm", "--loop", "uvloop") as node:
        node.wait_for("node garrison runs on the uvloop ")
        node.process.send_signal(signal.SIGTERM)
        assert node.wait() == ExitCode.OK, node.text()
    name, factory = choose_loop("uvloop")
    assert name.startswith("uvloop ") and factory is not None
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_uvloop_requested_where_it_is_not_installed_is_one_line_and_exit_69(tmp_path: Path) -> None:
    # A module named uvloop that fails to import stands for a machine without it.
    (tmp_path / "uvloop.py").write_text("raise ImportError('no uvloop on this machine')\n")
    result = subprocess.run(
        [sys.executable, "-m", "garrison", "run", "tests.observe._nodes:calm", "--loop", "uvloop"],
        cwd=REPO,
        env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == ExitCode.UNAVAILABLE, result.stderr
    assert result.stderr.strip().splitlines() == [
        "garrison: --loop uvloop: uvloop is not installed; "
        "pip install 'garrison[fast]', or use --loop asyncio"
    ]
