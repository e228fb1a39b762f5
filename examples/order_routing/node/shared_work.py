"""Several nodes on one Redis journal: the executors share the recorded intents.

Every intent the full node records is one entry of the ``intents`` journal
stream (a Redis stream). The executors of all nodes read that stream as one
consumer group (``executors``), so each entry, and so each intent, is
delivered to one executor at a time; the other events of the stream (the
moves) are acked as they come. The executor that holds an intent's entry is
the only one that may send it, and it holds it on a lease:

- it renews its hold on every entry it has not finished every
  ``claim_idle / 4`` (RedisConsumer.renew: the entry's idle time is reset,
  and only while the entry is still its own);
- a Submit carries the end of the lease (``not_after``: the time the last
  renewal was asked for, plus ``claim_idle / 2``), and the gateway writes
  the order only before it, checked in the same step as the socket write;
- an executor silent for ``claim_idle`` (a dead node, or one whose loop
  stood still) loses its entries: any other executor of the group reclaims
  them (XAUTOCLAIM), reads the durable state of each intent fresh, and
  takes it over with the rule a single node follows after a restart
  (``take_over``): RECORDED is marked SENDING durably and sent; SENDING or
  UNKNOWN (the dead one may have sent it) is looked up at the broker by
  client order id before any resend, and a "not found" counts only from the
  take-over on (by then the old holder's lease has ended, so it can send no
  more); ACKED, REJECTED or DONE has nothing left to send.

An entry is acked once its intent is settled (ACKED, REJECTED or DONE):
nothing is left to send. Finishing an ACKED order (DONE on its last fill)
belongs to the node that owns positions (the full node), for every order,
whichever executor sent it: the broker streams the account's fills to every
session, and only the full node counts them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.answers import BrokerAnswers, TakeOver, take_over
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.intents import INTENTS_STREAM
from examples.order_routing.node.messages import (
    CheckLiveOrders,
    IntentReady,
    OrderIntent,
    Snapshot,
    Submit,
)
from garrison import Actor, MailboxConfig, Node
from garrison.persistence import (
    Delivery,
    IntentEvent,
    IntentLog,
    IntentLogBroken,
    IntentRecorded,
    IntentState,
    IntentTransitionError,
    RedisConsumer,
    RedisJournal,
)

GROUP = "executors"
"""The consumer group every executor of every node reads the intents stream in."""
MAX_DELIVERIES = 1_000
"""An intent is delivered again after every take-over; only a poison entry gets this far."""
READ_BATCH = 512
MAX_SEND_BATCH = 512
RENEW_BATCH = 500
MAX_MOVES = 1024

SETTLED = frozenset({IntentState.ACKED, IntentState.REJECTED, IntentState.DONE})
"""Nothing left to send: the entry can be acked."""


class WorkQueue(Protocol):
    """The consumer group as an executor uses it (RedisConsumer; a fake in tests)."""

    async def ensure_group(self, from_seq: int = 0) -> None: ...

    async def read(self, *, block: float | None = None) -> list[Delivery]: ...

    async def ack(self, *seqs: int) -> int: ...

    async def renew(self, *seqs: int) -> set[int]: ...


def redis_work_queue(node: Node, config: NodeConfig) -> WorkQueue:
    journal = node.journal
    if not isinstance(journal, RedisJournal):
        raise TypeError(f"several nodes share intents through a redis:// journal, not {journal!r}")
    return RedisConsumer(
        journal,
        INTENTS_STREAM,
        GROUP,
        config.member,
        claim_idle=config.claim_idle,
        max_deliveries=MAX_DELIVERIES,
        batch=READ_BATCH,
    )


_entry_decoder = msgspec.msgpack.Decoder(IntentEvent)
"""An entry of the intents stream: the intent log's own events, as stored."""


@dataclasses.dataclass(slots=True)
class Lease:
    seq: int
    """The entry of the intents stream that recorded the intent."""
    until: float
    """Node-clock time after which this executor must not send the intent."""


