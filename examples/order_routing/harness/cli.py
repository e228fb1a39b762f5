"""The example's command line: run the demo, run a bare node, chaos-test it, judge a run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from examples.order_routing.harness.broker_process import BrokerProcess, broker_arguments
from examples.order_routing.harness.chaos import chaos_arguments, run_chaos
from examples.order_routing.harness.launch import SINGLE_NODE, open_journal
from examples.order_routing.harness.multinode import multinode_arguments, run_multinode
from examples.order_routing.harness.standby import run_standby, standby_arguments
from examples.order_routing.harness.verdict import judge
from examples.order_routing.harness.view import live_view, snapshot_of
from examples.order_routing.node import paths
from examples.order_routing.node.config import BACKLOG_POLICIES, NodeConfig
from examples.order_routing.node.entry import settle_the_heap
from examples.order_routing.node.tree import build_spec
from garrison import Node

NODE_TOML = Path(__file__).resolve().parents[1] / "node.toml"
"""The example node's settings file."""
DEFAULT_CONFIG = NodeConfig()


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    node = parser.add_argument_group("node")
    node.add_argument(
        "--journal",
        default=journal_from_environment(),
        help="journal: a SQLite file path (default: a temp folder) or a redis:// URL; default: "
        "GARRISON_JOURNAL_URL or the file GARRISON_JOURNAL_URL_FILE names (keeps a password out of argv)",
    )
    node.add_argument("--symbols", default="ACME,GLOBEX,INITECH,UMBRELLA,HOOLI,STARK", help="comma-separated")
    node.add_argument("--strategies", default="momentum,mean-revert", help="comma-separated strategy names")
    node.add_argument("--rate", type=float, default=200.0, help="ticks per second at the steady rate")
    node.add_argument("--burst-factor", type=float, default=10.0, help="tick-rate multiplier at market open")
    node.add_argument("--burst-start", type=float, default=3.0, help="seconds after start the burst begins")
    node.add_argument("--burst-seconds", type=float, default=4.0, help="how long the burst lasts")
    node.add_argument("--seed", type=int, default=7, help="seed of the simulated feed")
    node.add_argument("--metrics-port", type=int, default=None, help="serve /metrics /healthz /tree here")
    defaults = NodeConfig()
    node.add_argument(
        "--max-unsettled",
        type=int,
        default=defaults.max_unsettled,
        help="intents recorded and not settled, at most (the backlog)",
    )
    node.add_argument(
        "--send-window", type=int, default=defaults.send_window, help="intents in SENDING or UNKNOWN, at most"
    )
    node.add_argument(
        "--intent-ttl", type=float, default=defaults.intent_ttl, help="seconds an intent may wait to be sent"
    )
    node.add_argument(
        "--backlog-policy",
        choices=BACKLOG_POLICIES,
        default=defaults.backlog_policy,
        help="what a strategy does when the backlog is full",
    )
    fix = parser.add_argument_group("FIX session (--venue fix)")
    fix.add_argument(
        "--fix-sender-comp-id", default=DEFAULT_CONFIG.fix_sender_comp_id, help="SenderCompID (49)"
    )
    fix.add_argument(
        "--fix-target-comp-id", default=DEFAULT_CONFIG.fix_target_comp_id, help="TargetCompID (56)"
    )
    fix.add_argument(
        "--fix-heartbeat-interval",
        type=int,
        default=DEFAULT_CONFIG.fix_heartbeat_interval,
        help="HeartBtInt (108), seconds (default: %(default)s)",
    )
    fix.add_argument(
        "--fix-resend-max-age",
        type=float,
        default=DEFAULT_CONFIG.fix_resend_max_age,
        help="an order message older than this (s) is gap-filled, not re-sent, and its intent EXPIRED "
        "(default: %(default)s)",
    )


def venue_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as (host, port); an argparse error names the value and the form wanted."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT with a port in 1..65535 (e.g. 10.0.0.5:9878)"
        )
    return host.strip("[]"), int(port)


def journal_from_environment() -> str | None:
    """The journal GARRISON_JOURNAL_URL names, or the file GARRISON_JOURNAL_URL_FILE names holds
    (as ``garrison run`` reads them): a Redis password stays out of this command's argv."""
    url = os.environ.get("GARRISON_JOURNAL_URL")
    path = os.environ.get("GARRISON_JOURNAL_URL_FILE")
    if url is None and path is not None:
        url = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    return url or None


def _brief(record: Any) -> str:
    """One line per record on the terminal (tracebacks go to the log file)."""
    return "{time:HH:mm:ss} {level} {extra[actor]} {message}\n"


