"""Redis journal: appends/s at 1 and 100 producers, and consume+ack/s, against raw redis-py.

A private redis-server (AOF on, ``appendfsync always``: every reply waits for
its fsync) is started for the benchmark, data in a temporary folder on the
project's disk, and stopped at the end. Every run uses fresh keys.

- garrison appends: ``RedisJournal.append(stream, [payload], seq)``, one event
  per append, each producer on its own stream, awaited one after another.
  Concurrent appends travel in one pipeline (group commit), each as one Lua
  script (expected-seq check, XADD with the entry id ``<seq>-0``, highest seq);
- raw redis-py XADD (the baseline for appends): ``await client.xadd(key,
  {"p": payload})`` the same way, sequential per producer; with 100
  producers they share one client (its connection pool opens a connection
  per concurrent producer, and Redis fsyncs once per event-loop pass);
- raw XADD pipelined in batches of 100 (no target): one producer, one
  pipeline of 100 XADDs per round trip: the ceiling batching can reach;
- garrison consume: ``RedisConsumer.read()`` (batch 100) then
  ``ack(*seqs)``, until the stream is drained;
- raw XREADGROUP + XACK (the baseline for consuming): ``xreadgroup(...,
  count=100)`` then ``xack`` of those ids, until drained. Both consume the same
  prefilled journal stream (ids ``<seq>-0``); filling it is not timed.

Variants run interleaved, round after round; ratios are medians of per-round
ratios. On a disk where an fsync takes milliseconds, absolute rates are the
disk's; the ratios are what garrison adds.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from bench._harness import interleave, median, paired_ratio, quiet_logs, summary, target

START_TIMEOUT = 10.0


class OrderAccepted(msgspec.Struct, frozen=True, tag=True):
    order_id: str
    symbol: str
    quantity: int
    price: float


PAYLOAD = msgspec.msgpack.encode(OrderAccepted("c0ffee-0001-7", "ESZ6", 3, 5012.25))


class Server:
    """A private redis-server, with AOF on and appendfsync always unless ``durable=False`` (no
    persistence at all: what the cluster benchmarks measure is the network path); ``stop()``
    always ends it."""

    def __init__(self, binary: str, *, durable: bool = True) -> None:
        # Next to the benchmarks (the disk the project lives on), not a tmpfs /tmp.
        self.directory = tempfile.TemporaryDirectory(dir=Path(__file__).absolute().parent, prefix=".redis-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory.name,
             *(("--appendonly", "yes", "--appendfsync", "always") if durable else ("--appendonly", "no")),
             "--save", "", "--logfile", os.path.join(self.directory.name, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            self.version = asyncio.run(self._wait_until_ready())
        except BaseException:
            self.stop()
            raise

    async def _wait_until_ready(self) -> str:
        import redis.asyncio as aioredis

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            client = aioredis.Redis.from_url(self.url)
            try:
                info = await client.info("server")
                return str(info["redis_version"])
            except Exception:
                if time.monotonic() > deadline:
                    raise
            finally:
                await client.aclose()
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                self.process.terminate()  # SIGTERM: Redis fsyncs its AOF and exits
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
        finally:
            self.directory.cleanup()


def _sized(count: float, low: int, high: int) -> int:
    return int(min(high, max(low, count)))


def _client(url: str) -> Any:
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(url, max_connections=1000)


def _prefix() -> str:
    return f"bench:{uuid.uuid4().hex[:10]}"


# -- appends ------------------------------------------------------------------------------------


async def _raw_xadd(url: str, producers: int, each: int) -> float:
    client = _client(url)
    prefix = _prefix()
    try:
        await asyncio.gather(*(client.ping() for _ in range(producers)))  # open the connections

        async def produce(key: str) -> None:
            for _ in range(each):
                await client.xadd(key, {"p": PAYLOAD})

        started = time.perf_counter()
        await asyncio.gather(*(produce(f"{prefix}:{p}") for p in range(producers)))
        return producers * each / (time.perf_counter() - started)
    finally:
        await client.aclose()


async def _raw_xadd_pipelined(url: str, batches: int, size: int = 100) -> float:
    client = _client(url)
    key = f"{_prefix()}:pipelined"
    try:
        await client.ping()
        started = time.perf_counter()
        for _ in range(batches):
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(size):
                    pipe.xadd(key, {"p": PAYLOAD})
                await pipe.execute()
        return batches * size / (time.perf_counter() - started)
    finally:
        await client.aclose()


async def _journal_appends(url: str, producers: int, each: int) -> tuple[float, float]:
    from garrison.persistence import RedisJournal

    async with RedisJournal(url, namespace=_prefix()) as journal:
        commits_before = journal.commits

        async def produce(stream: str) -> None:
            seq = 0
            for _ in range(each):
                seq = await journal.append(stream, [PAYLOAD], seq)

        started = time.perf_counter()
        await asyncio.gather(*(produce(f"producer-{p}") for p in range(producers)))
        rate = producers * each / (time.perf_counter() - started)
        per_commit = producers * each / max(1, journal.commits - commits_before)
    return rate, per_commit


# -- consuming ------------------------------------------------------------------------------------


async def _fill(client: Any, key: str, meta: str, entries: int) -> None:
    """A journal stream (ids ``<seq>-0``, field ``p``, highest seq in the meta hash) and a group."""
    for start in range(1, entries + 1, 1000):
        async with client.pipeline(transaction=False) as pipe:
            for seq in range(start, min(entries, start + 999) + 1):
                pipe.xadd(key, {"p": PAYLOAD}, id=f"{seq}-0")
            await pipe.execute()
    await client.hset(meta, "highest", entries)
    await client.xgroup_create(key, "executors", id="0-0")


async def _raw_consume(url: str, entries: int) -> float:
    client = _client(url)
    prefix = _prefix()
    key = f"{prefix}:{{orders}}:events"
    try:
        await _fill(client, key, f"{prefix}:{{orders}}:meta", entries)
        consumed = 0
        started = time.perf_counter()
        while True:
            rows = await client.xreadgroup("executors", "raw", {key: ">"}, count=100)
            if not rows:
                break
            ids = [entry_id for entry_id, _ in rows[0][1]]
            await client.xack(key, "executors", *ids)
            consumed += len(ids)
        elapsed = time.perf_counter() - started
        assert consumed == entries, (consumed, entries)
        return consumed / elapsed
    finally:
        await client.aclose()


async def _garrison_consume(url: str, entries: int) -> float:
    from garrison.persistence import RedisConsumer, RedisJournal

    prefix = _prefix()
    async with RedisJournal(url, namespace=prefix) as journal:
        await _fill(journal.client(), journal.events_key("orders"), journal.meta_key("orders"), entries)
        consumer = RedisConsumer(journal, "orders", "executors", "garrison", batch=100)
        consumed = 0
        started = time.perf_counter()
        while deliveries := await consumer.read():
            await consumer.ack(*(delivery.seq for delivery in deliveries))
            consumed += len(deliveries)
        elapsed = time.perf_counter() - started
    assert consumed == entries, (consumed, entries)
    return consumed / elapsed


# -- the benchmark ----------------------------------------------------------------------------------


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    binary = os.environ.get("GARRISON_REDIS_SERVER") or shutil.which("redis-server")
    try:
        import redis  # noqa: F401
    except ImportError:
        return {"skipped": "redis-py is not installed: pip install 'garrison[redis]'"}
    if not binary:
        return {"skipped": "no redis-server: install it (Debian: apt-get install redis-server)"}
    server = Server(binary)
    try:
        return _measure(server, quick)
    finally:
        server.stop()


def _measure(server: Server, quick: bool) -> dict[str, Any]:
    url = server.url
    runs = 5 if quick else 7
    seconds = 0.15 if quick else 0.5  # aimed length of one run

    def sync(factory: Callable[[], Any]) -> Callable[[], Any]:
        return lambda: asyncio.run(factory())

    # Sizes from the disk at hand: an fsync takes 0.1 ms on one machine and 8 ms on the
    # next, so each run gets about ``seconds`` of work at the raw rate (a warm-up too).
    single = _sized(asyncio.run(_raw_xadd(url, 1, 50)) * seconds, 50, 5000)
    each_of_100 = _sized(asyncio.run(_raw_xadd(url, 100, 5)) * seconds / 100, 5, 500)
    batches = _sized(asyncio.run(_raw_xadd_pipelined(url, 5)) * seconds / 100, 5, 500)
    entries = _sized(asyncio.run(_raw_consume(url, 1000)) * seconds, 1000, 100_000)

    variants: dict[str, Callable[[], Any]] = {
        "garrison_append_1": sync(lambda: _journal_appends(url, 1, single)),
        "raw_xadd_1": sync(lambda: _raw_xadd(url, 1, single)),
        "garrison_append_100": sync(lambda: _journal_appends(url, 100, each_of_100)),
        "raw_xadd_100": sync(lambda: _raw_xadd(url, 100, each_of_100)),
        "raw_xadd_pipelined_100": sync(lambda: _raw_xadd_pipelined(url, batches)),
        "garrison_consume_ack_100": sync(lambda: _garrison_consume(url, entries)),
        "raw_xreadgroup_xack_100": sync(lambda: _raw_consume(url, entries)),
    }
    for name in ("garrison_append_1", "garrison_append_100", "garrison_consume_ack_100"):
        variants[name]()  # warm-up: imports, connections, the script cache
    results = interleave(variants, runs)

    def rates(name: str) -> list[float]:
        return [value[0] if isinstance(value, tuple) else value for value in results[name]]

    ratios = {
        "append_1_over_raw_xadd": paired_ratio(rates("garrison_append_1"), rates("raw_xadd_1")),
        "append_100_over_raw_xadd": paired_ratio(rates("garrison_append_100"), rates("raw_xadd_100")),
        "consume_over_raw": paired_ratio(rates("garrison_consume_ack_100"), rates("raw_xreadgroup_xack_100")),
    }
    figures = {name: {"per_sec": summary(rates(name), 0)} for name in variants}
    for name in ("garrison_append_1", "garrison_append_100"):
        figures[name]["appends_per_round_trip"] = round(median([value[1] for value in results[name]]), 1)
    append_100 = median(rates("garrison_append_100"))
    return {
        "measures": "appends/s and consume+ack/s on Redis with appendonly yes, appendfsync always",
        "params": {
            "runs": runs,
            "redis": server.version,
            "sized_for_seconds_per_run": seconds,
            "appends_by_one_producer": single,
            "appends_per_producer_of_100": each_of_100,
            "pipelines_of_100": batches,
            "entries_consumed": entries,
            "payload_bytes": len(PAYLOAD),
        },
        "figures": figures,
        "ratios": {name: round(value, 3) for name, value in ratios.items()},
        "targets": {
            "one_producer_vs_raw_xadd": target(
                ratios["append_1_over_raw_xadd"],
                ">=",
                0.8,
                "1 producer: RedisJournal appends/s / raw redis-py XADD/s",
            ),
            "hundred_producers_vs_raw_xadd": target(
                ratios["append_100_over_raw_xadd"],
                ">=",
                0.8,
                "100 producers: RedisJournal appends/s / raw redis-py XADD/s from 100 producers",
            ),
            "hundred_producers_appends_per_sec": target(
                append_100,
                ">=",
                40_000.0,
                "100 producers: RedisJournal appends/s (absolute; bound by the disk's fsync rate)",
            ),
            "consume_vs_raw": target(
                ratios["consume_over_raw"],
                ">=",
                0.8,
                "RedisConsumer read+ack/s / raw XREADGROUP+XACK/s, batches of 100",
            ),
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=2))
