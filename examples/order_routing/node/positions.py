"""Positions: fills -> positions and average prices, event-sourced."""

from __future__ import annotations

from typing import Any

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.delivery import offer
from examples.order_routing.node.messages import CheckLiveOrders, Fills, OrdersDone, Snapshot, SubscribeFills
from examples.order_routing.protocol import Fill, Side
from garrison import MailboxConfig
from garrison.persistence import EventSourcedActor

MAX_FILLS_PER_WRITE = 256
"""Fills written in one append at most, even while more wait (encoding them holds the loop)."""


class FillApplied(msgspec.Struct, frozen=True, array_like=True, tag="fill_applied"):
    fill_seq: int
    client_order_id: str
    symbol: str
    side: Side
    qty: int
    price: float
    leaves_qty: int


class Position(msgspec.Struct, frozen=True, array_like=True):
    qty: int = 0
    """Signed: long > 0, short < 0."""
    average_price: float = 0.0


class Book(msgspec.Struct, frozen=True):
    last_fill_seq: int = 0
    fills: int = 0
    positions: dict[str, Position] = {}


def applied(position: Position, side: Side, qty: int, price: float) -> Position:
    """The position after a fill: the average price moves when the position grows,
    stays when it shrinks, and restarts at the fill price when it flips."""
    signed = qty if side is Side.BUY else -qty
    new_qty = position.qty + signed
    if position.qty == 0 or (position.qty > 0) == (signed > 0):
        total = abs(position.qty) + qty
        average = (position.average_price * abs(position.qty) + price * qty) / total
    elif abs(signed) <= abs(position.qty):
        average = position.average_price if new_qty != 0 else 0.0
    else:
        average = price
    return Position(new_qty, average)


def apply_fill(book: Book, event: FillApplied) -> Book:
    """The book after one fill (pure: replay and live use the same function)."""
    positions = dict(book.positions)
    position = positions.get(event.symbol, Position())
    positions[event.symbol] = applied(position, event.side, event.qty, event.price)
    return Book(last_fill_seq=event.fill_seq, fills=book.fills + 1, positions=positions)


class _FreshFromHere(msgspec.Struct, frozen=True):
    """Self-message queued at start: fills before it belong to an earlier subscription."""


class Positions(EventSourcedActor[Book]):
    """Applies each broker fill exactly once (fills carry a broker-wide sequence number;
    a replayed or repeated one is ignored), and tells the executor when an order is done.

    On every start it asks the gateway for the fills after the last one it applied, so
    nothing a crash or a disconnect interrupted is missed.
    """

    events = (FillApplied,)
    heartbeat_timeout = 5.0
    snapshot_every = 5_000
    mailbox = MailboxConfig(capacity=65536)
    persistence_id = "positions"

    def initial_state(self) -> Book:
        return Book()

    def apply(self, state: Book, event: FillApplied) -> Book:
        return apply_fill(state, event)

    async def on_start(self) -> None:
        self.buffer: list[FillApplied] = []
        # Fills still queued here came over a connection an earlier incarnation subscribed:
        # they may overtake the replay this subscription asks for, and the fill_seq check
        # would then drop replayed fills as old. Everything queued before this marker is
        # dropped instead; what was not durable comes again in the replay.
        self.stale = True
        self.ctx.self_ref.tell_nowait(_FreshFromHere())
        gateway = self.ctx.node.lookup(paths.GATEWAY)
        await gateway.tell(SubscribeFills(self.state.last_fill_seq, self.ctx.self_ref))
        # Fills up to last_fill_seq are not replayed: an order they finished is found by look-up.
        offer(self.ctx.node.lookup(paths.EXECUTOR), CheckLiveOrders(), self.ctx.node)

    async def on_receive(self, message: Any) -> Any:
        match message:
            case _FreshFromHere():
                self.stale = False
            case Fills(fills=fills):
                for fill in fills:
                    self.take(fill)
            case Fill():
                self.take(message)
            case Snapshot():
                # Answer with every fill received so far; returning before the write
                # would also leave them unapplied until the next message.
                await self.apply_buffered()
                return {
                    "fills": self.state.fills,
                    "last_fill_seq": self.state.last_fill_seq,
                    "positions": {
                        symbol: (p.qty, p.average_price) for symbol, p in self.state.positions.items()
                    },
                }
            case _:
                self.ctx.unhandled(message)
        if self.ctx.queued == 0 or len(self.buffer) >= MAX_FILLS_PER_WRITE:
            await self.apply_buffered()
        return None

    def take(self, fill: Fill) -> None:
        """Buffer a fill newer than the last one applied (or buffered); drop it while stale."""
        if self.stale:
            return
        last = self.buffer[-1].fill_seq if self.buffer else self.state.last_fill_seq
        if fill.fill_seq > last:
            self.buffer.append(
                FillApplied(
                    fill.fill_seq,
                    fill.client_order_id,
                    fill.symbol,
                    fill.side,
                    fill.qty,
                    fill.price,
                    fill.leaves_qty,
                )
            )

    async def apply_buffered(self) -> None:
        """Persist the fills received since the last write (one append), then report finished orders."""
        if not self.buffer:
            return
        buffer, self.buffer = self.buffer, []
        await self.persist(*buffer)
        done = [event.client_order_id for event in buffer if event.leaves_qty == 0]
        if done:
            offer(self.ctx.node.lookup(paths.EXECUTOR), OrdersDone(done), self.ctx.node)
