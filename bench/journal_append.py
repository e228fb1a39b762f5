"""Journal appends: throughput and latency at 1, 10 and 100 concurrent producers, synchronous=FULL.

- garrison: ``SqliteJournal`` (WAL, synchronous=FULL, group commit); each
  producer owns a stream and awaits ``append(stream, [payload], seq)`` one
  event at a time;
- stdlib sqlite3 (the baseline every target is held against): one
  connection, WAL, synchronous=FULL, autocommit, one single-row INSERT per
  append into an equivalent table (same columns, same unique index): one
  commit, one fsync per append. This is the fastest honest form of "commit
  every append" in the standard library;
- raw write+fdatasync of the same payload to a plain file: the disk's floor,
  for reading the others (no target);
- aiosqlite, naive: the same single-row INSERT per append awaited through
  aiosqlite (the SQLite bridge the journal runs on), one producer: the floor
  for any asyncio journal that keeps the commit off the loop (no target);
- loop/thread round trip: an asyncio future resolved by a worker thread
  (queue hand-off there, ``call_soon_threadsafe`` back), nothing else: what
  keeping the fsync off the loop costs per commit on this machine (no target).

Each run uses a fresh file. Latency is measured around each awaited append
(for stdlib, around each INSERT). Variants run interleaved, round after
round; ratios are medians of per-round ratios.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from bench._harness import interleave, median, paired_ratio, percentile, quiet_logs, summary, target
from garrison.persistence import SqliteJournal

PRODUCERS = (1, 10, 100)


class OrderAccepted(msgspec.Struct, frozen=True, tag=True):
    order_id: str
    symbol: str
    quantity: int
    price: float


PAYLOAD = msgspec.msgpack.encode(OrderAccepted("c0ffee-0001-7", "ESZ6", 3, 5012.25))


@dataclass(frozen=True)
class Run:
    appends_per_sec: float
    p50_ms: float
    p99_ms: float
    commits: int = 0


def _latencies(appends: int, elapsed: float, latencies: list[float], commits: int = 0) -> Run:
    latencies.sort()
    return Run(
        appends / elapsed,
        percentile(latencies, 0.50) * 1000,
        percentile(latencies, 0.99) * 1000,
        commits,
    )


def _fresh_file() -> tuple[tempfile.TemporaryDirectory[str], Path]:
    # Next to the benchmarks (the disk the project lives on), not a tmpfs /tmp.
    directory = tempfile.TemporaryDirectory(dir=Path(__file__).absolute().parent, prefix=".journal-")
    return directory, Path(directory.name) / "journal.db"


async def _garrison(producers: int, appends_each: int) -> Run:
    directory, path = _fresh_file()
    with directory:
        async with SqliteJournal(path, synchronous="FULL") as journal:
            # Streams exist before the clock starts (the writer caches their seq).
            for producer in range(producers):
                await journal.append(f"producer-{producer}", [PAYLOAD], 0)
            commits_before = journal.commits
            latencies: list[float] = []
            clock = time.perf_counter

            async def produce(stream: str) -> None:
                seq = 1
                for _ in range(appends_each):
                    started = clock()
                    seq = await journal.append(stream, [PAYLOAD], seq)
                    latencies.append(clock() - started)

            started = clock()
            await asyncio.gather(*(produce(f"producer-{p}") for p in range(producers)))
            elapsed = clock() - started
            commits = journal.commits - commits_before
    return _latencies(producers * appends_each, elapsed, latencies, commits)


def garrison_run(producers: int, appends_each: int) -> Run:
    return asyncio.run(_garrison(producers, appends_each))


def stdlib_run(appends: int) -> Run:
    """One commit per append: autocommit single-row INSERTs, WAL, synchronous=FULL."""
    directory, path = _fresh_file()
    with directory:
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute(
                "CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, "
                "seq INTEGER NOT NULL, payload BLOB NOT NULL)"
            )
            db.execute("CREATE UNIQUE INDEX events_by_stream ON events (stream, seq)")
            insert = "INSERT INTO events (stream, seq, payload) VALUES (?, ?, ?)"
            execute = db.execute
            clock = time.perf_counter
            latencies: list[float] = []
            started = clock()
            for seq in range(1, appends + 1):
                before = clock()
                execute(insert, ("producer-0", seq, PAYLOAD))
                latencies.append(clock() - before)
            elapsed = clock() - started
        finally:
            db.close()
    return _latencies(appends, elapsed, latencies)


_SCHEMA = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, "
    "seq INTEGER NOT NULL, payload BLOB NOT NULL)",
    "CREATE UNIQUE INDEX events_by_stream ON events (stream, seq)",
)


async def _aiosqlite_naive(appends: int) -> Run:
    directory, path = _fresh_file()
    with directory:
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            for statement in _SCHEMA:
                await db.execute(statement)
            insert = "INSERT INTO events (stream, seq, payload) VALUES (?, ?, ?)"
            clock = time.perf_counter
            latencies: list[float] = []
            started = clock()
            for seq in range(1, appends + 1):
                before = clock()
                await db.execute(insert, ("producer-0", seq, PAYLOAD))
                latencies.append(clock() - before)
            elapsed = clock() - started
        finally:
            await db.close()
    return _latencies(appends, elapsed, latencies)


def aiosqlite_run(appends: int) -> Run:
    """One commit per append awaited through aiosqlite: the bridge's own floor."""
    return asyncio.run(_aiosqlite_naive(appends))