class _Taken(msgspec.Struct, frozen=True):
    """Self-message: intents delivered to this executor (new, its own again, or reclaimed)."""

    client_order_ids: tuple[str, ...]
    again: int
    """How many of them were delivered before (to an executor that died or went silent)."""
    reclaimed: bool
    """Taken from another consumer of the group (XAUTOCLAIM), not this one's own."""


class _Lost(msgspec.Struct, frozen=True):
    """Self-message: entries another executor claimed (this one was silent for claim_idle)."""

    client_order_ids: tuple[str, ...]


class _Sweep(msgspec.Struct, frozen=True):
    """Self-message: ack timeouts, due look-ups."""


class SharedExecutor(BrokerAnswers, Actor):
    """Sends the intents the group hands it, exactly once across all nodes (see the module's
    docstring), with the single node's decision table.

    It keeps its own view of the intent log (a writer of the shared stream
    like any other node's executor) and reads the durable state fresh before
    it decides on an intent it was handed. It sends only under a live lease. A
    move another writer made first (the intent moved on) is that writer's, never
    a crash. It acks an entry once its intent is settled. Writes are awaited at
    the end of each turn (a simpler, slower executor than the single node's
    pipelined one: several nodes share the load).
    """

    heartbeat_timeout = 5.0
    mailbox = MailboxConfig(capacity=65536)
    SWEEP_EVERY = 0.1

    def __init__(self, config: NodeConfig, queue_of: Any = redis_work_queue) -> None:
        super().__init__(config)
        self.queue_of = queue_of
        self.leases: dict[str, Lease] = {}
        self.retry: dict[str, tuple[IntentState, str]] = {}
        """Moves this view refused (it may be behind another writer): tried again after a catch-up."""
        self.settled: set[str] = set()
        """Leased intents found settled: their entries are acked at the end of the turn."""
        self.work = {"taken": 0, "again": 0, "reclaimed": 0, "looked_up_first": 0, "lost": 0, "held_back": 0}

    async def on_start(self) -> None:
        node = self.ctx.node
        assert node.journal is not None
        self.log = await IntentLog(node.journal, INTENTS_STREAM, OrderIntent).open()
        self.queue: WorkQueue = self.queue_of(node, self.config)
        await self.queue.ensure_group()
        if self.config.role == "full":
            # This node owns positions, so finishing live orders is its job, whoever sent them.
            self.reconcile_live(node.clock.now())
        await self.ask_broker_info()
        self.ctx.run_task(self.take_work(), name="take-work")
        self.ctx.run_task(self.keep_leases(), name="keep-leases")
        self.ctx.send_later(self.SWEEP_EVERY, _Sweep())

    # -- the group: deliveries and leases ---------------------------------------------

    async def take_work(self) -> None:
        """Read the group; record events are work (leased from the moment of the read),
        every other event of the stream is acked at once."""
        clock = self.ctx.node.clock
        while True:
            asked_at = clock.now()
            before = getattr(self.queue, "reclaimed", 0)
            deliveries = await self.queue.read(block=0.2)
            taken: list[str] = []
            again = 0
            other: list[int] = []
            for delivery in deliveries:
                entry = _entry_decoder.decode(delivery.payload)
                if isinstance(entry, IntentRecorded):
                    self.leases[entry.id] = Lease(delivery.seq, asked_at + self.config.claim_idle / 2)
                    taken.append(entry.id)
                    again += delivery.delivery_count > 1
                else:
                    other.append(delivery.seq)
            if other:
                await self.queue.ack(*other)
            if taken:
                # One read answers from one source: this consumer's own pending entries, ones
                # reclaimed from another consumer, or new ones.
                reclaimed = getattr(self.queue, "reclaimed", 0) > before
                await self.ctx.self_ref.tell(_Taken(tuple(taken), again, reclaimed))

    async def keep_leases(self) -> None:
        """Renew the hold on every unfinished entry; learn which ones another executor took."""
        clock = self.ctx.node.clock
        while True:
            await clock.sleep(self.config.claim_idle / 4)
            held = dict(self.leases)
            if not held:
                continue
            asked_at = clock.now()
            seqs = [lease.seq for lease in held.values()]
            kept: set[int] = set()
            for start in range(0, len(seqs), RENEW_BATCH):  # one short script each
                kept |= await self.queue.renew(*seqs[start : start + RENEW_BATCH])
            lost = []
            for cid, lease in held.items():
                if self.leases.get(cid) is not lease:
                    continue  # settled and acked meanwhile
                if lease.seq in kept:
                    lease.until = asked_at + self.config.claim_idle / 2
                else:
                    lease.until = -math.inf  # nothing more goes out for it from here
                    lost.append(cid)
            if lost:
                self.work["lost"] += len(lost)
                self.ctx.logger.warning(
                    "work: {n} intents claimed by another executor (this one was silent for {idle}s)",
                    n=len(lost),
                    idle=self.config.claim_idle,
                )
                await self.ctx.self_ref.tell(_Lost(tuple(lost)))

    # -- messages ---------------------------------------------------------------------

    async def on_receive(self, message: Any) -> Any:
        now = self.ctx.node.clock.now()
        match message:
            case _Taken(client_order_ids=ids, again=again, reclaimed=reclaimed):
                await self.take(ids, again, reclaimed)
            case _Lost(client_order_ids=ids):
                for cid in ids:
                    self.leases.pop(cid, None)
                    self.forget(cid)
            case CheckLiveOrders():
                await self.catch_up()
                self.reconcile_live(now)
            case _Sweep():
                self.sweep(now)
                self.ctx.send_later(self.SWEEP_EVERY, _Sweep())
            case IntentReady():
                pass  # the group decides which executor sends an intent, not the node that recorded it
            case Snapshot():
                return {
                    **self.counts,
                    **self.work,
                    "held": len(self.leases),
                    **self.doubt_figures(now),
                }
            case _:
                if not self.on_answer(message, now):
                    self.ctx.unhandled(message)
        if self.ctx.queued == 0 or len(self.to_send) >= MAX_SEND_BATCH or len(self.moves) >= MAX_MOVES:
            await self.finish_turn()
        return None

    async def take(self, ids: Iterable[str], again: int, reclaimed: bool) -> None:
        """Decide on intents just handed to this executor, from their durable state read now:
        the executor that held them before may have moved them since this view last looked."""
        await self.catch_up()
        now = self.ctx.node.clock.now()
        taken = [cid for cid in ids if cid in self.leases]
        in_doubt = 0
        for cid in taken:
            intent = self.log.get(cid)
            if intent is None:
                self.ctx.logger.error("work: entry of {cid} names no recorded intent", cid=cid)
                self.leases.pop(cid, None)
                continue
            match take_over(intent.state):
                case TakeOver.SEND:
                    self.to_send[cid] = intent.payload
                case TakeOver.LOOK_UP:
                    # The old holder's lease ended before this one began: nothing of its can
                    # reach the broker from now on, so a "not found" counts from now.
                    in_doubt += 1
                    self.settle(cid)
                    self.doubt(cid, now)
                case TakeOver.SETTLED:
                    self.settled.add(cid)
        self.work["taken"] += len(taken)
        self.work["looked_up_first"] += in_doubt
        if again:
            self.work["again"] += again
            self.work["reclaimed"] += again if reclaimed else 0
            self.ctx.logger.warning(
                "work: took over {n} intents {whose} ({doubt} in doubt: looked up first)",
                n=again,
                whose="from another executor" if reclaimed else "this executor held before it restarted",
                doubt=in_doubt,
            )

    def may_resend(self, cid: str) -> bool:
        return cid in self.leases

    def forget(self, cid: str) -> None:
        self.settle(cid)
        self.to_send.pop(cid, None)
        self.reconcile.pop(cid, None)
        self.settled.discard(cid)

    # -- the end of a turn: writes, sends, acks ------------------------------------------

    async def catch_up(self) -> None:
        """Read what the other writers of the stream did; first write what this view asked for."""
        await self.write_moves()
        await self.log.refresh()

    async def finish_turn(self) -> None:
        """Write the moves, try again the ones this view refused (from the durable state), send
        what waits, and ack the entries of settled intents."""
        await self.write_moves()
        if self.retry:
            retry, self.retry = self.retry, {}
            await self.catch_up()
            self.moves.extend((cid, state, detail) for cid, (state, detail) in retry.items())
            await self.write_moves(again=False)
        while self.to_send:
            await self.send_pending()
        if self.settled:
            settled, self.settled = self.settled, set()
            seqs = []
            for cid in settled:
                lease = self.leases.pop(cid, None)
                if lease is not None:
                    seqs.append(lease.seq)
                    self.forget(cid)
            if seqs:
                await self.queue.ack(*seqs)

    async def write_moves(self, again: bool = True) -> None:
        """Write the moves asked for (one future each, folded into one append by the log).
        Another writer may make any one of them impossible; that one alone is left out (its
        intent moved on: that writer's work). A move this view refuses (it may be behind
        another writer) is tried once more after a catch-up."""
        moves, self.moves = self.moves, []
        written = []
        for cid, state, detail in moves:
            if self.log.can_move(cid, state):
                written.append((cid, self.log.move_nowait(cid, state, detail)))
            elif again:
                self.retry.setdefault(cid, (state, detail))
            else:
                self.note(cid)
        outcomes = await asyncio.gather(*(future for _, future in written), return_exceptions=True)
        for (cid, _), outcome in zip(written, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, IntentTransitionError):
                raise outcome
            self.note(cid)

    def note(self, cid: str) -> None:
        """Ack the entry of a leased intent once its durable state is settled."""
        if cid not in self.leases:
            return
        try:
            intent = self.log.get(cid)
        except IntentLogBroken:
            return
        if intent is not None and intent.state in SETTLED:
            self.settled.add(cid)

    async def send_pending(self) -> None:
        """Durably mark SENDING, then send: only intents this executor holds a live lease on,
        each Submit carrying the lease's end for the gateway to check at the write."""
        batch = self.take_batch(MAX_SEND_BATCH)
        now = self.ctx.node.clock.now()
        marked = []
        held_back = 0
        for cid, intent in batch.items():
            lease = self.leases.get(cid)
            if lease is None:
                continue  # not this executor's (any more): whoever holds it decides
            if lease.until <= now:
                self.doubt(cid, now)  # renewals late: asked about again, sent once renewed
                held_back += 1
                continue
            if self.log.can_move(cid, IntentState.SENDING):
                marked.append((intent, self.log.move_nowait(cid, IntentState.SENDING)))
        if not marked:
            return
        outcomes = await asyncio.gather(*(future for _, future in marked), return_exceptions=True)
        gateway = self.ctx.node.lookup(paths.GATEWAY)
        now = self.ctx.node.clock.now()
        for (intent, _), outcome in zip(marked, outcomes, strict=True):
            cid = intent.client_order_id
            if isinstance(outcome, IntentTransitionError):
                self.note(cid)  # another writer moved it on first: nothing of this one to send
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            lease = self.leases.get(cid)
            if lease is None:
                continue  # lost while SENDING was written: the new holder looks it up first
            if lease.until <= now:
                # The lease ran out while SENDING was written (lost, or renewals late): not sent.
                # It is SENDING now, so whoever holds it next looks it up first (this one too).
                self.doubt(cid, now)
                held_back += 1
                continue
            self.sent_at[cid] = now
            self.counts["sent"] += 1
            await gateway.tell(Submit((intent,), not_after=lease.until))
        if held_back:
            self.work["held_back"] += held_back
            self.ctx.logger.warning(
                "work: {n} intents held back, their lease ran out before the send (renewals late or "
                "lost): asked about again",
                n=held_back,
            )
