"""The feed: simulated ticks, durable, with a market-open burst."""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.messages import Snapshot, Tick, Ticks
from garrison import Actor, ActorNotFound, ActorStopped, MailboxFull
from garrison.persistence import DurableStream

TICKS_STREAM = "ticks"
MAX_TICKS_PER_BATCH = 128
"""Ticks generated in one step at most: after a stall the feed does not catch up in one burst of
work that would hold the loop (a real feed would have conflated them anyway)."""
_encode = msgspec.msgpack.Encoder().encode


class _Generate(msgspec.Struct, frozen=True):
    """Self-message: time to generate the next batch of ticks."""


class Feed(Actor):
    """Generates a seeded random walk per symbol, appends every tick to the durable
    ``ticks`` stream (so strategies can replay after a crash), then routes it to the
    strategies and to risk. The burst starts ``burst_start`` seconds after start."""

    heartbeat_timeout = 5.0

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.random = random.Random(config.seed)
        self.prices = {symbol: 100.0 + 10 * index for index, symbol in enumerate(config.symbols)}
        # Fenced under a cluster singleton, as every write of the node (intents.py).
        self.stream = DurableStream(self.ctx.node.journal_for(self.ctx.path), TICKS_STREAM)
        self.seq = 0
        self.started_at = 0.0
        self.generated = 0
        self.owed = 0.0
        self.routed_to: list[str] = []

    async def on_start(self) -> None:
        self.seq = await self.stream.highest_seq()
        self.started_at = self.ctx.node.clock.now()
        self.last_batch_at = self.started_at
        self.random.seed(self.config.seed * 1_000_003 + self.seq)
        self.routed_to = [paths.strategy(strategy) for strategy in self.config.strategies]
        self.ctx.send_later(self.config.tick_period, _Generate())

    def rate_at(self, elapsed: float) -> float:
        """Ticks per second now: the steady rate, times burst_factor during the market-open burst."""
        config = self.config
        in_burst = config.burst_start <= elapsed < config.burst_start + config.burst_seconds
        return config.tick_rate * (config.burst_factor if in_burst else 1.0)

    async def on_receive(self, message: Any) -> Any:
        match message:
            case _Generate():
                await self.generate()
                self.ctx.send_later(self.config.tick_period, _Generate())
            case Snapshot():
                return {"ticks": self.seq, "generated": self.generated}
            case _:
                self.ctx.unhandled(message)
        return None

    async def generate(self) -> None:
        now = self.ctx.node.clock.now()
        elapsed = now - self.started_at
        self.owed = min(self.owed + self.rate_at(elapsed) * (now - self.last_batch_at), MAX_TICKS_PER_BATCH)
        self.last_batch_at = now
        count = int(self.owed)
        if count <= 0:
            return
        self.owed -= count
        ticks = []
        for _ in range(count):
            symbol = self.random.choice(self.config.symbols)
            price = self.prices[symbol] * math.exp(self.random.gauss(0.0, 0.001))
            self.prices[symbol] = price
            self.seq += 1
            ticks.append(Tick(self.seq, symbol, round(price, 4)))
        # Durable first: a tick a strategy acted on is always in the stream.
        self.seq = await self.stream.append(*(_encode(tick) for tick in ticks))
        self.generated += len(ticks)
        node = self.ctx.node
        for path in self.routed_to:
            try:
                ref = node.lookup(path)
            except ActorNotFound:
                continue  # restarting: it replays from the stream
            for tick in ticks:
                try:
                    ref.tell_nowait(tick)
                except (MailboxFull, ActorStopped):
                    break
        # Risk keeps only the latest price per symbol: the step's ticks in one message.
        with contextlib.suppress(ActorNotFound, MailboxFull, ActorStopped):
            node.lookup(paths.RISK).tell_nowait(Ticks(tuple(ticks)))
