"""The order-routing node end to end: orders/s and signal-to-ack latency through the durable
intent log, loop lag at the market-open burst, and recovery after kill -9 with a large journal.

- end to end (``blast``): the node of examples/order_routing in this process (its real tree,
  SqliteJournal with synchronous=FULL), the broker simulator in a subprocess on 127.0.0.1.
  ``Blast`` strategies signal on every tick they take (alternating sides, so limits never bind),
  many symbols, a high tick rate: a steady phase, then the burst (the rate times
  ``burst_factor``). An order counts when the broker's OrderAccepted reaches the executor;
  its latency runs from the moment its strategy took the tick (the signal) to that moment,
  through risk, the durable intent record, the durable SENDING mark, the gateway, the broker
  and back. Each phase's loop lag is the node's own lag monitor's samples (every 10 ms) taken
  within that phase and no other (each sample is stamped as the monitor records it). The
  bench's bookkeeping lives in the node's process, so it keeps its stamps in arrays of floats,
  which the garbage collector never walks. The burst also reports the CPU the loop's
  thread used (its share of the burst's wall time, and per order acked): on a shared machine
  the rates follow what the node is given, the CPU per order much less.
- recovery: a journal of 100,000 intents (most DONE, some RECORDED/SENDING/ACKED, as a busy
  node leaves it) serves a node process, SIGKILLed half a second after its first order; a new
  process starts on the same journal, three times. Figure: the median of the seconds from a
  process's start (spawn) to the first order of its own the broker accepted (the broker stamps
  each order on arrival).

Baselines, measured in the same run (medians of 3 rounds):
- the intent log alone: intents/s through ``IntentLog`` on the same kind of journal, each
  recorded and moved SENDING, ACKED, DONE in batches of 512 (the durable writes one order costs
  the node, minus ticks and fills), with no actors and no network: with the batch calls the node
  uses (``record_many_nowait``, ``move_many_nowait``), and with one call per write;
- the broker alone: orders/s its own benchmark pipelines through it
  (``examples/order_routing/broker/bench.py``);
- replaying the recovery journal's intent log in this process (what the new process must do
  before its first order), and a bare interpreter importing the node's modules.

No figure here is asserted; targets are reported (>= 10,000 orders/s end to end, burst loop lag
p99 <= 10 ms, recovery <= 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from bench._harness import median, percentile, quiet_logs, summary, target
from examples.order_routing.harness.broker_process import BrokerProcess, broker_arguments
from examples.order_routing.harness.launch import SINGLE_NODE, node_command, node_env
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.entry import settle_the_heap
from examples.order_routing.node.intents import INTENTS_STREAM
from examples.order_routing.node.messages import BrokerReplies, OrderIntent, RecordIntent, Tick
from examples.order_routing.node.tree import build_spec
from examples.order_routing.protocol import OrderAccepted, Side
from garrison import ActorRef, Node
from garrison.observe import LoopGuard
from garrison.persistence import IntentLog, IntentState, SqliteJournal, client_order_id

REPO = Path(__file__).absolute().parent.parent
LAG_INTERVAL = 0.01
"""Seconds between loop-lag samples during the end-to-end run."""


# -- end to end ---------------------------------------------------------------------------------


def blast_config(quick: bool) -> NodeConfig:
    """Blast mode: 4 Blast strategies over 256 symbols. The steady rate (1,000 ticks/s, about
    4,000 signals/s: few ticks of one symbol meet in a mailbox to be conflated) stays below what
    the node sustains on this machine class, so its latency is the path's, not a queue's; the
    burst (x8) offers several times more than it takes (``signals_per_sec`` against
    ``orders_per_sec``), so its rate is the node's capacity."""
    return NodeConfig(
        symbols=tuple(f"S{index:03d}" for index in range(256)),
        strategies=tuple(f"blast-{index}" for index in range(4)),
        tick_rate=1_000.0,
        burst_factor=8.0,
        burst_start=0.0,  # set per run: after the warm-up and the steady phase
        burst_seconds=3.0 if quick else 4.0,
        max_position=1_000_000_000,
        max_notional=1e18,
    )