def build_config(args: argparse.Namespace, broker_port: int, broker_host: str = "127.0.0.1") -> NodeConfig:
    return NodeConfig(
        broker_host=broker_host,
        broker_port=broker_port,
        venue=args.venue,
        fix_sender_comp_id=args.fix_sender_comp_id,
        fix_target_comp_id=args.fix_target_comp_id,
        fix_heartbeat_interval=args.fix_heartbeat_interval,
        fix_resend_max_age=args.fix_resend_max_age,
        fix_lookup_lag=args.lookup_lag,
        symbols=tuple(s for s in args.symbols.split(",") if s),
        strategies=tuple(s for s in args.strategies.split(",") if s),
        tick_rate=args.rate,
        burst_factor=args.burst_factor,
        burst_start=args.burst_start,
        burst_seconds=args.burst_seconds,
        seed=args.seed,
        max_unsettled=args.max_unsettled,
        send_window=args.send_window,
        intent_ttl=args.intent_ttl,
        backlog_policy=args.backlog_policy,
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m examples.order_routing",
        description="The garrison order-routing example: a node that places every order exactly once.",
    )
    commands = top.add_subparsers(dest="command")
    run = commands.add_parser("run", help="run the demo: a broker simulator and the node (the default)")
    run.add_argument("--duration", type=float, default=30.0, help="seconds to run before settling")
    run.add_argument("--no-view", action="store_true", help="no live view; a line every few seconds")
    run.add_argument(
        "--venue-address",
        metavar="HOST:PORT",
        type=venue_address,
        help="route to the venue listening there (e.g. a FIX 4.4 acceptor, with --venue fix) instead of "
        "starting the broker simulator; the simulator's options are then ignored",
    )
    _config_arguments(run)
    broker_arguments(run)
    chaos = commands.add_parser("chaos", help="kill the node at random moments, settle, print the verdict")
    _config_arguments(chaos)
    broker_arguments(chaos)
    chaos_arguments(chaos)
    standby_arguments(chaos)
    cluster = commands.add_parser(
        "cluster",
        help="hot standby: the full node as a cluster singleton on two processes over a redis:// journal; "
        "run, settle, print the verdict",
    )
    cluster.add_argument("--duration", type=float, default=30.0, help="seconds to run before settling")
    _config_arguments(cluster)
    broker_arguments(cluster)
    chaos_arguments(cluster)
    standby_arguments(cluster)
    multinode = commands.add_parser(
        "multinode",
        help="several nodes on one redis:// journal sharing the intents; kill them at random, settle, "
        "print the verdict",
    )
    _config_arguments(multinode)
    broker_arguments(multinode)
    multinode_arguments(multinode)
    multinode.set_defaults(dedupe="none")
    verdict = commands.add_parser("verdict", help="judge a finished run from its journal and broker store")
    journal = journal_from_environment()
    verdict.add_argument(
        "--journal",
        required=journal is None,
        default=journal,
        help="the node's journal (SQLite path or redis:// URL; default: GARRISON_JOURNAL_URL[_FILE])",
    )
    verdict.add_argument("--broker-store", required=True, help="the broker simulator's store")
    verdict.add_argument("--client-id", default="router-1")
    node = commands.add_parser(
        "node",
        help="run only the node (the chaos run's tree, without its faults): garrison run on its entry",
    )
    node.add_argument(
        "--config",
        default=str(NODE_TOML),
        help=f"the node's settings, [order_routing] and garrison's own (default: {NODE_TOML.name}); "
        "give the journal's password by GARRISON_JOURNAL_URL or GARRISON_JOURNAL_URL_FILE",
    )
    return top


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or (arguments[0].startswith("-") and arguments[0] not in ("-h", "--help")):
        arguments.insert(0, "run")
    args = parser().parse_args(arguments)
    if args.command == "run":
        return asyncio.run(run_demo(args))
    if args.command == "chaos" and args.standby:
        return asyncio.run(run_standby(args, build_config, strikes=args.kills))
    if args.command == "chaos":
        return asyncio.run(run_chaos(args, build_config))
    if args.command == "cluster":
        return asyncio.run(run_standby(args, build_config, strikes=0))
    if args.command == "multinode":
        return asyncio.run(run_multinode(args, build_config))
    if args.command == "verdict":
        return asyncio.run(print_verdict(args))
    if args.command == "node":
        from garrison.cli import main as garrison_main

        return garrison_main(["run", SINGLE_NODE, "--config", args.config])
    parser().print_help()
    return 2


async def print_verdict(args: argparse.Namespace) -> int:
    async with open_journal(args.journal) as journal:
        verdict = await judge(journal, args.broker_store, args.client_id)
    for line in verdict.lines():
        print(line)
    return 0 if verdict.passed else 1


