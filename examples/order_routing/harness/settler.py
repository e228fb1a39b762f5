"""The settle phase of a chaos run: finish what is pending, report, stop."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.messages import GetIntentLog, Snapshot
from garrison import Actor, ActorNotFound, ActorStopped, AskTimeout
from garrison.persistence import IntentState


class _Check(msgspec.Struct, frozen=True):
    pass


class Settler(Actor):
    """Polls the intent log until every intent is terminal, as long as the node makes progress:
    it gives up once ``timeout`` seconds pass without an intent settling, or ``limit`` seconds in
    all. Once every intent is terminal it waits for the fills to come to rest: an order a
    look-up found filled is DONE before positions has applied the fills the broker replays, so
    it waits until the gateway is connected and positions has applied no new fill for
    ``FILLS_QUIET`` seconds (within the same bounds). Then it writes the settle report (JSON) to
    ``report``, with the time it took to drain the intents (``waited``) and the expired intents
    by why, and asks the node to stop (exit 0 either way: the verdict judges)."""

    EVERY = 0.2
    FILLS_QUIET = 1.0

    def __init__(self, report: str, timeout: float, limit: float = 600.0) -> None:
        self.report = report
        self.timeout = timeout
        self.limit = max(limit, timeout)

    async def on_start(self) -> None:
        self.started = self.progress_at = self.ctx.node.clock.now()
        self.unsettled: int | None = None
        self.drained_at: float | None = None
        self.fills: Any = None
        self.fills_at = self.started
        self.ctx.send_later(self.EVERY, _Check())

    async def on_receive(self, message: Any) -> Any:
        if not isinstance(message, _Check):
            return None
        try:
            log = await self.ctx.node.lookup(paths.INTENTS).ask(GetIntentLog(), timeout=5.0)
        except (ActorNotFound, ActorStopped, AskTimeout):
            log = None
        now = self.ctx.node.clock.now()
        unsettled = log.unsettled if log is not None else None
        if unsettled is not None and (self.unsettled is None or unsettled < self.unsettled):
            self.progress_at = now  # an intent settled since the last check: still draining
        if unsettled is not None:
            self.unsettled = unsettled
        waited = now - self.started
        stalled = now - self.progress_at > self.timeout
        if unsettled == 0 and self.drained_at is None:
            self.drained_at = now
        if unsettled == 0 and not stalled and waited <= self.limit and not await self.fills_at_rest(now):
            self.ctx.send_later(self.EVERY, _Check())
            return None
        if unsettled == 0 or stalled or waited > self.limit:
            intents = [] if log is None else log.intents()
            states = {state.value: sum(1 for i in intents if i.state is state) for state in IntentState}
            expired = Counter(i.detail for i in intents if i.state is IntentState.EXPIRED)
            report = {
                "settled": unsettled == 0,
                "waited": round((self.drained_at or now) - self.started, 3),
                "fills_at_rest_after": round(waited, 3),
                "stalled": stalled,
                "states": states,
                "expired": dict(expired),
            }
            await self.ctx.run_in_thread(_write, self.report, report)
            self.ctx.logger.info("settled: {report}", report=report)
            self.ctx.node.request_shutdown(0)
            return None
        self.ctx.send_later(self.EVERY, _Check())
        return None

    async def fills_at_rest(self, now: float) -> bool:
        """Whether the gateway is connected and positions applied no new fill for FILLS_QUIET s."""
        node = self.ctx.node
        try:
            gateway = await node.lookup(paths.GATEWAY).ask(Snapshot(), timeout=5.0)
            positions = await node.lookup(paths.POSITIONS).ask(Snapshot(), timeout=5.0)
        except (ActorNotFound, ActorStopped, AskTimeout):
            return False
        fills = positions.get("last_fill_seq"), positions.get("fills")
        if fills != self.fills or not gateway.get("connected"):
            self.fills, self.fills_at = fills, now
            return False
        return now - self.fills_at >= self.FILLS_QUIET


def _write(path: str, report: dict[str, Any]) -> None:
    with open(path, "w") as file:
        json.dump(report, file)
