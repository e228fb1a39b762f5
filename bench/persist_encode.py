"""What validated writes cost: an event encoded and proven to decode back as itself, per append.

``EventCodec.encode`` (what ``persist`` calls) encodes the event, decodes the
bytes again with the decoder replay uses, and compares. Measured against the
encode it replaced (the registered-type check and one msgpack encode, no
read-back), in the same run:

- encode alone: events encoded per CPU second, validated and plain;
- encode + append: ``journal.append(stream, [encode(event)], seq)`` on a
  SqliteJournal (WAL, synchronous=FULL), the path ``persist`` takes, at 1
  and 100 concurrent producers (one stream each), validated and plain.

Variants run interleaved, round after round; ratios are medians of
per-round ratios. ``journal_append`` appends bytes and never encodes, so it
does not see this cost; this benchmark does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec

from bench._harness import interleave, paired_ratio, quiet_logs, summary, target
from bench.journal_append import OrderAccepted, _fresh_file
from garrison.persistence import EventCodec, SqliteJournal

EVENT = OrderAccepted("c0ffee-0001-7", "ESZ6", 3, 5012.25)
CODEC = EventCodec([OrderAccepted])


def _plain_encoder() -> Callable[[Any], bytes]:
    """The encode before validated writes: the registered-type check, then msgpack."""
    known = frozenset(CODEC.types)
    encode = msgspec.msgpack.Encoder().encode

    def plain(event: Any) -> bytes:
        if type(event) not in known:
            raise TypeError(type(event).__qualname__)
        return encode(event)

    return plain


PLAIN = _plain_encoder()


def encode_run(encode: Callable[[Any], bytes], count: int) -> float:
    """Events encoded per CPU second."""
    event = EVENT
    started = time.thread_time()
    for _ in range(count):
        encode(event)
    return count / (time.thread_time() - started)


async def _append(encode: Callable[[Any], bytes], producers: int, appends_each: int) -> tuple[float, float]:
    directory, path = _fresh_file()
    with directory:
        async with SqliteJournal(path, synchronous="FULL") as journal:
            for producer in range(producers):
                await journal.append(f"producer-{producer}", [encode(EVENT)], 0)

            async def produce(stream: str) -> None:
                seq = 1
                for _ in range(appends_each):
                    seq = await journal.append(stream, [encode(EVENT)], seq)

            started = time.perf_counter()
            cpu_started = time.thread_time()
            await asyncio.gather(*(produce(f"producer-{p}") for p in range(producers)))
            cpu = time.thread_time() - cpu_started
            elapsed = time.perf_counter() - started
    appends = producers * appends_each
    return appends / elapsed, cpu / appends * 1e6


def append_run(encode: Callable[[Any], bytes], producers: int, appends_each: int) -> tuple[float, float]:
    """Appends per second, and the loop thread's CPU µs per append, each of one freshly encoded event."""
    return asyncio.run(_append(encode, producers, appends_each))


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    runs = 5 if quick else 7
    encodes = 50_000 if quick else 200_000
    each = {1: 300 if quick else 1000, 100: 20 if quick else 60}
    append_run(CODEC.encode, 10, 10)  # warm-up: imports, the first loop and thread pool
    encoders = {"validated": CODEC.encode, "plain": PLAIN}
    variants: dict[str, Callable[[], Any]] = {}
    for name, encode in encoders.items():
        variants[f"encode_{name}"] = lambda encode=encode: encode_run(encode, encodes)  # type: ignore[misc]
        for producers, appends in each.items():
            variants[f"append_{producers}_{name}"] = (
                lambda encode=encode, producers=producers, appends=appends: append_run(  # type: ignore[misc]
                    encode, producers, appends
                )
            )
    measured = interleave(variants, runs)
    results: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for name, values in measured.items():
        if name.startswith("append_"):
            results[name] = [rate for rate, _ in values]
            cpu[name] = [micros for _, micros in values]
        else:
            results[name] = values
    ratios = {
        "encode_validated_over_plain": round(
            paired_ratio(results["encode_validated"], results["encode_plain"]), 3
        ),
        **{
            f"append_{n}_validated_over_plain": round(
                paired_ratio(results[f"append_{n}_validated"], results[f"append_{n}_plain"]), 3
            )
            for n in each
        },
        **{
            f"append_{n}_loop_cpu_validated_over_plain": round(
                paired_ratio(cpu[f"append_{n}_validated"], cpu[f"append_{n}_plain"]), 3
            )
            for n in each
        },
    }
    ns_validated = 1e9 / summary(results["encode_validated"], 0)["median"]
    ns_plain = 1e9 / summary(results["encode_plain"], 0)["median"]
    return {
        "measures": "validated encode (encode, decode back, compare) against plain encode, per append",
        "params": {"runs": runs, "encodes": encodes, "appends_per_producer": each, "event": repr(EVENT)},
        "figures": {
            "encode_per_cpu_sec": {name: summary(results[f"encode_{name}"], 0) for name in encoders},
            "encode_ns": {"validated": round(ns_validated, 1), "plain": round(ns_plain, 1)},
            "appends_per_sec": {
                f"{n}_producers": {name: summary(results[f"append_{n}_{name}"], 0) for name in encoders}
                for n in each
            },
            "loop_cpu_us_per_append": {
                f"{n}_producers": {name: summary(cpu[f"append_{n}_{name}"], 2) for name in encoders}
                for n in each
            },
        },
        "ratios": ratios,
        "targets": {
            f"append_{n}_cost": target(
                ratios[f"append_{n}_validated_over_plain"],
                ">=",
                0.95,
                f"{n} producer(s): appends/s with validated encode / with plain encode (within 5%)",
            )
            for n in each
        },
    }