def _broker_args(**changes: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    broker_arguments(parser)
    args = parser.parse_args([])
    for name, value in changes.items():
        setattr(args, name, value)
    return args


class Stamps:
    """Signal and ack times, taken by wrapping the handlers of the node's actors (as tracing does)."""

    def __init__(self) -> None:
        self.signal_at: dict[tuple[str, int], float] = {}
        self.signal_of: dict[str, tuple[str, int]] = {}
        self.ack_at = array("d")
        """When each OrderAccepted reached the executor."""
        self.ack_latency = array("d")
        """Its signal-to-ack seconds."""
        self.taken = array("d")
        """When a strategy took a tick: a Blast strategy signals on every tick it takes."""

    def install(self, node: Node, strategies: tuple[str, ...]) -> None:
        clock = time.perf_counter
        for name in strategies:
            signals = self.signal_at
            taken = self.taken

            def on_tick(
                message: Any,
                name: str = name,
                signals: dict[tuple[str, int], float] = signals,
                taken: array[float] = taken,
            ) -> None:
                if type(message) is Tick:
                    signals[(name, message.seq)] = now = clock()
                    taken.append(now)

            _wrap(node.lookup(f"/root/market/strategies/{name}"), on_tick)

        def on_record(message: Any) -> None:
            if type(message) is RecordIntent:
                intent = message.intent
                self.signal_of[intent.client_order_id] = (intent.strategy_id, intent.signal_seq)

        def on_accepted(message: Any) -> None:
            if type(message) is BrokerReplies:
                now = clock()
                for reply in message.replies:
                    if type(reply) is OrderAccepted:
                        key = self.signal_of.pop(reply.client_order_id, None)
                        signalled = self.signal_at.pop(key, None) if key is not None else None
                        if signalled is not None:
                            self.ack_at.append(now)
                            self.ack_latency.append(now - signalled)

        _wrap(node.lookup("/root/execution/intents"), on_record)
        _wrap(node.lookup("/root/execution/executor"), on_accepted)

    def phase(self, started: float, ended: float) -> dict[str, Any]:
        latencies = sorted(
            latency
            for at, latency in zip(self.ack_at, self.ack_latency, strict=True)
            if started <= at < ended
        )
        signals = sum(1 for at in self.taken if started <= at < ended)
        offered = {"signals_per_sec": round(signals / (ended - started))}
        if not latencies:
            return {"orders_acked": 0, "orders_per_sec": 0.0, **offered}
        return {
            "orders_acked": len(latencies),
            "orders_per_sec": round(len(latencies) / (ended - started)),
            **offered,
            "signal_to_ack_p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
            "signal_to_ack_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "signal_to_ack_max_ms": round(latencies[-1] * 1000, 2),
        }


def _wrap(ref: ActorRef, before: Callable[[Any], None]) -> None:
    """Call ``before(message)`` ahead of the actor's handler, in this and every later incarnation."""

    def interceptor(receive: Callable[[Any], Any]) -> Callable[[Any], Any]:
        # Returns the handler's own coroutine: no frame of its own per message, so measuring
        # costs the node next to nothing.
        def wrapped(message: Any) -> Any:
            before(message)
            return receive(message)

        return wrapped

    ref._context.intercept(interceptor)


class LagSamples:
    """Every sample the node's lag monitor records, stamped, so that a phase's figures come
    from that phase's samples alone."""

    def __init__(self, node: Node) -> None:
        monitor = node.loop_monitor
        assert monitor is not None
        self.at = array("d")
        self.lag = array("d")
        record = monitor.record
        clock = time.perf_counter

        def stamped(lag: float) -> None:
            self.at.append(clock())
            self.lag.append(lag)
            record(lag)

        monitor.record = stamped  # type: ignore[method-assign]

    def phase(self, started: float, ended: float) -> dict[str, float]:
        lags = sorted(lag for at, lag in zip(self.at, self.lag, strict=True) if started <= at < ended)
        if not lags:
            return {"loop_lag_samples": 0}
        return {
            "loop_lag_p50_ms": round(percentile(lags, 0.50) * 1000, 2),
            "loop_lag_p99_ms": round(percentile(lags, 0.99) * 1000, 2),
            "loop_lag_max_ms": round(lags[-1] * 1000, 2),
            "loop_lag_samples": len(lags),
        }


async def end_to_end(folder: Path, config: NodeConfig, warm_up: float, steady: float) -> dict[str, Any]:
    """One blast run: warm-up, steady phase, burst; figures per phase. The broker simulator speaks
    ``config.venue`` (native, or FIX 4.4: ``bench/e2e_fix.py``)."""
    settle_the_heap()  # as the node process does before it starts
    burst = config.burst_seconds
    config = msgspec.structs.replace(config, burst_start=warm_up + steady)
    guard = LoopGuard(interval=LAG_INTERVAL, stall_timeout=None)
    async with BrokerProcess.start(
        _broker_args(latency_ms=1.0, fill_delay_ms=5.0, venue=config.venue), folder / "broker.db"
    ) as broker:
        config = msgspec.structs.replace(config, broker_port=broker.port)
        journal = SqliteJournal(folder / "node.db", synchronous="FULL")
        async with Node(config.name, journal=journal, guard=guard, handle_signals=False) as node:
            stamps = Stamps()
            lags = LagSamples(node)
            await node.start(build_spec(config))
            feed_started = time.perf_counter()  # the feed's clock starts within its on_start
            stamps.install(node, config.strategies)
            steady_from = feed_started + warm_up + steady - min(steady, burst)
            await _sleep_until(feed_started + warm_up + steady)
            loop_cpu = time.thread_time()  # this task runs on the loop's thread
            await _sleep_until(feed_started + warm_up + steady + burst)
            loop_cpu = time.thread_time() - loop_cpu
            await asyncio.sleep(1.0)  # acks of the burst's last orders
            steady_phase = (steady_from, feed_started + warm_up + steady)
            burst_phase = (feed_started + warm_up + steady, feed_started + warm_up + steady + burst)
            phases = {
                "steady": {**stamps.phase(*steady_phase), **lags.phase(*steady_phase)},
                "burst": {**stamps.phase(*burst_phase), **lags.phase(*burst_phase)},
            }
            # What the loop's thread got of a CPU, and spent per order: unlike the wall-clock rates,
            # these hardly move when other processes compete for the machine.
            acked = max(1, phases["burst"]["orders_acked"])
            phases["burst"]["loop_cpu_share"] = round(loop_cpu / burst, 2)
            phases["burst"]["loop_cpu_us_per_order"] = round(loop_cpu / acked * 1e6, 1)
            stats = journal.stats()
            await node.supervisor("/root/market").terminate_child("feed")
    phases["journal"] = {
        "appends": stats["appends"],
        "commits": stats["commits"],
        "appends_per_commit": round(stats["appends"] / max(1, stats["commits"]), 1),
        "append_latency_mean_ms": round(stats["latency_sum"] / max(1, stats["appends"]) * 1000, 2),
        "append_latency_p99_at_most_ms": _bucket_quantile(stats["latency_buckets"], 0.99) * 1000,
    }
    return phases


def _bucket_quantile(buckets: tuple[tuple[float, int], ...], q: float) -> float:
    """The upper bound of the histogram bucket holding the q-quantile (counts are per bucket)."""
    total = sum(count for _, count in buckets)
    running = 0
    for bound, count in buckets:
        running += count
        if running >= q * total:
            return bound
    return float("inf")


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.perf_counter()))


