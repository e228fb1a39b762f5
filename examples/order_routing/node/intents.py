"""Intents: record each approved order durably before anything irreversible happens."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.delivery import offer
from examples.order_routing.node.messages import (
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
    """

    RETRY_EVERY = 0.1

    heartbeat_timeout = 5.0

    mailbox = MailboxConfig(capacity=8192)

    async def on_start(self) -> None:
        # The node's journal; fenced with the lease's token when the node runs as a cluster singleton
        # (``cluster`` mode): an owner that lost its lease can then never record or move an intent.
        journal = self.ctx.node.journal_for(self.ctx.path)
        assert journal is not None
        self.log: IntentLog[OrderIntent] = await IntentLog(journal, INTENTS_STREAM, OrderIntent).open()
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
                answer = {"recorded": self.recorded, "duplicates": self.duplicates, "intents": len(self.log)}
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
        waiting, self.waiting = self.waiting, []
        written = self.log.record_many_nowait(
            [(request.intent.client_order_id, request.intent) for request in waiting]
        )
        self.in_flight.append((written, len(waiting)))
        self.records_in_flight += len(waiting)
        self.ctx.run_task(self.acknowledge(written, waiting), name="acknowledge")
        in_flight = self.in_flight
        while in_flight and (in_flight[0][0].done() or self.records_in_flight > MAX_RECORDS_IN_FLIGHT):
            oldest, size = in_flight.popleft()
            self.records_in_flight -= size
            if not oldest.done():
                # Its task acknowledges it (or fails, and this incarnation with it).
                await asyncio.wait([oldest])

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
