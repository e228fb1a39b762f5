"""The settle phase of a chaos run: finish what is pending, report, stop."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.messages import GetIntentLog
from garrison import Actor, ActorNotFound, ActorStopped, AskTimeout
from garrison.persistence import IntentState


class _Check(msgspec.Struct, frozen=True):
    pass


class Settler(Actor):
    """Polls the intent log until every intent is terminal (or ``timeout`` seconds pass),
    then writes the settle report (JSON) to ``report`` and asks the node to stop (exit 0
    either way: the verdict judges)."""

    EVERY = 0.2

    def __init__(self, report: str, timeout: float) -> None:
        self.report = report
        self.timeout = timeout

    async def on_start(self) -> None:
        self.started = self.ctx.node.clock.now()
        self.ctx.send_later(self.EVERY, _Check())

    async def on_receive(self, message: Any) -> Any:
        if not isinstance(message, _Check):
            return None
        try:
            log = await self.ctx.node.lookup(paths.INTENTS).ask(GetIntentLog(), timeout=5.0)
        except (ActorNotFound, ActorStopped, AskTimeout):
            log = None
        pending = log.pending() if log is not None else None
        waited = self.ctx.node.clock.now() - self.started
        if (pending is not None and not pending) or waited > self.timeout:
            states = (
                {state.value: 0 for state in IntentState}
                if log is None
                else {state.value: sum(1 for i in log.intents() if i.state is state) for state in IntentState}
            )
            report = {"settled": pending is not None and not pending, "waited": waited, "states": states}
            await self.ctx.run_in_thread(_write, self.report, report)
            self.ctx.logger.info("settled: {report}", report=report)
            self.ctx.node.request_shutdown(0)
            return None
        self.ctx.send_later(self.EVERY, _Check())
        return None


def _write(path: str, report: dict[str, Any]) -> None:
    with open(path, "w") as file:
        json.dump(report, file)
