"""Fixtures for the persistence tests: a real SqliteJournal in a fresh file per test, and
``make_journal`` for the journal contract suite, which runs on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from garrison.persistence import RedisConnection, RedisJournal, SqliteJournal

BACKENDS = ["sqlite", "redis", pytest.param("redis-cluster", marks=pytest.mark.redis_cluster)]


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
async def journal(journal_path: Path) -> AsyncIterator[SqliteJournal]:
    """An open SqliteJournal (synchronous=FULL, the default) on a new file; closed after the test."""
    async with SqliteJournal(journal_path) as opened:
        yield opened


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each journal backend in turn. Redis needs GARRISON_REDIS_URL (see tests/persistence/redis)."""
    return str(request.param)


@pytest.fixture
async def make_journal(
    backend: str, journal_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Any]]:
    """``make_journal(**options)``: a new, unopened journal of ``backend``, on the same store
    each call (one SQLite file, or one Redis namespace of this test's own) — a second call
    is what a second process would open. Every journal made is closed after the test."""
    made: list[Any] = []
    namespace = ""
    cluster = backend == "redis-cluster"
    if backend.startswith("redis"):
        from .redis._server import delete_namespace, shared_redis_url, unique_namespace

        url = request.getfixturevalue("redis_cluster").url if cluster else shared_redis_url()
        namespace = unique_namespace(request.node.name[:40])

    def make(**options: Any) -> Any:
        if backend.startswith("redis"):
            opened: Any = RedisJournal(
                RedisConnection(url=url, cluster=cluster), namespace=namespace, **options
            )
        else:
            opened = SqliteJournal(journal_path, **options)
        made.append(opened)
        return opened

    try:
        yield make
    finally:
        for opened in made:
            await opened.close()
        if namespace:
            await delete_namespace(url, namespace, cluster=cluster)
