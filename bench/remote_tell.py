"""remote_tell: messages/s from one node to an actor on another, against raw redis-py streams.

- garrison: node ``a`` tells ``OrderAccepted`` to ``b:/counter`` with
  ``tell_nowait`` (yielding to the loop every ``BATCH`` messages, as a busy
  producer does); the transport pipelines the XADDs of each loop turn, ``b``
  reads its inbox with XREADGROUP COUNT 512, delivers to the actor's mailbox
  and acknowledges (XACK + XDEL) with its next pipeline. Timed from the first
  tell until the counter has counted every message.
- raw redis-py (the baseline): a producer task pipelines ``BATCH`` XADDs of
  the same payload bytes (msgpack of the same struct) per round trip, a
  consumer task XREADGROUPs COUNT 512 and XACKs + XDELs each batch and
  decodes each payload with msgspec, both on this loop.

Both run on a private redis-server without persistence (see _cluster_bench).
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
from bench._harness import interleave, paired_ratio, quiet_logs, summary, target

BATCH = 512


async def _garrison(url: str, count: int) -> float:
    from garrison import Actor

    done = asyncio.Event()

    class Counter(Actor):
        seen = 0

        async def on_receive(self, message: Any) -> None:
            Counter.seen += 1
            if Counter.seen == count:
                done.set()

    async with two_nodes(url) as (a, b):
        await b.node.spawn(Counter, name="counter")
        ref = a.ref("b", "/counter")
        started = time.perf_counter()
        for index in range(count):
            ref.tell_nowait(PAYLOAD)
            if index % BATCH == BATCH - 1:
                await asyncio.sleep(0)
        await asyncio.wait_for(done.wait(), 60)
        return count / (time.perf_counter() - started)


async def _raw(url: str, count: int) -> float:
    client = raw_client(url)
    key = fresh_key()
    decoder = msgspec.msgpack.Decoder(OrderAccepted)
    await client.xgroup_create(key, "g", id="$", mkstream=True)

    async def produce() -> None:
        for start in range(0, count, BATCH):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(BATCH, count - start)):
                pipe.xadd(key, {b"f": PAYLOAD_BYTES}, maxlen=100_000, approximate=True)
            await pipe.execute()

    async def consume() -> None:
        seen = 0
        while seen < count:
            response = await client.xreadgroup("g", "c", {key: ">"}, count=512, block=1000)
            for _stream, entries in response or ():
                ids = []
                for entry_id, fields in entries:
                    decoder.decode(fields[b"f"])
                    ids.append(entry_id)
                    seen += 1
                pipe = client.pipeline(transaction=False)
                pipe.xack(key, "g", *ids)
                pipe.xdel(key, *ids)
                await pipe.execute()

    try:
        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(produce(), consume()), 60)
        return count / (time.perf_counter() - started)
    finally:
        await client.delete(key)
        await client.aclose()


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    missing = redis_missing()
    if missing:
        return {"skipped": missing}
    server = Server()
    try:
        count = 5_000 if quick else 30_000
        runs = 3 if quick else 5

        def sync(factory: Callable[[], Any]) -> Callable[[], float]:
            return lambda: float(asyncio.run(factory()))

        variants = {
            "garrison_remote_tell": sync(lambda: _garrison(server.url, count)),
            "raw_xadd_xreadgroup": sync(lambda: _raw(server.url, count)),
        }
        for variant in variants.values():
            variant()  # warm-up
        results = interleave(variants, runs)
        ratio = paired_ratio(results["garrison_remote_tell"], results["raw_xadd_xreadgroup"])
        return {
            "measures": "messages/s between two nodes in one process through one redis-server (no AOF)",
            "params": {"messages": count, "runs": runs, "batch": BATCH, "redis": server.version},
            "per_sec": {name: summary(values, 0) for name, values in results.items()},
            "ratio_over_raw": round(ratio, 3),
            "targets": {
                "remote_tell_over_raw": target(
                    ratio, ">=", 0.8, "garrison remote tell rate / raw pipelined XADD + XREADGROUP rate"
                )
            },
        }
    finally:
        server.stop()


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=2))
