"""The hot standby: the full node as a cluster singleton on two node processes over one Redis
journal (``cluster``), and its chaos run (``chaos --standby``).

Both node processes run the same tree (``cluster_node.py``); the one holding the singleton's
lease runs its children, the other stands by. ``chaos --standby`` then strikes the owner again
and again: SIGKILL (the runner starts it again, and it comes back as the standby), or SIGSTOP
for longer than the lease and SIGCONT (a partition: it wakes up believing it owns the
singleton; its lease is gone, so it stops, and every write it tries is fenced). Each time the
standby takes over: it recovers the intent log and the positions, reconciles with the broker
and resumes routing. Then both stop, one plain node settles what is left, and the verdict
counts duplicates, lost orders and phantoms (all must be 0), with the takeover times: from the
last order the old owner sent to the first the new one sent (the broker's acceptance times).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec

from examples.order_routing.broker.store import StoredOrder, load_orders
from examples.order_routing.harness.broker_process import BrokerProcess
from examples.order_routing.harness.chaos import chaos_defaults
from examples.order_routing.harness.entry import HarnessConfig
from examples.order_routing.harness.launch import HARNESSED_SINGLE_NODE, node_command, node_env
from examples.order_routing.harness.processes import alive, stop_group
from examples.order_routing.harness.verdict import judge
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.intents import INTENTS_STREAM
from garrison import redact_url
from garrison.cluster._singleton import singleton_keys
from garrison.persistence import RedisJournal

ACCOUNT = "router-1"
"""The broker account both nodes log in as: the standby reconciles the owner's orders."""
SINGLETON = "/root"
"""The singleton the pair holds: the whole tree, by its root supervisor's path."""
IN_FLIGHT = 0.1
"""An order the broker accepted this soon after a strike was on the wire before it: the old owner's."""


def standby_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("hot standby (chaos --standby, cluster)")
    group.add_argument(
        "--standby",
        action="store_true",
        help="run the node as a cluster singleton on two processes over the redis:// journal and strike "
        "its owner (SIGKILL, or SIGSTOP past the lease then SIGCONT) --kills times",
    )
    group.add_argument("--freeze-share", type=float, default=0.4, help="share of the strikes that freeze")
    group.add_argument("--lease-ttl", type=float, default=3.0, help="the singleton lease's TTL (s)")
    group.add_argument("--lease-refresh", type=float, default=1.0, help="its refresh interval (s)")
    group.add_argument(
        "--node-log-level", default="INFO", help="the nodes' log level (their logs: node-a.log, node-b.log)"
    )


@dataclass
class StandbyNode:
    """One process of the pair: its name (the lease's owner id), its log, its process."""

    name: str
    log: IO[bytes]
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    async def start(self, config: NodeConfig, harness: HarnessConfig, journal: str, log_level: str) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "examples.order_routing.harness.cluster_node"),
            *("--name", self.name, "--log-level", log_level),
            env=node_env(config, harness, journal=journal),
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        self.starts += 1

    def pid(self) -> int | None:
        process = self.process
        return (
            process.pid if process is not None and process.returncode is None and alive(process.pid) else None
        )

    async def stop(self, timeout: float) -> int:
        if self.process is None:
            return 0
        return await stop_group(self.process, timeout)


async def lease_owner(client: Any) -> str | None:
    """The name of the node holding the singleton's lease (None: no one holds it now)."""
    value = await client.get(singleton_keys("garrison", SINGLETON)[0])
    return None if value is None else bytes(value).decode().split(":", 1)[0]


def _orders_of(store: Path) -> list[StoredOrder]:
    return load_orders(store) if store.exists() else []