# -- baselines ----------------------------------------------------------------------------------


def _intent(index: int) -> OrderIntent:
    strategy = f"blast-{index % 4}"
    side = Side.BUY if index % 2 else Side.SELL
    return OrderIntent(client_order_id(strategy, index), strategy, index, "S001", side, 10, 100.0)


async def intent_log_alone(path: Path, intents: int, *, batched: bool, batch: int = 512) -> float:
    """Intents/s through the log alone: each recorded and moved SENDING, ACKED, DONE (queued
    at once, as writes keep their order), ``batch`` intents awaited together. Its ceiling.
    ``batched``: one record_many_nowait and one move_many_nowait per state for the batch, as
    the node writes; otherwise one record_nowait/move_nowait call per write."""
    states = (IntentState.SENDING, IntentState.ACKED, IntentState.DONE)
    async with SqliteJournal(path, synchronous="FULL") as journal:
        log = await IntentLog(journal, INTENTS_STREAM, OrderIntent).open()
        payloads = [_intent(index) for index in range(intents)]
        started = time.perf_counter()
        for start in range(0, intents, batch):
            chunk = payloads[start : start + batch]
            futures: list[asyncio.Future[Any]] = []
            if batched:
                futures.append(log.record_many_nowait([(intent.client_order_id, intent) for intent in chunk]))
                futures.extend(
                    log.move_many_nowait([(intent.client_order_id, state) for intent in chunk])
                    for state in states
                )
            else:
                for intent in chunk:
                    futures.append(log.record_nowait(intent.client_order_id, intent))
                    futures.extend(log.move_nowait(intent.client_order_id, state) for state in states)
            await asyncio.gather(*futures)
        return intents / (time.perf_counter() - started)


