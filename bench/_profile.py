"""``python -m bench --profile NAME``: a cProfile of garrison's side of one benchmark.

Only garrison's variant runs, without its baselines, at a fixed size
(``PROFILES``); the profile goes to ``bench/out/<NAME>.*``:

- ``<NAME>.pstats``: the raw cProfile statistics (``python -m pstats`` or snakeviz);
- ``<NAME>.collapsed``: collapsed stacks (``a;b;c <microseconds>`` per line), which
  speedscope (https://www.speedscope.app, drop the file in), ``flamegraph.pl`` and
  inferno read as a flame graph;
- ``<NAME>.txt``: the top functions by own time and by cumulative time, with µs
  per operation (the profiled run's operation count divides every time).

Why cProfile and a converter, not a sampling profiler: it needs nothing beyond
the standard library, and it counts calls, so "µs per message" and "calls per
message" are exact. cProfile records caller -> callee edges, not whole stacks:
the converter rebuilds stacks from the roots down, splitting a function's time
among its callees by each edge's cumulative time, which is exact along
single-caller paths (the hot paths here) and proportional where a function has
several callers. cProfile's own overhead (~0.1-0.3 µs per call) inflates
functions with many small calls: read the figures as shares, and the benchmark's
own numbers as the rates.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT = Path(__file__).absolute().parent / "out"

Func = tuple[str, int, str]


def _tell() -> int:
    from bench.tell_throughput import CAPACITY, garrison_tell_rate
    from garrison import MailboxConfig

    messages = 100_000
    garrison_tell_rate(messages, MailboxConfig(capacity=CAPACITY))
    return messages


def _ask() -> int:
    from bench.ask_latency import garrison_ask

    asks = 20_000
    garrison_ask(asks)
    return asks


def _restart() -> int:
    from bench.restart_latency import WARM_UP_CRASHES, garrison_restarts, production_log_file

    crashes = 1_000
    with production_log_file():
        garrison_restarts(crashes)
    return crashes + WARM_UP_CRASHES


def _spawn() -> int:
    from bench.spawn_memory import _garrison

    count = 10_000
    asyncio.run(_garrison(count))
    return count


PROFILES: dict[str, tuple[Callable[[], int], str]] = {
    "tell": (_tell, "message"),
    "ask": (_ask, "ask"),
    "restart": (_restart, "restart"),
    "spawn": (_spawn, "spawn"),
}
"""Benchmark short name -> (garrison's variant, returning its operation count; the operation)."""


def _label(func: Func) -> str:
    filename, line, name = func
    if filename == "~":
        return name  # a builtin: "<method 'popleft' of 'collections.deque' objects>"
    parts = Path(filename).parts
    for anchor in ("garrison", "bench", "asyncio", "loguru"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            return f"{'/'.join(parts[index:])}:{line}:{name}"
    return f"{Path(filename).name}:{line}:{name}"


def collapsed(stats: pstats.Stats, min_us: float = 1.0) -> list[str]:
    """Collapsed stacks rebuilt from cProfile's caller -> callee edges (see the module docstring)."""
    raw: dict[Func, Any] = stats.stats  # type: ignore[attr-defined]
    callees: dict[Func, list[tuple[Func, float]]] = {}
    for func, (_, _, _, _, callers) in raw.items():
        for caller, edge in callers.items():
            callees.setdefault(caller, []).append((func, edge[3]))
    totals: dict[str, float] = {}

    def walk(func: Func, stack: tuple[str, ...], seen: frozenset[Func], cumulative: float) -> None:
        _, _, own, whole, _ = raw[func]
        share = cumulative / whole if whole > 0 else 0.0
        frames = (*stack, _label(func))
        key = ";".join(frames)
        totals[key] = totals.get(key, 0.0) + own * share
        if len(frames) > 120:
            return
        for callee, edge_cumulative in callees.get(func, ()):
            if callee in seen or edge_cumulative * share * 1e6 < min_us:
                continue
            walk(callee, frames, seen | {callee}, edge_cumulative * share)

    for func, (_, _, _, whole, callers) in raw.items():
        if not callers:
            walk(func, (), frozenset({func}), whole)
    return [f"{stack} {round(us)}" for stack, value in totals.items() if (us := value * 1e6) >= 1]


def _table(stats: pstats.Stats, operations: int, operation: str, sort: str, top: int) -> str:
    raw: dict[Func, Any] = stats.stats  # type: ignore[attr-defined]
    column = 2 if sort == "tottime" else 3
    rows = sorted(raw.items(), key=lambda item: item[1][column], reverse=True)[:top]
    lines = [f"by {sort}: µs per {operation} (own, cumulative), calls per {operation}, function"]
    for func, (_, calls, own, whole, _) in rows:
        per = 1e6 / operations
        lines.append(f"{own * per:8.3f} {whole * per:8.3f} {calls / operations:8.3f}  {_label(func)}")
    return "\n".join(lines)


def profile(name: str, out: Path = OUT) -> list[Path]:
    """Profile garrison's variant of benchmark ``name``; write the three files; return their paths."""
    from bench._harness import quiet_logs

    variant, operation = PROFILES[name]
    quiet_logs()
    variant()  # warm-up: imports and first-loop costs off the profile
    profiler = cProfile.Profile()
    profiler.enable()
    operations = variant()
    profiler.disable()
    stats = pstats.Stats(profiler)
    out.mkdir(exist_ok=True)
    pstats_path = out / f"{name}.pstats"
    stats.dump_stats(pstats_path)
    collapsed_path = out / f"{name}.collapsed"
    collapsed_path.write_text("\n".join(collapsed(stats)) + "\n")
    total = stats.total_tt  # type: ignore[attr-defined]
    text = io.StringIO()
    text.write(
        f"{name}: {operations} {operation}s profiled, {total * 1e6 / operations:.2f} µs per "
        f"{operation} in total (cProfile on)\n\n"
    )
    text.write(_table(stats, operations, operation, "tottime", 30) + "\n\n")
    text.write(_table(stats, operations, operation, "cumtime", 30) + "\n")
    text_path = out / f"{name}.txt"
    text_path.write_text(text.getvalue())
    return [pstats_path, collapsed_path, text_path]
