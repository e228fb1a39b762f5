"""Journal replay: one stream of 1,000,000 events read back and decoded, and an actor recovered from it.

- garrison replay: ``replay_events`` over ``SqliteJournal.read_packed`` (SQLite
  concatenates each range's payloads, one msgspec call decodes and validates
  every event of it), the path recovery takes;
- stdlib sqlite3 (the baseline): the same query the journal pages with
  (``WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?``), ``fetchall``,
  no decode;
- stdlib sqlite3 + decode (for reading the others, no target): the same,
  then ``decode_rows`` on each batch in the same thread;
- garrison recovery: ``node.spawn`` of an EventSourcedActor whose pure
  ``apply`` folds every event into its state; the clock stops when spawn
  returns (recovery runs before ``on_start``).

The file is built once (and read once to warm the page cache); variants run
interleaved, round after round; ratios are medians of per-round ratios.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from bench._harness import interleave, median, paired_ratio, quiet_logs, summary, target
from garrison import Node
from garrison.persistence import EventCodec, EventSourcedActor, SqliteJournal, replay_events

STREAM = "orders/ESZ6"


class Filled(msgspec.Struct, frozen=True, tag=True):
    order_id: str
    quantity: int
    price: float


class Cancelled(msgspec.Struct, frozen=True, tag=True):
    order_id: str


CODEC = EventCodec([Filled, Cancelled])
QUERY = "SELECT seq, payload FROM events WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?"


class Position(EventSourcedActor[int]):
    """Net filled quantity: the fold recovery has to run over every event."""

    events = (Filled, Cancelled)
    persistence_id = STREAM

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: Any) -> int:
        return state + event.quantity if type(event) is Filled else state

    async def on_receive(self, message: Any) -> int:
        return self.last_seq


def build(path: Path, events: int) -> None:
    """A journal with ``events`` events in one stream (written in bulk, not through append)."""

    async def create() -> None:
        async with SqliteJournal(path):
            pass

    asyncio.run(create())
    payloads = [
        CODEC.encode(Filled(f"c0ffee-{i % 1000:04d}", 1 + i % 7, 5000.0 + (i % 400) / 4)) for i in range(64)
    ]
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous = OFF")
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO events (stream, seq, payload, crc) VALUES (?, ?, ?, ?)", _rows(events, payloads)
        )
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def _rows(events: int, payloads: list[bytes]) -> Iterator[tuple[str, int, bytes, int]]:
    """The stream's rows as the journal writes them: each with its chained checksum."""
    crc = 0
    for seq in range(1, events + 1):
        payload = payloads[seq % 64]
        crc = zlib.crc32(payload, crc)
        yield STREAM, seq, payload, crc


async def _garrison_replay(path: Path, read_batch: int) -> tuple[float, int]:
    async with SqliteJournal(path, read_batch=read_batch) as journal:
        count = 0
        started = time.perf_counter()
        async for _, events in replay_events(journal, STREAM, CODEC):
            count += len(events)
        elapsed = time.perf_counter() - started
    return elapsed, count


def garrison_replay(path: Path, read_batch: int) -> tuple[float, int]:
    return asyncio.run(_garrison_replay(path, read_batch))


def stdlib_read(path: Path, read_batch: int, decode: bool = False) -> tuple[float, int]:
    db = sqlite3.connect(path)
    try:
        count = 0
        after = 0
        started = time.perf_counter()
        while True:
            rows = db.execute(QUERY, (STREAM, after, read_batch)).fetchall()
            if decode:
                CODEC.decode_rows(rows, STREAM)
            count += len(rows)
            if len(rows) < read_batch:
                break
            after = rows[-1][0]
        elapsed = time.perf_counter() - started
    finally:
        db.close()
    return elapsed, count


async def _garrison_recovery(path: Path) -> tuple[float, int]:
    async with Node("bench", journal=SqliteJournal(path), handle_signals=False) as node:
        started = time.perf_counter()
        ref = await node.spawn(Position, name="position")
        elapsed = time.perf_counter() - started
        recovered: int = await ref.ask("last_seq")
    return elapsed, recovered


def garrison_recovery(path: Path) -> tuple[float, int]:
    return asyncio.run(_garrison_recovery(path))


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    events = 200_000 if quick else 1_000_000
    runs = 5 if quick else 7
    read_batch = SqliteJournal(":memory:").read_batch
    with tempfile.TemporaryDirectory(dir=Path(__file__).absolute().parent, prefix=".replay-") as directory:
        path = Path(directory) / "journal.db"
        build(path, events)
        stdlib_read(path, read_batch)  # warm the page cache and the code paths
        garrison_replay(path, read_batch)
        results = interleave(
            {
                "garrison_replay": lambda: garrison_replay(path, read_batch),
                "stdlib_read": lambda: stdlib_read(path, read_batch),
                "stdlib_read_and_decode": lambda: stdlib_read(path, read_batch, decode=True),
                "garrison_recovery": lambda: garrison_recovery(path),
            },
            runs,
        )
    for name, outcomes in results.items():
        assert all(count == events for _, count in outcomes), (name, outcomes)
    rates = {name: [events / elapsed for elapsed, _ in outcomes] for name, outcomes in results.items()}
    recovery_seconds = [elapsed for elapsed, _ in results["garrison_recovery"]]
    per_million = median(recovery_seconds) * 1_000_000 / events
    vs_stdlib = paired_ratio(rates["garrison_replay"], rates["stdlib_read"])
    return {
        "measures": "events per second replayed from one stream; seconds to recover an actor",
        "params": {
            "events": events,
            "runs": runs,
            "read_batch": read_batch,
            "sqlite": sqlite3.sqlite_version,
        },
        "figures": {
            "garrison_replay_events_per_sec": summary(rates["garrison_replay"], 0),
            "garrison_recovery_seconds": summary(recovery_seconds, 3),
            "garrison_recovery_seconds_per_million_events": round(per_million, 3),
        },
        "baselines": {
            "stdlib_read_events_per_sec": summary(rates["stdlib_read"], 0),
            "stdlib_read_and_decode_events_per_sec": summary(rates["stdlib_read_and_decode"], 0),
        },
        "ratios": {
            "garrison_replay_over_stdlib_read": round(vs_stdlib, 3),
            "garrison_replay_over_stdlib_read_and_decode": round(
                paired_ratio(rates["garrison_replay"], rates["stdlib_read_and_decode"]), 3
            ),
        },
        "targets": {
            "replay_vs_stdlib": target(
                vs_stdlib,
                ">=",
                1.3,
                "garrison replay_events (decoded) events/s / stdlib sqlite3 read_batches' query, no decode",
            ),
            "recovery_of_1m_events_seconds": target(
                per_million,
                "<=",
                1.0,
                "seconds for an EventSourcedActor to recover 1,000,000 events (scaled when --quick)",
            ),
        },
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
