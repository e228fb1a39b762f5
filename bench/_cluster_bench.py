"""What ``remote_tell`` and ``remote_ask`` share: a private redis-server and two joined nodes.

The server runs without AOF (``appendonly no``): remote messages are at most
once and never persisted, so neither garrison nor the raw baselines wait for
an fsync. Both nodes live in this process on one loop, as the baselines'
producer and consumer do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

START_TIMEOUT = 10.0


class OrderAccepted(msgspec.Struct, frozen=True):
    """The payload both sides move: a small order event, as the example's are."""

    order_id: str
    symbol: str
    quantity: int
    price: float


PAYLOAD = OrderAccepted("c0ffee-0001-7", "ESZ6", 3, 5012.25)
PAYLOAD_BYTES = msgspec.msgpack.encode(PAYLOAD)


def redis_missing() -> str | None:
    """Why the cluster benchmarks cannot run here, or None."""
    try:
        import redis  # noqa: F401
    except ImportError:
        return "redis-py is not installed: pip install 'garrison[redis]'"
    if not (os.environ.get("GARRISON_REDIS_SERVER") or shutil.which("redis-server")):
        return "no redis-server: install it (Debian: apt-get install redis-server)"
    return None


class Server:
    """A private redis-server without persistence; ``stop()`` always ends it."""

    def __init__(self) -> None:
        binary = os.environ.get("GARRISON_REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
        self.directory = tempfile.TemporaryDirectory(dir=Path(__file__).absolute().parent, prefix=".redis-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory.name,
             "--appendonly", "no", "--save", "",
             "--logfile", os.path.join(self.directory.name, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            self.version = asyncio.run(self._wait_until_ready())
        except BaseException:
            self.stop()
            raise

    async def _wait_until_ready(self) -> str:
        import redis.asyncio as aioredis

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            client = aioredis.Redis.from_url(self.url)
            try:
                info = await client.info("server")
                return str(info["redis_version"])
            except Exception:
                if time.monotonic() > deadline:
                    raise
            finally:
                await client.aclose()
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
        finally:
            self.directory.cleanup()


@contextlib.asynccontextmanager
async def two_nodes(url: str) -> AsyncIterator[tuple[Any, Any]]:
    """Nodes ``a`` and ``b`` joined to a fresh cluster, each seeing the other."""
    from garrison import Node
    from garrison.cluster import Cluster

    name = f"bench-{uuid.uuid4().hex[:8]}"
    async with (
        Node("a", handle_signals=False, guard=None) as a,
        Node("b", handle_signals=False, guard=None) as b,
    ):
        first = await Cluster.join(a, url, name=name, message_types=(OrderAccepted,))
        second = await Cluster.join(b, url, name=name, message_types=(OrderAccepted,))
        first.membership.view = dict(second.membership.view)  # no wait for a's next refresh
        yield first, second


def raw_client(url: str) -> Any:
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(url)


def fresh_key() -> str:
    return f"bench:{uuid.uuid4().hex[:10]}"
