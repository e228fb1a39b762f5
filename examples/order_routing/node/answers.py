"""What an executor does with the broker's answers: the part of the decision table both executors
share (the single node's ``Executor`` and the several nodes' ``SharedExecutor``).

- OrderAccepted: ACKED. OrderRejected: REJECTED, except a refusal as a
  duplicate, which says the broker already knows the id: UNKNOWN, and looked up.
- A send with no answer within ``ack_timeout``: UNKNOWN, and looked up.
- An intent in doubt is looked up with a backoff of its own: ``lookup_retry``
  first, doubling per ask up to ``lookup_retry_max``. Found: ACKED (and DONE
  when it is filled or cancelled). Not found: trusted only once the broker's
  lookup lag plus a margin has passed since the send could have happened; then
  it is sent again. Until then, asked again (at the latest once the answer
  could be trusted).
- Look-ups of all orders together stay under ``max_lookups_per_second`` (the
  rest wait their turn), go out only while the gateway has a Welcome (after a
  ``ConnectionLost`` they wait for the next one, then are all due at once), and
  one with no answer within ``lookup_timeout`` is counted and logged as timed out.
- An answer about a client order id the intent log does not know is counted
  (``unknown_reports``) and logged, and changes nothing.
- OrdersDone (positions saw the last fill): DONE.
- Expiry: an intent past its time-to-live is never sent. One never sent is
  EXPIRED (``EXPIRED_BEFORE_SEND``, the executor's part); one in doubt is
  looked up as any other, and where a resend would follow (the broker
  reliably never had it) it is EXPIRED instead (``EXPIRED_AFTER_LOOKUP``);
  found, it is followed as usual.
- Look-ups are paced under the gateway's capacity too: none go out while its
  mailbox is a quarter full, and one its full mailbox refuses is due again,
  never dropped.

The moves are collected in ``moves``; each executor writes them its own way.
"""

from __future__ import annotations

import contextlib
import enum
import heapq
import math
from collections.abc import Callable, Iterable
from typing import Any

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.faults import RepeatLimiter
from examples.order_routing.node.messages import (
    BrokerInfo,
    BrokerReplies,
    ConnectionLost,
    GetBrokerInfo,
    Lookup,
    OrderClosed,
    OrderIntent,
    OrdersDone,
    OrdersExpired,
)
from examples.order_routing.protocol import CLOSED_STATES, OrderAccepted, OrderRejected, OrderStatus
from garrison import ActorContext, ActorNotFound, ActorStopped, AskTimeout, MailboxFull
from garrison.persistence import IntentLog, IntentState

EXPIRED_BEFORE_SEND = "expired before send: not sent within its time-to-live"
"""The detail of a move RECORDED -> EXPIRED: the broker never saw the order."""
EXPIRED_AFTER_LOOKUP = "expired after look-up: the broker never had it, and its time-to-live had run out"
"""The detail of a move SENDING/UNKNOWN -> EXPIRED: a reliable "not found" after its time-to-live."""
EXPIRED_ON_RESEND = "expired on resend: the venue asked for the order again and it was too old to send"
"""The detail of a move to EXPIRED over FIX: the session gap-filled the order message the venue
asked for again (older than ``fix_resend_max_age``), so the venue never had it and never will."""
GATEWAY_SHARE_FOR_LOOKUPS = 4
"""Look-ups go out only while the gateway's mailbox is less than 1/this full, and fill at most that."""


class EarlierProcesses:
    """When the node's earlier processes wrote their last order frame: before ``written_before``,
    the node-clock time at which this process started (each earlier one had died by then, and no
    frame of its can be written later). Built by the node's process entry and shared by every
    executor incarnation of the process (a ChildSpec argument).

    An executor that finds an intent in doubt at its start that no executor of this process has
    marked SENDING (``marked_here``) counts a "not found" from ``written_before`` rather than from
    its own start: a node restarted every second or two, or whose executor restarts every few
    hundred ms, trusts its look-ups of what earlier processes left within one incarnation. One
    this process marked may have a frame still on its way, and counts from the executor's start
    as before."""

    def __init__(self, written_before: float) -> None:
        self.written_before = written_before
        self.marked_here: set[str] = set()
        """Ids this process marked SENDING that may still be in doubt (pruned to those in doubt)."""

    def note_marked(self, ids: Iterable[str], in_doubt: Callable[[], Iterable[str]], bound: int) -> None:
        """Remember ``ids`` as marked SENDING by this process; past ``bound`` remembered, keep only
        those still in doubt (``in_doubt()``), so memory follows the send window, not the orders."""
        marked = self.marked_here
        marked.update(ids)
        if len(marked) > bound:
            marked.intersection_update(in_doubt())


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


