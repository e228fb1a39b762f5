"""``garrison tree URL`` and ``garrison top URL``: look at a running node over its HTTP endpoint."""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from garrison._exitcodes import ExitCode
from garrison.cli._errors import UsageError

if TYPE_CHECKING:
    from rich.console import RenderableType

FETCH_TIMEOUT = 3.0
"""Seconds to wait for the node to answer one request."""


def add_tree_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="the node's metrics address, e.g. http://127.0.0.1:8466")
    parser.add_argument("--json", action="store_true", help="print the JSON as served")


def add_top_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="the node's metrics address, e.g. http://127.0.0.1:8466")
    parser.add_argument("--interval", type=float, default=1.0, metavar="S", help="refresh every S s (1)")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")


def base_url(url: str) -> str:
    """``host:port`` or a URL (with or without /tree, /metrics) as ``http://host:port``."""
    url = url.strip()
    if "://" not in url:
        url = f"http://{url}"
    url = url.rstrip("/")
    for suffix in ("/tree", "/metrics", "/healthz"):
        url = url.removesuffix(suffix)
    return url


class Unreachable(Exception):
    """The node did not answer (or answered with an error status)."""


def fetch(base: str, path: str) -> tuple[int, bytes]:
    """GET ``base + path``: (status, body). Raises Unreachable when nothing answers."""
    try:
        with urllib.request.urlopen(base + path, timeout=FETCH_TIMEOUT) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise Unreachable(f"cannot reach node at {base}: {reason}") from error


def fetch_tree(base: str) -> list[dict[str, Any]]:
    status, body = fetch(base, "/tree")
    if status != 200:
        raise Unreachable(
            f"node at {base} answered {status} to /tree: {body.decode(errors='replace').strip()}"
        )
    try:
        tree = json.loads(body)
    except ValueError as error:
        raise Unreachable(f"{base}/tree did not return JSON ({error}): is it a garrison node?") from error
    if not isinstance(tree, list):
        raise Unreachable(f"{base}/tree did not return a list of actors: is it a garrison node?")
    return tree


