"""Heart runs the node as a child process and restarts it: after a crash, a frozen loop, within a limit."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from garrison import ExitCode
from tests.observe._nodes import alive, garrison, wait_gone

HEART = ("--heart", "--heart-timeout", "2.0", "--heart-backoff", "0.05")
"""Heart for tests that do not wait for a missed beat: a timeout a loaded machine will not trip."""
SHORT_HEART = ("--heart", "--heart-timeout", "1.0", "--heart-backoff", "0.05")


def test_a_node_killed_with_sigkill_is_restarted(tmp_path: Path) -> None:
    with garrison(tmp_path, "run", "tests.observe._nodes:calm", *HEART) as heart:
        [first] = heart.node_pids()
        os.kill(first, signal.SIGKILL)
        second = heart.node_pids(count=2)[1]

        assert second != first
        assert alive(second)
        assert not alive(first)
        assert f"node pid {first} killed by SIGKILL; restarting it in" in heart.text()
        assert heart.process.poll() is None


def test_a_node_whose_loop_is_frozen_is_killed_and_restarted_after_the_heartbeat_timeout(
    tmp_path: Path,
) -> None:
    with garrison(tmp_path, "run", "tests.observe._nodes:calm", *SHORT_HEART) as heart:
        [frozen] = heart.node_pids()
        stopped_at = time.monotonic()
        os.kill(frozen, signal.SIGSTOP)
        heart.wait_for(f"node pid {frozen} sent no heartbeat for")
        noticed_after = time.monotonic() - stopped_at
        replacement = heart.node_pids(count=2)[1]

        # Beats come every timeout/4, so heart waited out (most of) the 1 s timeout, not a beat or two.
        assert noticed_after >= 0.5, heart.text()
        assert "killing it with SIGKILL" in heart.text()
        wait_gone(frozen)
        assert replacement != frozen
        assert alive(replacement)


def test_heart_gives_up_on_a_crash_loop_after_its_own_restart_limit(tmp_path: Path) -> None:
    limit = ("--heart-intensity", "2", "--heart-period", "60")
    with garrison(tmp_path, "run", "tests.observe._nodes:never_starts", *HEART, *limit) as heart:
        status = heart.wait(timeout=30)
        log = heart.text()

    assert status == 1, log
    assert log.count("started node pid") == 3, log  # the first start and two restarts
    assert log.count("exited with code 1; restarting it in") == 2, log
    assert "3 restarts within 60s exceed heart's limit of 2; giving up" in log


def test_sigterm_to_heart_stops_the_node_in_order_and_heart_exits_with_its_code(tmp_path: Path) -> None:
    with garrison(tmp_path, "run", "tests.observe._nodes:calm", *HEART) as heart:
        [node] = heart.node_pids()
        heart.process.send_signal(signal.SIGTERM)
        status = heart.wait()
        log = heart.text()

    assert status == 0, log
    assert f"got SIGTERM: forwarding it to node pid {node} for an orderly stop" in log
    assert "node garrison stopped (exit code 0" in log
    assert "restarting" not in log
    assert not alive(node)


def test_a_node_exiting_with_a_configuration_error_is_not_restarted(tmp_path: Path) -> None:
    with garrison(tmp_path, "run", "tests.observe._nodes:calm", "--journal", str(tmp_path), *HEART) as heart:
        status = heart.wait()
        log = heart.text()

    assert status == ExitCode.CONFIG == 78, log
    assert log.count("started node pid") == 1, log
    assert "a configuration error, which a restart cannot fix" in log


def test_a_node_whose_journal_is_damaged_exits_65_and_is_not_restarted(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not a database at all" * 100)
    with garrison(tmp_path, "run", "tests.observe._nodes:calm", "--journal", str(corrupt), *HEART) as heart:
        status = heart.wait()
        log = heart.text()

    assert status == 65, log
    assert log.count("started node pid") == 1, log
    assert "a damaged journal, which a restart cannot fix" in log
    assert corrupt.read_bytes() == b"not a database at all" * 100


def test_a_node_whose_heart_dies_shuts_down_with_exit_code_1(tmp_path: Path) -> None:
    with garrison(tmp_path, "run", "tests.observe._nodes:calm", *HEART) as heart:
        [node] = heart.node_pids()
        heart.process.kill()
        heart.wait()
        heart.wait_for("heart is gone")
        heart.wait_for("node garrison stopped (exit code 1")
        wait_gone(node)