class LookupMetrics:
    """The executor's figures on the node's ``/metrics`` (``ctx.metrics``)."""

    def __init__(self, ctx: ActorContext) -> None:
        metrics = ctx.metrics
        self.lookups = metrics.counter("order_lookups", "Look-ups of orders in doubt sent to the broker")
        self.timeouts = metrics.counter("order_lookup_timeouts", "Look-ups unanswered after lookup_timeout")
        self.unknown_reports = metrics.counter(
            "unknown_order_reports", "Broker answers about client order ids the intent log does not know"
        )
        self.in_doubt = metrics.gauge("orders_in_doubt", "Orders that may or may not be at the broker")
        self.oldest = metrics.gauge("oldest_in_doubt_seconds", "Age of the oldest order in doubt")
        self.expired_before_send = metrics.counter(
            "intents_expired_before_send", "Intents past their time-to-live never sent: EXPIRED"
        )
        self.expired_after_lookup = metrics.counter(
            "intents_expired_after_lookup",
            "Intents in doubt past their time-to-live that a look-up found absent at the broker: EXPIRED",
        )
        self.lookups_deferred = metrics.counter(
            "order_lookups_deferred", "Look-ups held back because the gateway's mailbox was busy or full"
        )


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
        self.connected = False
        """The gateway has a Welcome: look-ups go out only then."""
        self.retry_after: dict[str, float] = {}
        """client_order_id -> the wait before its next look-up (doubles per ask, capped)."""
        self.asked: dict[str, float] = {}
        """Look-ups written and not answered yet: client_order_id -> when asked."""
        self.info_asked_at = -math.inf
        self.lookup_tokens = 0.0
        self.tokens_at = -math.inf
        self.written_before = -math.inf
        """Intents in doubt since this time (or earlier) came from an earlier process
        (EarlierProcesses): no frame of theirs can wait in this process's gateway."""
        self.counts = {
            "sent": 0,
            "resent": 0,
            "acked": 0,
            "rejected": 0,
            "done": 0,
            "lookups": 0,
            "lookup_timeouts": 0,
            "lookups_held": 0,
            "unknown_reports": 0,
            "expired_before_send": 0,
            "expired_after_lookup": 0,
            "lookups_deferred": 0,
            "expired_on_resend": 0,
        }

    @property
    def lookup_metrics(self) -> LookupMetrics:
        metrics: LookupMetrics | None = getattr(self, "_lookup_metrics", None)
        if metrics is None:
            metrics = self._lookup_metrics = LookupMetrics(self.ctx)
        return metrics

    @property
    def faults(self) -> RepeatLimiter:
        limiter: RepeatLimiter | None = getattr(self, "_faults", None)
        if limiter is None:
            limiter = self._faults = RepeatLimiter(self.ctx.logger, self.ctx.node.clock)
        return limiter

    async def ask_broker_info(self) -> None:
        """The broker's lookup lag, from the gateway (None until it has met the broker)."""
        info = await self.ctx.node.lookup(paths.GATEWAY).ask(GetBrokerInfo())
        if info is not None:
            self.lookup_lag = info.lookup_lag_seconds
            self.connected = True

    def doubt_figures(self, now: float) -> dict[str, Any]:
        """What the live view and the metrics show of the look-ups: in doubt, oldest, connected."""
        oldest = min(self.in_doubt.values(), default=now)
        return {
            "in_flight": len(self.sent_at),
            "in_doubt": len(self.in_doubt),
            "oldest_in_doubt_seconds": round(max(0.0, now - oldest), 3),
            "awaiting_lookups": len(self.asked),
            "connected": self.connected,
        }

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
            case OrderClosed(client_order_id=cid, reason=reason) if cid in self.log:
                self.settle(cid)
                self.move(cid, IntentState.DONE, f"closed by the venue: {reason}")
                self.counts["done"] += 1
            case OrderClosed():
                self.unknown_report(message)
            case OrdersExpired(client_order_ids=expired):
                for cid in expired:
                    # The venue asked for it again: it never had it, and now never will.
                    self.settle(cid)
                    self.to_send.pop(cid, None)
                    self.move(cid, IntentState.EXPIRED, EXPIRED_ON_RESEND)
                self.counts["expired_on_resend"] += len(expired)
            case OrderAccepted(client_order_id=cid) if cid not in self.log:
                self.unknown_report(message)
            case OrderRejected(client_order_id=cid) if cid not in self.log:
                self.unknown_report(message)
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
                self.connected = True
                # A (re)connected gateway writes what waited for Welcome only now: an order
                # still queued there may reach the broker from this moment, so a "not found"
                # is trusted only lookup_lag + margin after it.
                written_before = self.written_before
                for cid, since in self.in_doubt.items():
                    if since > written_before:
                        self.in_doubt[cid] = max(since, now)
                # Answers on the connection that died are lost: everything in doubt is due again.
                self.asked.clear()
                for cid in self.next_query:
                    self.next_query[cid] = now
                    self.retry_after[cid] = self.config.lookup_retry
            case ConnectionLost():
                self.connected = False
            case _:
                return False
        return True

    def may_resend(self, cid: str) -> bool:
        """Whether this executor may send ``cid`` again once the broker reliably never saw it."""
        return True

    def unknown_report(self, report: OrderAccepted | OrderRejected | OrderStatus | OrderClosed) -> None:
        """An answer about an order this node never recorded: nothing to move, but say so."""
        self.counts["unknown_reports"] += 1
        self.lookup_metrics.unknown_reports.inc()
        self.faults.warning(
            "unknown_report",
            "broker reported on client order id {cid}, which the intent log does not know: ignored",
            cid=report.client_order_id,
        )

    def on_status(self, status: OrderStatus, now: float) -> None:
        cid = status.client_order_id
        if self.asked.pop(cid, None) is None and cid not in self.log:
            self.unknown_report(status)
            return
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
            # Not yet a reliable answer: asked again at the latest once it could be.
            trusted_at = since + (lag or 0.0) + self.config.lookup_margin
            due = self.next_query.get(cid, math.inf)
            self.next_query[cid] = min(due, max(trusted_at, now + self.config.lookup_retry))
            return
        intent = self.log.get(cid)
        if intent is None or not self.may_resend(cid):
            return
        if intent.expired_at(now):
            # Reliably never seen by the broker, and too late to send: it never will be.
            self.settle(cid)
            self.expire(cid, EXPIRED_AFTER_LOOKUP)
            return
        # Reliably never seen by the broker: sending again cannot duplicate it.
        self.settle(cid)
        self.counts["resent"] += 1
        self.to_send[cid] = intent.payload

    def sweep(self, now: float) -> None:
        """Sends unanswered for ack_timeout go in doubt; due look-ups go to the gateway, each
        order on its own backoff, all of them under the global rate cap, none while the gateway
        has no Welcome."""
        timeout = self.config.ack_timeout
        timed_out = []
        for cid, sent in self.sent_at.items():  # oldest send first: stop at the first one in time
            if now - sent < timeout:
                break
            timed_out.append((cid, sent))
        for cid, sent in timed_out:
            del self.sent_at[cid]
            self.move(cid, IntentState.UNKNOWN, f"no answer within {timeout}s")
            self.doubt(cid, sent)
        self.expire_lookups(now)
        metrics = self.lookup_metrics
        metrics.in_doubt.set(len(self.in_doubt))
        metrics.oldest.set(max(0.0, now - min(self.in_doubt.values(), default=now)))
        if not self.connected:
            self.recheck_connection(now)
            return
        gateway = self.ctx.node.lookup(paths.GATEWAY)
        budget = self.lookup_budget(now)
        mailbox = gateway.mailbox_metrics()
        # Under the gateway's capacity: its mailbox also carries the orders; look-ups take a share.
        room = mailbox.capacity // GATEWAY_SHARE_FOR_LOOKUPS - mailbox.depth
        if room < budget:
            self.counts["lookups_deferred"] += 1
            self.lookup_metrics.lookups_deferred.inc()
            budget = max(0, room)
        # The most overdue first, so that under the cap every order gets its turn; orders in doubt
        # before live ones: they hold the send window, live ones only the backlog.
        due_doubt = [(due, cid) for cid, due in self.next_query.items() if due <= now]
        asked = [cid for _, cid in heapq.nsmallest(budget, due_doubt)]
        for cid in asked:
            retry = self.retry_after.get(cid, self.config.lookup_retry)
            self.next_query[cid] = now + retry
            self.retry_after[cid] = min(2 * retry, self.config.lookup_retry_max)
        due_reconcile = [(due, cid) for cid, due in self.reconcile.items() if due <= now]
        for _, cid in heapq.nsmallest(budget - len(asked), due_reconcile):
            asked.append(cid)
            self.reconcile[cid] = now + 10 * self.config.lookup_retry
        self.counts["lookups_held"] += len(due_reconcile) + len(due_doubt) - len(asked)
        told = 0
        for cid in asked:
            try:
                gateway.tell_nowait(Lookup(cid))
            except (MailboxFull, ActorStopped):
                # Never dropped: due again at the next sweep (its backoff starts over).
                if cid in self.next_query:
                    self.next_query[cid] = now
                elif cid in self.reconcile:
                    self.reconcile[cid] = now
                continue
            told += 1
            self.asked.setdefault(cid, now)
        self.lookup_tokens -= told
        self.counts["lookups"] += told
        metrics.lookups.inc(told)

    def recheck_connection(self, now: float) -> None:
        """Ask the gateway again, once a second, whether it has a Welcome: the BrokerInfo it
        offered may have met a full mailbox, and without it no look-up (nor send) would ever go out."""
        if now - self.info_asked_at < 1.0 or not (self.in_doubt or self.to_send):
            return
        self.info_asked_at = now

        async def ask() -> None:
            with contextlib.suppress(AskTimeout, ActorStopped, ActorNotFound):
                await self.ask_broker_info()

        self.ctx.run_task(ask(), name="broker-info")

    def lookup_budget(self, now: float) -> int:
        """How many look-ups may go out now: a token bucket filled at max_lookups_per_second,
        holding a fifth of a second's worth (at least one)."""
        rate = self.config.max_lookups_per_second
        capacity = max(1.0, rate * 0.2)
        elapsed = now - self.tokens_at if self.tokens_at > -math.inf else capacity / rate
        self.lookup_tokens = min(capacity, self.lookup_tokens + rate * elapsed)
        self.tokens_at = now
        return int(self.lookup_tokens)

    def expire_lookups(self, now: float) -> None:
        """Look-ups unanswered for lookup_timeout are counted and logged as timed out; the order
        is asked again on its backoff."""
        limit = self.config.lookup_timeout
        expired = [cid for cid, at in self.asked.items() if now - at >= limit]
        for cid in expired:
            del self.asked[cid]
        if expired:
            self.counts["lookup_timeouts"] += len(expired)
            self.lookup_metrics.timeouts.inc(len(expired))
            self.faults.warning(
                "lookup_timeout",
                "{n} look-ups unanswered after {limit:g}s (e.g. {cid}); asked again on their backoff",
                n=len(expired),
                limit=limit,
                cid=expired[0],
            )

    def settle(self, cid: str) -> None:
        self.sent_at.pop(cid, None)
        self.in_doubt.pop(cid, None)
        self.next_query.pop(cid, None)
        self.retry_after.pop(cid, None)

    def doubt(self, cid: str, since: float) -> None:
        self.in_doubt[cid] = since
        self.next_query[cid] = since
        self.retry_after[cid] = self.config.lookup_retry

    def move(self, cid: str, state: IntentState, detail: str) -> None:
        self.moves.append((cid, state, detail))

    def expire(self, cid: str, detail: str) -> None:
        """Move ``cid`` to EXPIRED (with the moves), counted by why: ``EXPIRED_BEFORE_SEND`` or
        ``EXPIRED_AFTER_LOOKUP``."""
        self.move(cid, IntentState.EXPIRED, detail)
        if detail is EXPIRED_BEFORE_SEND:
            self.counts["expired_before_send"] += 1
            self.lookup_metrics.expired_before_send.inc()
        else:
            self.counts["expired_after_lookup"] += 1
            self.lookup_metrics.expired_after_lookup.inc()
