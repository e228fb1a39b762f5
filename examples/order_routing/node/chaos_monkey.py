"""In-node chaos: crash or hang a random actor now and then (the chaos command turns it on)."""

from __future__ import annotations

import random
from typing import Any

import msgspec

from examples.order_routing.node.config import NodeConfig
from garrison import Actor, ActorNotFound
from garrison.testing import Faults

TARGETS = (
    "/root/risk",
    "/root/execution/gateway",
    "/root/execution/intents",
    "/root/execution/executor",
    "/root/execution/positions",
    "/root/market/feed",
    "/root/market/strategies/momentum",
    "/root/market/strategies/mean-revert",
)


class _Strike(msgspec.Struct, frozen=True):
    pass


class ChaosMonkey(Actor):
    """Every ~1/rate seconds, makes a random actor crash on its next message, or hang in it
    (a hung actor is caught by its heartbeat timeout). Uses the test kit's fault injection."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.random = random.Random(config.seed * 7919 + 1)
        self.faults = Faults(node=self.ctx.node)
        self.strikes = 0

    async def on_start(self) -> None:
        self.schedule()

    async def on_stop(self) -> None:
        self.faults.remove_all()

    def schedule(self) -> None:
        self.ctx.send_later(self.random.expovariate(self.config.chaos_faults_per_second), _Strike())

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Strike):
            path = self.random.choice(TARGETS)
            try:
                ref = self.ctx.node.lookup(path)
            except ActorNotFound:
                ref = None
            if ref is not None:
                self.strikes += 1
                if self.random.random() < 0.7:
                    self.faults.crash(ref)
                    self.ctx.logger.warning("chaos: {path} will crash on its next message", path=path)
                else:
                    self.faults.hang(ref)
                    self.ctx.logger.warning("chaos: {path} will hang in its next message", path=path)
            self.schedule()
        return None
