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

from loguru import logger

from .config import BrokerConfig, DedupeMode, venue_arguments
from .server import BrokerServer


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
    parser.add_argument("--fix-comp-id", default="SIMBROKER", help="the FIX acceptor's CompID (--venue fix)")
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
            garbage_rate=args.garbage_rate,
            ghost_fill_rate=args.ghost_fill_rate,
            lookup_lag=args.lookup_lag,
            dedupe=DedupeMode(args.dedupe),
            partial_fills=args.partial_fills,
            fill_delay_ms=args.fill_delay_ms,
            seed=args.seed,
            venue=args.venue,
            fix_comp_id=args.fix_comp_id,
            fix_gap_rate=args.fix_gap_rate,
            fix_duplicate_rate=args.fix_duplicate_rate,
            fix_reject_status_requests=args.fix_reject_status_requests,
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
