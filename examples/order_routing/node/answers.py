"""What an executor does with the broker's answers: the part of the decision table both executors
share (the single node's ``Executor`` and the several nodes' ``SharedExecutor``).

- OrderAccepted: ACKED. OrderRejected: REJECTED, except a refusal as a
  duplicate, which says the broker already knows the id: UNKNOWN, and looked up.
- A send with no answer within ``ack_timeout``: UNKNOWN, and looked up.
- An intent in doubt is looked up every ``lookup_retry``. Found: ACKED (and DONE
  when it is filled or cancelled). Not found: trusted only once the broker's
  lookup lag plus a margin has passed since the send could have happened; then
  it is sent again. Until then, asked again.
- OrdersDone (positions saw the last fill): DONE.

The moves are collected in ``moves``; each executor writes them its own way.
"""

from __future__ import annotations

import enum
from typing import Any

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.delivery import offer
from examples.order_routing.node.messages import (
    BrokerInfo,
    BrokerReplies,
    GetBrokerInfo,
    Lookup,
    OrderIntent,
    OrdersDone,
)
from examples.order_routing.protocol import CLOSED_STATES, OrderAccepted, OrderRejected, OrderStatus
from garrison import ActorContext
from garrison.persistence import IntentLog, IntentState


class TakeOver(enum.Enum):
    SEND = "send"
    """Certainly never sent: mark SENDING durably, then send."""
    LOOK_UP = "look up"
    """Maybe sent (before a restart, or by the executor that held it): look it up before any resend."""
    SETTLED = "settled"
    """Nothing left to send."""


def take_over(state: IntentState) -> TakeOver:
    """What an executor does with an intent it finds pending when it starts, or is handed by
    the group: the decision table after a restart (and after a take-over)."""
    if state is IntentState.RECORDED:
        return TakeOver.SEND
    if state in (IntentState.SENDING, IntentState.UNKNOWN):
        return TakeOver.LOOK_UP
    return TakeOver.SETTLED


