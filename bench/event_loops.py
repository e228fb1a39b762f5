"""tell and ask on uvloop against the standard asyncio loop, in the same run.

``garrison run`` picks uvloop when it is installed (``garrison[fast]``); this
says what that buys. The workloads are those of ``tell`` (one producer, one
counting actor, capacity 1000) and ``ask`` (sequential round trips to an echo
actor), each on a fresh loop of the kind measured; the baseline is the same
workload on asyncio's loop, interleaved round by round. The raw baselines of
``tell`` (an ``asyncio.Queue`` pair) and ``ask`` (a ``(msg, future)`` round
trip) also run on uvloop, so garrison's ratios to them are given on uvloop too.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bench._harness import interleave, paired_ratio, quiet_logs, summary
from bench.ask_latency import Latencies, _garrison_ask, _raw_ask
from bench.tell_throughput import CAPACITY, Rate, _garrison_tell, _queue_tell
from garrison import MailboxConfig

T = TypeVar("T")


def _on(factory: Callable[[], asyncio.AbstractEventLoop] | None, work: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(work)


def run(quick: bool) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return {"skipped": "uvloop is not installed: pip install 'garrison[fast]'"}
    quiet_logs()
    messages = 20_000 if quick else 200_000
    asks = 2_000 if quick else 20_000
    runs = 3 if quick else 7
    mailbox = MailboxConfig(capacity=CAPACITY)
    loops = {"asyncio": None, "uvloop": uvloop.new_event_loop}
    for factory in loops.values():  # warm-up, off the clock
        _on(factory, _garrison_tell(2_000, mailbox))
        _on(factory, _garrison_ask(500, 5.0))
    _on(uvloop.new_event_loop, _queue_tell(2_000))
    _on(uvloop.new_event_loop, _raw_ask(500))
    tells: dict[str, list[Rate]] = interleave(
        {
            **{
                name: (lambda f=factory: _on(f, _garrison_tell(messages, mailbox)))
                for name, factory in loops.items()
            },
            "uvloop_queue": lambda: _on(uvloop.new_event_loop, _queue_tell(messages)),
        },
        runs,
    )
    latencies: dict[str, list[Latencies]] = interleave(
        {
            **{name: (lambda f=factory: _on(f, _garrison_ask(asks, 5.0))) for name, factory in loops.items()},
            "uvloop_raw": lambda: _on(uvloop.new_event_loop, _raw_ask(asks)),
        },
        runs,
    )

    def wall(name: str) -> list[float]:
        return [rate.wall for rate in tells[name]]

    def cpu(name: str) -> list[float]:
        return [rate.cpu for rate in tells[name]]

    def ask(name: str, quantile: str) -> list[float]:
        return [figures[quantile] for figures in latencies[name]]

    return {
        "measures": "tell messages/s and ask round-trip µs (p50, p99) on uvloop and on asyncio's loop",
        "params": {
            "messages": messages,
            "asks": asks,
            "capacity": CAPACITY,
            "runs": runs,
            "uvloop": importlib.metadata.version("uvloop"),
        },
        "figures": {
            "uvloop_tell_msgs_per_sec": summary(wall("uvloop"), 0),
            "uvloop_tell_msgs_per_cpu_sec": summary(cpu("uvloop"), 0),
            "uvloop_ask_p50_us": summary(ask("uvloop", "p50"), 2),
            "uvloop_ask_p99_us": summary(ask("uvloop", "p99"), 2),
        },
        "baselines": {
            "asyncio_tell_msgs_per_sec": summary(wall("asyncio"), 0),
            "asyncio_tell_msgs_per_cpu_sec": summary(cpu("asyncio"), 0),
            "asyncio_ask_p50_us": summary(ask("asyncio", "p50"), 2),
            "asyncio_ask_p99_us": summary(ask("asyncio", "p99"), 2),
            "uvloop_asyncio_queue_msgs_per_cpu_sec": summary(cpu("uvloop_queue"), 0),
            "uvloop_raw_ask_p50_us": summary(ask("uvloop_raw", "p50"), 2),
        },
        "ratios": {
            "uvloop_tell_over_asyncio_tell": round(paired_ratio(wall("uvloop"), wall("asyncio")), 3),
            "uvloop_tell_over_asyncio_tell_cpu": round(paired_ratio(cpu("uvloop"), cpu("asyncio")), 3),
            "asyncio_ask_p50_over_uvloop_ask_p50": round(
                paired_ratio(ask("asyncio", "p50"), ask("uvloop", "p50")), 3
            ),
            "asyncio_ask_p99_over_uvloop_ask_p99": round(
                paired_ratio(ask("asyncio", "p99"), ask("uvloop", "p99")), 3
            ),
            "uvloop_tell_over_uvloop_asyncio_queue_cpu": round(
                paired_ratio(cpu("uvloop"), cpu("uvloop_queue")), 3
            ),
            "uvloop_ask_p50_over_uvloop_raw_ask_p50": round(
                paired_ratio(ask("uvloop", "p50"), ask("uvloop_raw", "p50")), 3
            ),
        },
    }
