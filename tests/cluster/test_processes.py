"""Two ``garrison run`` processes join a cluster from their ``[cluster]`` settings; a node in
the test process reaches both, and sees one leave (SIGTERM) and one die (SIGKILL: its lease
expires)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from garrison.cluster import Cluster
from garrison.testing import ChildProcess, send_signal
from tests.cluster.conftest import refresh

ROOT = Path(__file__).resolve().parents[2]


async def _until(cluster: Cluster, ready: Any, rounds: int = 400) -> None:
    for _ in range(rounds):
        if ready():
            return
        await refresh(cluster)
    raise AssertionError(f"not within {rounds} lease rounds: members are {cluster.members()}")


async def test_two_garrison_run_processes_join_and_answer(
    join: Any, redis_url: str, cluster_name: str, tmp_path: Path
) -> None:
    config = tmp_path / "node.toml"
    config.write_text(f'[cluster]\nname = "{cluster_name}"\nlease_ttl = 1.0\nrefresh_interval = 0.25\n')
    env = {"GARRISON_CLUSTER_URL": redis_url, "PYTHONPATH": str(ROOT)}
    processes = [
        await ChildProcess.start(
            sys.executable,
            "-m",
            "garrison",
            "run",
            "--config",
            str(config),
            "tests.cluster._spec:root_spec",
            env={**env, "GARRISON_NODE_NAME": name},
            cwd=str(ROOT),
        )
        for name in ("p1", "p2")
    ]
    try:
        for process in processes:
            await process.wait_for_output("joined cluster", timeout=30.0)
        here: Cluster = await join("t", lease_ttl=1.0, refresh_interval=0.25)
        await _until(here, lambda: [m.node_id for m in here.members()] == ["p1", "p2", "t"])
        for name in ("p1", "p2"):
            answer = await here.ref(name, "/root/echo").ask({"n": 1}, timeout=10.0)
            assert answer == {"n": 1, "from": name, "singletons": "RedisSingletons"}
        send_signal(processes[0]._process, signal.SIGTERM)
        assert await processes[0].wait(timeout=30.0) == 0
        await _until(here, lambda: not here.is_up("p1"))
        await processes[1].kill()
        await _until(here, lambda: not here.is_up("p2"))  # its lease lapses within lease_ttl
        assert [m.node_id for m in here.members()] == ["t"]
    finally:
        for process in processes:
            await process.aclose()