class BrokerAnswers:
    """The executors' shared state and answer handling (a base class beside ``Actor``)."""

    config: NodeConfig
    ctx: ActorContext
    log: IntentLog[OrderIntent]

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.sent_at: dict[str, float] = {}
        """Sent and not yet answered: client_order_id -> when it was handed to the gateway."""
        self.in_doubt: dict[str, float] = {}
        """client_order_id -> the time after which the send cannot have happened."""
        self.next_query: dict[str, float] = {}
        self.reconcile: dict[str, float] = {}
        """ACKED intents looked up to learn whether they are done (an OrdersDone may have been lost)."""
        self.to_send: dict[str, OrderIntent] = {}
        """Intents to mark SENDING and send, by client order id (a dict: never twice in a batch)."""
        self.moves: list[tuple[str, IntentState, str]] = []
        """Moves the answers asked for, written together (one append) by the executor."""
        self.lookup_lag: float | None = None
        self.counts = {"sent": 0, "resent": 0, "acked": 0, "rejected": 0, "done": 0, "lookups": 0}

    async def ask_broker_info(self) -> None:
        """The broker's lookup lag, from the gateway (None until it has met the broker)."""
        info = await self.ctx.node.lookup(paths.GATEWAY).ask(GetBrokerInfo())
        if info is not None:
            self.lookup_lag = info.lookup_lag_seconds

    def reconcile_live(self, now: float) -> None:
        """Look up every ACKED intent: live at the broker, its last fill may have been applied
        before a crash that lost the OrdersDone, so ask the broker how it stands."""
        for intent in self.log.pending():
            if intent.state is IntentState.ACKED:
                self.reconcile.setdefault(intent.id, now)

    def take_batch(self, limit: int) -> dict[str, OrderIntent]:
        """Up to ``limit`` of the intents waiting to be sent, oldest first (the rest wait)."""
        batch = self.to_send
        if len(batch) > limit:
            # Bounded batches keep the loop responsive during a burst; the rest goes next turn.
            return {cid: batch.pop(cid) for cid in list(batch)[:limit]}
        self.to_send = {}
        return batch

    def on_answer(self, message: Any, now: float) -> bool:
        """Handle broker answers (one or a BrokerReplies), an OrdersDone or a BrokerInfo; False otherwise."""
        match message:
            case BrokerReplies(replies=replies):
                for reply in replies:
                    self.on_answer(reply, now)
            case OrdersDone(client_order_ids=done):
                for cid in done:
                    self.settle(cid)
                    self.move(cid, IntentState.DONE, "filled")
                self.counts["done"] += len(done)
            case OrderAccepted(client_order_id=cid):
                self.settle(cid)
                self.move(cid, IntentState.ACKED, "accepted")
                self.counts["acked"] += 1
            case OrderRejected(client_order_id=cid, duplicate=True):
                # The broker already knows this id: it may be live. Find out, never assume.
                self.sent_at.pop(cid, None)
                self.move(cid, IntentState.UNKNOWN, "refused as a duplicate")
                self.doubt(cid, now)
            case OrderRejected(client_order_id=cid, reason=reason):
                self.settle(cid)
                self.move(cid, IntentState.REJECTED, reason)
                self.counts["rejected"] += 1
            case OrderStatus():
                self.on_status(message, now)
            case BrokerInfo(lookup_lag_seconds=lag):
                self.lookup_lag = lag
                # A (re)connected gateway writes what waited for Welcome only now: an order
                # still queued there may reach the broker from this moment, so a "not found"
                # is trusted only lookup_lag + margin after it.
                for cid, since in self.in_doubt.items():
                    self.in_doubt[cid] = max(since, now)
            case _:
                return False
        return True

    def may_resend(self, cid: str) -> bool:
        """Whether this executor may send ``cid`` again once the broker reliably never saw it."""
        return True

    def on_status(self, status: OrderStatus, now: float) -> None:
        cid = status.client_order_id
        if self.reconcile.pop(cid, None) is not None:
            if status.found and status.state in CLOSED_STATES:
                self.move(cid, IntentState.DONE, status.state)
            return
        since = self.in_doubt.get(cid)
        if since is None:
            return
        if status.found:
            self.settle(cid)
            self.move(cid, IntentState.ACKED, f"found at the broker ({status.state})")
            if status.state in CLOSED_STATES:
                self.move(cid, IntentState.DONE, status.state)
            return
        lag = self.lookup_lag
        if lag is None or now - since < lag + self.config.lookup_margin:
            return  # not yet a reliable answer: asked again at next_query
        intent = self.log.get(cid)
        if intent is None or not self.may_resend(cid):
            return
        # Reliably never seen by the broker: sending again cannot duplicate it.
        self.settle(cid)
        self.counts["resent"] += 1
        self.to_send[cid] = intent.payload

    def sweep(self, now: float) -> None:
        """Sends unanswered for ack_timeout go in doubt; due look-ups go to the gateway."""
        for cid, sent in list(self.sent_at.items()):
            if now - sent >= self.config.ack_timeout:
                del self.sent_at[cid]
                self.move(cid, IntentState.UNKNOWN, f"no answer within {self.config.ack_timeout}s")
                self.doubt(cid, sent)
        gateway = self.ctx.node.lookup(paths.GATEWAY)
        for cid, asked in list(self.reconcile.items()):
            if asked <= now:
                self.reconcile[cid] = now + 10 * self.config.lookup_retry
                self.counts["lookups"] += 1
                offer(gateway, Lookup(cid), self.ctx.node)
        for cid, due in list(self.next_query.items()):
            if due <= now:
                self.next_query[cid] = now + self.config.lookup_retry
                self.counts["lookups"] += 1
                offer(gateway, Lookup(cid), self.ctx.node)

    def settle(self, cid: str) -> None:
        self.sent_at.pop(cid, None)
        self.in_doubt.pop(cid, None)
        self.next_query.pop(cid, None)

    def doubt(self, cid: str, since: float) -> None:
        self.in_doubt[cid] = since
        self.next_query[cid] = since

    def move(self, cid: str, state: IntentState, detail: str) -> None:
        self.moves.append((cid, state, detail))
