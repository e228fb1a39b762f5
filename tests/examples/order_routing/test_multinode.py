"""Several nodes on one Redis journal: ``python -m examples.order_routing multinode`` runs a
full node and an executor-only node sharing the recorded intents through one consumer group,
SIGKILLs one of them 12 times at random moments (some kills aimed at the dead zone), against
a broker that drops replies, resets connections, rejects and does not dedupe at all. A dead
node's intents are taken over by the survivor (or by the node itself once restarted); then:
0 duplicates, 0 lost, 0 ambiguous, positions match.

Needs a redis-server (``scripts/with-redis``); about 30-40 s, so marked slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.persistence.redis._server import delete_namespace, shared_redis_url

REPO = Path(__file__).resolve().parents[3]
RUN_TIMEOUT = 150.0
"""Real seconds the whole run may take before the test stops it (it takes ~30-40 s)."""
KILLS = 12
DATABASE = 11
"""The nodes keep their journal under the default namespace: a database of its own keeps it
apart from every other test's keys on the shared server."""


@pytest.fixture
def journal_url() -> Iterator[str]:
    """The shared server, database DATABASE, emptied before and after."""
    parts = urlsplit(shared_redis_url())
    url = urlunsplit(parts._replace(path=f"/{DATABASE}"))
    asyncio.run(delete_namespace(url, "garrison"))
    yield url
    asyncio.run(delete_namespace(url, "garrison"))


def run_multinode(folder: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [
        *(sys.executable, "-m", "examples.order_routing", "multinode", "--folder", str(folder)),
        *arguments,
    ]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGINT lets the runner stop the nodes (each in its own process group) and the broker.
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        pytest.fail(f"the multinode run took more than {RUN_TIMEOUT}s:\n{output}")
    return subprocess.CompletedProcess(command, process.returncode, output, "")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 90)
def test_two_nodes_sharing_intents_on_redis_lose_and_duplicate_nothing_when_one_is_killed_again_and_again(
    tmp_path: Path, journal_url: str
) -> None:
    result = run_multinode(
        tmp_path,
        *("--journal", journal_url, "--kills", str(KILLS), "--claim-idle", "1.5", "--restart-delay", "1.0"),
        # A lighter feed than the demo's: the kills and take-overs are the point, and the machine
        # runs a broker, a Redis and two nodes at once.
        *("--rate", "100", "--burst-factor", "4", "--partial-fills", "--chaos-seed", "3"),
    )
    output = result.stdout
    print(output[output.find("take-overs:") :])
    assert result.returncode == 0, output

    assert "dedupe=none" in output
    kills = re.search(
        rf"multinode: {KILLS} kills \(a (\d+), b (\d+); (\d+) armed for the dead zone\)", output
    )
    assert kills is not None, output
    # A frozen node's intents were taken over while it lived, and its leases fenced it off.
    freezes = re.search(r"(\d+) freezes;", output)
    assert freezes is not None and int(freezes.group(1)) > 0, output
    assert int(kills.group(1)) + int(kills.group(2)) == KILLS
    assert "multinode: settled: yes" in output
    # Every node stopped when asked (SIGTERM through heart): none had to be SIGKILLed after 20 s.
    stops = re.findall(r"stopped \[([^\]]*)\] in", output)
    assert len(stops) == 2 and all("-9" not in codes for codes in stops), output
    # The survivor took over intents a killed node held, looking up first those it may have sent.
    taken = re.search(r"take-overs: (\d+) intents taken over from another executor", output)
    assert taken is not None and int(taken.group(1)) > 0, output
    lines = {line.split(":")[0]: line for line in output.splitlines()}
    assert lines["duplicates (must be 0)"].split()[-2:] == ["0", "ok"], output
    assert lines["lost intents (must be 0)"].split()[-2:] == ["0", "ok"], output
    assert lines["phantom orders (must be 0)"].split()[-2:] == ["0", "ok"], output
    assert lines["ambiguous after settling (must be 0)"].split()[-2:] == ["0", "ok"], output
    assert lines["positions at the node match fills at the broker"].endswith(": ok"), output
    assert int(lines["intents recorded"].split()[-1].replace(",", "")) > 100, output
    broker, node = re.search(r"fills: broker ([\d,]+), node ([\d,]+)", output).groups()  # type: ignore[union-attr]
    assert broker == node and int(broker.replace(",", "")) > 0
    assert output.rstrip().endswith("VERDICT: PASS")
    # Nothing left running: the last incarnation of each node is gone.
    for member in ("a", "b"):
        assert not alive(int((tmp_path / f"control-{member}" / "node.pid").read_text()))
