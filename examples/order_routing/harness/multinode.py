"""Several nodes on one Redis journal, one of them SIGKILLed again and again; then the verdict.

``python -m examples.order_routing multinode --journal redis://... --kills N`` starts
the broker simulator (dedupe ``none``: a careless node would show duplicates),
then the nodes, each under ``garrison run --heart`` (restarted after every
exit): node ``a`` is a full node (feed, strategies, risk, intents, an
executor, positions) and nodes ``b``... are executor-only (a gateway and an
executor). Every executor takes its share of the recorded intents from one
consumer group (node/shared_work.py). The runner SIGKILLs a random node at
random moments (a share of the kills aimed at the dead zone, as in the chaos
run) and freezes one a few times (SIGSTOP, then SIGCONT once its intents
were taken over), lets them run ``--calm`` seconds, stops them, starts them
once more without a feed until no intent is left pending, and prints the
verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec

from examples.order_routing.broker.store import load_fills
from examples.order_routing.harness.broker_process import BrokerProcess
from examples.order_routing.harness.chaos import chaos_defaults
from examples.order_routing.harness.entry import HarnessConfig
from examples.order_routing.harness.launch import HARNESSED_SHARED_NODE, HeartOptions, node_command, node_env
from examples.order_routing.harness.processes import arm_dead_zone, disarm_dead_zone, node_pid, stop_group
from examples.order_routing.harness.verdict import judge, replay_positions
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.intents import INTENTS_STREAM
from examples.order_routing.node.messages import OrderIntent
from examples.order_routing.node.shared_work import GROUP
from garrison import redact_url
from garrison.persistence import IntentEvent, IntentLog, IntentMoved, IntentState, RedisJournal

ACCOUNT = "router-1"
"""The broker account every node's session logs in as (look-ups see each other's orders)."""


def multinode_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("several nodes")
    group.add_argument("--nodes", type=int, default=2, help="a full node and N-1 executor-only nodes")
    group.add_argument("--kills", type=int, default=10, help="SIGKILLs, each of a random node")
    group.add_argument(
        "--victim", choices=("any", "full", "executor"), default="any", help="which nodes are killed"
    )
    group.add_argument("--min-interval", type=float, default=0.8, help="shortest gap between kills (s)")
    group.add_argument("--max-interval", type=float, default=2.0, help="longest gap between kills (s)")
    group.add_argument(
        "--dead-zone-share", type=float, default=0.3, help="share of kills aimed at the dead zone"
    )
    group.add_argument(
        "--claim-idle", type=float, default=2.0, help="an executor silent this long loses its intents (s)"
    )
    group.add_argument(
        "--freezes",
        type=int,
        default=2,
        help="besides the kills, freeze a random node this many times (SIGSTOP for 1.5 x claim_idle, "
        "then SIGCONT): a live executor whose intents are taken over while it stands still",
    )
    group.add_argument(
        "--restart-delay",
        type=float,
        default=1.0,
        help="heart restarts a killed node after this long (s); with its start-up, about claim_idle: "
        "sometimes the survivor takes the dead node's intents over, sometimes the node itself",
    )
    group.add_argument(
        "--aim-at-work",
        type=float,
        default=0.0,
        help="before each kill, wait up to this long (s) for the victim to hold an intent of the "
        "group (pending, unacked), so that the kill leaves work to take over (0: kill at once)",
    )
    group.add_argument("--actor-faults", type=float, default=0.0, help="in-node actor crashes/hangs per s")
    group.add_argument("--calm", type=float, default=2.0, help="seconds of running after the last kill")
    group.add_argument(
        "--settle-timeout", type=float, default=40.0, help="longest wait for every intent to finish (s)"
    )
    group.add_argument(
        "--node-log-level", default="WARNING", help="the nodes' log level (their logs: --folder)"
    )
    group.add_argument("--chaos-seed", type=int, default=1, help="seed of the kill schedule")
    group.add_argument("--folder", help="keep the broker store and the logs here (default: a temp folder)")


@dataclass
class NodeProcess:
    """One node of the several: its config, its harness settings, its control folder, the
    process running it."""

    config: NodeConfig
    harness: HarnessConfig
    control: Path
    log: IO[bytes]
    process: asyncio.subprocess.Process | None = None
    kills: int = 0

    @property
    def member(self) -> str:
        return self.config.member

    async def start(
        self, journal: str, *, heart: bool, restart_delay: float = 1.0, log_level: str = "WARNING"
    ) -> None:
        command = node_command(
            HARNESSED_SHARED_NODE,
            name=f"node-{self.member}",
            log_level=log_level,
            stall_timeout=5,
            heart=HeartOptions(backoff=restart_delay, max_backoff=restart_delay) if heart else None,
        )
        self.process = await asyncio.create_subprocess_exec(
            *command,
            env=node_env(self.config, self.harness, journal=journal),
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )

    def pid(self) -> int | None:
        """The node's own pid (not its heart's), once it has started."""
        assert self.process is not None
        return node_pid(self.control, self.process.pid)

    async def stop(self, timeout: float) -> int:
        assert self.process is not None
        return await stop_group(self.process, timeout)


async def _journal_is_empty(journal: RedisJournal) -> bool:
    return await journal.highest_seq(INTENTS_STREAM) == 0 and await journal.highest_seq("positions") == 0


async def wait_settled(journal: RedisJournal, broker_store: Path, timeout: float) -> tuple[bool, int]:
    """Poll the journal (bounded) until no intent is pending and positions has every fill the
    broker made for the account; returns (settled, intents still pending)."""
    # A reader of the node's journal: it never compacts (the node does).
    log = await IntentLog(journal, INTENTS_STREAM, OrderIntent, compact_every=None).open()
    deadline = time.monotonic() + timeout
    pending = -1
    while time.monotonic() < deadline:
        await log.refresh()
        pending = len(log.pending())
        if pending == 0:
            fills = [f for f in await asyncio.to_thread(load_fills, broker_store) if f.client_id == ACCOUNT]
            if (await replay_positions(journal)).fills == len(fills):
                return True, 0
        await asyncio.sleep(0.5)
    return False, pending


async def run_multinode(args: argparse.Namespace, config_of: Any) -> int:
    if not (args.journal or "").startswith(("redis://", "rediss://")):
        print("multinode: --journal must be a redis:// URL (the nodes share it)")
        return 2
    if args.nodes < 2:
        print("multinode: --nodes must be at least 2")
        return 2
    chaos_defaults(args)
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="order-routing-multinode-"))
    folder.mkdir(parents=True, exist_ok=True)
    journal_url: str = args.journal
    async with RedisJournal(journal_url) as journal:
        if not await _journal_is_empty(journal):
            shown = redact_url(journal_url)
            print(f"multinode: {shown} already holds intents or positions; give an empty database")
            return 2
    schedule = random.Random(args.chaos_seed)
    # Once, before anything runs.
    logs = [open(folder / f"node-{chr(ord('a') + i)}.log", "ab") for i in range(args.nodes)]  # noqa: SIM115, ASYNC230
    print(f"multinode: {args.nodes} nodes, {args.kills} kills, dedupe={args.dedupe}; files in {folder}")
    try:
        async with BrokerProcess.start(args, folder / "broker.db") as broker:
            base: NodeConfig = config_of(args, broker.port)
            nodes = []
            for index, log in enumerate(logs):
                member = chr(ord("a") + index)
                control = folder / f"control-{member}"
                control.mkdir(exist_ok=True)
                config = msgspec.structs.replace(
                    base,
                    name=ACCOUNT,
                    role="full" if index == 0 else "executor",
                    member=member,
                    claim_idle=args.claim_idle,
                )
                harness = HarnessConfig(control_dir=str(control), chaos_faults_per_second=args.actor_faults)
                nodes.append(NodeProcess(config, harness, control, log))
            code = await _kill_loop(args, nodes, journal_url, schedule, folder)
            if code:
                return code
            print("multinode: settling: every node again (under heart), without a feed")
            for node in nodes:
                disarm_dead_zone(node.control)
                node.config = msgspec.structs.replace(node.config, feed=False)
                node.harness = msgspec.structs.replace(node.harness, chaos_faults_per_second=0.0)
                await node.start(
                    journal_url, heart=True, restart_delay=args.restart_delay, log_level=args.node_log_level
                )
            try:
                async with RedisJournal(journal_url) as journal:
                    settled, pending = await wait_settled(journal, broker.store, args.settle_timeout)
            finally:
                stopping = time.monotonic()
                codes = [await node.stop(10.0) for node in nodes]
                stop_took = time.monotonic() - stopping
            outcome = "yes" if settled else f"no, {pending} intents still pending"
            print(f"multinode: settled: {outcome}; stopped {codes} in {stop_took:.1f}s")
        async with RedisJournal(journal_url) as journal:
            verdict = await judge(journal, str(folder / "broker.db"), ACCOUNT)
            summary = await take_over_summary(journal, folder)
    finally:
        for log in logs:
            log.close()
    print(summary)
    for line in verdict.lines():
        print(line)
    return 0 if verdict.passed else 1


async def _kill_loop(
    args: argparse.Namespace,
    nodes: list[NodeProcess],
    journal_url: str,
    schedule: random.Random,
    folder: Path,
) -> int:
    """Run the nodes under heart; SIGKILL (or freeze) one at random moments; stop them all."""
    # Opened before any node starts: a journal that cannot be opened leaves no process behind.
    watch = await RedisJournal(journal_url).open()  # for --aim-at-work: what the victims hold
    for node in nodes:
        await node.start(
            journal_url, heart=True, restart_delay=args.restart_delay, log_level=args.node_log_level
        )
    kills = dead_zone = pauses = blow = 0
    freezes_at = set(schedule.sample(range(args.kills + args.freezes), args.freezes))
    deadline = time.monotonic() + 60 + (args.kills + args.freezes) * (args.max_interval + 10)
    victims = [
        node
        for node in nodes
        if args.victim == "any" or (args.victim == "full") == (node.config.role == "full")
    ]
    try:
        while blow < args.kills + args.freezes:
            for node in nodes:
                assert node.process is not None
                if node.process.returncode is not None or time.monotonic() > deadline:
                    print(f"multinode: node {node.member} ended early; see {folder}/node-{node.member}.log")
                    return 2
            await asyncio.sleep(schedule.uniform(args.min_interval, args.max_interval))
            victim = schedule.choice(victims)
            pid = victim.pid()
            if pid is None:
                continue  # between incarnations
            if blow in freezes_at:
                # Frozen, not dead: its leases run out and another executor takes its intents
                # over; when it goes on, nothing it was about to send may go out.
                pause = 1.5 * args.claim_idle
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                try:
                    print(f"multinode: froze node {victim.member} (pid {pid}) for {pause:g}s", flush=True)
                    await asyncio.sleep(pause)
                finally:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
                pauses += 1
                blow += 1
                continue
            if args.aim_at_work:
                await _wait_for_work(watch, victim.member, args.aim_at_work)
                pid = victim.pid()
                if pid is None:
                    continue
            armed = schedule.random() < args.dead_zone_share
            if armed:
                # The next incarnation SIGKILLs itself right after writing its Nth order.
                arm_dead_zone(victim.control, schedule.randint(1, 40))
                dead_zone += 1
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kills += 1
            blow += 1
            victim.kills += 1
            print(f"multinode: kill {kills}/{args.kills}: node {victim.member} (pid {pid})", flush=True)
        await asyncio.sleep(args.calm)
    finally:
        await watch.close()
        stopping = time.monotonic()
        codes = [await node.stop(20.0) for node in nodes]
        stop_took = time.monotonic() - stopping
    by_node = ", ".join(f"{node.member} {node.kills}" for node in nodes)
    print(
        f"multinode: {kills} kills ({by_node}; {dead_zone} armed for the dead zone), {pauses} freezes; "
        f"stopped {codes} in {stop_took:.1f}s"
    )
    return 0


async def _wait_for_work(journal: RedisJournal, member: str, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for ``member``'s executor to hold an entry of the group that
    it has not acked yet (an intent it is working on)."""
    from redis.exceptions import ResponseError  # multinode runs on Redis: the extra is installed

    deadline = time.monotonic() + timeout
    client, key = journal.client(), journal.events_key(INTENTS_STREAM)
    while time.monotonic() < deadline:
        with contextlib.suppress(ResponseError):  # no group yet (NOGROUP): no work either
            if await client.xpending_range(key, GROUP, min="-", max="+", count=1, consumername=member):
                return
        await asyncio.sleep(0.02)


