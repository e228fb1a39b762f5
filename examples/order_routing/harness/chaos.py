"""The chaos run: kill the node at random moments, settle, and judge.

The node runs under ``garrison run --heart``, which restarts it after every
SIGKILL. Inside, a chaos monkey crashes and hangs random actors. Some kills
are aimed at the dead zone: the node is told to SIGKILL itself right after
writing an order to the broker, before the intent can move on. The broker
simulator runs with faults on (lost replies, connection resets, rejects,
ghost fills for orders the node never sent, partial fills, look-ups that
lag) and a dedupe mode that does not save a careless node (while-open or
none). Then the feed stops, the node settles,
and the verdict compares the journal with the broker's own record.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import tempfile
import time
from pathlib import Path

import msgspec

from examples.order_routing.harness.broker_process import BrokerProcess
from examples.order_routing.harness.entry import HarnessConfig
from examples.order_routing.harness.launch import (
    HARNESSED_SINGLE_NODE,
    HeartOptions,
    node_command,
    node_env,
    open_journal,
)
from examples.order_routing.harness.processes import arm_dead_zone, disarm_dead_zone, node_pid, stop_group
from examples.order_routing.harness.verdict import judge
from examples.order_routing.node.config import NodeConfig


def chaos_arguments(parser: argparse.ArgumentParser) -> None:
    chaos = parser.add_argument_group("chaos")
    chaos.add_argument("--kills", type=int, default=20, help="SIGKILLs of the whole node")
    chaos.add_argument("--min-interval", type=float, default=0.3, help="shortest gap between kills (s)")
    chaos.add_argument("--max-interval", type=float, default=1.5, help="longest gap between kills (s)")
    chaos.add_argument(
        "--dead-zone-share", type=float, default=0.3, help="share of kills aimed at the dead zone"
    )
    chaos.add_argument("--actor-faults", type=float, default=0.5, help="actor crashes/hangs per second")
    chaos.add_argument("--calm", type=float, default=2.0, help="seconds of running after the last kill")
    chaos.add_argument(
        "--settle-timeout",
        type=float,
        default=60.0,
        help="the settle phase gives up after this long without an intent settling (s)",
    )
    chaos.add_argument(
        "--settle-limit", type=float, default=600.0, help="the settle phase's longest wait in all (s)"
    )
    chaos.add_argument("--chaos-seed", type=int, default=1, help="seed of the kill schedule")
    chaos.add_argument("--folder", help="keep journal, store and logs here (default: a temp folder)")


def chaos_defaults(args: argparse.Namespace) -> None:
    """Faults on unless the user chose otherwise."""
    defaults = (
        ("drop_reply_rate", 0.02),
        ("reset_rate", 0.002),
        ("reject_rate", 0.01),
        ("ghost_fill_rate", 0.005),
    )
    for name, value in defaults:
        if getattr(args, name) == 0.0:
            setattr(args, name, value)
    if args.dedupe == "always":
        print(
            "note: dedupe 'always' would hide duplicates; the verdict is meaningful with while-open or none"
        )


def client_id(config: NodeConfig) -> str:
    """Who the node is at the broker: its name, or over FIX its SenderCompID."""
    return config.fix_sender_comp_id if config.venue == "fix" else config.name


async def run_chaos(args: argparse.Namespace, config_of: object) -> int:
    chaos_defaults(args)
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="order-routing-chaos-"))
    folder.mkdir(parents=True, exist_ok=True)
    control = folder / "control"
    control.mkdir(exist_ok=True)
    journal = args.journal or str(folder / "node.db")
    schedule = random.Random(args.chaos_seed)
    log = open(folder / "node.log", "ab")  # noqa: SIM115, ASYNC230 - once, before anything runs
    log_from = log.tell()
    report = folder / "settle.json"
    began = time.monotonic()
    print(f"chaos: {args.kills} kills, dedupe={args.dedupe}; files in {folder}")
    try:
        async with BrokerProcess.start(args, folder / "broker.db") as broker:
            config: NodeConfig = config_of(args, broker.port)  # type: ignore[operator]
            harness = HarnessConfig(control_dir=str(control), chaos_faults_per_second=args.actor_faults)
            heart = await asyncio.create_subprocess_exec(
                *node_command(HARNESSED_SINGLE_NODE, name="router-1", log_level="INFO",
                              heart=HeartOptions(backoff=0.05, max_backoff=0.5)),
                env=node_env(config, harness, journal=journal), stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
            kills = dead_zone = 0
            deadline = time.monotonic() + 60 + args.kills * (args.max_interval + 10)
            try:
                while kills < args.kills:
                    if heart.returncode is not None or time.monotonic() > deadline:
                        print(
                            f"chaos: heart ended early (exit {heart.returncode}); see {folder / 'node.log'}"
                        )
                        return 2
                    await asyncio.sleep(schedule.uniform(args.min_interval, args.max_interval))
                    pid = node_pid(control, heart.pid)
                    if pid is None:
                        continue  # between incarnations
                    if schedule.random() < args.dead_zone_share:
                        arm_dead_zone(control, schedule.randint(1, 40))
                        dead_zone += 1
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    kills += 1
                    print(f"chaos: kill {kills}/{args.kills} (pid {pid})", flush=True)
                await asyncio.sleep(args.calm)
            finally:
                code = await stop_group(heart, 20.0)
            print(f"chaos: {kills} kills ({dead_zone} armed for the dead zone); node stopped (exit {code})")
            disarm_dead_zone(control)
            settle = msgspec.structs.replace(
                harness, chaos_faults_per_second=0.0,
                settle_report=str(folder / "settle.json"), settle_timeout=args.settle_timeout,
                settle_limit=args.settle_limit,
            )  # fmt: skip
            settler = await asyncio.create_subprocess_exec(
                *node_command(HARNESSED_SINGLE_NODE, name="router-1", log_level="INFO"),
                env=node_env(msgspec.structs.replace(config, feed=False), settle, journal=journal),
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            try:
                await asyncio.wait_for(settler.wait(), max(args.settle_limit, args.settle_timeout) + 30)
            except TimeoutError:
                print("chaos: the settle run did not finish in time")
            finally:
                await stop_group(settler, 5.0)
            print(f"chaos: settle report: {report.read_text() if report.exists() else 'none'}")
        async with open_journal(journal) as opened:
            verdict = await judge(opened, str(folder / "broker.db"), client_id(config))
    finally:
        log.close()
    verdict.notes.extend(progress_notes(folder / "node.log", log_from, report, time.monotonic() - began))
    for line in verdict.lines():
        print(line)
    return 0 if verdict.passed else 1


PROGRESS = re.compile(
    rb"progress: unsettled (\d+)/(\d+), in doubt (\d+)/(\d+) \(oldest ([\d.]+)s\).*"
    rb"longest step ([\d.]+) ms \(([^)]*)\), take-over ([\d.]+) ms"
)
BLOCKED = re.compile(rb"was blocked for ([\d.]+)s; running: (\S+)")


def progress_notes(node_log: Path, start: int, settle_report: Path, run_seconds: float) -> list[str]:
    """What the run's log (at INFO: the executor's progress lines) and settle report say of its
    progress: the time to drain, the bounds' maxima over every incarnation's progress lines, the
    executor's longest step and the loop blocks (>= 100 ms) the node's loop-lag monitor named."""
    notes = []
    if settle_report.exists():
        settled = json.loads(settle_report.read_text())
        notes.append(
            f"time to drain (settle run): {settled['waited']:.1f} s"
            f" ({'drained' if settled['settled'] else 'NOT drained'})"
        )
    unsettled = in_doubt = lines = 0
    max_unsettled = window = 0
    oldest = step = take_over = 0.0
    step_kind = ""
    blocks: list[tuple[float, str]] = []
    with open(node_log, "rb") as file:
        file.seek(start)
        for line in file:
            if (found := PROGRESS.search(line)) is not None:
                lines += 1
                unsettled = max(unsettled, int(found[1]))
                max_unsettled = int(found[2])
                in_doubt = max(in_doubt, int(found[3]))
                window = int(found[4])
                oldest = max(oldest, float(found[5]))
                if float(found[6]) > step:
                    step, step_kind = float(found[6]), found[7].decode(errors="replace")
                take_over = max(take_over, float(found[8]))
            elif (found := BLOCKED.search(line)) is not None:
                blocks.append((float(found[1]), found[2].decode(errors="replace")))
    by_executor = [lag for lag, actor in blocks if actor.endswith("/executor")]
    longest = max((lag for lag, _ in blocks), default=0.0) * 1000
    longest_executor = max(by_executor, default=0.0) * 1000
    notes += [
        f"backlog max (unsettled): {unsettled:,} (max_unsettled {max_unsettled:,}); "
        f"in doubt max: {in_doubt:,} (send_window {window:,}); oldest in doubt max: {oldest:.1f} s "
        f"({lines:,} progress lines)",
        f"executor: longest step {step:.1f} ms ({step_kind or 'none'}), "
        f"longest take-over at start {take_over:.1f} ms (in slices); "
        f"loop blocks >= 100 ms: {len(blocks):,}, the longest {longest:.0f} ms; "
        f"while the executor ran: {len(by_executor):,}, the longest {longest_executor:.0f} ms",
        f"run length: {run_seconds:.0f} s",
    ]
    return notes
