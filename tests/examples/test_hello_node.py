"""The bundled hello_node example runs as a real process, explains itself, and exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOUR_DONE = "tour done"
"""Logged once every scene of the tour has happened and the node is just running."""


@contextmanager
def demo(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """Start ``python -m examples.hello_node *args``; it is always killed when the block ends."""
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "examples.hello_node", *args], cwd=REPO, stdout=out, stderr=err
        )
    try:
        yield process, stdout, stderr
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def wait_for_line(process: subprocess.Popen[bytes], path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert process.poll() is None, f"the demo exited early:\n{path.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} within {timeout}s:\n{path.read_text()}"
        time.sleep(0.05)


def summary_rows(summary: str) -> dict[str, dict[str, int]]:
    """The per-actor table of the summary: {path: {column: count}}."""
    lines = summary.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["actor", "sent"])
    columns = lines[header].split()[1:]
    rows: dict[str, dict[str, int]] = {}
    for line in lines[header + 1 :]:
        if not line.startswith("/"):
            break
        path, *counts = line.split()
        rows[path] = dict(zip(columns, map(int, counts), strict=True))
    return rows


def test_demo_runs_for_its_duration_and_prints_the_summary(tmp_path: Path) -> None:
    with demo(tmp_path, "--duration", "1") as (process, stdout, stderr):
        assert process.wait(timeout=30) == 0, stderr.read_text()
        summary, log = stdout.read_text(), stderr.read_text()

    assert "== hello_node summary: stopped by the duration (1s) ==" in summary
    rows = summary_rows(summary)
    assert set(rows) == {"/consumer", "/producer", "/board", "/feed", "/desk", "/overseer"}
    for path, row in rows.items():
        assert row["sent"] == row["processed"] + row["dropped"] + row["rejected"], f"{path}:\n{summary}"
    assert rows["/board"]["conflated"] > 0
    assert rows["/desk"]["rejected"] == 2
    assert "backpressure: the producer's tell waited" in summary
    assert "overseer saw: /desk (failure: ValueError: quantity must be positive, got 0)" in summary
    assert "crashed /desk: ValueError: quantity must be positive, got 0" in summary
    assert "reply to ReconcileBook after the ask timed out" in summary
    assert summary.rstrip().endswith("exit code 0")

    tour = ["ask answered", "ask gave up", "MailboxFull", "/desk terminated", "actor /desk is stopped"]
    for event in tour:
        assert event in log, event
    assert "node hello-node stopped (exit code 0" in log


def test_demo_stops_in_order_on_sigterm(tmp_path: Path) -> None:
    with demo(tmp_path, "--duration", "60") as (process, stdout, stderr):
        wait_for_line(process, stderr, TOUR_DONE, timeout=30)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, stderr.read_text()
        summary, log = stdout.read_text(), stderr.read_text()

    assert "stopped by a shutdown request (SIGINT/SIGTERM)" in summary
    assert summary.rstrip().endswith("exit code 0")
    assert "actor /consumer stopped: shutdown" in log
    assert "Traceback" not in log


def test_demo_help_names_the_duration_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.hello_node", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "--duration SECONDS" in result.stdout
