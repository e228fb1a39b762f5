"""Real redis-server processes for the tests: the shared one, and private ones a test may stop.

The shared server comes from the environment (``scripts/with-redis``, which
``make test`` and CI use): ``GARRISON_REDIS_URL``. Without it the Redis tests
are skipped with a reason, except under CI (``CI`` set), where they fail:
CI must never skip them silently.

A test that stops or restarts a server starts its own with ``RedisServer``
(AOF on, ``appendfsync always``, data in the test's tmp_path, a free port on
127.0.0.1) and never touches the shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from garrison.testing import send_signal

URL_VARIABLE = "GARRISON_REDIS_URL"
SERVER_VARIABLE = "GARRISON_REDIS_SERVER"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def shared_redis_url() -> str:
    """The shared server's URL; skips the test (fails it under CI) when none is configured."""
    url = os.environ.get(URL_VARIABLE, "")
    if url:
        return url
    reason = (
        f"{URL_VARIABLE} is not set: these tests need a real redis-server "
        "(run them with `make test` or `scripts/with-redis .venv/bin/python -m pytest`)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def redis_server_binary() -> str:
    """The redis-server to start private servers with; skips (fails under CI) without one."""
    binary = os.environ.get(SERVER_VARIABLE) or shutil.which("redis-server")
    if binary:
        return binary
    reason = f"no redis-server binary: set {SERVER_VARIABLE} or put redis-server on PATH"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def unique_namespace(label: str = "test") -> str:
    """A key prefix no other test uses, so tests on the shared server never see each other's keys."""
    return f"garrison-test:{label}:{uuid.uuid4().hex[:12]}"


async def delete_namespace(url: str, namespace: str, *, cluster: bool = False) -> None:
    """Delete every key under ``namespace`` (keeps the shared server small across a run); on a
    Redis Cluster (``cluster=True``) key by key, since one DEL cannot span slots."""
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster

    client: Any = RedisCluster.from_url(url) if cluster else aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=1000)]
        if cluster:
            for key in keys:
                await client.delete(key)
        for start in range(0, len(keys) if not cluster else 0, 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A private redis-server child process: AOF on, ``appendfsync`` as asked, data in ``directory``.

    ``start()`` and ``shutdown()`` may be called again and again (a restart
    keeps the port and the data directory); ``stop()`` ends it for good
    however it is running.
    """

    def __init__(
        self,
        binary: str,
        directory: Path,
        *,
        appendfsync: str = "always",
        password: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.binary = binary
        self.extra = extra
        """More redis-server arguments (TLS: ``--tls-port`` and its files)."""
        self.password = password
        """With a password, the server requires it (``--requirepass``) and ``url`` carries it."""
        self.directory = directory
        self.appendfsync = appendfsync
        self.port = free_port()
        self.starts = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> RedisServer:
        """Start the server and wait (at most START_TIMEOUT) until it answers PING."""
        if self.running:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--logfile", str(self.directory / "redis.log"),
            *(("--requirepass", self.password) if self.password else ()),
            *self.extra,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self.starts += 1
        try:
            await self._wait_until_ready()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _wait_until_ready(self) -> None:
        import redis.exceptions

        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.returncode is not None:
                status = self._process.returncode
                raise AssertionError(f"redis-server exited with {status}: {self.log_tail()}")
            client = _client(self.port, timeout=1.0, password=self.password)
            try:
                if await client.ping():
                    return
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError, OSError):
                pass
            finally:
                await client.aclose()
            if loop.time() > deadline:
                raise AssertionError(f"redis-server not up within {START_TIMEOUT}s: {self.log_tail()}")
            await asyncio.sleep(0.02)

    async def shutdown(self) -> None:
        """SHUTDOWN (the server fsyncs its AOF and exits), then reap the process."""
        if not self.running:
            return
        import redis.exceptions

        client = _client(self.port, timeout=STOP_TIMEOUT, password=self.password)
        try:
            with contextlib.suppress(redis.exceptions.ConnectionError, OSError):
                await client.shutdown(nosave=True)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()
        await self._reap()

    async def kill(self) -> None:
        """SIGKILL the server (no chance to flush anything) and reap it."""
        if self._process is not None:
            send_signal(self._process, signal.SIGKILL)
        await self._reap()

    async def _reap(self) -> None:
        process = self._process
        if process is None:
            return
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            send_signal(process, signal.SIGKILL)
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)

    async def stop(self) -> None:
        """End the server for good: SHUTDOWN, SIGKILL if that does not do it; always reaped."""
        try:
            await asyncio.wait_for(self.shutdown(), STOP_TIMEOUT)
        except BaseException:
            await self.kill()
            raise
        finally:
            if self.running:
                await self.kill()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.directory / "redis.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __repr__(self) -> str:
        return f"<RedisServer 127.0.0.1:{self.port} {'running' if self.running else 'stopped'}>"


def _client(port: int, *, timeout: float, password: str | None = None) -> Any:
    """A client that tries once: redis-py's default retries would keep re-sending a SHUTDOWN."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.Redis(
        host="127.0.0.1",
        port=port,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
