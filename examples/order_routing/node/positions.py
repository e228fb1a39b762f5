"""Positions: fills -> positions and average prices, event-sourced; fills the node never asked for
are quarantined, never applied.

A fill is applied only if it belongs to an order the intent log knows, with the
intent's symbol and side, and does not take the order's filled quantity past the
intent's. Any other fill (a ghost fill: a venue's bug, another account's fill, a
forged frame) is journaled as ``FillQuarantined`` with the reason, counted, logged
once at WARNING with its ids, published as a ``GhostFillQuarantined`` event on the
node's event stream, and changes no position. ``verdict`` lists them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.delivery import offer
from examples.order_routing.node.messages import (
    CheckLiveOrders,
    Fills,
    GetIntentLog,
    LastFillTaken,
    OrderIntent,
    OrdersDone,
    Snapshot,
    SubscribeFills,
)
from examples.order_routing.protocol import Fill, Side
from garrison import LifecycleEvent, MailboxConfig
from garrison.persistence import EventSourcedActor, IntentLog

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


class FillQuarantined(msgspec.Struct, frozen=True, array_like=True, tag="fill_quarantined"):
    """A fill that was not applied, and why (``reason``); the rest is the fill as the broker sent it."""

    fill_seq: int
    client_order_id: str
    order_id: str
    symbol: str
    side: Side
    qty: int
    price: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GhostFillQuarantined(LifecycleEvent):
    """Published on the node's event stream for each quarantined fill (an alert: positions
    would have disagreed with what the node traded)."""

    fill_seq: int = 0
    client_order_id: str = ""
    reason: str = ""


_SUBSCRIPTIONS = itertools.count(1)
"""Numbers for positions' fill subscriptions: one per incarnation, unique in the process."""
MAX_QUARANTINE_LISTED = 100
"""Quarantined fills the book keeps listed (the latest); the count covers all of them."""
MAX_QUARANTINE_REMEMBERED = 10_000
"""fill_seqs of quarantined fills remembered so that a replay does not quarantine them twice."""


class Position(msgspec.Struct, frozen=True, array_like=True):
    qty: int = 0
    """Signed: long > 0, short < 0."""
    average_price: float = 0.0


class Book(msgspec.Struct, frozen=True):
    last_fill_seq: int = 0
    fills: int = 0
    positions: dict[str, Position] = {}
    filled: dict[str, int] = {}
    """Quantity filled so far per client order id: what an overfill is measured against. Shared
    by successive books and updated in place (a copy per fill would cost every order ever)."""
    quarantined: int = 0
    quarantine: tuple[FillQuarantined, ...] = ()
    """The latest MAX_QUARANTINE_LISTED quarantined fills."""


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


def apply_fill(book: Book, event: FillApplied | FillQuarantined) -> Book:
    """The book after one fill or quarantine (replay and live use the same function). A
    quarantined fill changes no position, and not last_fill_seq either: a forged sequence
    number must not make the broker skip real fills after it."""
    if isinstance(event, FillQuarantined):
        listed = (*book.quarantine, event)[-MAX_QUARANTINE_LISTED:]
        return msgspec.structs.replace(book, quarantined=book.quarantined + 1, quarantine=listed)
    positions = dict(book.positions)
    position = positions.get(event.symbol, Position())
    positions[event.symbol] = applied(position, event.side, event.qty, event.price)
    filled = book.filled
    filled[event.client_order_id] = filled.get(event.client_order_id, 0) + event.qty
    return msgspec.structs.replace(
        book, last_fill_seq=event.fill_seq, fills=book.fills + 1, positions=positions, filled=filled
    )


def fill_problem(fill: Fill, intent: OrderIntent | None, filled: int) -> str | None:
    """Why ``fill`` must not be applied to an order whose intent is ``intent`` (None: unknown)
    and which has ``filled`` so far; None if it may."""
    if intent is None:
        return "unknown client order id: the intent log has no such order"
    if fill.symbol != intent.symbol:
        return f"symbol {fill.symbol!r} contradicts the intent's {intent.symbol!r}"
    if fill.side != intent.side:
        return f"side {fill.side} contradicts the intent's {intent.side}"
    if fill.qty <= 0:
        return f"qty {fill.qty} is not a quantity"
    if filled + fill.qty > intent.qty:
        return f"overfill: {filled} filled + {fill.qty} exceeds the order's {intent.qty}"
    return None