async def take_over_summary(journal: RedisJournal, folder: Path) -> str:
    """What the take-overs did, from the nodes' logs and the journal."""
    reclaimed = restarted = doubt = held_back = lost = 0
    pattern = (
        r"took over (\d+) intents (from another executor|this executor held before it restarted)"
        r" \((\d+) in doubt"
    )
    for text in await asyncio.to_thread(_read_logs, folder):
        for match in re.finditer(pattern, text):
            if match.group(2).startswith("from"):
                reclaimed += int(match.group(1))
            else:
                restarted += int(match.group(1))
            doubt += int(match.group(3))
        held_back += sum(int(n) for n in re.findall(r"work: (\d+) intents held back", text))
        held_back += sum(int(n) for n in re.findall(r"(\d+) orders not sent: ", text))
        lost += sum(int(n) for n in re.findall(r"work: (\d+) intents claimed by another executor", text))
    found = 0
    async for _, payload in journal.read(INTENTS_STREAM):
        event = _events.decode(payload)
        found += isinstance(event, IntentMoved) and event.detail.startswith("found at the broker")
    # A reader of the node's journal: it never compacts (the node does).
    log = await IntentLog(journal, INTENTS_STREAM, OrderIntent, compact_every=None).open()
    intents = log.intents()
    resent = sum(i.attempts > 1 for i in intents)
    rejected = sum(i.state is IntentState.REJECTED for i in intents)
    return (
        f"take-overs: {reclaimed} intents taken over from another executor (dead or frozen), "
        f"{restarted} by a restarted executor from its earlier self; {doubt} of them in doubt, "
        f"looked up first.\n"
        f"in all: {found} orders found at the broker by a look-up, {resent} sent again after a "
        f"reliable 'not found', {rejected} rejected by the venue.\n"
        f"leases: {held_back} orders held back (the lease ran out before the send), {lost} intents "
        f"taken from a live executor that was silent too long"
    )


def _read_logs(folder: Path) -> list[str]:
    return [path.read_text(errors="replace") for path in sorted(folder.glob("node-*.log"))]


_events = msgspec.msgpack.Decoder(IntentEvent)
"""The intent log's events as stored, to count the moves a look-up made."""
