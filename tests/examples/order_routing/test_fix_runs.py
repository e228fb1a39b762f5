"""The whole example over FIX, as a user runs it (subprocesses, real TCP, real SQLite files, every
wait bounded, nothing left running): ``run --venue fix`` against its simulator, ``chaos --venue
fix`` with the FIX faults on, and ``run --venue-address`` against an external FIX venue, killed
with SIGKILL and started again on the same journal."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.order_routing.broker import duplicates, load_orders
from examples.order_routing.harness.processes import alive

from .runs import REPO, assert_verdict_passed, run_example

RUN_TIMEOUT = 120.0
"""Real seconds a run may take before the test stops it."""
CHAOS_TIMEOUT = 300.0


def example(*arguments: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``python -m examples.order_routing ARGS`` to its end (killed with its group if it overruns)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.order_routing", *arguments],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        command = " ".join(arguments)
        pytest.fail(f"python -m examples.order_routing {command} took more than {timeout}s:\n{output}")
    return subprocess.CompletedProcess(process.args, process.returncode, output)


@contextlib.contextmanager
def fix_venue(store: Path, *options: str) -> Iterator[int]:
    """The broker simulator as an external FIX 4.4 acceptor; its port. Stopped (SIGTERM) at exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.order_routing.broker", "--venue", "fix", "--store", str(store),
         "--port", "0", "--seed", "3", *options],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("BROKER LISTENING"), line
        yield int(line.rsplit(":", 1)[1])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_run_over_fix_places_every_order_once_against_the_simulator() -> None:
    result = example("run", "--venue", "fix", "--duration", "3", "--no-view", "--partial-fills")
    output = result.stdout
    assert result.returncode == 0, output
    assert "broker simulator on 127.0.0.1:" in output and "(fix, " in output
    recorded = int(output.split("intents recorded: ")[1].split()[0].replace(",", ""))
    accepted = int(output.split("broker: ")[1].split()[0])
    assert recorded == accepted > 100, output
    assert "0 client order ids accepted twice" in output and "settled: yes" in output, output


@pytest.mark.slow
@pytest.mark.timeout(CHAOS_TIMEOUT + 120)
def test_chaos_over_fix_with_gaps_duplicates_and_garbled_frames_passes_the_verdict(tmp_path: Path) -> None:
    """SIGKILLs (some armed for the dead zone: between the session's persist and the socket write,
    or right after it), a venue without dedupe that drops replies, resets, rejects, sends ghost
    fills, leaves sequence gaps, writes PossDup copies and garbled frames: the same verdict as the
    native protocol's."""
    output = run_example(
        "chaos",
        tmp_path,
        ("--venue", "fix", "--kills", "8", "--dedupe", "none", "--partial-fills", "--ghost-fill-rate", "0.02",
         "--fix-gap-rate", "0.01", "--fix-duplicate-rate", "0.01", "--garbage-rate", "0.005",
         "--fix-heartbeat-interval", "1", "--dead-zone-share", "0.5"),
        CHAOS_TIMEOUT,
    )  # fmt: skip
    assert "chaos: kill 8/8" in output
    assert '"settled": true' in output
    assert_verdict_passed(output, ghosts=True)
    assert not alive(int((tmp_path / "control" / "node.pid").read_text()))


def test_a_node_killed_with_sigkill_against_an_external_fix_venue_recovers_its_session_and_intents(
    tmp_path: Path,
) -> None:
    """``run --venue-address`` routes to a venue it did not start. SIGKILLed mid-run, started again
    on the same journal, it logs on with its stored sequence numbers (the venue re-sends what it
    missed, it re-sends or gap-fills what the venue missed), settles every intent, and the
    verdict finds no duplicate, lost or phantom order and the same fills on both sides."""
    store, journal = tmp_path / "venue.db", tmp_path / "node.db"
    with fix_venue(store, "--dedupe", "none", "--partial-fills", "--drop-reply-rate", "0.05") as port:
        node = [
            "run", "--venue", "fix", "--venue-address", f"127.0.0.1:{port}", "--fix-sender-comp-id", "DESK7",
            "--fix-target-comp-id", "SIMBROKER", "--journal", str(journal), "--no-view",
        ]  # fmt: skip
        first = subprocess.Popen(
            [sys.executable, "-m", "examples.order_routing", *node, "--duration", "60"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(orders_of(store, "DESK7")) < 300:
                time.sleep(0.1)
            assert len(orders_of(store, "DESK7")) >= 300, "the node placed too few orders before the kill"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
        assert first.returncode == -signal.SIGKILL

        again = example(*node, "--duration", "2")
        assert again.returncode == 0, again.stdout
        assert "settled: yes" in again.stdout, again.stdout
        assert "broker simulator" not in again.stdout  # nothing started: the venue is external
    verdict = example(
        "verdict", "--journal", str(journal), "--broker-store", str(store), "--client-id", "DESK7"
    )
    assert verdict.returncode == 0, verdict.stdout
    assert_verdict_passed(verdict.stdout)
    assert duplicates(store) == []


def orders_of(store: Path, client: str) -> list[object]:
    if not store.exists():
        return []
    try:
        return [order for order in load_orders(store) if order.client_id == client]
    except Exception:  # the venue is writing it: read again later
        return []