def walk(tree: list[dict[str, Any]], depth: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """Every actor, depth first in start order, with its depth in the tree."""
    for actor in tree:
        yield depth, actor
        yield from walk(actor.get("children", []), depth + 1)


def _mailbox(actor: dict[str, Any]) -> tuple[str, str]:
    mailbox = actor.get("mailbox", {})
    depth = f"{mailbox.get('depth', 0)}/{mailbox.get('capacity', '?')}"
    lag = f"{float(mailbox.get('consumer_lag_seconds', 0.0)):.3f}s"
    return depth, lag


def format_tree(tree: list[dict[str, Any]]) -> str:
    """The tree as aligned text: indented path, kind, state, restarts, mailbox depth and lag."""
    header = ("PATH", "KIND", "STATE", "RESTARTS", "DEPTH", "LAG")
    rows = [header]
    for depth, actor in walk(tree):
        queued, lag = _mailbox(actor)
        rows.append(
            (
                "  " * depth + str(actor.get("path", "?")),
                str(actor.get("kind", "?")),
                str(actor.get("state", "?")),
                str(actor.get("restarts", 0)),
                queued,
                lag,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    right = {3, 4, 5}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[column]) if column in right else cell.ljust(widths[column])
            for column, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def tree_command(options: argparse.Namespace) -> int:
    base = base_url(options.url)
    try:
        tree = fetch_tree(base)
    except Unreachable as error:
        raise UsageError(str(error), ExitCode.UNAVAILABLE) from error
    print(json.dumps(tree, indent=2) if options.json else format_tree(tree))
    return 0


# -- top --------------------------------------------------------------------------


@dataclass
class Sample:
    """What one refresh read from the node."""

    at: float
    tree: list[dict[str, Any]]
    healthy: bool
    health: str
    gauges: dict[str, float] = field(default_factory=dict)
    """Unlabelled samples by name (loop lag p99/max, stalls)."""
    by_actor: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per-actor message counters: processed, dropped."""
    dead_letters: float = 0.0
    restarts: float = 0.0


def parse_metrics(text: str, sample: Sample) -> None:
    """Fold the Prometheus exposition text into ``sample``."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            labels = metric.labels
            if not labels:
                sample.gauges[metric.name] = metric.value
            elif metric.name == "garrison_dead_letters_total":
                sample.dead_letters += metric.value
            elif metric.name == "garrison_actor_restarts_total":
                sample.restarts += metric.value
            elif metric.name == "garrison_mailbox_messages_total" and labels.get("outcome") in (
                "processed",
                "dropped",
            ):
                sample.by_actor.setdefault(labels["actor"], {})[labels["outcome"]] = metric.value


def take_sample(base: str) -> Sample:
    """Read /tree, /metrics and /healthz once. Raises Unreachable."""
    tree = fetch_tree(base)
    status, body = fetch(base, "/healthz")
    sample = Sample(time.monotonic(), tree, status == 200, body.decode(errors="replace").strip())
    status, body = fetch(base, "/metrics")
    if status == 200:
        parse_metrics(body.decode(errors="replace"), sample)
    return sample


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}ms"


def render(base: str, sample: Sample, previous: Sample | None, problem: str | None = None) -> RenderableType:
    """One frame: a summary line and the actor table."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    summary = Text()
    summary.append(f"garrison top  {base}  ", style="bold")
    if problem is not None:
        summary.append(f"{problem} (showing the last answer)", style="bold red")
    else:
        summary.append(
            "healthy" if sample.healthy else f"UNHEALTHY: {sample.health}",
            style="green" if sample.healthy else "bold red",
        )
    gauges = sample.gauges
    summary.append(
        f"\nloop lag p99 {_ms(gauges.get('garrison_loop_lag_p99_seconds'))}"
        f"  max {_ms(gauges.get('garrison_loop_lag_max_seconds'))}"
        f"  stalls {int(gauges.get('garrison_loop_stalls_total', 0))}"
        f"  restarts {int(sample.restarts)}  dead letters {int(sample.dead_letters)}"
    )
    table = Table(expand=False, header_style="bold")
    for title, justify in (
        ("actor", "left"),
        ("kind", "left"),
        ("state", "left"),
        ("restarts", "right"),
        ("mailbox", "right"),
        ("lag", "right"),
        ("msg/s", "right"),
        ("dropped", "right"),
    ):
        table.add_column(title, justify=justify)  # type: ignore[arg-type]
    elapsed = sample.at - previous.at if previous is not None else 0.0
    for depth, actor in walk(sample.tree):
        path = str(actor.get("path", "?"))
        counters = sample.by_actor.get(path, {})
        rate = "-"
        if previous is not None and elapsed > 0 and "processed" in counters:
            before = previous.by_actor.get(path, {}).get("processed", 0.0)
            rate = f"{max(0.0, counters['processed'] - before) / elapsed:.1f}"
        queued, lag = _mailbox(actor)
        state = str(actor.get("state", "?"))
        table.add_row(
            "  " * depth + path,
            str(actor.get("kind", "?")),
            Text(state, style="green" if state == "running" else "yellow"),
            str(actor.get("restarts", 0)),
            queued,
            lag,
            rate,
            str(int(counters.get("dropped", 0))),
        )
    return Group(summary, table)


def top_command(options: argparse.Namespace) -> int:
    try:
        from rich.console import Console
        from rich.live import Live
    except ImportError as error:
        raise UsageError(
            "garrison top needs rich: pip install 'garrison[cli]'", ExitCode.UNAVAILABLE
        ) from error
    try:
        import prometheus_client  # noqa: F401
    except ImportError as error:
        raise UsageError(
            "garrison top needs prometheus-client: pip install 'garrison[metrics]'", ExitCode.UNAVAILABLE
        ) from error
    if not options.interval > 0:
        raise UsageError(f"--interval {options.interval}: must be > 0 seconds")
    base = base_url(options.url)
    try:
        sample = take_sample(base)
    except Unreachable as error:
        raise UsageError(str(error), ExitCode.UNAVAILABLE) from error
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    if options.once:
        console.print(render(base, sample, None))
        return 0
    previous: Sample | None = None
    try:
        with Live(render(base, sample, None), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(options.interval)
                problem = None
                try:
                    sample, previous = take_sample(base), sample
                except Unreachable as error:
                    problem = str(error)
                live.update(render(base, sample, previous, problem), refresh=True)
    except KeyboardInterrupt:
        return 0