async def run_demo(args: argparse.Namespace) -> int:
    folder = Path(tempfile.mkdtemp(prefix="order-routing-"))
    journal_location = args.journal or str(folder / "node.db")
    logger.remove()
    logger.add(folder / "node.log", level="INFO")
    logger.add(sys.stderr, level="ERROR", format=_brief)
    async with contextlib.AsyncExitStack() as stack:
        if args.venue_address is not None:
            broker = None
            config = build_config(args, args.venue_address[1], args.venue_address[0])
            print(f"venue {config.broker_host}:{config.broker_port} ({args.venue}); logs in {folder}")
        else:
            broker = await stack.enter_async_context(BrokerProcess.start(args, folder / "broker.db"))
            config = build_config(args, broker.port)
            print(
                f"broker simulator on 127.0.0.1:{broker.port} ({args.venue}, dedupe={args.dedupe}); "
                f"logs in {folder}"
            )
        settle_the_heap()  # before the node (and its loop-lag monitor) starts
        async with Node(
            config.name, journal=open_journal(journal_location), metrics_port=args.metrics_port
        ) as node:
            if node.metrics_address:
                print(f"metrics on http://{node.metrics_address[0]}:{node.metrics_address[1]}/metrics")
            started = time.monotonic()
            await node.start(build_spec(config))
            stop = asyncio.Event()
            view = asyncio.create_task(
                live_view(node, stop, interactive=sys.stderr.isatty() and not args.no_view)
            )
            closed = asyncio.create_task(node.wait_closed())
            done, _ = await asyncio.wait({closed}, timeout=args.duration)
            interrupted = bool(done)
            settled = await settle(node) if not interrupted else False
            stop.set()
            samples = await view
            closed.cancel()
            await print_summary(node, samples, time.monotonic() - started, interrupted, settled)
        if broker is not None:
            orders = broker.orders()
            print(
                f"broker: {len(orders)} orders accepted, "
                f"{broker.duplicate_count()} client order ids accepted twice"
            )
    return 0


async def settle(node: Node, timeout: float = 15.0) -> bool:
    """Stop the feed, then wait (bounded) until nothing is in flight or in doubt."""
    market = node.supervisor(paths.MARKET)
    await market.terminate_child("feed")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor = await snapshot_of(node, paths.EXECUTOR)
        if executor and executor.get("in_flight", 1) == 0 and executor.get("in_doubt", 1) == 0:
            await asyncio.sleep(0.5)  # let the last fills arrive
            return True
        await asyncio.sleep(0.1)
    return False


async def print_summary(node: Node, samples: list, elapsed: float, interrupted: bool, settled: bool) -> None:  # type: ignore[type-arg]
    intents = await snapshot_of(node, paths.INTENTS)
    executor = await snapshot_of(node, paths.EXECUTOR)
    positions = await snapshot_of(node, paths.POSITIONS)
    risk = await snapshot_of(node, paths.RISK)
    peak = max(
        ((b.recorded - a.recorded) / max(1e-9, b.at - a.at) for a, b in itertools.pairwise(samples)),
        default=0.0,
    )
    print(f"== order-routing summary ({'interrupted' if interrupted else f'{elapsed:.0f}s'}) ==")
    print(f"intents recorded: {intents.get('intents', 0):,} (peak {peak:,.0f}/s)")
    print(
        "executor: "
        + ", ".join(
            f"{key} {value:,}"
            for key, value in executor.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        )
    )
    gateway = await snapshot_of(node, paths.GATEWAY)
    faults = ("connects", "disconnects", "handshake_timeouts", "silences", "bad_frames", "broker_errors")
    print("gateway: " + ", ".join(f"{key} {gateway.get(key, 0):,}" for key in faults))
    print(f"risk: approved {risk.get('approved', 0):,}, refused {risk.get('refused', {})}")
    print(
        f"fills applied: {positions.get('fills', 0):,}; "
        f"ghost fills quarantined: {positions.get('quarantined', 0):,}"
    )
    for symbol, (qty, average) in sorted(positions.get("positions", {}).items()):
        print(f"  position {symbol:<9} {qty:>8} @ {average:.4f}")
    stats = node.loop_monitor.stats() if node.loop_monitor else None
    if stats:
        print(f"loop lag: p99 {stats.p99 * 1000:.1f} ms, max {stats.max_ever * 1000:.1f} ms")
    print(f"restarts: {sum(node.restart_counts.values())}, dead letters: {node.dead_letters.count}")
    print(f"settled: {'yes' if settled else 'no'}")
