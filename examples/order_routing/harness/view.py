"""What the demo shows while it runs, and the summary it ends with."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from examples.order_routing.node import paths
from examples.order_routing.node.messages import Snapshot
from garrison import ActorNotFound, ActorStopped, AskTimeout, Node

WATCHED = (
    paths.FEED,
    paths.RISK,
    paths.INTENTS,
    paths.EXECUTOR,
    paths.GATEWAY,
    paths.POSITIONS,
)


async def snapshot_of(node: Node, path: str) -> dict[str, Any]:
    try:
        answer = await node.lookup(path).ask(Snapshot(), timeout=2.0)
    except (ActorNotFound, ActorStopped, AskTimeout):
        return {}
    return answer if isinstance(answer, dict) else {}


@dataclass
class Sample:
    at: float
    recorded: int = 0
    acked: int = 0
    fills: int = 0
    depths: dict[str, tuple[int, float]] = field(default_factory=dict)
    loop_p99: float = 0.0
    loop_max: float = 0.0
    restarts: int = 0
    dead_letters: int = 0
    strategies: dict[str, dict[str, Any]] = field(default_factory=dict)
    lookups: int = 0
    in_doubt: int = 0
    oldest_in_doubt: float = 0.0
    reconnects: int = 0
    quarantined: int = 0
    unsettled: int = 0
    max_unsettled: int = 0
    window_used: int = 0
    send_window: int = 0
    expired_before_send: int = 0
    expired_after_lookup: int = 0
    backlog_refused: int = 0


async def sample(node: Node) -> Sample:
    now = time.monotonic()
    intents = await snapshot_of(node, paths.INTENTS)
    executor = await snapshot_of(node, paths.EXECUTOR)
    positions = await snapshot_of(node, paths.POSITIONS)
    gateway = await snapshot_of(node, paths.GATEWAY)
    depths = {}
    for path in WATCHED:
        try:
            metrics = node.lookup(path).mailbox_metrics()
        except ActorNotFound:
            continue
        depths[path.rsplit("/", 1)[-1]] = (metrics.depth, metrics.oldest_age_seconds)
    strategies = {}
    for path in node.paths():
        if path.startswith(paths.STRATEGIES + "/"):
            strategies[path.rsplit("/", 1)[-1]] = await snapshot_of(node, path)
    stats = node.loop_monitor.stats() if node.loop_monitor is not None else None
    return Sample(
        at=now,
        recorded=int(intents.get("intents", 0)),
        acked=int(executor.get("acked", 0)),
        fills=int(positions.get("fills", 0)),
        depths=depths,
        loop_p99=stats.p99 if stats else 0.0,
        loop_max=stats.max if stats else 0.0,
        restarts=sum(node.restart_counts.values()),
        dead_letters=node.dead_letters.count,
        strategies=strategies,
        lookups=int(executor.get("lookups", 0)),
        in_doubt=int(executor.get("in_doubt", 0)),
        oldest_in_doubt=float(executor.get("oldest_in_doubt_seconds", 0.0)),
        reconnects=int(gateway.get("disconnects", 0)),
        quarantined=int(positions.get("quarantined", 0)),
        unsettled=int(executor.get("unsettled", 0)),
        max_unsettled=int(executor.get("max_unsettled") or 0),
        window_used=int(executor.get("send_window_used", 0)),
        send_window=int(executor.get("send_window") or 0),
        expired_before_send=int(executor.get("expired_before_send", 0)),
        expired_after_lookup=int(executor.get("expired_after_lookup", 0)),
        backlog_refused=int(intents.get("backlog_refused", 0)),
    )


def render(previous: Sample | None, current: Sample) -> Any:
    """A rich Table of the current sample, with rates against the previous one."""
    from rich.table import Table

    elapsed = max(1e-9, current.at - previous.at) if previous else 1.0
    rate = (current.recorded - previous.recorded) / elapsed if previous else 0.0
    acked_rate = (current.acked - previous.acked) / elapsed if previous else 0.0
    table = Table(title="order-routing node", expand=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("intents recorded / s", f"{rate:,.0f}")
    table.add_row("orders acked by broker / s", f"{acked_rate:,.0f}")
    table.add_row("intents recorded (total)", f"{current.recorded:,}")
    table.add_row("fills applied (total)", f"{current.fills:,}")
    lookup_rate = (current.lookups - previous.lookups) / elapsed if previous else 0.0
    table.add_row("look-ups / s", f"{max(0.0, lookup_rate):,.0f}")
    table.add_row("in doubt (oldest)", f"{current.in_doubt:,} ({current.oldest_in_doubt:.1f} s)")
    table.add_row("backlog (unsettled / max)", f"{current.unsettled:,} / {current.max_unsettled:,}")
    table.add_row("send window (in doubt / max)", f"{current.window_used:,} / {current.send_window:,}")
    table.add_row("refused, backlog full", f"{current.backlog_refused:,}")
    table.add_row(
        "expired: before send / after look-up",
        f"{current.expired_before_send:,} / {current.expired_after_lookup:,}",
    )
    table.add_row("broker reconnects", f"{current.reconnects:,}")
    table.add_row("ghost fills quarantined", f"{current.quarantined:,}")
    for name, (depth, lag) in current.depths.items():
        table.add_row(f"mailbox {name}: depth / lag", f"{depth} / {lag * 1000:.1f} ms")
    table.add_row("loop lag p99 / max", f"{current.loop_p99 * 1000:.1f} / {current.loop_max * 1000:.1f} ms")
    table.add_row("restarts", str(current.restarts))
    table.add_row("dead letters", str(current.dead_letters))
    return table


async def live_view(
    node: Node, stop: asyncio.Event, *, interactive: bool, every: float = 1.0
) -> list[Sample]:
    """Refresh the view every ``every`` seconds until ``stop``; returns the samples taken."""
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    samples: list[Sample] = []
    previous: Sample | None = None

    async def tick() -> Sample:
        nonlocal previous
        current = await sample(node)
        samples.append(current)
        table = render(previous, current)
        previous = current
        return table  # type: ignore[return-value]

    if interactive:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while not stop.is_set():
                live.update(await tick())
                await _wait(stop, every)
    else:
        while not stop.is_set():
            await tick()
            if len(samples) % 5 == 1 and previous is not None:
                current = samples[-1]
                last = samples[-2] if len(samples) > 1 else current
                rate = (current.recorded - last.recorded) / every
                lookup_rate = max(0.0, (current.lookups - last.lookups) / every)
                console.print(
                    f"[{len(samples):>3}s] intents {current.recorded:,} ({rate:,.0f}/s), "
                    f"fills {current.fills:,}, loop lag p99 {current.loop_p99 * 1000:.1f} ms, "
                    f"restarts {current.restarts}, reconnects {current.reconnects}, "
                    f"look-ups {lookup_rate:,.0f}/s, in doubt {current.in_doubt:,}"
                    f" (oldest {current.oldest_in_doubt:.1f} s), backlog {current.unsettled:,}"
                    f"/{current.max_unsettled:,}, expired {current.expired_before_send:,}"
                    f"+{current.expired_after_lookup:,}"
                )
            await _wait(stop, every)
    return samples


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
