"""A small strategy actor to test: buy after a run of rising prices."""

from __future__ import annotations

from typing import Any

import msgspec

from garrison import Actor, ActorRef


class Tick(msgspec.Struct, frozen=True):
    symbol: str
    price: float


class PlaceOrder(msgspec.Struct, frozen=True):
    symbol: str
    side: str
    qty: int


class Momentum(Actor):
    """Sends ``PlaceOrder(symbol, "buy", qty)`` to ``orders`` after ``rises`` rising ticks in a row."""

    def __init__(self, orders: ActorRef, rises: int = 3, qty: int = 10) -> None:
        self.orders = orders
        self.rises = rises
        self.qty = qty
        self.last: dict[str, float] = {}
        self.streak: dict[str, int] = {}

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Tick(symbol=symbol, price=price):
                previous = self.last.get(symbol)
                self.last[symbol] = price
                rising = previous is not None and price > previous
                self.streak[symbol] = self.streak.get(symbol, 0) + 1 if rising else 0
                if self.streak[symbol] == self.rises:
                    self.streak[symbol] = 0
                    await self.orders.tell(PlaceOrder(symbol, "buy", self.qty))
            case _:
                self.ctx.unhandled(message)
