"""remote_ask: round-trip latency of an ask to an actor on another node, against a raw ping-pong.

- garrison: node ``a`` asks ``b:/echo`` ``OrderAccepted`` (``await
  ref.ask(PAYLOAD)``, default timeout) one after another; ``b``'s reader
  delivers it, the actor returns it, the reply travels back through ``a``'s
  inbox. Each round trip timed.
- raw redis-py (the baseline): a client XADDs the payload to a request stream
  and waits on a blocking XREADGROUP of its reply stream; a server task waits
  on a blocking XREADGROUP of the request stream, decodes the payload, XADDs
  it to the reply stream and XACKs the request. Both on this loop.

p50/p99 in µs, wall-clock; the p99 of a shared machine reads as such. Both
run on a private redis-server without persistence (see _cluster_bench).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec

from bench._cluster_bench import (
    PAYLOAD,
    PAYLOAD_BYTES,
    OrderAccepted,
    Server,
    fresh_key,
    raw_client,
    redis_missing,
    two_nodes,
)
from bench._harness import interleave, paired_ratio, percentile, quiet_logs, summary, target


async def _garrison(url: str, count: int) -> list[float]:
    from garrison import Actor

    class Echo(Actor):
        async def on_receive(self, message: Any) -> Any:
            return message

    async with two_nodes(url) as (a, b):
        await b.node.spawn(Echo, name="echo")
        ref = a.ref("b", "/echo")
        timings = []
        for _ in range(count):
            started = time.perf_counter()
            await ref.ask(PAYLOAD)
            timings.append((time.perf_counter() - started) * 1e6)
        return sorted(timings)


async def _raw(url: str, count: int) -> list[float]:
    client = raw_client(url)
    server_client = raw_client(url)
    requests, replies = fresh_key(), fresh_key()
    decoder = msgspec.msgpack.Decoder(OrderAccepted)
    for key in (requests, replies):
        await client.xgroup_create(key, "g", id="$", mkstream=True)

    stopping = False

    async def serve() -> None:
        while not stopping:
            response = await server_client.xreadgroup("g", "s", {requests: ">"}, count=512, block=50)
            for _stream, entries in response or ():
                for entry_id, fields in entries:
                    message = decoder.decode(fields[b"f"])
                    pipe = server_client.pipeline(transaction=False)
                    pipe.xadd(replies, {b"f": msgspec.msgpack.encode(message)})
                    pipe.xack(requests, "g", entry_id)
                    await pipe.execute()

    server = asyncio.get_running_loop().create_task(serve())
    try:
        timings = []
        for _ in range(count):
            started = time.perf_counter()
            await client.xadd(requests, {b"f": PAYLOAD_BYTES})
            while True:
                response = await client.xreadgroup("g", "c", {replies: ">"}, count=1, block=1000)
                if response:
                    break
            for _stream, entries in response:
                for _entry_id, fields in entries:
                    decoder.decode(fields[b"f"])
            timings.append((time.perf_counter() - started) * 1e6)
        return sorted(timings)
    finally:
        stopping = True  # a blocked read ends within its 50 ms; cancelling one can hang redis-py
        await asyncio.wait_for(asyncio.gather(server, return_exceptions=True), 10)
        await client.delete(requests, replies)
        await client.aclose()
        await server_client.aclose()


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    missing = redis_missing()
    if missing:
        return {"skipped": missing}
    server = Server()
    try:
        count = 300 if quick else 1_000
        runs = 3 if quick else 5

        def sync(factory: Callable[[], Any]) -> Callable[[], list[float]]:
            return lambda: list(asyncio.run(factory()))

        variants = {
            "garrison_remote_ask": sync(lambda: _garrison(server.url, count)),
            "raw_xadd_xreadgroup_ping_pong": sync(lambda: _raw(server.url, count)),
        }
        for variant in variants.values():
            variant()  # warm-up
        results = interleave(variants, runs)
        p50 = {name: [percentile(each, 0.5) for each in values] for name, values in results.items()}
        p99 = {name: [percentile(each, 0.99) for each in values] for name, values in results.items()}
        ratio_p50 = paired_ratio(p50["garrison_remote_ask"], p50["raw_xadd_xreadgroup_ping_pong"])
        ratio_p99 = paired_ratio(p99["garrison_remote_ask"], p99["raw_xadd_xreadgroup_ping_pong"])
        return {
            "measures": "sequential ask round trips, two nodes in one process, one redis-server (no AOF)",
            "params": {"asks_per_run": count, "runs": runs, "redis": server.version},
            "p50_us": {name: summary(values) for name, values in p50.items()},
            "p99_us": {name: summary(values) for name, values in p99.items()},
            "ratio_p50_over_raw": round(ratio_p50, 3),
            "ratio_p99_over_raw": round(ratio_p99, 3),
            "targets": {
                "remote_ask_p50_over_raw": target(
                    ratio_p50, "<=", 1.25, "garrison remote ask p50 / raw XADD + blocking XREADGROUP p50"
                ),
                "remote_ask_p99_over_raw": target(
                    ratio_p99, "<=", 1.25, "garrison remote ask p99 / raw ping-pong p99"
                ),
            },
        }
    finally:
        server.stop()


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=2))