def broker_alone(orders: int) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "examples.order_routing.broker.bench", "--orders", str(orders)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


# -- recovery -----------------------------------------------------------------------------------


async def seed_journal(path: Path, intents: int, pending: int) -> dict[str, int]:
    """A journal as a busy node leaves it: ``intents`` intents, the last ``pending`` not finished."""
    states = {"done": 0, "recorded": 0, "sending": 0, "acked": 0}
    async with SqliteJournal(path, synchronous="FULL") as journal:
        log = await IntentLog(journal, INTENTS_STREAM, OrderIntent).open()
        for start in range(0, intents, 10_000):
            futures: list[asyncio.Future[Any]] = []
            for index in range(start, min(intents, start + 10_000)):
                intent = _intent(index)
                futures.append(log.record_nowait(intent.client_order_id, intent))
                left = intents - index
                path_to = (
                    ("done", (IntentState.SENDING, IntentState.ACKED, IntentState.DONE))
                    if left > pending
                    else [("recorded", ()), ("sending", (IntentState.SENDING,)),
                          ("acked", (IntentState.SENDING, IntentState.ACKED))][left % 3]
                )  # fmt: skip
                states[path_to[0]] += 1
                futures.extend(log.move_nowait(intent.client_order_id, state) for state in path_to[1])
            await asyncio.gather(*futures)
    return states


def _first_order_after(store: Path, moment: float) -> float | None:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1.0) as db:
            (first,) = db.execute(
                "SELECT min(accepted_at) FROM orders WHERE accepted_at > ?", (moment,)
            ).fetchone()
    except sqlite3.OperationalError:
        return None
    return float(first) if first is not None else None


async def _wait_first_order(store: Path, moment: float, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first = await asyncio.to_thread(_first_order_after, store, moment)
        if first is not None:
            return first
        await asyncio.sleep(0.002)
    return None


def _node_process(config: NodeConfig, journal: Path, log: Any) -> subprocess.Popen[bytes]:
    command = node_command(SINGLE_NODE, name=config.name)
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=node_env(config, journal=str(journal)),
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


async def recovery(folder: Path, intents: int, pending: int, rounds: int) -> dict[str, Any]:
    """Seed the journal, then ``rounds`` times: start a node process, SIGKILL it half a second
    after its first order; each start is timed from spawn to its first order at the broker."""
    journal = folder / "recovery.db"
    seeded_at = time.perf_counter()
    states = await seed_journal(journal, intents, pending)
    seed_seconds = time.perf_counter() - seeded_at
    store = folder / "recovery-broker.db"
    seconds: list[float] = []
    with open(folder / "recovery-node.log", "ab") as log:  # noqa: ASYNC230 - before any node runs
        async with BrokerProcess.start(_broker_args(), store) as broker:
            config = NodeConfig(broker_port=broker.port)
            for _ in range(rounds):
                started = time.time()
                node = _node_process(config, journal, log)
                try:
                    first_order = await _wait_first_order(store, started, 60.0)
                    await asyncio.sleep(0.5)  # running normally: the kill comes mid-stream
                finally:
                    _stop(node, signal.SIGKILL)
                if first_order is None:
                    raise RuntimeError(
                        f"no order within 60 s of a node start; see {folder}/recovery-node.log"
                    )
                seconds.append(first_order - started)
    return {
        "seconds": round(median(seconds), 3),
        "runs": [round(value, 3) for value in seconds],
        "journal_intents": sum(states.values()),
        "pending_at_seed": {name: count for name, count in states.items() if name != "done"},
        "seed_seconds": round(seed_seconds, 1),
        "intent_log_replay_seconds": await replay_seconds(journal),
    }


async def replay_seconds(journal: Path) -> float:
    async with SqliteJournal(journal) as opened:
        started = time.perf_counter()
        log = await IntentLog(opened, INTENTS_STREAM, OrderIntent).open()
        elapsed = time.perf_counter() - started
    assert len(log) > 0
    return round(elapsed, 3)


def interpreter_start_seconds() -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import examples.order_routing.node.entry, garrison.cli"],
        cwd=REPO,
        check=True,
        timeout=60,
    )
    return round(time.perf_counter() - started, 3)


