"""Run the hello_node example: ``python -m examples.hello_node [--duration SECONDS]``.

The node starts a producer feeding a slow consumer (backpressure), a price
feed feeding a conflating price board, an order desk with a tiny REJECT
mailbox and an overseer watching it. A short guided tour then asks, times
out, overflows and crashes the desk, while the producer and the feed keep
running until the duration is up or SIGINT/SIGTERM arrives. The log goes to
stderr; the summary goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from loguru import logger

from garrison import ActorRef, ActorStopped, AskTimeout, MailboxFull, Node

from .actors import (
    OrderDesk,
    Overseer,
    PriceBoard,
    PriceFeed,
    Producer,
    SlowConsumer,
)
from .messages import (
    BackpressureReport,
    GetBackpressureReport,
    GetPrices,
    ListTerminations,
    PlaceOrder,
    Prices,
    ReconcileBook,
)

OPENING_PRICES = {"ACME": 101.0, "GLOBEX": 54.0, "INITECH": 12.0}


LOG_LINE = "{time:HH:mm:ss.SSS} <level>{level: <7}</level> <cyan>{extra[who]: <10}</cyan> {message}\n"


def configure_logging(verbose: bool) -> None:
    """The library never configures sinks: an application (this one) does."""

    def line_format(record: Any) -> str:
        # Runtime records carry the actor's path in extra["actor"]; node-wide ones leave it empty.
        record["extra"]["who"] = record["extra"].get("actor") or "node"
        return LOG_LINE + ("{exception}" if verbose else "")

    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if verbose else "INFO", format=line_format)


async def guided_tour(desk: ActorRef, overseer: ActorRef) -> list[str]:
    """Ask, time out, overflow and crash the order desk; returns what the overseer saw."""
    log = logger.bind(actor="main")
    accepted = await desk.ask(PlaceOrder("ACME", 100))
    log.info("ask answered: {reply}", reply=accepted)

    try:
        await desk.ask(ReconcileBook(), timeout=0.1)
    except AskTimeout as error:
        log.info("ask gave up as expected: {error}", error=error)

    # The desk is still busy reconciling: a burst of six fills its 4 slots and the rest bounce.
    burst = [PlaceOrder("ACME", 10), PlaceOrder("GLOBEX", 5), PlaceOrder("GLOBEX", 0)]
    burst += [PlaceOrder("INITECH", 7), PlaceOrder("ACME", 1), PlaceOrder("ACME", 2)]
    rejected = 0
    for order in burst:
        try:
            desk.tell_nowait(order)
        except MailboxFull:
            rejected += 1
    log.info(
        "tell_nowait burst: {sent} queued, {rejected} refused with MailboxFull (REJECT policy)",
        sent=len(burst) - rejected,
        rejected=rejected,
    )

    # The order with quantity 0 crashes the desk; the overseer's watch delivers Terminated.
    reason = await desk.wait_terminated()
    log.info("the desk is gone: {reason}", reason=reason)
    try:
        await desk.tell(PlaceOrder("ACME", 1))
    except ActorStopped as error:
        log.info("telling it anyway raises: {error}", error=error)
    terminations: list[str] = await overseer.ask(ListTerminations())
    return terminations


async def run(duration: float) -> int:
    async with Node("hello-node") as node:
        consumer = await node.spawn(SlowConsumer, name="consumer")
        producer = await node.spawn(Producer, name="producer", args=(consumer,))
        board = await node.spawn(PriceBoard, name="board")
        feed = await node.spawn(PriceFeed, name="feed", args=(board, OPENING_PRICES))
        desk = await node.spawn(OrderDesk, name="desk")
        overseer = await node.spawn(Overseer, name="overseer", args=([desk],))
        actors = [consumer, producer, board, feed, desk, overseer]
        started_at = node.clock.now()

        terminations = await guided_tour(desk, overseer)

        remaining = max(0.0, duration - (node.clock.now() - started_at))
        logger.bind(actor="main").info(
            "tour done; producer and feed run for {remaining:.1f}s more (Ctrl-C or SIGTERM stops early)",
            remaining=remaining,
        )
        try:
            await asyncio.wait_for(node.wait_closed(), timeout=remaining)
            stopped_by = "a shutdown request (SIGINT/SIGTERM)"
        except TimeoutError:
            stopped_by = f"the duration ({duration:g}s)"
        logger.bind(actor="main").info(
            "stopping: actors stop in reverse start order; what is still queued goes to dead letters"
        )
        backpressure: BackpressureReport = await producer.ask(GetBackpressureReport())
        prices: Prices = await board.ask(GetPrices())
    # Leaving the block stopped every actor: the counters are final, stop-drains included.
    print_summary(node, actors, stopped_by, backpressure, prices, terminations)
    return node.exit_code


def print_summary(
    node: Node,
    actors: list[ActorRef],
    stopped_by: str,
    backpressure: BackpressureReport,
    prices: Prices,
    terminations: list[str],
) -> None:
    print(f"== hello_node summary: stopped by {stopped_by} ==")
    print(f"{'actor':<10} {'sent':>6} {'processed':>9} {'dropped':>7} {'conflated':>9} {'rejected':>8}")
    for ref in actors:
        metrics = ref.mailbox_metrics()
        sent = metrics.enqueued + metrics.rejected
        print(
            f"{ref.path:<10} {sent:>6} {metrics.processed:>9} {metrics.dropped:>7} "
            f"{metrics.conflated:>9} {metrics.rejected:>8}"
        )
    print("(every message sent was processed, dropped or rejected; conflated ones count as dropped)")
    per_job = backpressure.waited_seconds / max(backpressure.jobs_sent, 1)
    print(
        f"backpressure: the producer's tell waited {backpressure.waited_seconds:.2f}s in all for "
        f"mailbox space ({per_job * 1000:.0f} ms per job, longest "
        f"{backpressure.longest_wait_seconds * 1000:.0f} ms): it ran at the consumer's pace"
    )
    latest = ", ".join(f"{symbol} {price:.2f}" for symbol, price in sorted(prices.latest.items()))
    print(f"price board: {prices.ticks_applied} ticks applied; latest {latest}")
    for termination in terminations:
        print(f"overseer saw: {termination}")
    print(f"dead letters: {node.dead_letters.count}")
    for reason, count in node.dead_letters.by_reason.most_common():
        print(f"  {count:>4}  {reason}")
    print(f"exit code {node.exit_code}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.hello_node",
        description="A small garrison node: backpressure, conflation, ask, rejection, "
        "a crash, a watch and an orderly shutdown, explained as they happen.",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long the node runs before it shuts down (default: %(default)s)",
    )
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG, with tracebacks")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be > 0")
    configure_logging(args.verbose)
    return asyncio.run(run(args.duration))


if __name__ == "__main__":
    sys.exit(main())
