"""Cluster singleton takeover after SIGKILL, with the default lease (TTL 3 s, refresh 1 s).

A private redis-server is started for the benchmark (as ``redis_journal``) and stopped at the
end. Each round, fresh keys:

- garrison: an owner process runs a Node with ``RedisSingletons`` (defaults) and a tree with
  one ``singleton=True`` child; this process runs the same tree on a Node of its own, standing
  by. Once the owner holds the lease, after a random part of a refresh interval (so the kill
  lands anywhere in the refresh cycle), the owner is SIGKILLed; the figure is the time from
  the kill to the standby's child running (its ``on_start``);
- raw lease (the baseline): an owner process takes a key with ``SET NX PX 3000`` and extends
  it every second; a standby in this process tries ``SET NX PX`` every 10 ms. The figure is
  the time from the kill to the standby's SET succeeding: what the TTL alone costs.

Rounds alternate garrison and raw. Takeover is bounded below by the TTL left at the kill
(TTL minus the time since the last refresh), so both figures sit between TTL - refresh and
TTL; the ratio is what garrison adds (its stand-by poll, starting the child).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

from bench._harness import median, paired_ratio, quiet_logs, summary, target
from bench.redis_journal import Server

TTL, REFRESH = 3.0, 1.0
"""RedisSingletons' defaults."""
OWNER_START_TIMEOUT = 20.0


def _owner_command(kind: str, url: str, namespace: str) -> list[str]:
    return [sys.executable, "-m", "bench.takeover", kind, url, namespace]


async def _lease_holder(url: str, key: str, timeout: float) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + timeout
        while await client.get(key) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no owner took {key} within {timeout}s")
            await asyncio.sleep(0.01)
    finally:
        await client.aclose()


def _start(kind: str, url: str, namespace: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _owner_command(kind, url, namespace),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )


def _kill(owner: subprocess.Popen[bytes]) -> float:
    killed_at = time.monotonic()
    owner.send_signal(signal.SIGKILL)
    owner.wait(10)
    return killed_at


async def _garrison_round(url: str, chance: random.Random) -> float:
    from garrison import Actor, ChildSpec, Node, SupervisorSpec
    from garrison.cluster import RedisSingletons
    from garrison.cluster._singleton import singleton_keys

    namespace = f"bench:{uuid.uuid4().hex[:10]}"
    started = asyncio.get_running_loop().create_future()

    class Child(Actor):
        async def on_start(self) -> None:
            if not started.done():
                started.set_result(time.monotonic())

    owner = _start("garrison-owner", url, namespace)
    try:
        await _lease_holder(url, singleton_keys(namespace, "/root/child")[0], OWNER_START_TIMEOUT)
        standby = Node(
            "standby", handle_signals=False, guard=None, singletons=RedisSingletons(url, namespace=namespace)
        )
        async with standby:
            await standby.start(SupervisorSpec(children=[ChildSpec("child", Child, singleton=True)]))
            await asyncio.sleep(chance.uniform(0.0, REFRESH))
            killed_at = _kill(owner)
            took = await asyncio.wait_for(started, TTL * 3) - killed_at
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
    return took


async def _raw_round(url: str, chance: random.Random) -> float:
    import redis.asyncio as aioredis

    key = f"bench:{uuid.uuid4().hex[:10]}:lease"
    owner = _start("raw-owner", url, key)
    client = aioredis.Redis.from_url(url)
    try:
        await _lease_holder(url, key, OWNER_START_TIMEOUT)
        await asyncio.sleep(chance.uniform(0.0, REFRESH))
        killed_at = _kill(owner)
        await _take(client, key, "standby")
        return time.monotonic() - killed_at
    finally:
        await client.aclose()
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)


async def _take(client: Any, key: str, owner: str) -> None:
    """SET NX PX every 10 ms until it succeeds (a raw lease's stand-by poll)."""
    while True:
        if await client.set(key, owner, nx=True, px=int(TTL * 1000)):
            return
        await asyncio.sleep(0.01)


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    binary = os.environ.get("GARRISON_REDIS_SERVER") or shutil.which("redis-server")
    try:
        import redis  # noqa: F401
    except ImportError:
        return {"skipped": "redis-py is not installed: pip install 'garrison[redis]'"}
    if not binary:
        return {"skipped": "no redis-server: install it (Debian: apt-get install redis-server)"}
    server = Server(binary)
    try:
        return _measure(server.url, 3 if quick else 10)
    finally:
        server.stop()


def _measure(url: str, rounds: int) -> dict[str, Any]:
    chance = random.Random(5)
    ours: list[float] = []
    raw: list[float] = []
    for _ in range(rounds):
        ours.append(asyncio.run(_garrison_round(url, chance)))
        raw.append(asyncio.run(_raw_round(url, chance)))
    return {
        "rounds": rounds,
        "ttl_seconds": TTL,
        "refresh_seconds": REFRESH,
        "garrison_takeover_seconds": {**summary(ours, 3), "p50": round(median(ours), 3)},
        "raw_lease_takeover_seconds": {**summary(raw, 3), "p50": round(median(raw), 3)},
        "ratio_to_raw": round(paired_ratio(ours, raw), 3),
        "targets": {
            "takeover_max": target(
                max(ours),
                "<=",
                TTL + 1.0,
                "garrison takeover after SIGKILL, worst of the rounds, <= TTL + 1 s",
            ),
        },
    }


# -- the owner processes ------------------------------------------------------------------------


async def _garrison_owner(url: str, namespace: str) -> None:
    from garrison import Actor, ChildSpec, Node, SupervisorSpec
    from garrison.cluster import RedisSingletons

    class Child(Actor):
        pass

    node = Node("owner", singletons=RedisSingletons(url, namespace=namespace))
    async with node:
        await node.start(SupervisorSpec(children=[ChildSpec("child", Child, singleton=True)]))
        await node.wait_closed()


async def _raw_owner(url: str, key: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    await _take(client, key, "owner")
    while True:
        await asyncio.sleep(REFRESH)
        await client.pexpire(key, int(TTL * 1000))


if __name__ == "__main__":
    quiet_logs()
    kind, url, name = sys.argv[1:4]
    asyncio.run(_garrison_owner(url, name) if kind == "garrison-owner" else _raw_owner(url, name))
