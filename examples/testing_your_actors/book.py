"""The strategy's book: its positions, rebuilt from its journaled fills on every (re)start."""

from __future__ import annotations

from typing import Any

import msgspec

from garrison.persistence import EventSourcedActor


class Filled(msgspec.Struct, frozen=True, tag=True):
    """Journaled: a fill of ``qty`` (negative: sold)."""

    symbol: str
    qty: int


class Fill(msgspec.Struct, frozen=True):
    symbol: str
    qty: int


class GetPosition(msgspec.Struct, frozen=True):
    symbol: str


class Book(EventSourcedActor[dict[str, int]]):
    """Positions by symbol. ``Fill`` journals a ``Filled`` first, then applies it; both
    messages answer the symbol's position."""

    events = (Filled,)
    persistence_id = "book"

    def initial_state(self) -> dict[str, int]:
        return {}

    def apply(self, state: dict[str, int], event: Filled) -> dict[str, int]:
        return {**state, event.symbol: state.get(event.symbol, 0) + event.qty}

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Fill(symbol=symbol, qty=qty):
                await self.persist(Filled(symbol, qty))
            case GetPosition(symbol=symbol):
                pass
            case _:
                return self.ctx.unhandled(message)
        return self.state.get(symbol, 0)
