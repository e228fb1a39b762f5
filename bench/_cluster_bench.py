"""What ``remote_tell`` and ``remote_ask`` share: a private redis-server and two joined nodes.

The server runs without AOF (``appendonly no``): remote messages are at most
once and never persisted, so neither garrison nor the raw baselines wait for
an fsync. Both nodes live in this process on one loop, as the baselines'
producer and consumer do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from bench.redis_journal import Server as RedisServer


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


def Server() -> RedisServer:
    """A private redis-server without persistence; ``stop()`` always ends it."""
    binary = os.environ.get("GARRISON_REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
    return RedisServer(binary, durable=False)


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
