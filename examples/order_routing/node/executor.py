"""The executor: sends recorded intents exactly once, whatever died when.

The rules (also in the example's README):

- RECORDED (certainly never sent): move to SENDING durably, then send.
- SENDING or UNKNOWN (the send may have happened): look the order up at the
  broker by client_order_id before any resend. Found: ACKED (or DONE when
  filled). Not found: trusted only once the broker's lookup lag (plus a
  margin) has passed since the send could have happened; then resend. Until
  then, ask again: on a backoff per order, under a global rate cap, and not at
  all while the gateway has no Welcome (``answers.py``).
- A send with no answer within ``ack_timeout``, or refused as a duplicate, is
  UNKNOWN and looked up. A refusal is recorded as REJECTED only when the
  broker said so in an OrderRejected: an ambiguous submit never is.
- ACKED: the order is live; fills arrive through positions, which reports
  OrdersDone when it is filled. ACKED intents are looked up once at start, and
  whenever positions restarts (CheckLiveOrders): an OrdersDone may have been lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.answers import BrokerAnswers, TakeOver, take_over
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.messages import (
    CheckLiveOrders,
    GetIntentLog,
    IntentReady,
    OrderIntent,
    Snapshot,
    Submit,
)
from garrison import Actor, MailboxConfig
from garrison.persistence import IntentLog, IntentState

MAX_SEND_BATCH = 256
"""Intents marked SENDING (one durable write) and handed to the gateway per step."""
MAX_MOVES = 512
"""Answers' moves collected before they are written (one durable write) even while more messages wait."""
MAX_UNCONFIRMED_WRITES = 256
"""Writes of the log in flight (each a batch) before the executor waits for the oldest: the disk's pace."""
SUBMITS_PER_STEP = 64
"""Orders per Submit to the gateway (one message), the loop yielding between two."""


class _Sweep(msgspec.Struct, frozen=True):
    """Self-message: check ack timeouts and due look-ups.

    It never scans the intent log: that costs every intent ever recorded, on the loop, ten times a
    second. Recorded intents arrive as IntentReady (intents offers a refused one again), and the
    whole log is read once, at start."""


class Executor(BrokerAnswers, Actor):
    """Sends pending intents through the gateway and reconciles after every restart."""

    heartbeat_timeout = 5.0

    mailbox = MailboxConfig(capacity=65536)
    SWEEP_EVERY = 0.1

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.marking: set[str] = set()
        """Intents whose SENDING mark is being written: sent once it is durable, never queued again."""
        self.unconfirmed: deque[asyncio.Future[None]] = deque()
        """The log's writes not yet known durable, oldest first."""

    async def on_start(self) -> None:
        self.log: IntentLog[OrderIntent] = await self.ctx.node.lookup(paths.INTENTS).ask(GetIntentLog())
        now = self.ctx.node.clock.now()
        for intent in self.log.pending():
            match take_over(intent.state):
                case TakeOver.SEND:
                    self.to_send[intent.id] = intent.payload
                case TakeOver.LOOK_UP:
                    # It may have reached the broker before this incarnation began.
                    self.doubt(intent.id, now)
        self.reconcile_live(now)
        await self.ask_broker_info()
        await self.write_and_send()
        self.ctx.send_later(self.SWEEP_EVERY, _Sweep())

    async def on_receive(self, message: Any) -> Any:
        now = self.ctx.node.clock.now()
        match message:
            case IntentReady(intents=intents):
                for intent in intents:
                    cid = intent.client_order_id
                    if cid not in self.sent_at and cid not in self.in_doubt and cid not in self.marking:
                        self.to_send[cid] = intent
            case CheckLiveOrders():
                self.reconcile_live(now)
            case _Sweep():
                self.sweep(now)
                self.ctx.send_later(self.SWEEP_EVERY, _Sweep())
            case Snapshot():
                return {**self.counts, **self.doubt_figures(now)}
            case _:
                if not self.on_answer(message, now):
                    self.ctx.unhandled(message)
        # A burst never stops the work: a full batch is written even while more messages wait.
        if self.ctx.queued == 0 or len(self.to_send) >= MAX_SEND_BATCH or len(self.moves) >= MAX_MOVES:
            await self.write_and_send()
        return None

    async def write_and_send(self) -> None:
        """Write the answers' moves, then mark and send what waits: one bounded batch per loop turn,
        and none of it waits for the disk unless MAX_UNCONFIRMED_WRITES are in flight."""
        self.write_moves()
        self.send_pending()
        while self.to_send and self.ctx.queued == 0:
            await asyncio.sleep(0)  # others run between two batches
            self.send_pending()
        await self.confirm(MAX_UNCONFIRMED_WRITES)

    async def confirm(self, at_most: int) -> None:
        """Raise the error of a write that failed; wait for the oldest while more than ``at_most`` are
        in flight. A write that cannot be confirmed (IntentLogBroken) crashes the executor."""
        unconfirmed = self.unconfirmed
        while unconfirmed and (unconfirmed[0].done() or len(unconfirmed) > at_most):
            await unconfirmed.popleft()

    def write_moves(self) -> None:
        """Queue the moves asked for since the last write: one append (one more each time an
        intent moves twice). A late or repeated answer that finds its intent already further
        along is left out. Nothing waits on them: they decide nothing until the next start,
        which reads what is durable."""
        moves, self.moves = self.moves, []
        batch: dict[str, tuple[str, IntentState, str]] = {}
        for move in moves:
            if move[0] in batch:
                self.unconfirmed.append(self.log.move_many_nowait(batch.values()))
                batch = {}
            if self.log.can_move(move[0], move[1]):
                batch[move[0]] = move
        if batch:
            self.unconfirmed.append(self.log.move_many_nowait(batch.values()))

    def send_pending(self) -> None:
        """Mark a batch SENDING, and send it once the mark is durable (a task: answers keep
        flowing meanwhile). A crash in between is a look-up, not a resend."""
        batch = self.take_batch(MAX_SEND_BATCH)
        log = self.log
        ready = [
            intent for intent in batch.values() if log.can_move(intent.client_order_id, IntentState.SENDING)
        ]
        if not ready:
            return
        marked = log.move_many_nowait([(intent.client_order_id, IntentState.SENDING) for intent in ready])
        self.unconfirmed.append(marked)
        self.marking.update(intent.client_order_id for intent in ready)
        self.ctx.run_task(self.submit(marked, ready), name="submit")

    async def submit(self, marked: asyncio.Future[None], ready: list[OrderIntent]) -> None:
        """Hand the batch to the gateway once its SENDING mark is durable (never before)."""
        await marked
        gateway = self.ctx.node.lookup(paths.GATEWAY)
        now = self.ctx.node.clock.now()
        for start in range(0, len(ready), SUBMITS_PER_STEP):
            if start:
                # A tell with room does not suspend: a batch of 256 in one go held the loop for ms.
                await asyncio.sleep(0)
                now = self.ctx.node.clock.now()
            chunk = tuple(ready[start : start + SUBMITS_PER_STEP])
            for intent in chunk:
                cid = intent.client_order_id
                self.marking.discard(cid)
                # From now on the broker may have it: "not found" is trusted only lookup_lag after this.
                self.sent_at[cid] = now
            self.counts["sent"] += len(chunk)
            await gateway.tell(Submit(chunk))
