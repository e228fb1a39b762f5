"""Strategies: the template users copy.

A strategy is a plain garrison Actor. Its mailbox conflates ticks per symbol,
so a slow strategy always sees the latest price and never a backlog. It
decides on each tick and proposes an order to risk without waiting: the
answer arrives later as a message (OrderAck with the reason when risk refuses
it; OrdersRecorded, for many at a time, once intents has recorded them
durably). Each proposal's
``client_order_id`` comes from (strategy id, the tick's sequence number), so
proposing again after a crash can never place a second order.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.feed import TICKS_STREAM
from examples.order_routing.node.messages import (
    OrderAck,
    OrderIntent,
    OrdersRecorded,
    ProposeOrder,
    Snapshot,
    Tick,
)
from examples.order_routing.protocol import Side
from garrison import Actor, ChildSpec, MailboxConfig, Overflow
from garrison.persistence import DurableStream, client_order_id

WARM_UP_TICKS = 200
_decode_tick = msgspec.msgpack.Decoder(Tick).decode


def latest_per_symbol(message: Any) -> str | None:
    """Conflation key: one queued tick per symbol; anything else (acks) is never conflated."""
    return message.symbol if isinstance(message, Tick) else None


class Strategy(Actor):
    """Base of the example strategies: warm up, decide per tick, propose, count answers."""

    heartbeat_timeout = 5.0

    # A tick costs about 30 us (a signal, its id, a proposal). At capacity every actor is ready on
    # every loop turn, so a turn lasts as long as all their steps together, and the loop-lag
    # monitor waits about two turns: a strategy yields after 8 ticks (~0.25 ms), whatever the
    # clock says (throughput_deadline=0). With 16 ticks and the default 0.5 ms deadline, the four
    # strategies took ~2 ms of each turn at capacity. Risk keeps its longer steps: what it passes
    # on in one step is what intents records in one batch, and smaller batches cost CPU per order
    # all the way down the pipeline (risk at 16 messages a step: ~8% more per order).
    mailbox = MailboxConfig(
        capacity=256, overflow=Overflow.CONFLATE, key=latest_per_symbol, throughput=8, throughput_deadline=0
    )
    kind: ClassVar[str] = "strategy"

    def __init__(self, strategy_id: str, config: NodeConfig) -> None:
        self.strategy_id = strategy_id
        self.config = config
        self.proposed = 0
        self.accepted = 0
        self.refused: dict[str, int] = {}
        self.bad_ticks = 0

    async def on_start(self) -> None:
        # Rebuild indicators from the durable tick stream; signals are not re-sent for them.
        stream = DurableStream(self.ctx.node.journal, TICKS_STREAM)  # type: ignore[arg-type]
        after = max(0, await stream.highest_seq() - WARM_UP_TICKS)
        async for _, payload in self.ctx.node.journal.read(TICKS_STREAM, after):  # type: ignore[union-attr]
            self.observe(_decode_tick(payload))

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Tick() if not (math.isfinite(message.price) and message.price > 0):
                self.bad_ticks += 1
                reason = f"bad tick: price={message.price!r} (must be > 0 and finite)"
                self.ctx.node.dead_letters.publish(message, self.ctx.path, reason, kind="invalid")
            case Tick():
                side = self.decide(message)
                self.observe(message)
                if side is not None:
                    await self.propose(message, side)
            case OrdersRecorded(client_order_ids=recorded):
                self.accepted += len(recorded)
            case OrderAck(reason=reason):
                self.refused[reason] = self.refused.get(reason, 0) + 1
            case Snapshot():
                return {
                    "proposed": self.proposed,
                    "accepted": self.accepted,
                    "refused": dict(self.refused),
                    "bad_ticks": self.bad_ticks,
                }
            case _:
                self.ctx.unhandled(message)
        return None

    async def propose(self, tick: Tick, side: Side) -> None:
        intent = OrderIntent(
            client_order_id=client_order_id(self.strategy_id, tick.seq),
            strategy_id=self.strategy_id,
            signal_seq=tick.seq,
            symbol=tick.symbol,
            side=side,
            qty=self.config.order_qty,
            price=tick.price,
        )
        self.proposed += 1
        await self.ctx.node.lookup(paths.RISK).tell(ProposeOrder(intent, self.ctx.self_ref))

    def observe(self, tick: Tick) -> None:
        """Update indicators with a tick (also used to warm up)."""

    def decide(self, tick: Tick) -> Side | None:
        """BUY, SELL or None for this tick, before ``observe`` sees it."""
        raise NotImplementedError


class Momentum(Strategy):
    """Follows the move: buys after an up-tick, sells after a down-tick."""

    kind = "momentum"

    def __init__(self, strategy_id: str, config: NodeConfig) -> None:
        super().__init__(strategy_id, config)
        self.last: dict[str, float] = {}

    def observe(self, tick: Tick) -> None:
        self.last[tick.symbol] = tick.price

    def decide(self, tick: Tick) -> Side | None:
        previous = self.last.get(tick.symbol)
        if previous is None or tick.price == previous:
            return None
        return Side.BUY if tick.price > previous else Side.SELL


class MeanReversion(Strategy):
    """Fades the move: sells above its moving average, buys below it."""

    kind = "mean-revert"
    ALPHA = 0.1

    def __init__(self, strategy_id: str, config: NodeConfig) -> None:
        super().__init__(strategy_id, config)
        self.average: dict[str, float] = {}

    def observe(self, tick: Tick) -> None:
        average = self.average.get(tick.symbol, tick.price)
        self.average[tick.symbol] = average + self.ALPHA * (tick.price - average)

    def decide(self, tick: Tick) -> Side | None:
        average = self.average.get(tick.symbol)
        if average is None or tick.price == average:
            return None
        return Side.SELL if tick.price > average else Side.BUY


class Blast(Strategy):
    """A load generator, not a strategy: signals on every tick it sees, alternating buy and
    sell per symbol so that positions stay flat (the benchmark's blast mode)."""

    kind = "blast"

    def __init__(self, strategy_id: str, config: NodeConfig) -> None:
        super().__init__(strategy_id, config)
        self.next_side: dict[str, Side] = {}

    def decide(self, tick: Tick) -> Side | None:
        side = self.next_side.get(tick.symbol, Side.BUY)
        self.next_side[tick.symbol] = Side.SELL if side is Side.BUY else Side.BUY
        return side


STRATEGIES: dict[str, type[Strategy]] = {"momentum": Momentum, "mean-revert": MeanReversion, "blast": Blast}


class StrategyLauncher(Actor):
    """Starts one strategy per configured name in the strategies DynamicSupervisor.

    It sits after that supervisor in a rest_for_one group, so whenever the
    supervisor restarts (and loses its dynamic children, as in OTP), this
    launcher restarts too and starts them again.
    """

    def __init__(self, config: NodeConfig) -> None:
        self.config = config

    async def on_start(self) -> None:
        strategies = self.ctx.node.supervisor(paths.STRATEGIES)
        running = {row.id for row in await strategies.which_children()}
        for name in self.config.strategies:
            if name not in running:
                await strategies.start_child(
                    ChildSpec(name, STRATEGIES[_kind(name)], args=(name, self.config))
                )

    async def on_receive(self, message: Any) -> Any:
        self.ctx.unhandled(message)


def _kind(name: str) -> str:
    for kind in STRATEGIES:
        if name.startswith(kind):
            return kind
    raise ValueError(f"strategy {name!r}: its name must start with one of {sorted(STRATEGIES)}")
