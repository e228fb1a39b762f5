"""The order-routing example end to end over FIX 4.4 against the same run over its native protocol.

The run is ``order_routing``'s end-to-end blast run (``bench/order_routing.py``: the node's real
tree in this process on a SqliteJournal with synchronous=FULL, the broker simulator in a
subprocess, 4 Blast strategies over 256 symbols, a steady phase, then a burst that offers more
than the node takes), once with ``venue="native"`` (length-prefixed msgpack) and once with
``venue="fix"`` (the FIX gateway's initiator session: every outbound message numbered, stored in
the node's journal before it is written, tag=value frames with checksums both ways; the
simulator's FIX acceptor), interleaved round by round. Figure: orders/s at capacity (the burst),
an order counting when the venue's acceptance reaches the executor; the ratio is the median of
the per-round ratios. Also the steady phase's signal-to-ack latency, the burst's loop CPU per
order and loop lag, each side by side.

Target: FIX >= 0.7x native orders/s. Nothing is asserted.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from bench._harness import median, paired_ratio, quiet_logs, summary, target
from bench.order_routing import blast_config, end_to_end

VENUES = ("native", "fix")


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    config = blast_config(quick)
    warm_up, steady = (1.0, 2.0) if quick else (2.0, 3.0)
    rounds = 1 if quick else 3
    results: dict[str, list[dict[str, Any]]] = {venue: [] for venue in VENUES}
    with tempfile.TemporaryDirectory(dir=Path(__file__).absolute().parent, prefix=".e2e-fix-") as name:
        folder = Path(name)
        for round_ in range(rounds):
            order = VENUES if round_ % 2 == 0 else tuple(reversed(VENUES))
            for venue in order:
                run_folder = folder / f"{venue}-{round_}"
                run_folder.mkdir()
                venue_config = msgspec.structs.replace(config, venue=venue)
                results[venue].append(asyncio.run(end_to_end(run_folder, venue_config, warm_up, steady)))
    rates = {venue: [run["burst"]["orders_per_sec"] for run in results[venue]] for venue in VENUES}
    ratio = paired_ratio(rates["fix"], rates["native"])

    def side(venue: str, phase: str, figure: str) -> float:
        return median([run[phase].get(figure, 0.0) for run in results[venue]])

    figures = {
        venue: {
            "burst_orders_per_sec": summary(rates[venue], 0),
            "burst_signals_per_sec": side(venue, "burst", "signals_per_sec"),
            "burst_loop_cpu_us_per_order": side(venue, "burst", "loop_cpu_us_per_order"),
            "burst_loop_lag_p99_ms": side(venue, "burst", "loop_lag_p99_ms"),
            "steady_orders_per_sec": side(venue, "steady", "orders_per_sec"),
            "steady_signal_to_ack_p50_ms": side(venue, "steady", "signal_to_ack_p50_ms"),
            "steady_signal_to_ack_p99_ms": side(venue, "steady", "signal_to_ack_p99_ms"),
            "journal_appends_per_commit": side(venue, "journal", "appends_per_commit"),
        }
        for venue in VENUES
    }
    return {
        "measures": "orders/s end to end at capacity over FIX 4.4 against the same run over the native "
        "protocol, interleaved",
        "params": {
            "symbols": len(config.symbols),
            "strategies": list(config.strategies),
            "tick_rate": config.tick_rate,
            "burst_factor": config.burst_factor,
            "warm_up_seconds": warm_up,
            "steady_seconds": steady,
            "burst_seconds": config.burst_seconds,
            "rounds": rounds,
            "journal": "SqliteJournal, synchronous=FULL",
            "broker": "subprocess, latency 1 ms, fills after 5 ms",
        },
        "figures": {"fix": figures["fix"]},
        "baselines": {"native": figures["native"]},
        "ratios": {"fix_over_native_orders_per_sec": round(ratio, 3)},
        "targets": {
            "fix_over_native": target(
                ratio, ">=", 0.7, "orders/s at capacity over FIX / the same run over the native protocol"
            )
        },
    }