# -- the benchmark ------------------------------------------------------------------------------


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    config = blast_config(quick)
    warm_up, steady = (1.0, 3.0) if quick else (2.0, 4.0)
    recovery_intents = 10_000 if quick else 100_000
    with tempfile.TemporaryDirectory(dir=Path(__file__).absolute().parent, prefix=".order-routing-") as name:
        folder = Path(name)
        e2e = asyncio.run(end_to_end(folder, config, warm_up, steady))
        log_alone_runs = [
            asyncio.run(
                intent_log_alone(folder / f"intent-log-{round_}.db", 5_000 if quick else 20_000, batched=True)
            )
            for round_ in range(3)
        ]
        log_alone = median(log_alone_runs)
        per_call_runs = [
            asyncio.run(
                intent_log_alone(folder / f"per-call-{round_}.db", 5_000 if quick else 20_000, batched=False)
            )
            for round_ in range(3)
        ]
        broker_runs = [broker_alone(5_000 if quick else 20_000) for _ in range(3)]
        broker = {
            "orders_per_s_to_last_accept": median(
                [run["orders_per_s_to_last_accept"] for run in broker_runs]
            ),
            "orders_per_s_to_last_fill": median([run["orders_per_s_to_last_fill"] for run in broker_runs]),
            "baseline_sqlite3_orders_per_s": median(
                [run["baseline_sqlite3_orders_per_s"] for run in broker_runs]
            ),
            "runs_to_last_accept": [run["orders_per_s_to_last_accept"] for run in broker_runs],
        }
        recovered = asyncio.run(recovery(folder, recovery_intents, pending=300, rounds=3))
        interpreter = interpreter_start_seconds()
    burst_rate = e2e["burst"]["orders_per_sec"]
    return {
        "measures": "orders/s and signal-to-ack latency end to end through the durable intent log; "
        "loop lag in the burst; seconds from process start to the first order after kill -9",
        "params": {
            "symbols": len(config.symbols),
            "strategies": list(config.strategies),
            "tick_rate": config.tick_rate,
            "burst_factor": config.burst_factor,
            "steady_seconds": steady,
            "burst_seconds": config.burst_seconds,
            "journal": "SqliteJournal, synchronous=FULL",
            "broker": "subprocess, latency 1 ms, fills after 5 ms",
            "recovery_journal_intents": recovery_intents,
        },
        "figures": {
            "steady": e2e["steady"],
            "burst": e2e["burst"],
            "journal": e2e["journal"],
            "recovery": recovered,
        },
        "baselines": {
            "intent_log_alone_intents_per_sec": summary(log_alone_runs, 0),
            "intent_log_alone_one_call_per_write_intents_per_sec": summary(per_call_runs, 0),
            "broker_alone": broker,
            "interpreter_and_imports_seconds": interpreter,
        },
        "ratios": {
            "e2e_capacity_over_intent_log_alone": round(burst_rate / log_alone, 3),
            "e2e_burst_over_broker_alone": round(burst_rate / broker["orders_per_s_to_last_accept"], 3),
        },
        "targets": {
            "orders_per_sec": target(
                burst_rate,
                ">=",
                10_000,
                "orders/s end to end at capacity (the burst offers more than it takes)",
            ),
            "burst_loop_lag_p99_ms": target(
                e2e["burst"]["loop_lag_p99_ms"], "<=", 10.0, "event-loop lag p99 during the burst (ms)"
            ),
            "recovery_seconds": target(
                recovered["seconds"],
                "<=",
                2.0,
                f"process start to first order after kill -9, {recovery_intents:,} intents in the journal",
            ),
        },
    }


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
