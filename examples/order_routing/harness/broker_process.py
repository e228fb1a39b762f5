"""Running the broker simulator as a separate process for the demo and the chaos run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from examples.order_routing.broker.store import StoredOrder, duplicates, load_orders

START_TIMEOUT = 15.0


def broker_arguments(parser: argparse.ArgumentParser) -> None:
    """The broker's fault and dedupe options, as the demo and chaos commands take them."""
    broker = parser.add_argument_group("broker simulator")
    broker.add_argument("--latency-ms", type=float, default=1.0, help="broker reply latency")
    broker.add_argument("--reject-rate", type=float, default=0.0, help="share of orders the venue rejects")
    broker.add_argument("--drop-reply-rate", type=float, default=0.0, help="accepted but the reply is lost")
    broker.add_argument("--reset-rate", type=float, default=0.0, help="connection reset after an order")
    broker.add_argument("--lookup-lag", type=float, default=0.2, help="order look-ups lag acceptance (s)")
    broker.add_argument(
        "--dedupe",
        choices=("always", "while-open", "none"),
        default="while-open",
        help="how the venue treats a reused client order id: refused always, only while the first "
        "order is open, or never (default: while-open)",
    )
    broker.add_argument("--partial-fills", action="store_true", help="fill orders in 1-3 parts")
    broker.add_argument(
        "--fill-delay-ms", type=float, default=5.0, help="delay from accept (and between parts) to a fill"
    )


def broker_command(args: argparse.Namespace, store: Path, seed: int) -> list[str]:
    command = [
        sys.executable, "-m", "examples.order_routing.broker",
        "--store", str(store), "--port", "0", "--seed", str(seed),
        "--latency-ms", str(args.latency_ms), "--reject-rate", str(args.reject_rate),
        "--drop-reply-rate", str(args.drop_reply_rate), "--reset-rate", str(args.reset_rate),
        "--lookup-lag", str(args.lookup_lag), "--dedupe", args.dedupe,
        "--fill-delay-ms", str(args.fill_delay_ms),
    ]  # fmt: skip
    if args.partial_fills:
        command.append("--partial-fills")
    return command


class BrokerProcess:
    """A broker simulator subprocess: its port, and its store (the ground truth)."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, store: Path) -> None:
        self.process = process
        self.port = port
        self.store = store

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, args: argparse.Namespace, store: Path, seed: int = 11
    ) -> AsyncIterator[BrokerProcess]:
        """Start it, wait (bounded) for its LISTENING line, stop it with SIGTERM at exit."""
        process = await asyncio.create_subprocess_exec(
            *broker_command(args, store, seed), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
            text = line.decode().strip()
            if not text.startswith("BROKER LISTENING"):
                raise RuntimeError(f"the broker simulator did not start (said {text!r})")
            port = int(text.rsplit(":", 1)[1])
            yield cls(process, port, store)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 10.0)
                except TimeoutError:
                    process.kill()
                    await process.wait()

    def orders(self) -> list[StoredOrder]:
        return load_orders(self.store)

    def duplicate_count(self) -> int:
        return len(duplicates(self.store))
