"""What metrics cost: tell throughput with ``MailboxConfig(metrics=True)`` against
``metrics=False``, and with an application counter (``ctx.metrics``) bumped per message
on top, interleaved in the same run.

The workload is the one of ``tell_throughput``: one producer, one counting
actor, capacity 1000. With metrics on, every enqueue is timestamped and a
sample of dequeues records the wait; with metrics off neither happens. The
third variant also calls ``inc()`` on a counter registered in ``on_start``,
in every handler. All variants are single-threaded, so the cost is taken
from CPU-time rates (see ``tell_throughput``); the wall-clock figures are
reported beside them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench._harness import interleave, paired_ratio, quiet_logs, summary, target
from bench.tell_throughput import CAPACITY, Counter, Rate, _Stopwatch, garrison_tell_rate
from garrison import MailboxConfig, Node


class MeteredCounter(Counter):
    """The counting actor, also counting every message in an application counter."""

    async def on_start(self) -> None:
        self.handled = self.ctx.metrics.counter("bench_messages_handled", "Messages handled")

    async def on_receive(self, message: Any) -> None:
        self.handled.inc()
        self.count += 1
        if self.count == self.total:
            self.done.set()


async def _metered_tell(messages: int, mailbox: MailboxConfig) -> Rate:
    async with Node("bench", handle_signals=False) as node:
        done = asyncio.Event()
        ref = await node.spawn(MeteredCounter, name="counter", args=(messages, done), mailbox=mailbox)
        stopwatch = _Stopwatch()
        for i in range(messages):
            await ref.tell(i)
        await done.wait()
        return stopwatch.rate(messages)


def metered_tell_rate(messages: int, mailbox: MailboxConfig) -> Rate:
    """Messages per second through the metered counting actor, on a fresh loop and node."""
    return asyncio.run(_metered_tell(messages, mailbox))


async def _recorded_lag(messages: int, mailbox: MailboxConfig) -> dict[str, Any]:
    async with Node("bench", handle_signals=False) as node:
        done = asyncio.Event()
        ref = await node.spawn(Counter, name="counter", args=(messages, done), mailbox=mailbox)
        for i in range(messages):
            await ref.tell(i)
        await done.wait()
        metrics = ref.mailbox_metrics()
    return {
        "processed": metrics.processed,
        "wait_samples": metrics.wait_count,
        "mean_wait_us": round(metrics.wait_sum_seconds / max(1, metrics.wait_count) * 1e6, 1),
        "wait_p50_at_most_seconds": metrics.wait_quantile(0.5),
        "wait_p99_at_most_seconds": metrics.wait_quantile(0.99),
    }


def recorded_lag(messages: int, mailbox: MailboxConfig) -> dict[str, Any]:
    """What the metrics of one such run recorded: shows the measured variant really measures."""
    return asyncio.run(_recorded_lag(messages, mailbox))


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    messages = 20_000 if quick else 200_000
    # Two variants this close need more rounds than the others to separate from noise.
    runs = 3 if quick else 15
    with_metrics = MailboxConfig(capacity=CAPACITY, metrics=True)
    without_metrics = MailboxConfig(capacity=CAPACITY, metrics=False)
    garrison_tell_rate(2_000, with_metrics)
    garrison_tell_rate(2_000, without_metrics)
    metered_tell_rate(2_000, with_metrics)
    rates = interleave(
        {
            "metrics_on": lambda: garrison_tell_rate(messages, with_metrics),
            "metrics_off": lambda: garrison_tell_rate(messages, without_metrics),
            "app_counter": lambda: metered_tell_rate(messages, with_metrics),
        },
        runs,
    )
    recorded = recorded_lag(messages, with_metrics)
    wall = {name: [rate.wall for rate in runs_of] for name, runs_of in rates.items()}
    cpu = {name: [rate.cpu for rate in runs_of] for name, runs_of in rates.items()}
    on_over_off = paired_ratio(cpu["metrics_on"], cpu["metrics_off"])
    cost = 1.0 - on_over_off
    # What one application counter per message adds on top of the runtime's metrics: the
    # user's own work (about one attribute add and a call), reported, not held to the target.
    app_cost = 1.0 - paired_ratio(cpu["app_counter"], cpu["metrics_on"])
    return {
        "measures": "tell throughput with consumer-lag metrics on vs off; cost = 1 - on/off (CPU time)",
        "params": {"messages": messages, "capacity": CAPACITY, "runs": runs},
        "figures": {
            "metrics_on_msgs_per_sec": summary(wall["metrics_on"], 0),
            "metrics_on_msgs_per_cpu_sec": summary(cpu["metrics_on"], 0),
            "app_counter_msgs_per_sec": summary(wall["app_counter"], 0),
            "app_counter_msgs_per_cpu_sec": summary(cpu["app_counter"], 0),
            "consumer_lag_recorded_in_one_run": recorded,
        },
        "baselines": {
            "metrics_off_msgs_per_sec": summary(wall["metrics_off"], 0),
            "metrics_off_msgs_per_cpu_sec": summary(cpu["metrics_off"], 0),
        },
        "ratios": {
            "metrics_on_over_off": round(on_over_off, 3),
            "metrics_cost_fraction": round(cost, 3),
            "app_counter_cost_fraction_over_metrics_on": round(app_cost, 3),
            "metrics_cost_fraction_wall_clock": round(
                1.0 - paired_ratio(wall["metrics_on"], wall["metrics_off"]), 3
            ),
        },
        "targets": {
            "metrics_cost": target(
                cost, "<=", 0.10, "fraction of tell throughput (per CPU second) lost to metrics=True"
            ),
        },
    }
