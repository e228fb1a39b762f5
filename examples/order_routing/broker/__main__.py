"""Run the broker simulator: ``python -m examples.order_routing.broker --port 0 --store PATH [options]``.

Once it accepts connections it prints one line to stdout, ``BROKER LISTENING
<host>:<port>`` (so ``--port 0`` lets the OS choose and the caller reads the
port back). SIGTERM or SIGINT stops it cleanly (exit 0) after committing what
was staged; a store failure stops it with exit 1. Its log goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from loguru import logger

from .config import BrokerConfig, DedupeMode
from .server import BrokerServer

VENUE_OPTIONS: dict[str, dict[str, Any]] = {
    "--latency-ms": {"type": float, "default": 1.0, "help": "delay before each reply (ms)"},
    "--reject-rate": {"type": float, "default": 0.0, "help": "share of orders the venue rejects"},
    "--drop-reply-rate": {
        "type": float,
        "default": 0.0,
        "help": "share of accepted orders whose OrderAccepted is never sent (the dead zone)",
    },
    "--reset-rate": {
        "type": float,
        "default": 0.0,
        "help": "share of NewOrders after which the connection is reset",
    },
    "--lookup-lag": {
        "type": float,
        "default": 0.2,
        "help": "seconds an accepted order stays invisible to QueryOrder",
    },
    "--dedupe": {
        "choices": [mode.value for mode in DedupeMode],
        "help": "how the venue treats a reused client order id: refused always, only while the first "
        "order is open, or never (default: %(default)s)",
    },
    "--partial-fills": {"action": "store_true", "help": "fill each order in 1-3 fills"},
    "--fill-delay-ms": {
        "type": float,
        "default": 5.0,
        "help": "delay from the accept (and between partial fills) to each fill (ms)",
    },
}
"""The options of the venue's behaviour and faults (BrokerConfig's), by flag: declared once, for
this command line and for those that start the broker with them (the example's harness)."""


def venue_arguments(parser: argparse.ArgumentParser, *, title: str, dedupe: DedupeMode) -> None:
    """Add VENUE_OPTIONS to ``parser`` as a group named ``title``, the dedupe mode defaulting to
    ``dedupe``."""
    group = parser.add_argument_group(title)
    for flag, spec in VENUE_OPTIONS.items():
        group.add_argument(flag, **spec)
    parser.set_defaults(dedupe=dedupe.value)


def venue_argv(args: argparse.Namespace) -> list[str]:
    """The VENUE_OPTIONS values in ``args`` (parsed with ``venue_arguments``), as this command
    line takes them."""
    argv = []
    for flag, spec in VENUE_OPTIONS.items():
        value = getattr(args, flag.removeprefix("--").replace("-", "_"))
        if spec.get("action") == "store_true":
            argv += [flag] if value else []
        else:
            argv += [flag, str(value)]
    return argv


def parse_config(argv: list[str] | None = None) -> tuple[BrokerConfig, bool]:
    parser = argparse.ArgumentParser(
        prog="python -m examples.order_routing.broker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", type=Path, required=True, help="SQLite file of accepted orders and fills")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--broker-id", default="sim-broker")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--verbose", action="store_true")
    venue_arguments(parser, title="venue behaviour and faults", dedupe=DedupeMode.ALWAYS)
    args = parser.parse_args(argv)
    try:
        config = BrokerConfig(
            store_path=args.store,
            host=args.host,
            port=args.port,
            broker_id=args.broker_id,
            latency_ms=args.latency_ms,
            reject_rate=args.reject_rate,
            drop_reply_rate=args.drop_reply_rate,
            reset_rate=args.reset_rate,
            lookup_lag=args.lookup_lag,
            dedupe=DedupeMode(args.dedupe),
            partial_fills=args.partial_fills,
            fill_delay_ms=args.fill_delay_ms,
            seed=args.seed,
        )
    except ValueError as error:
        parser.error(str(error))
    return config, args.verbose


async def serve(config: BrokerConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with BrokerServer(config) as broker:
        print(f"BROKER LISTENING {config.host}:{broker.port}", flush=True)
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(broker.wait_failed())
        await asyncio.wait([stopped, failed], return_when=asyncio.FIRST_COMPLETED)
        for task in (stopped, failed):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        exit_code = 1 if failed.done() and not failed.cancelled() else 0
        stats = broker.stats
    logger.bind(actor="broker").info("broker stopped (exit {code}): {stats}", code=exit_code, stats=stats)
    return exit_code


def main(argv: list[str] | None = None) -> int:
    config, verbose = parse_config(argv)
    logger.remove()
    logger.add(
        sys.stderr,
        level="DEBUG" if verbose else "INFO",
        format="{time:HH:mm:ss.SSS} {level: <7} {extra[actor]} {message}",
        backtrace=False,
    )
    logger.configure(extra={"actor": "broker"})
    return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
