"""Intent-log recovery against history: opening a log of 1,000 open intents after 10,000 and
after 1,000,000 settled ones (Redis: 100,000), once compaction has run.

For each journal (SQLite file; Redis on a private ``appendfsync always`` server
when ``redis-server`` is installed) two streams are built, one per history size:
the settled intents (each an ``IntentRecorded`` and an ``IntentMoved`` to DONE)
written with large batched ``journal.append`` calls, then the 1,000 open ones
(RECORDED, SENDING and ACKED); an IntentLog then opens each stream (replaying
all of it once, timed as ``first_open_before_compaction``) and compacts once.
What is timed is ``await IntentLog(journal, stream, Order).open()`` on an
already open journal: the snapshot (open intents and the window of settled
ones kept) and the events after it.

- with ``retain_settled=10_000`` (the target): both streams keep a window of
  10,000 settled intents, so the two opens should cost the same: the ratio
  large/small is what history costs (target <= 1.2);
- with the default ``retain_settled`` (100,000, no target): the large stream
  keeps ten times the window of the small one; the figures show what a larger
  window costs at open.

Last, as many intents as the small history are settled through the log and compacted while a
ticker task runs: the compaction's seconds and the longest the loop went without running the
ticker (``compaction_of_small_settled``; no target: it shows compaction yields to the loop).

Variants (small, large) run interleaved, round after round; the ratio is the
median of per-round ratios. With --quick: 2,000 and 50,000 settled (Redis
20,000), 200 open, a window of 2,000, 5 rounds (else 15).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from bench._harness import interleave, paired_ratio, quiet_logs, summary, target
from garrison.persistence import (
    IntentLog,
    IntentMoved,
    IntentRecorded,
    IntentState,
    Journal,
    RedisJournal,
    SqliteJournal,
    client_order_id,
)
from garrison.persistence._intent_log import RETAIN_SETTLED

APPEND_BATCH = 20_000
"""Events per journal append while building a history."""


class Order(msgspec.Struct, frozen=True):
    client_order_id: str
    symbol: str
    side: str
    quantity: int
    price: float


_encode = msgspec.msgpack.Encoder().encode


def _cid(n: int) -> str:
    return client_order_id("momentum-1", n)


def _order(n: int) -> Order:
    return Order(_cid(n), f"SYM{n % 50}", "buy" if n % 2 else "sell", 1 + n % 9, 100.25)


async def _build(journal: Journal, stream: str, settled: int, open_count: int) -> None:
    """``settled`` intents recorded and DONE, then ``open_count`` open ones, in big appends."""
    seq = 0
    for start in range(0, settled, APPEND_BATCH // 2):
        ids = range(start, min(settled, start + APPEND_BATCH // 2))
        events = [_encode(IntentRecorded(_cid(n), _encode(_order(n)))) for n in ids]
        events += [_encode(IntentMoved(_cid(n), IntentState.DONE, "filled")) for n in ids]
        seq = await journal.append(stream, events, seq)
    ids = range(settled, settled + open_count)
    events = [_encode(IntentRecorded(_cid(n), _encode(_order(n)))) for n in ids]
    for n in ids:
        if n % 3:
            events.append(_encode(IntentMoved(_cid(n), IntentState.SENDING)))
        if n % 3 == 2:
            events.append(_encode(IntentMoved(_cid(n), IntentState.ACKED, "accepted")))
    await journal.append(stream, events, seq)


async def _compact(journal: Journal, stream: str, retain: int) -> float:
    """Open the log (the first open replays what is not compacted yet) and compact once; the
    seconds of that first open."""
    started = time.perf_counter()
    log = await IntentLog(journal, stream, Order, compact_every=None, retain_settled=retain).open()
    elapsed = time.perf_counter() - started
    await log.compact()
    return elapsed


async def _open(journal: Journal, stream: str, retain: int, open_count: int) -> float:
    started = time.perf_counter()
    log = await IntentLog(journal, stream, Order, retain_settled=retain).open()
    elapsed = time.perf_counter() - started
    assert len(log.pending()) == open_count, (stream, len(log.pending()))
    assert not log.compacting
    return elapsed


async def _compaction_stall(journal: Journal, stream: str, settled: int) -> tuple[float, float, float]:
    """Settle ``settled`` more intents through the log, then compact with a ticker running:
    the longest the loop went without running it (ms), the compaction's seconds, and the
    longest stall of the same ticker for as long on an idle loop (the machine's own noise)."""
    log = await IntentLog(journal, stream, Order, compact_every=None).open()
    base = 10**9
    for start in range(base, base + settled, 1_000):
        batch = [(_cid(n), _order(n)) for n in range(start, start + 1_000)]
        await log.record_many_nowait(batch)
        await log.move_many_nowait([(intent_id, IntentState.DONE) for intent_id, _ in batch])
    gaps: list[float] = []
    running = True

    async def tick() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.0005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.get_running_loop().create_task(tick())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await log.compact()
    elapsed = time.perf_counter() - started
    running = False
    await ticker
    await log.close()
    compacting = max(gaps)
    gaps.clear()
    running = True
    ticker = asyncio.get_running_loop().create_task(tick())
    await asyncio.sleep(max(elapsed, 0.05))
    running = False
    await ticker
    return 1000 * compacting, elapsed, 1000 * max(gaps)


def _measure(
    make: Callable[[], Any], sizes: dict[str, int], open_count: int, window: int, runs: int
) -> dict[str, Any]:
    """Build, compact and time the opens of one journal (``make()`` gives an unopened journal)."""
    loop = asyncio.new_event_loop()
    journal = make()
    try:
        loop.run_until_complete(journal.open())
        streams = {name: f"intents-{name}" for name in sizes}
        first_open: dict[str, float] = {}
        for name, settled in sizes.items():
            loop.run_until_complete(_build(journal, streams[name], settled, open_count))
            first_open[name] = loop.run_until_complete(_compact(journal, streams[name], RETAIN_SETTLED))

        def opener(name: str, retain: int) -> Callable[[], float]:
            return lambda: loop.run_until_complete(_open(journal, streams[name], retain, open_count))

        default_window = interleave({name: opener(name, RETAIN_SETTLED) for name in sizes}, runs)
        for name in sizes:
            loop.run_until_complete(_compact(journal, streams[name], window))
        for name in sizes:
            opener(name, window)()  # warm
        target_window = interleave({name: opener(name, window) for name in sizes}, runs)
        stall_ms, compaction_seconds, idle_stall_ms = loop.run_until_complete(
            _compaction_stall(journal, streams["small"], sizes["small"])
        )
    finally:
        loop.run_until_complete(journal.close())
        loop.close()
    ratio = paired_ratio(target_window["large"], target_window["small"])
    return {
        "first_open_before_compaction_seconds": {name: round(value, 3) for name, value in first_open.items()},
        "open_ms": {name: summary([1000 * v for v in values], 2) for name, values in target_window.items()},
        "open_ms_default_window": {
            name: summary([1000 * v for v in values], 2) for name, values in default_window.items()
        },
        "ratio_large_over_small": round(ratio, 3),
        "compaction_of_small_settled": {
            "seconds": round(compaction_seconds, 3),
            "longest_loop_stall_ms": round(stall_ms, 2),
            "idle_loop_longest_stall_ms": round(idle_stall_ms, 2),
        },
        "ratio_large_over_small_default_window": round(
            paired_ratio(default_window["large"], default_window["small"]), 3
        ),
    }


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    open_count = 200 if quick else 1_000
    window = 2_000 if quick else 10_000
    small = 2_000 if quick else 10_000
    runs = 5 if quick else 15
    sqlite_sizes = {"small": small, "large": 50_000 if quick else 1_000_000}
    redis_sizes = {"small": small, "large": 20_000 if quick else 100_000}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=Path(__file__).absolute().parent, prefix=".intents-") as directory:
        path = Path(directory) / "journal.db"
        results["sqlite"] = _measure(lambda: SqliteJournal(path), sqlite_sizes, open_count, window, runs)
    binary = os.environ.get("GARRISON_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        results["redis"] = {"skipped": "no redis-server: install it (Debian: apt-get install redis-server)"}
    else:
        from bench.redis_journal import Server

        server = Server(binary)
        try:
            namespace = f"bench-{uuid.uuid4().hex[:8]}"
            results["redis"] = _measure(
                lambda: RedisJournal(server.url, namespace=namespace), redis_sizes, open_count, window, runs
            )
        finally:
            server.stop()
    targets = {
        f"{backend}_open_large_over_small": target(
            figures["ratio_large_over_small"],
            "<=",
            1.2,
            f"IntentLog.open() after {sizes['large']:,} settled / after {sizes['small']:,} "
            f"({open_count:,} open, retain_settled={window:,}), {backend}",
        )
        for backend, figures, sizes in (
            ("sqlite", results["sqlite"], sqlite_sizes),
            ("redis", results["redis"], redis_sizes),
        )
        if "skipped" not in figures
    }
    return {
        "measures": "milliseconds to open an intent log, compacted, after a small and a large history",
        "params": {
            "open_intents": open_count,
            "settled_sqlite": sqlite_sizes,
            "settled_redis": redis_sizes,
            "retain_settled": window,
            "default_retain_settled": RETAIN_SETTLED,
            "runs": runs,
        },
        "figures": results,
        "baselines": {
            "first_open_before_compaction": "figures.<journal>.first_open_before_compaction_seconds: "
            "the same logs opened before any compaction (every event replayed)",
        },
        "ratios": {
            f"{backend}_large_over_small": figures["ratio_large_over_small"]
            for backend, figures in results.items()
            if "skipped" not in figures
        },
        "targets": targets,
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
