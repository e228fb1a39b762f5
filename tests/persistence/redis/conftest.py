"""Fixtures for the Redis tests: the shared server, a namespace per test, private servers.

Every test gets keys of its own (``namespace``), deleted afterwards. Tests
that stop or restart a server use ``start_redis`` for one of their own,
always shut down at the end of the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from garrison.persistence import RedisConnection, RedisJournal

from ._server import RedisServer, delete_namespace, redis_server_binary, shared_redis_url, unique_namespace

StartRedis = Callable[..., Awaitable[RedisServer]]


@pytest.fixture
def redis_url() -> str:
    """GARRISON_REDIS_URL; skipped with a reason without it (failed when CI is set)."""
    return shared_redis_url()


@pytest.fixture
async def namespace(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A key prefix of this test's own on the shared server; its keys are deleted afterwards."""
    name = unique_namespace(request.node.name[:40])
    yield name
    await delete_namespace(redis_url, name)


@pytest.fixture
async def redis_journal(redis_url: str, namespace: str) -> AsyncIterator[RedisJournal]:
    """An open RedisJournal on the shared server, in this test's namespace."""
    async with RedisJournal(redis_url, namespace=namespace) as journal:
        yield journal


@pytest.fixture(params=["redis", pytest.param("redis-cluster", marks=pytest.mark.redis_cluster)])
async def each_redis_journal(request: pytest.FixtureRequest) -> AsyncIterator[RedisJournal]:
    """An open RedisJournal in a namespace of this test's own, on the shared server and then on
    the local Redis Cluster (``redis_cluster``); a test module runs on both by naming its
    ``redis_journal`` fixture after this one."""
    cluster = request.param == "redis-cluster"
    url = request.getfixturevalue("redis_cluster").url if cluster else shared_redis_url()
    name = unique_namespace(request.node.name[:40])
    try:
        async with RedisJournal(RedisConnection(url=url, cluster=cluster), namespace=name) as journal:
            yield journal
    finally:
        await delete_namespace(url, name, cluster=cluster)


@pytest.fixture
async def start_redis(tmp_path: Path) -> AsyncIterator[StartRedis]:
    """Start private redis-servers (``await start_redis(appendfsync="always", password=None,
    extra=())``); all are stopped when the test ends, however it ends."""
    binary = redis_server_binary()
    servers: list[RedisServer] = []

    async def start(
        *, appendfsync: str = "always", password: str | None = None, extra: tuple[str, ...] = ()
    ) -> RedisServer:
        server = RedisServer(
            binary,
            tmp_path / f"redis-{len(servers)}",
            appendfsync=appendfsync,
            password=password,
            extra=extra,
        )
        servers.append(server)
        return await server.start()

    try:
        yield start
    finally:
        for server in servers:
            await server.stop()
