"""Signals to a running node: SIGTERM stops it in order, a second SIGTERM forces the exit with
a named code after saying what was still stopping, SIGHUP reopens the log file and the node runs on."""

from __future__ import annotations

import signal
from pathlib import Path

from garrison import ExitCode
from tests.observe._nodes import garrison


def test_a_second_sigterm_during_the_stop_exits_143_naming_what_is_still_stopping(tmp_path: Path) -> None:
    with garrison(tmp_path, "run", "tests.observe._nodes:slow_to_stop", "--name", "desk-1") as node:
        node.node_pids()
        node.process.send_signal(signal.SIGTERM)
        node.wait_for("slow: on_stop begins")
        node.process.send_signal(signal.SIGTERM)
        status = node.wait()
        log = node.text()

    assert status == ExitCode.FORCED_STOP == 143, log
    assert "node desk-1: got SIGTERM, stopping in order" in log
    assert "got SIGTERM again while stopping (stopping the actors); exiting now with code 143" in log
    assert "Still stopping: /root (stopping" in log
    assert "/root/slow (stopping" in log
    assert "node desk-1 stopped" not in log  # the stop was cut short, and says so above


def test_sighup_reopens_the_log_file_after_logrotate_moved_it_and_the_node_runs_on(tmp_path: Path) -> None:
    log_file = tmp_path / "node.log"
    rotated = tmp_path / "node.log.1"
    with garrison(tmp_path, "run", "tests.observe._nodes:calm", "--log-file", str(log_file)) as node:
        node.log = log_file  # the node writes its log there, not to its stdout
        node.wait_for("node garrison running")
        log_file.rename(rotated)
        node.process.send_signal(signal.SIGHUP)
        node.wait_for("got SIGHUP, reopened 1 log file(s); the node runs on")
        node.process.send_signal(signal.SIGTERM)
        assert node.wait() == ExitCode.OK
        node.wait_for("node garrison stopped (exit code 0")

    assert "node garrison running" in rotated.read_text()
    assert "SIGHUP" not in rotated.read_text()
    assert "node garrison running" not in log_file.read_text()
