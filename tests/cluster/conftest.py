"""Fixtures for the cluster tests: the shared Redis server (scripts/with-redis) and a namespace
of this test's own, deleted afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.persistence.redis._server import delete_namespace, shared_redis_url, unique_namespace


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
