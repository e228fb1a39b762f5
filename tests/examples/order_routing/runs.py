"""What the end-to-end tests share: run a command of the example in a process group of its own,
stop it if it overruns, and read the verdict it prints."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def run_example(command: str, folder: Path, arguments: tuple[str, ...], timeout: float) -> str:
    """``python -m examples.order_routing COMMAND --folder FOLDER ...``; its output. An overrun
    gets SIGINT (the runner stops its nodes and broker), then SIGKILL for anything left."""
    argv = [sys.executable, "-m", "examples.order_routing", command, "--folder", str(folder), *arguments]
    process = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        pytest.fail(f"the {command} run took more than {timeout}s:\n{output}")
    assert process.returncode == 0, output
    return output


def assert_verdict_passed(output: str, *, ghosts: bool = False) -> None:
    """Every line of the verdict ok: 0 duplicates, 0 lost, 0 phantom, 0 ambiguous, fills match,
    no ghost fill applied; ``ghosts``: the broker sent ghost fills, and some were quarantined."""
    lines = {line.split(":")[0]: line for line in output.splitlines()}
    assert lines["duplicates (must be 0)"].split()[-2:] == ["0", "ok"], output
    assert lines["lost intents (must be 0)"].split()[-2:] == ["0", "ok"], output
    assert lines["phantom orders (must be 0)"].split()[-2:] == ["0", "ok"], output
    assert lines["ambiguous after settling (must be 0)"].split()[-2:] == ["0", "ok"], output
    assert lines["expired yet at the broker (must be 0)"].split()[-2:] == ["0", "ok"], output
    expired = re.search(
        r"expired, never sent late: ([\d,]+) = ([\d,]+) before send .* \+ ([\d,]+) after look-up", output
    )
    assert expired is not None and "unexplained" not in lines["expired, never sent late"], output
    total, before, after = (int(n.replace(",", "")) for n in expired.groups())
    assert total == before + after, output
    assert lines["positions at the node match fills at the broker"].endswith(": ok"), output
    quarantined = int(lines["ghost fills quarantined"].split(":")[1].split()[0].replace(",", ""))
    assert quarantined > 0 if ghosts else quarantined == 0, output
    assert lines["ghost fills applied (must be 0)"].split()[-2:] == ["0", "ok"], output
    assert int(lines["intents recorded"].split()[-1].replace(",", "")) > 100, output
    fills = re.search(r"fills: broker ([\d,]+), node ([\d,]+)", output)
    assert fills is not None, output
    broker, node = fills.groups()
    assert broker == node and int(broker.replace(",", "")) > 0, output
    assert output.rstrip().endswith("VERDICT: PASS"), output
