"""SIGTERM and SIGINT shut a node down in order and exit 0 (in a real child process)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_signal_node.py")
REPO = Path(__file__).resolve().parents[2]


def read_until(process: subprocess.Popen[bytes], marker: bytes, timeout: float) -> bytes:
    """Read the child's stdout until ``marker`` appears, EOF, or ``timeout`` seconds pass."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    output = b""
    deadline = time.monotonic() + timeout
    while marker not in output:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        output += chunk
    return output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_shuts_the_node_down_in_order_dead_letters_the_queue_and_exits_0(
    signum: signal.Signals,
) -> None:
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        before = read_until(process, b"ready\n", timeout=30.0)
        assert b"ready\n" in before, before
        os.kill(process.pid, signum)
        after, errors = process.communicate(timeout=30.0)
        assert process.returncode == 0, errors.decode()
        lines = (before + after).decode().splitlines()
        assert lines.index("closing") < lines.index("stopped /last") < lines.index("stopped /first")
        # Four queued messages and the one cut off in flight: none lost silently.
        assert "dead letters [0, 1, 2, 3, 4]" in lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10.0)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