async def _round_trips(count: int) -> Run:
    loop = asyncio.get_running_loop()
    handoff: queue.SimpleQueue[asyncio.Future[None] | None] = queue.SimpleQueue()

    def worker() -> None:
        while (future := handoff.get()) is not None:
            loop.call_soon_threadsafe(future.set_result, None)

    thread = threading.Thread(target=worker, name="bench-round-trip")
    thread.start()
    try:
        clock = time.perf_counter
        latencies: list[float] = []
        started = clock()
        for _ in range(count):
            before = clock()
            future = loop.create_future()
            handoff.put(future)
            await future
            latencies.append(clock() - before)
        elapsed = clock() - started
    finally:
        handoff.put(None)
        thread.join(timeout=10)
    return _latencies(count, elapsed, latencies)


def round_trip_run(count: int) -> Run:
    """Loop -> worker thread -> loop with nothing in between."""
    return asyncio.run(_round_trips(count))


def fdatasync_run(appends: int) -> Run:
    directory, path = _fresh_file()
    with directory:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            clock = time.perf_counter
            latencies: list[float] = []
            started = clock()
            for _ in range(appends):
                before = clock()
                os.write(fd, PAYLOAD)
                os.fdatasync(fd)
                latencies.append(clock() - before)
            elapsed = clock() - started
        finally:
            os.close(fd)
    return _latencies(appends, elapsed, latencies)


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    runs = 5 if quick else 7
    single = 300 if quick else 1500  # appends by the lone producer (and by the baselines)
    each = {1: single, 10: 100 if quick else 300, 100: 20 if quick else 60}
    garrison_run(10, 20)  # warm-up: imports, the first loop and thread pool
    stdlib_run(100)

    def garrison(producers: int) -> Callable[[], Run]:
        return lambda: garrison_run(producers, each[producers])

    variants = {f"garrison_{n}": garrison(n) for n in PRODUCERS}
    variants["stdlib_sqlite3"] = lambda: stdlib_run(single)
    variants["raw_fdatasync"] = lambda: fdatasync_run(single)
    variants["aiosqlite_naive"] = lambda: aiosqlite_run(single)
    variants["loop_thread_round_trip"] = lambda: round_trip_run(single)
    results = interleave(variants, runs)

    def rates(name: str) -> list[float]:
        return [r.appends_per_sec for r in results[name]]

    stdlib = rates("stdlib_sqlite3")
    figures: dict[str, Any] = {}
    ratios: dict[str, float] = {}
    for n in PRODUCERS:
        name = f"garrison_{n}"
        figures[f"{name}_producers"] = {
            "appends_per_sec": summary(rates(name), 0),
            "p50_ms": round(median([r.p50_ms for r in results[name]]), 3),
            "p99_ms": round(median([r.p99_ms for r in results[name]]), 3),
            "appends_per_commit": round(median([n * each[n] / max(1, r.commits) for r in results[name]]), 1),
        }
        ratios[f"{name}_over_stdlib"] = round(paired_ratio(rates(name), stdlib), 3)
    baselines = {
        name: {
            "appends_per_sec": summary(rates(name), 0),
            "p50_ms": round(median([r.p50_ms for r in results[name]]), 3),
            "p99_ms": round(median([r.p99_ms for r in results[name]]), 3),
        }
        for name in ("stdlib_sqlite3", "raw_fdatasync", "aiosqlite_naive", "loop_thread_round_trip")
    }
    ratios["garrison_1_over_aiosqlite_naive"] = round(
        paired_ratio(rates("garrison_1"), rates("aiosqlite_naive")), 3
    )
    ratios["aiosqlite_naive_over_stdlib"] = round(paired_ratio(rates("aiosqlite_naive"), stdlib), 3)
    p99_at_100 = median([r.p99_ms for r in results["garrison_100"]])
    return {
        "measures": "appends per second and per-append latency, one event per append, synchronous=FULL",
        "params": {
            "runs": runs,
            "appends_per_producer": each,
            "payload_bytes": len(PAYLOAD),
            "sqlite": sqlite3.sqlite_version,
        },
        "figures": figures,
        "baselines": baselines,
        "ratios": ratios,
        "targets": {
            "one_producer_vs_aiosqlite_naive": target(
                ratios["garrison_1_over_aiosqlite_naive"],
                ">=",
                1.1,
                "1 producer: garrison appends/s / aiosqlite execute + commit per append (its async peer)",
            ),
            "hundred_producers_vs_stdlib": target(
                ratios["garrison_100_over_stdlib"],
                ">=",
                15.0,
                "100 producers: garrison appends/s / stdlib sqlite3 one-commit-per-append appends/s",
            ),
            "hundred_producers_p99_ms": target(
                p99_at_100, "<=", 3.0, "100 producers: p99 append latency in milliseconds"
            ),
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=2))
