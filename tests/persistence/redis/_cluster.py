"""A local Redis Cluster for the tests: three masters on free loopback ports, no replicas.

``RedisCluster.start()`` starts three ``redis-server --cluster-enabled yes``
processes in a temporary folder of its own, joins them with ``redis-cli
--cluster create`` (every slot assigned, three masters), and waits, bounded
by START_TIMEOUT, until every node reports ``cluster_state:ok``. ``stop()``
shuts every process down (SIGKILL if it does not go) and removes the folder;
it runs however the start ended, so no process, port or file is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ._server import free_port, redis_server_binary

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
MASTERS = 3


class LocalCluster:
    """Three redis-server processes joined into one Redis Cluster (see the module)."""

    def __init__(self, server: str, cli: str) -> None:
        self.server = server
        self.cli = cli
        self.ports: list[int] = []
        self.directory: Path | None = None
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """One node's URL: a cluster client finds the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> LocalCluster:
        self.directory = Path(tempfile.mkdtemp(prefix="garrison-redis-cluster."))
        try:
            for index in range(MASTERS):
                self._start_node(index)
            deadline = time.monotonic() + START_TIMEOUT
            for port in self.ports:
                self._wait(deadline, port, "PING", "PONG")
            nodes = [f"127.0.0.1:{port}" for port in self.ports]
            created = subprocess.run(
                [self.cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                timeout=START_TIMEOUT,
                check=False,
            )
            if created.returncode != 0:
                raise AssertionError(
                    f"redis-cli --cluster create failed: {created.stdout!r} {created.stderr!r}"
                )
            for port in self.ports:
                self._wait(deadline, port, "CLUSTER INFO", "cluster_state:ok")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, index: int) -> None:
        assert self.directory is not None
        port = free_port()
        folder = self.directory / f"node-{index}"
        folder.mkdir()
        self.ports.append(port)
        self._processes.append(
            subprocess.Popen(
                [
                    self.server,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(folder),
                    "--cluster-enabled",
                    "yes",
                    # A bus port of its own: the default (port + 10000) may be taken or past 65535.
                    "--cluster-port",
                    str(free_port()),
                    "--cluster-config-file",
                    str(folder / "nodes.conf"),
                    "--cluster-node-timeout",
                    "5000",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                    "--logfile",
                    str(folder / "redis.log"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def _wait(self, deadline: float, port: int, command: str, expected: str) -> None:
        while True:
            for process in self._processes:
                if process.poll() is not None:
                    raise AssertionError(
                        f"a cluster node exited with {process.returncode}: {self.log_tail()}"
                    )
            answer = subprocess.run(
                [self.cli, "-p", str(port), *command.split()], capture_output=True, timeout=5, check=False
            )
            if expected in answer.stdout.decode(errors="replace"):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"node {port}: no {expected!r} within {START_TIMEOUT}s: {self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        self._processes.clear()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def log_tail(self, lines: int = 10) -> str:
        tails = []
        if self.directory is not None:
            for log in sorted(self.directory.glob("node-*/redis.log")):
                with contextlib.suppress(OSError):
                    tails.append(f"{log.parent.name}: " + "\n".join(log.read_text().splitlines()[-lines:]))
        return "\n".join(tails) or "(no log)"


def local_cluster() -> LocalCluster:
    """A started LocalCluster; skips the test (fails it under CI) without redis-server and redis-cli."""
    server = redis_server_binary()
    cli = shutil.which("redis-cli", path=str(Path(server).parent)) or shutil.which("redis-cli")
    if cli is None:
        reason = "no redis-cli (Debian: apt-get install redis-tools) to create the Redis Cluster"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)
    return LocalCluster(server, cli).start()
