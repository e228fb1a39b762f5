"""Risk: every proposed order is checked before it can become an intent."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.messages import (
    BacklogFull,
    GetIntentLog,
    OrderAck,
    OrderIntent,
    ProposeOrder,
    RecordIntent,
    Snapshot,
    Tick,
    Ticks,
)
from examples.order_routing.protocol import Side
from garrison import Actor, MailboxConfig, Overflow
from garrison.persistence import IntentState

NEVER_TRADED = frozenset({IntentState.REJECTED, IntentState.EXPIRED})
"""Intents that never became orders at the broker: refused by the venue, or expired unsent."""


def ticks_by_symbol(message: Any) -> str | None:
    return message.symbol if isinstance(message, Tick) else None


class Risk(Actor):
    """Per-symbol position and notional limits, max order size and price bands.

    A refused order is answered with the reason (OrderAck(accepted=False)),
    counted by reason and logged; it is never recorded, so never sent. An
    approved one goes to intents, which answers the strategy once it is
    durable. Ticks keep the reference prices fresh: the feed sends a step's ticks in one
    Ticks message (a Tick alone, conflated per symbol, works too).
    The exposure is rebuilt from the intent log on every start.
    """

    heartbeat_timeout = 5.0

    # Its slices end at the 0.5 ms deadline, not at a message count: what it passes on in one slice is
    # what intents records in one batch (one append), and smaller batches cost CPU per order.
    mailbox = MailboxConfig(capacity=4096, overflow=Overflow.CONFLATE, key=ticks_by_symbol, throughput=256)

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.symbols = frozenset(config.symbols)
        """The tradable symbols, as a set: a proposal's look-up must not walk the config's tuple."""
        self.reference: dict[str, float] = {}
        self.position: Counter[str] = Counter()
        self.notional = 0.0
        self.approved = 0
        self.refused: Counter[str] = Counter()

    async def on_start(self) -> None:
        # Limits must hold across a restart (of risk or of the node): the exposure is every
        # order recorded and not refused by the venue, which is what this actor approved.
        log = await self.ctx.node.lookup(paths.INTENTS).ask(GetIntentLog())
        for recorded in log.intents():
            if recorded.state not in NEVER_TRADED:
                self.add_exposure(recorded.payload)

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Tick():
                self.observe(message)
            case Ticks(ticks=ticks):
                for tick in ticks:
                    self.observe(tick)
            case BacklogFull(intents=intents):
                # Approved, but intents had no room to record them: never orders, no exposure.
                for intent in intents:
                    self.add_exposure(intent, -1)
            case ProposeOrder(intent=intent, reply_to=reply_to, ttl=ttl):
                reason = self.check(intent.symbol, intent.side, intent.qty, intent.price)
                if reason is not None:
                    self.refused[reason.split(":")[0]] += 1
                    self.ctx.logger.info("refused {cid}: {reason}", cid=intent.client_order_id, reason=reason)
                    reply_to.tell_nowait(OrderAck(intent.client_order_id, False, reason))
                    return None
                self.add_exposure(intent)
                self.approved += 1
                await self.ctx.node.lookup(paths.INTENTS).tell(RecordIntent(intent, reply_to, ttl))
            case Snapshot():
                return {"approved": self.approved, "refused": dict(self.refused)}
            case _:
                self.ctx.unhandled(message)
        return None

    def observe(self, tick: Tick) -> None:
        """A good tick is the symbol's reference price; a bad one is counted, never used."""
        if math.isfinite(tick.price) and tick.price > 0:
            self.reference[tick.symbol] = tick.price
        else:
            self.refused[f"bad tick: price={tick.price!r}"] += 1

    def add_exposure(self, intent: OrderIntent, sign: int = 1) -> None:
        qty = sign * intent.qty
        self.position[intent.symbol] += qty if intent.side is Side.BUY else -qty
        self.notional += qty * intent.price

    def check(self, symbol: str, side: Side, qty: int, price: float) -> str | None:
        """None if the order may go, else why not (naming the field and value)."""
        config = self.config
        if symbol not in self.symbols:
            return f"unknown symbol: {symbol!r}"
        if not isinstance(qty, int) or qty <= 0:
            return f"qty must be > 0: qty={qty!r}"
        if qty > config.max_order_qty:
            return f"qty above max order size: qty={qty} > {config.max_order_qty}"
        if not math.isfinite(price) or price <= 0:
            return f"price must be a positive number: price={price!r}"
        reference = self.reference.get(symbol)
        if reference is None:
            return f"no reference price yet: symbol={symbol!r}"
        if abs(price - reference) > config.price_band * reference:
            return f"price outside band: price={price} vs reference {reference} ±{config.price_band:.0%}"
        signed = qty if side is Side.BUY else -qty
        if abs(self.position[symbol] + signed) > config.max_position:
            return f"position limit: {symbol} would be {self.position[symbol] + signed}"
        if self.notional + qty * price > config.max_notional:
            return f"notional limit: {self.notional + qty * price:.0f} > {config.max_notional:.0f}"
        return None
