"""How many orders a second the broker takes: ``python -m examples.order_routing.broker.bench``.

One in-process broker (a temporary store; WAL, synchronous=FULL), one client
on real TCP that pipelines N NewOrders, then waits for every OrderAccepted
and every fill. Prints JSON: orders/s to the last accept and to the last
fill, and the baseline of the same rows written to stdlib sqlite3 with one
transaction per 1,000 orders (what the group commit is up against).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import struct
import tempfile
import time
from pathlib import Path

from ..protocol import Fill, Hello, NewOrder, OrderAccepted, Side, broker_decoder, encode_frame
from .config import BrokerConfig
from .server import BrokerServer

_HEADER = struct.Struct(">I")


async def blast(orders: int, store: Path, partial_fills: bool) -> dict[str, float]:
    config = BrokerConfig(store_path=store, latency_ms=1, fill_delay_ms=5, partial_fills=partial_fills)
    async with BrokerServer(config) as broker:
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        writer.write(encode_frame(Hello("bench")))
        frames = [encode_frame(NewOrder(f"bench-{i}", "ACME", Side.BUY, 10, 101.5)) for i in range(orders)]
        started = time.perf_counter()
        for start in range(0, orders, 1000):
            writer.write(b"".join(frames[start : start + 1000]))
            await writer.drain()
        accepted = filled_orders = 0
        accepted_at = filled_at = 0.0
        buffer = b""
        while accepted < orders or filled_orders < orders:
            chunk = await asyncio.wait_for(reader.read(1 << 20), timeout=30)
            if not chunk:
                raise RuntimeError("the broker closed the connection")
            buffer += chunk
            offset = 0
            while len(buffer) - offset >= 4:
                (length,) = _HEADER.unpack_from(buffer, offset)
                if len(buffer) - offset - 4 < length:
                    break
                message = broker_decoder.decode(buffer[offset + 4 : offset + 4 + length])
                offset += 4 + length
                if isinstance(message, OrderAccepted):
                    accepted += 1
                    accepted_at = time.perf_counter()
                elif isinstance(message, Fill) and message.leaves_qty == 0:
                    filled_orders += 1
                    filled_at = time.perf_counter()
            buffer = buffer[offset:]
        writer.close()
        await writer.wait_closed()
        commits = broker.stats.commits
    return {
        "orders": orders,
        "orders_per_s_to_last_accept": round(orders / (accepted_at - started)),
        "orders_per_s_to_last_fill": round(orders / (filled_at - started)),
        "commits": commits,
    }


def sqlite_baseline(orders: int, path: Path) -> float:
    """Orders/s for plain sqlite3 inserting order + fill rows, one transaction per 1,000 orders."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE orders (order_id TEXT PRIMARY KEY, client_order_id TEXT, qty INT, price REAL)")
    db.execute("CREATE TABLE fills (fill_seq INTEGER PRIMARY KEY, order_id TEXT, qty INT, price REAL)")
    started = time.perf_counter()
    for start in range(0, orders, 1000):
        db.execute("BEGIN")
        rows = range(start, min(orders, start + 1000))
        db.executemany("INSERT INTO orders VALUES (?,?,?,?)", [(f"o{i}", f"c{i}", 10, 101.5) for i in rows])
        db.executemany("INSERT INTO fills VALUES (?,?,?,?)", [(i, f"o{i}", 10, 101.5) for i in rows])
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return orders / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.order_routing.broker.bench")
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--partial-fills", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        result = asyncio.run(blast(args.orders, Path(directory) / "broker.db", args.partial_fills))
        result["baseline_sqlite3_orders_per_s"] = round(
            sqlite_baseline(args.orders, Path(directory) / "b.db")
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