class Positions(EventSourcedActor[Book]):
    """Applies each broker fill exactly once (fills carry a broker-wide sequence number;
    a replayed or repeated one is ignored), and tells the executor when an order is done.

    On every start it asks the gateway for the fills after the last one it applied, so
    nothing a crash or a disconnect interrupted is missed; the gateway asks it
    (``LastFillTaken``) on every reconnect for the same reason.

    A fill the intent log does not account for is quarantined, never applied (see the module).
    """

    events = (FillApplied, FillQuarantined)
    heartbeat_timeout = 5.0
    snapshot_every = 5_000
    mailbox = MailboxConfig(capacity=65536)
    persistence_id = "positions"

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        """Other nodes record into this node's intent stream (several nodes on one journal)."""

    def initial_state(self) -> Book:
        return Book()

    def apply(self, state: Book, event: FillApplied | FillQuarantined) -> Book:
        return apply_fill(state, event)

    async def on_start(self) -> None:
        self.log: IntentLog[OrderIntent] = await self.ctx.node.lookup(paths.INTENTS).ask(GetIntentLog())
        self.ghost_counter = self.ctx.metrics.counter(
            "ghost_fills_quarantined", "Fills no intent accounts for: journaled, never applied"
        )
        self.buffer: list[FillApplied | FillQuarantined] = []
        self.last_taken = self.state.last_fill_seq
        """The last fill_seq taken into the buffer (or applied): later ones only are new."""
        self.taking: dict[str, int] = {}
        """Quantity per client order id in the buffer, not yet in the book's ``filled``."""
        self.quarantined: set[tuple[int, str, str]] = {
            (event.fill_seq, event.client_order_id, event.order_id) for event in self.state.quarantine
        }
        """Quarantined fills by (fill_seq, client order id, broker order id), so that a replay does
        not quarantine one twice. Not by fill_seq alone: a forged fill must not shadow the real fill
        that later comes with the same sequence number."""
        # Fills for an earlier incarnation's subscription (still queued here, or read by the
        # gateway before it handles this one) may follow a gap: the fills lost with that
        # incarnation. Taken, they would make the fill_seq check drop the replay this
        # subscription asks for as old. Only fills of this subscription are taken; what was not
        # durable comes again in its replay.
        self.subscription = next(_SUBSCRIPTIONS)
        gateway = self.ctx.node.lookup(paths.GATEWAY)
        await gateway.tell(SubscribeFills(self.state.last_fill_seq, self.ctx.self_ref, self.subscription))
        # Fills up to last_fill_seq are not replayed: an order they finished is found by look-up.
        offer(self.ctx.node.lookup(paths.EXECUTOR), CheckLiveOrders(), self.ctx.node)

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Fills(fills=fills, subscription=subscription):
                if subscription == self.subscription:
                    for fill in fills:
                        await self.take(fill)
            case LastFillTaken():
                return self.last_taken
            case Snapshot():
                # Answer with every fill received so far; returning before the write
                # would also leave them unapplied until the next message.
                await self.apply_buffered()
                return {
                    "fills": self.state.fills,
                    "last_fill_seq": self.state.last_fill_seq,
                    "quarantined": self.state.quarantined,
                    "positions": {
                        symbol: (p.qty, p.average_price) for symbol, p in self.state.positions.items()
                    },
                }
            case _:
                self.ctx.unhandled(message)
        if self.ctx.queued == 0 or len(self.buffer) >= MAX_FILLS_PER_WRITE:
            await self.apply_buffered()
        return None

    async def take(self, fill: Fill) -> None:
        """Buffer a fill newer than the last one taken, or its quarantine.
        A fill at or below the last one taken is a replay of one already handled, unless its
        order is unknown: a ghost is quarantined whatever its sequence number.

        An order this node's intent log does not know yet may have been recorded by another
        node sharing the stream (multinode, ``shared``): the log reads what they appended before
        the fill is judged a ghost."""
        cid = fill.client_order_id
        intent = self.log.get(cid)
        if intent is None and self.shared:
            # Only when others write the stream: a single node knows every intent it could be
            # sent a fill for, so a refresh would only read the journal for nothing. (Safe either
            # way: a refresh keeps the writes intents has queued in the log's counts.)
            await self.log.refresh()
            intent = self.log.get(cid)
        if intent is not None and fill.fill_seq <= self.last_taken:
            return
        if (fill.fill_seq, cid, fill.order_id) in self.quarantined:
            return
        filled = self.state.filled.get(cid, 0) + self.taking.get(cid, 0)
        problem = fill_problem(fill, None if intent is None else intent.payload, filled)
        if problem is not None:
            self.quarantine(fill, problem)
            return
        self.last_taken = fill.fill_seq
        self.taking[cid] = self.taking.get(cid, 0) + fill.qty
        self.buffer.append(
            FillApplied(fill.fill_seq, cid, fill.symbol, fill.side, fill.qty, fill.price, fill.leaves_qty)
        )

    def quarantine(self, fill: Fill, reason: str) -> None:
        """Journal the fill as quarantined (with the next write, which logs it) and raise the alert."""
        if len(self.quarantined) >= MAX_QUARANTINE_REMEMBERED:
            self.quarantined.clear()  # memory stays bounded; a replayed ghost is counted again
        self.quarantined.add((fill.fill_seq, fill.client_order_id, fill.order_id))
        self.buffer.append(
            FillQuarantined(
                fill.fill_seq,
                fill.client_order_id,
                fill.order_id,
                fill.symbol,
                fill.side,
                fill.qty,
                fill.price,
                reason,
            )
        )
        node = self.ctx.node
        node.events.publish(
            GhostFillQuarantined(
                path=self.ctx.self_ref.path,
                at=node.clock.now(),
                fill_seq=fill.fill_seq,
                client_order_id=fill.client_order_id,
                reason=reason,
            )
        )

    async def apply_buffered(self) -> None:
        """Persist the fills received since the last write (one append), then report finished orders."""
        if not self.buffer:
            return
        buffer, self.buffer = self.buffer, []
        self.taking = {}
        await self.persist(*buffer)
        done = []
        ghosts = []
        for event in buffer:
            if isinstance(event, FillQuarantined):
                ghosts.append(event)
            elif event.leaves_qty == 0:
                done.append(event.client_order_id)
        if ghosts:
            self.ghost_counter.inc(len(ghosts))
            listed = "; ".join(f"{g.fill_seq}, {g.client_order_id!r}: {g.reason}" for g in ghosts[:20])
            self.ctx.logger.warning(
                "{n} ghost fill(s) quarantined, not applied (fill_seq, client order id: why): {ids}{more}",
                n=len(ghosts),
                ids=listed,
                more=f"; and {len(ghosts) - 20} more" if len(ghosts) > 20 else "",
            )
        if done:
            offer(self.ctx.node.lookup(paths.EXECUTOR), OrdersDone(done), self.ctx.node)
