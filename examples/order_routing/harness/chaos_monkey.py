"""In-node chaos: crash or hang a random actor now and then (the chaos command turns it on).

It runs inside the node as one of the tree's ``extras`` and strikes through
the test kit's public fault injection (``garrison.testing.Faults``).
"""

from __future__ import annotations

import os
import random
from typing import Any

import msgspec

from examples.order_routing.node import paths
from garrison import Actor, ActorNotFound
from garrison.testing import Faults

TARGETS = (
    paths.RISK,
    paths.GATEWAY,
    paths.INTENTS,
    paths.EXECUTOR,
    paths.POSITIONS,
    paths.FEED,
    paths.strategy("momentum"),
    paths.strategy("mean-revert"),
)


class _Strike(msgspec.Struct, frozen=True):
    pass


class ChaosMonkey(Actor):
    """About ``faults_per_second`` times a second, makes a random actor crash on its next
    message, or hang in it (a hung actor is caught by its heartbeat timeout). Its choices follow
    ``seed`` (the node's) and the process: with the node's seed alone, every process the chaos run
    restarted struck the same actors in the same order, and at 5 faults/s its first strike (at
    about 0.03 s) hung the gateway in every one. Uses the test kit's fault injection."""

    def __init__(self, seed: int, faults_per_second: float) -> None:
        self.faults_per_second = faults_per_second
        self.random = random.Random(f"{seed}/{os.getpid()}")
        self.faults = Faults(node=self.ctx.node)
        self.strikes = 0

    async def on_start(self) -> None:
        self.schedule()

    async def on_stop(self) -> None:
        self.faults.remove_all()

    def schedule(self) -> None:
        self.ctx.send_later(self.random.expovariate(self.faults_per_second), _Strike())

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
