"""Intents: record each approved order durably before anything irreversible happens."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.delivery import offer
from examples.order_routing.node.messages import (
    BacklogFull,
    GetIntentLog,
    IntentReady,
    OrderIntent,
    OrdersRecorded,
    RecordIntent,
    Snapshot,
)
from garrison import Actor, ActorNotFound, ActorRef, MailboxConfig
from garrison.persistence import Intent, IntentLog, IntentLogBroken

INTENTS_STREAM = "intents"
MAX_RECORD_BATCH = 256
"""Records written in one batch at most, even while more wait (a burst is acknowledged in steps)."""
MAX_RECORDS_IN_FLIGHT = 4096
"""Records written and not yet acknowledged before intents waits for the oldest batch (the disk's pace)."""


class _Announce(msgspec.Struct, frozen=True):
    """Self-message: offer the executor the IntentReady notices its mailbox refused."""


class Intents(Actor):
    """Owns the intent log (an event-sourced log of OrderIntents).

    Contract: a RecordIntent is acknowledged to the strategy only after the
    intent is durable; recording the same client_order_id again writes
    nothing and acknowledges again. Messages queued together (up to
    MAX_RECORD_BATCH) are recorded as one batch, in one journal append, and
    acknowledged once it is durable: one OrdersRecorded per strategy, naming
    its intents of that write. On every (re)start it reopens the log from
    the journal.

    The intents of each write are announced to the executor in one
    IntentReady, offered without waiting for room: a notice its full mailbox
    refused is offered again (with the next ones)
    every RETRY_EVERY seconds, so the executor never has to scan the log for
    intents it was not told about (it reads the whole log only when it starts).

    Progress is bounded (the config's ``max_unsettled``, ``send_window``,
    ``intent_ttl``): the log stamps each intent with its creation time on the
    node's clock and its time-to-live, and at most ``max_unsettled`` intents are
    unsettled (a single node only: with several, the executors settle intents
    in logs of their own). Records beyond it are not written: each strategy gets them back
    in one BacklogFull (so does risk, which takes their exposure back), and
    decides by its policy.
    """

    RETRY_EVERY = 0.1

    heartbeat_timeout = 5.0

    mailbox = MailboxConfig(capacity=8192)

    def __init__(self, config: NodeConfig | None = None) -> None:
        self.config = config or NodeConfig()

    async def on_start(self) -> None:
        # The node's journal; fenced with the lease's token when the node runs as a cluster singleton
        # (``cluster`` mode): an owner that lost its lease can then never record or move an intent.
        journal = self.ctx.node.journal_for(self.ctx.path)
        assert journal is not None
        config = self.config
        # The bounds count what this log writes and reads back: with several nodes, the executors
        # settle intents in logs of their own, which this one would never see settle.
        single = config.role == "single"
        self.log: IntentLog[OrderIntent] = await IntentLog(
            journal,
            INTENTS_STREAM,
            OrderIntent,
            clock=self.ctx.node.clock,
            default_ttl=config.intent_ttl,
            max_unsettled=config.max_unsettled if single else None,
            send_window=config.send_window if single else None,
        ).open()
        self.refused = 0
        """Records refused for want of room in the backlog (max_unsettled)."""
        self.waiting: list[RecordIntent] = []
        """Records received and not yet written: one durable append (one batch) for all of them."""
        self.recorded = 0
        self.duplicates = 0
        self.unannounced: list[OrderIntent] = []
        """Intents whose IntentReady the executor's mailbox refused: offered again later."""
        self.retry_at = 0.0
        self.in_flight: deque[tuple[asyncio.Future[list[Intent[OrderIntent]]], int]] = deque()
        """Batches being written (and their sizes), oldest first: each acknowledged by a task once durable."""
        self.records_in_flight = 0

    async def on_stop(self) -> None:
        # A compaction of the log in progress ends before the node closes the journal.
        await self.log.close()

    async def on_receive(self, message: Any) -> Any:
        answer: Any = None
        match message:
            case RecordIntent(intent=intent):
                if intent.client_order_id in self.log:
                    self.duplicates += 1
                self.waiting.append(message)
                if len(self.waiting) >= MAX_RECORD_BATCH:
                    await self.flush()
            case GetIntentLog():
                if _broken(self.log):
                    # A write of the shared log (the executor's SENDING mark) was not confirmed:
                    # read back what is durable, or the asker (a restarting executor) cannot start.
                    await self.log.open()
                answer = self.log
            case Snapshot():
                stats = self.log.stats
                answer = {
                    "recorded": self.recorded,
                    "duplicates": self.duplicates,
                    "intents": len(self.log),
                    "backlog_refused": self.refused,
                    "unsettled": stats.unsettled,
                    "in_doubt": stats.in_doubt,
                }
            case _Announce():
                self.retry_at = 0.0
                self.announce([])
            case _:
                self.ctx.unhandled(message)
        # Whatever the last message of a burst was, the records before it are acknowledged now.
        if self.waiting and self.ctx.queued == 0:
            await self.flush()
        return answer

    async def flush(self) -> None:
        """Record what waits as one batch (one durable append). A task of this incarnation
        acknowledges and announces it once it is durable, so records keep being taken while the
        disk works; past MAX_RECORDS_IN_FLIGHT this waits for the oldest batch."""
        waiting = self.admit()
        if not waiting:
            return
        log = self.log
        # One batch per time-to-live (proposals of one strategy share theirs; a held one has less).
        by_ttl: dict[float | None, list[RecordIntent]] = {}
        for request in waiting:
            by_ttl.setdefault(request.ttl, []).append(request)
        for ttl, requests in by_ttl.items():
            written = log.record_many_nowait(
                [(request.intent.client_order_id, request.intent) for request in requests], ttl=ttl
            )
            self.in_flight.append((written, len(requests)))
            self.records_in_flight += len(requests)
            self.ctx.run_task(self.acknowledge(written, requests), name="acknowledge")
        in_flight = self.in_flight
        while in_flight and (in_flight[0][0].done() or self.records_in_flight > MAX_RECORDS_IN_FLIGHT):
            oldest, size = in_flight.popleft()
            self.records_in_flight -= size
            if not oldest.done():
                # Its task acknowledges it (or fails, and this incarnation with it).
                await asyncio.wait([oldest])

    def admit(self) -> list[RecordIntent]:
        """Take what waits, as far as the backlog has room (first come, first recorded); hand the
        rest back to its strategies (and to risk) in one BacklogFull each. A known id needs no room."""
        waiting, self.waiting = self.waiting, []
        log = self.log
        room = (log.max_unsettled or len(waiting)) - log.unsettled
        if len(waiting) <= room:
            return waiting
        admitted: list[RecordIntent] = []
        refused: dict[int, tuple[ActorRef, list[OrderIntent]]] = {}
        seen: set[str] = set()
        for request in waiting:
            cid = request.intent.client_order_id
            if cid in log or cid in seen:
                admitted.append(request)
            elif room > 0:
                room -= 1
                seen.add(cid)
                admitted.append(request)
            else:
                refused.setdefault(id(request.reply_to), (request.reply_to, []))[1].append(request.intent)
        count, bound = log.unsettled + len(seen), log.max_unsettled or 0
        everything: list[OrderIntent] = []
        for reply_to, intents in refused.values():
            everything.extend(intents)
            offer(reply_to, BacklogFull(tuple(intents), count, bound), self.ctx.node)
        self.refused += len(everything)
        if not everything:
            return admitted
        with contextlib.suppress(ActorNotFound):
            offer(
                self.ctx.node.lookup(paths.RISK), BacklogFull(tuple(everything), count, bound), self.ctx.node
            )
        return admitted

    async def acknowledge(
        self, written: asyncio.Future[list[Intent[OrderIntent]]], waiting: list[RecordIntent]
    ) -> None:
        """Once the batch is durable (never before): answer each strategy, and tell the executor.
        A write that cannot be confirmed raises here, and intents restarts (reopening the log)."""
        intents = await written
        recorded = []
        answers: dict[int, tuple[ActorRef, list[str]]] = {}
        for recorded_intent, request in zip(intents, waiting, strict=True):
            intent = recorded_intent.payload
            self.recorded += 1
            answers.setdefault(id(request.reply_to), (request.reply_to, []))[1].append(intent.client_order_id)
            recorded.append(intent)
        for reply_to, client_order_ids in answers.values():
            offer(reply_to, OrdersRecorded(tuple(client_order_ids)), self.ctx.node)
        self.announce(recorded)

    def announce(self, intents: list[OrderIntent]) -> None:
        """Offer IntentReady for the ones refused before, then ``intents``; keep what is refused
        and try it again in a moment (or at the next flush, whichever comes first)."""
        try:
            executor = self.ctx.node.lookup(paths.EXECUTOR)
        except ActorNotFound:
            self.unannounced.clear()
            return  # starting: it reads every recorded intent from the log itself
        waiting, self.unannounced = [*self.unannounced, *intents], []
        if waiting and not offer(executor, IntentReady(tuple(waiting)), self.ctx.node):
            self.unannounced = waiting
        now = self.ctx.node.clock.now()
        # A retry timer refused by our own full mailbox is simply re-armed once it is overdue.
        if self.unannounced and now >= self.retry_at:
            self.retry_at = now + self.RETRY_EVERY
            self.ctx.send_later(self.RETRY_EVERY, _Announce())


def _broken(log: IntentLog[OrderIntent]) -> bool:
    try:
        log.get("")  # every query raises once a write could not be confirmed
    except IntentLogBroken:
        return True
    return False