async def _orders_after(store: Path, at: float, timeout: float) -> bool:
    """Wait (bounded) until the broker accepted an order of the account after ``at``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        orders = await asyncio.to_thread(_orders_of, store)
        if any(order.accepted_at > at for order in orders if order.client_id == ACCOUNT):
            return True
        await asyncio.sleep(0.2)
    return False


async def _wait_owner(
    client: Any, nodes: list[StandbyNode], other_than: str | None, timeout: float
) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owner = await lease_owner(client)
        if owner is not None and owner != other_than:
            return owner
        await asyncio.sleep(0.05)
    return None


def takeover_times(store: Path, strikes: list[float]) -> list[float]:
    """For each strike (wall-clock time): the gap between the last order the broker accepted
    before it (the old owner's last) and the first it accepted after (the new owner's first)."""
    accepted = sorted(order.accepted_at for order in load_orders(store) if order.client_id == ACCOUNT)
    gaps = []
    for at in strikes:
        before = [t for t in accepted if t <= at + IN_FLIGHT]
        after = [t for t in accepted if t > at + IN_FLIGHT]
        if before and after:
            gaps.append(after[0] - before[-1])
    return gaps


async def run_standby(args: argparse.Namespace, config_of: Any, *, strikes: int) -> int:
    """The pair on one Redis journal, ``strikes`` strikes at its owner, then settle and judge."""
    if not (args.journal or "").startswith(("redis://", "rediss://")):
        print("standby: --journal must be a redis:// URL (both nodes share it)")
        return 2
    if strikes:
        chaos_defaults(args)
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="order-routing-standby-"))
    folder.mkdir(parents=True, exist_ok=True)
    journal_url: str = args.journal
    async with RedisJournal(journal_url) as journal:
        if await journal.highest_seq(INTENTS_STREAM) or await journal.highest_seq("positions"):
            shown = redact_url(journal_url)
            print(f"standby: {shown} already holds intents or positions; give an empty database")
            return 2
    schedule = random.Random(args.chaos_seed)
    logs = [open(folder / f"node-{name}.log", "ab") for name in "ab"]  # noqa: SIM115, ASYNC230 - once
    print(
        f"standby: two nodes, {strikes} strikes at the owner, lease ttl {args.lease_ttl:g}s, "
        f"dedupe={args.dedupe}; files in {folder}",
        flush=True,
    )
    try:
        async with BrokerProcess.start(args, folder / "broker.db") as broker:
            config = msgspec.structs.replace(config_of(args, broker.port), name=ACCOUNT)
            harness = HarnessConfig(lease_ttl=args.lease_ttl, lease_refresh=args.lease_refresh)
            nodes = [StandbyNode(name, log) for name, log in zip("ab", logs, strict=True)]
            struck, code = await _strike_loop(
                args, nodes, config, harness, journal_url, schedule, strikes, broker.store
            )
            if code:
                return code
            await _settle(args, config, journal_url, folder)
            gaps = await asyncio.to_thread(takeover_times, folder / "broker.db", struck)
        async with RedisJournal(journal_url) as journal:
            verdict = await judge(journal, str(folder / "broker.db"), ACCOUNT)
    finally:
        for log in logs:
            log.close()
    if gaps:
        print(
            "takeover (last order of the old owner -> first of the new): "
            f"p50 {statistics.median(gaps):.2f}s, max {max(gaps):.2f}s over {len(gaps)}"
        )
    for line in verdict.lines():
        print(line)
    return 0 if verdict.passed else 1


async def _strike_loop(
    args: argparse.Namespace,
    nodes: list[StandbyNode],
    config: NodeConfig,
    harness: HarnessConfig,
    journal_url: str,
    schedule: random.Random,
    strikes: int,
    store: Path,
) -> tuple[list[float], int]:
    """Start the pair, strike the owner ``strikes`` times (or run ``--duration`` without any),
    stop both. Returns the strikes' wall-clock times and an exit code (0: went as planned)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(journal_url)
    struck: list[float] = []
    by_name = {node.name: node for node in nodes}
    takeover_bound = args.lease_ttl + 15.0
    kills = freezes = 0
    try:
        for node in nodes:
            await node.start(config, harness, journal_url, args.node_log_level)
        first = await _wait_owner(client, nodes, None, 30.0)
        if first is None:
            print(f"standby: no node took the lease; see {[log.name for log in (n.log for n in nodes)]}")
            return struck, 2
        print(f"standby: node {first} holds the lease, the other stands by", flush=True)
        if not strikes:
            await asyncio.sleep(args.duration)
        for strike in range(strikes):
            await asyncio.sleep(schedule.uniform(args.min_interval, args.max_interval))
            # Routing resumed since the last strike: its first order times the takeover.
            if not await _orders_after(store, struck[-1] + IN_FLIGHT if struck else 0.0, takeover_bound):
                print("standby: no order reached the broker since the last takeover; stopping")
                return struck, 2
            owner_name = await _wait_owner(client, nodes, None, takeover_bound)
            owner = by_name.get(owner_name or "")
            pid = owner.pid() if owner is not None else None
            if owner is None or pid is None:
                print("standby: no live owner to strike; stopping")
                return struck, 2
            at = time.time()
            if schedule.random() < args.freeze_share:
                pause = args.lease_ttl + 1.0
                os.kill(pid, signal.SIGSTOP)
                try:
                    print(f"standby: strike {strike + 1}: froze node {owner.name} for {pause:g}s", flush=True)
                    new = await _wait_owner(client, nodes, owner.name, takeover_bound)
                    took = time.time() - at
                    await asyncio.sleep(max(0.0, at + pause - time.time()))
                finally:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
                freezes += 1
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                print(f"standby: strike {strike + 1}: killed node {owner.name} (pid {pid})", flush=True)
                assert owner.process is not None
                await owner.process.wait()
                new = await _wait_owner(client, nodes, owner.name, takeover_bound)
                took = time.time() - at
                await owner.start(config, harness, journal_url, args.node_log_level)  # the new standby
                kills += 1
            struck.append(at)
            if new is None:
                print(f"standby: no takeover within {takeover_bound:g}s of striking node {owner.name}")
                return struck, 2
            print(f"standby: node {new} took the lease {took:.2f}s after the strike", flush=True)
        if strikes:
            await asyncio.sleep(args.calm)
    finally:
        stopping = time.monotonic()
        codes = [await node.stop(20.0) for node in nodes]
        await client.aclose()
        took = time.monotonic() - stopping
        print(f"standby: {kills} kills, {freezes} freezes; stopped {codes} in {took:.1f}s", flush=True)
    return struck, 0


async def _settle(args: argparse.Namespace, config: NodeConfig, journal_url: str, folder: Path) -> None:
    """One plain node, without a feed, until no intent is pending (as the chaos run settles)."""
    settle = HarnessConfig(settle_report=str(folder / "settle.json"), settle_timeout=args.settle_timeout)
    with open(folder / "settle.log", "ab") as log:  # noqa: ASYNC230 - once
        settler = await asyncio.create_subprocess_exec(
            *node_command(HARNESSED_SINGLE_NODE, name=ACCOUNT),
            env=node_env(msgspec.structs.replace(config, feed=False), settle, journal=journal_url),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            await asyncio.wait_for(settler.wait(), args.settle_timeout + 30)
        except TimeoutError:
            print("standby: the settle run did not finish in time")
        finally:
            await stop_group(settler, 5.0)
    report = folder / "settle.json"
    print(f"standby: settle report: {report.read_text() if report.exists() else 'none'}", flush=True)
