"""The actors of hello_node, one idea each."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Hashable
from typing import Any

from garrison import (
    Actor,
    ActorRef,
    ActorStopped,
    MailboxConfig,
    Overflow,
    Terminated,
)

from .messages import (
    BackpressureReport,
    BookReconciled,
    GetBackpressureReport,
    GetPrices,
    ListTerminations,
    OrderAccepted,
    PlaceOrder,
    Prices,
    ProcessJob,
    ProduceNext,
    PublishTicks,
    ReconcileBook,
    Tick,
)

# -- a producer feeding a slow consumer: BACKPRESSURE ----------------------


class SlowConsumer(Actor):
    """Takes 20 ms per job: far slower than the producer can send."""

    mailbox = MailboxConfig(capacity=8, overflow=Overflow.BACKPRESSURE)

    async def on_receive(self, message: Any) -> Any:
        match message:
            case ProcessJob():
                await asyncio.sleep(0.02)  # stands in for real work (a database write, an HTTP call)
            case _:
                self.ctx.unhandled(message)


class Producer(Actor):
    """Sends jobs as fast as the consumer lets it, and reports how long it waited.

    It drives itself with a ``ProduceNext`` message per job rather than a
    loop inside one handler, so every job is a message boundary: an orderly
    stop never has to cut a handler in half.
    """

    def __init__(self, consumer: ActorRef, report_every: float = 1.0) -> None:
        self.consumer = consumer
        self.report_every = report_every
        self.jobs_sent = 0
        self.waited_seconds = 0.0
        self.longest_wait_seconds = 0.0
        self.next_report_at = 0.0

    async def on_start(self) -> None:
        self.next_report_at = self.ctx.node.clock.now() + self.report_every
        self.ctx.self_ref.tell_nowait(ProduceNext())

    async def on_receive(self, message: Any) -> Any:
        match message:
            case ProduceNext():
                await self.send_one_job()
                with contextlib.suppress(ActorStopped):  # our mailbox closes when the node stops
                    self.ctx.self_ref.tell_nowait(ProduceNext())
            case GetBackpressureReport():
                return BackpressureReport(self.jobs_sent, self.waited_seconds, self.longest_wait_seconds)
            case _:
                self.ctx.unhandled(message)
        return None

    async def send_one_job(self) -> None:
        now = self.ctx.node.clock.now
        before = now()
        await self.consumer.tell(ProcessJob(self.jobs_sent))  # waits here while the mailbox is full
        waited = now() - before
        self.jobs_sent += 1
        self.waited_seconds += waited
        self.longest_wait_seconds = max(self.longest_wait_seconds, waited)
        if now() >= self.next_report_at:
            self.next_report_at += self.report_every
            self.report(waited)

    def report(self, last_wait: float) -> None:
        consumer = self.consumer.mailbox_metrics()
        self.ctx.logger.info(
            "sent {sent} jobs; the last one's tell waited {wait:.0f} ms for space. "
            "Consumer: mailbox {depth}/{capacity}, oldest job queued {lag:.0f} ms ago, "
            "jobs wait {mean:.0f} ms on average before they run",
            sent=self.jobs_sent,
            wait=last_wait * 1000,
            depth=consumer.depth,
            capacity=consumer.capacity,
            lag=consumer.oldest_age_seconds * 1000,
            mean=consumer.wait_sum_seconds / max(consumer.wait_count, 1) * 1000,
        )


# -- a price feed and a board that only wants the latest price: CONFLATE ---


def latest_per_symbol(message: Any) -> Hashable:
    """Ticks conflate per symbol; anything else (an ask) keeps a slot of its own."""
    return message.symbol if isinstance(message, Tick) else id(message)


class PriceBoard(Actor):
    """Shows the latest price per symbol; slow, so stale ticks are replaced unseen."""

    mailbox = MailboxConfig(capacity=16, overflow=Overflow.CONFLATE, key=latest_per_symbol)

    def __init__(self) -> None:
        self.latest: dict[str, float] = {}
        self.ticks_applied = 0

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Tick(symbol=symbol, price=price):
                await asyncio.sleep(0.01)  # redrawing the board is slow
                self.latest[symbol] = price
                self.ticks_applied += 1
            case GetPrices():
                return Prices(dict(self.latest), self.ticks_applied)
            case _:
                self.ctx.unhandled(message)
        return None


class PriceFeed(Actor):
    """Publishes a tick per symbol every 2 ms: a random walk from each opening price."""

    def __init__(self, board: ActorRef, opening_prices: dict[str, float], seed: int = 7) -> None:
        self.board = board
        self.prices = dict(opening_prices)
        self.random = random.Random(seed)
        self.seq = 0

    async def on_start(self) -> None:
        self.ctx.self_ref.tell_nowait(PublishTicks())

    async def on_receive(self, message: Any) -> Any:
        match message:
            case PublishTicks():
                for symbol, price in self.prices.items():
                    self.seq += 1
                    self.prices[symbol] = price = round(price * (1 + self.random.gauss(0, 0.001)), 2)
                    await self.board.tell(Tick(symbol, price, self.seq))
                await asyncio.sleep(0.002)
                with contextlib.suppress(ActorStopped):  # our mailbox closes when the node stops
                    self.ctx.self_ref.tell_nowait(PublishTicks())
            case _:
                self.ctx.unhandled(message)


# -- an order desk: ask, REJECT, and a crash on a bad order ----------------


class OrderDesk(Actor):
    """Accepts orders; a tiny REJECT mailbox refuses bursts instead of queueing them.

    An order with a quantity <= 0 is a bug in the sender: the desk crashes
    on it, as an Erlang process would, rather than limp on.
    """

    mailbox = MailboxConfig(capacity=4, overflow=Overflow.REJECT)

    def __init__(self) -> None:
        self.orders: list[OrderAccepted] = []

    async def on_receive(self, message: Any) -> Any:
        match message:
            case PlaceOrder(symbol=symbol, quantity=quantity):
                if quantity <= 0:
                    raise ValueError(f"quantity must be positive, got {quantity}")
                accepted = OrderAccepted(len(self.orders) + 1, symbol, quantity)
                self.orders.append(accepted)
                self.ctx.logger.info(
                    "accepted order {id}: {qty} {symbol}", id=accepted.order_id, qty=quantity, symbol=symbol
                )
                return accepted
            case ReconcileBook():
                await asyncio.sleep(0.3)  # slower than the caller is willing to wait
                return BookReconciled(len(self.orders))
            case _:
                self.ctx.unhandled(message)
        return None


# -- an overseer that watches the desk: watch / Terminated -----------------


class Overseer(Actor):
    """Watches other actors and remembers which ones stopped for good, and why."""

    def __init__(self, watched: list[ActorRef]) -> None:
        self.watched = watched
        self.terminations: list[str] = []

    async def on_start(self) -> None:
        for ref in self.watched:
            self.ctx.watch(ref)

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Terminated(ref=ref, reason=reason):
                self.ctx.logger.warning("{path} terminated: {reason}", path=ref.path, reason=reason)
                self.terminations.append(f"{ref.path} ({reason})")
            case ListTerminations():
                return list(self.terminations)
            case _:
                self.ctx.unhandled(message)
        return None
