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

Bounded progress (the log's bounds, from the config):

- Time-to-live: an intent past it is never sent. RECORDED past it is moved to
  EXPIRED (at start, when its turn to be sent comes, and by the sweep while it
  waits for the send window); a Submit carries the batch's earliest expiry as
  its ``not_after``, so the gateway does not write it late either (it is then
  looked up). In doubt past it: looked up, and EXPIRED if the broker never had it.
- Send window: at most ``send_window`` intents in SENDING or UNKNOWN; more are
  marked only as earlier ones settle, so a crash leaves at most that many to
  look up. Nothing is marked while the gateway has no Welcome (a frame would
  only wait there, its intent in doubt for nothing).
- Reconciliation costs O(unsettled) at start, read in bounded slices that
  yield to the loop, and O(in doubt) afterwards; every answer's move is
  written at once (one append per step), so a restart continues where the
  last one stopped.
- Every second it logs a ``progress:`` line (backlog, send window, in doubt,
  expired, its longest step) and sets the gauges on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import Any

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.answers import (
    EXPIRED_AFTER_LOOKUP,
    EXPIRED_BEFORE_SEND,
    BrokerAnswers,
    EarlierProcesses,
    TakeOver,
    take_over,
)
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.messages import (
    CheckLiveOrders,
    GetIntentLog,
    IntentReady,
    OrderIntent,
    Snapshot,
    Submit,
)
from garrison import Actor, ActorContext, MailboxConfig
from garrison.persistence import Intent, IntentLog, IntentState

MAX_SEND_BATCH = 256
"""Intents marked SENDING (one durable write) and handed to the gateway per step."""
MAX_MOVES = 512
"""Answers' moves collected before they are written (one durable write) even while more messages wait."""
MAX_UNCONFIRMED_WRITES = 256
"""Writes of the log in flight (each a batch) before the executor waits for the oldest: the disk's pace."""
SUBMITS_PER_STEP = 64
"""Orders per Submit to the gateway (one message), the loop yielding between two."""
TAKE_OVER_SLICE = 256
"""Intents taken over per slice at start (the loop runs between two slices)."""
PROGRESS_EVERY = 1.0
"""Seconds between two progress lines (and bound gauges)."""


class BoundsMetrics:
    """The bounds' figures on the node's ``/metrics``: backlog, send window, in doubt."""

    def __init__(self, ctx: ActorContext) -> None:
        metrics = ctx.metrics
        self.backlog = metrics.gauge(
            "intent_backlog", "Intents recorded and not settled (max_unsettled bounds it)"
        )
        self.backlog_bound = metrics.gauge("intent_backlog_bound", "max_unsettled")
        self.window = metrics.gauge(
            "send_window_used", "Intents in SENDING or UNKNOWN (send_window bounds it)"
        )
        self.window_bound = metrics.gauge("send_window_bound", "send_window")
        self.oldest_age = metrics.gauge(
            "oldest_in_doubt_age_seconds", "How long ago the oldest intent in doubt was recorded"
        )
        self.to_send = metrics.gauge(
            "intents_waiting_to_send", "Recorded intents waiting for the send window"
        )


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

    def __init__(self, config: NodeConfig, earlier: EarlierProcesses | None = None) -> None:
        super().__init__(config)
        self.earlier = earlier
        """When earlier processes of this node wrote their last frame (None: unknown, so an
        intent found in doubt at start counts from this incarnation's start)."""
        self.marking: set[str] = set()
        """Intents whose SENDING mark is being written: sent once it is durable, never queued again."""
        self.unconfirmed: deque[asyncio.Future[None]] = deque()
        """The log's writes not yet known durable, oldest first."""
        self.longest_step = 0.0
        """The longest stretch (s) this incarnation held the loop in one of its steps."""
        self.longest_kind = ""
        """What that step was (a message type, a take-over slice, a send)."""
        self.longest_start = 0.0
        """How long (s) taking over the log at start took, the loop running between slices."""
        self.progress_at = -math.inf

    async def on_start(self) -> None:
        self.log: IntentLog[OrderIntent] = await self.ctx.node.lookup(paths.INTENTS).ask(GetIntentLog())
        self.bounds = BoundsMetrics(self.ctx)
        started = time.perf_counter()
        await self.take_over_log(live_only=False)
        self.longest_start = time.perf_counter() - started
        await self.ask_broker_info()
        await self.write_and_send()
        self.ctx.send_later(self.SWEEP_EVERY, _Sweep())

    async def take_over_log(self, *, live_only: bool) -> None:
        """Take over what the log holds unsettled: O(unsettled), which ``max_unsettled`` bounds, in
        slices of TAKE_OVER_SLICE with the loop running between two. RECORDED: to send (or EXPIRED
        if past its time-to-live); SENDING/UNKNOWN: in doubt, looked up; ACKED: looked up once
        (an OrdersDone may have been lost). ``live_only``: only the ACKED ones (CheckLiveOrders)."""
        pending = self.log.pending()
        earlier = self.earlier
        marked_here: set[str] = set() if earlier is None else earlier.marked_here
        if earlier is not None:
            self.written_before = earlier.written_before
        doubted: list[tuple[float, str]] = []
        for start in range(0, len(pending), TAKE_OVER_SLICE):
            if start:
                await asyncio.sleep(0)
            began = time.perf_counter()
            now = self.ctx.node.clock.now()
            for intent in pending[start : start + TAKE_OVER_SLICE]:
                if intent.state is IntentState.ACKED:
                    self.reconcile.setdefault(intent.id, now)
                    continue
                if live_only:
                    continue
                match take_over(intent.state):
                    case TakeOver.SEND if intent.expired_at(now):
                        self.expire(intent.id, EXPIRED_BEFORE_SEND)
                    case TakeOver.SEND:
                        self.to_send[intent.id] = intent.payload
                    case TakeOver.LOOK_UP if intent.id not in self.in_doubt and intent.id not in self.sent_at:
                        # It may have reached the broker before this incarnation (or, when no
                        # executor of this process has sent anything, before this process) began.
                        from_earlier = earlier is not None and intent.id not in marked_here
                        self.doubt(intent.id, self.written_before if from_earlier else now)
                        doubted.append((intent.created or 0.0, intent.id))
            self.stepped(began, "take-over slice")
        # Asked oldest first (by creation): under the look-up cap, the intents each crash adds
        # must not keep overtaking older ones (ties went by id; the log's order is its snapshot's).
        doubted.sort()
        for rank, (_, cid) in enumerate(doubted):
            self.next_query[cid] = self.in_doubt[cid] + rank * 1e-6

    def stepped(self, began: float, kind: str) -> None:
        """Note how long the step (of ``kind``) that began at ``began`` (perf_counter) held the loop."""
        step = time.perf_counter() - began
        if step > self.longest_step:
            self.longest_step = step
            self.longest_kind = kind

    async def on_receive(self, message: Any) -> Any:
        began = time.perf_counter()
        now = self.ctx.node.clock.now()
        match message:
            case IntentReady(intents=intents):
                for intent in intents:
                    cid = intent.client_order_id
                    if cid not in self.sent_at and cid not in self.in_doubt and cid not in self.marking:
                        self.to_send[cid] = intent
            case CheckLiveOrders():
                self.stepped(began, "CheckLiveOrders")
                await self.take_over_log(live_only=True)
                began = time.perf_counter()
            case _Sweep():
                self.sweep(now)
                self.expire_waiting(now)
                if now - self.progress_at >= PROGRESS_EVERY:
                    self.progress_at = now
                    self.report_progress(now)
                self.ctx.send_later(self.SWEEP_EVERY, _Sweep())
            case Snapshot():
                return {**self.counts, **self.doubt_figures(now), **self.bound_figures(now)}
            case _:
                if not self.on_answer(message, now):
                    self.ctx.unhandled(message)
        self.stepped(began, type(message).__name__)
        # A burst never stops the work: a full batch is written even while more messages wait.
        if self.ctx.queued == 0 or len(self.to_send) >= MAX_SEND_BATCH or len(self.moves) >= MAX_MOVES:
            await self.write_and_send()
        return None

    async def write_and_send(self) -> None:
        """Write the answers' moves, then mark and send what waits: one bounded batch per loop turn,
        and none of it waits for the disk unless MAX_UNCONFIRMED_WRITES are in flight. Stops when
        the send window is full: the next answers make room."""
        began = time.perf_counter()
        self.write_moves()
        progress = self.send_pending()
        self.stepped(began, "write and send")
        while progress and self.to_send and self.ctx.queued == 0:
            await asyncio.sleep(0)  # others run between two batches
            began = time.perf_counter()
            progress = self.send_pending()
            self.stepped(began, "send")
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

    def window_room(self) -> int:
        """How many more intents may enter SENDING now (the send window's free slots)."""
        log = self.log
        window = log.send_window
        return MAX_SEND_BATCH if window is None else min(MAX_SEND_BATCH, window - log.stats.in_doubt)

    def send_pending(self) -> bool:
        """Mark a batch SENDING, as far as the send window has room, and send it once the mark is
        durable (a task: answers keep flowing meanwhile). A crash in between is a look-up, not a
        resend. An intent past its time-to-live is EXPIRED instead. False: nothing was taken."""
        room = self.window_room()
        if room <= 0 or not self.to_send or not self.connected:
            # Without a Welcome a frame would only wait in the gateway, its intent in doubt for
            # nothing: a crash meanwhile would leave it to be looked up. RECORDED, it waits here.
            return False
        batch = self.take_batch(room)
        log = self.log
        now = self.ctx.node.clock.now()
        ready: list[OrderIntent] = []
        deadlines: list[float] = []
        for intent in batch.values():
            cid = intent.client_order_id
            if not log.can_move(cid, IntentState.SENDING):
                continue
            recorded = log.get(cid)
            expires = None if recorded is None else recorded.expires_at
            if expires is not None and now >= expires:
                self.expire_unsent(recorded)  # type: ignore[arg-type]
                continue
            ready.append(intent)
            deadlines.append(math.inf if expires is None else expires)
        if self.moves:
            self.write_moves()
        if ready:
            if self.earlier is not None:  # in doubt from now on, these may have a frame on the way
                self.earlier.note_marked(
                    [intent.client_order_id for intent in ready],
                    lambda: [intent.id for intent in log.in_doubt()],
                    4 * (log.send_window or MAX_SEND_BATCH),
                )
            marked = log.move_many_nowait([(intent.client_order_id, IntentState.SENDING) for intent in ready])
            self.unconfirmed.append(marked)
            self.marking.update(intent.client_order_id for intent in ready)
            self.ctx.run_task(self.submit(marked, ready, deadlines), name="submit")
        return True

    def expire_unsent(self, intent: Intent[OrderIntent]) -> None:
        """An intent whose time ran out before its (re)send: EXPIRED, never sent late. One that was
        in doubt got here through a look-up that found it absent (a resend)."""
        recorded = intent.state is IntentState.RECORDED
        self.expire(intent.id, EXPIRED_BEFORE_SEND if recorded else EXPIRED_AFTER_LOOKUP)

    def expire_waiting(self, now: float) -> None:
        """Intents waiting for the send window (or for a Welcome) whose time-to-live ran out
        meanwhile: EXPIRED now (they leave the backlog instead of holding it until their turn).
        O(waiting)."""
        if not self.to_send or (self.connected and self.window_room() > 0):
            return  # nothing waits: what is there goes out in this step
        began = time.perf_counter()
        get = self.log.get
        for cid in list(self.to_send):
            recorded = get(cid)
            if (
                recorded is not None
                and recorded.expired_at(now)
                and self.log.can_move(cid, IntentState.EXPIRED)
            ):
                del self.to_send[cid]
                self.expire_unsent(recorded)
        self.stepped(began, "expire waiting")

    def bound_figures(self, now: float) -> dict[str, Any]:
        stats = self.log.stats
        return {
            "unsettled": stats.unsettled,
            "max_unsettled": stats.max_unsettled,
            "send_window_used": stats.in_doubt,
            "send_window": stats.send_window,
            "to_send": len(self.to_send),
            "oldest_in_doubt_age": round(self.log.oldest_in_doubt_age(now) or 0.0, 3),
            "longest_step_ms": round(self.longest_step * 1000, 2),
            "take_over_ms": round(self.longest_start * 1000, 2),
        }

    def report_progress(self, now: float) -> None:
        """The bounds on /metrics, and one progress line in the log."""
        figures = self.bound_figures(now)
        bounds = self.bounds
        bounds.backlog.set(figures["unsettled"])
        bounds.backlog_bound.set(figures["max_unsettled"] or 0)
        bounds.window.set(figures["send_window_used"])
        bounds.window_bound.set(figures["send_window"] or 0)
        bounds.oldest_age.set(figures["oldest_in_doubt_age"])
        bounds.to_send.set(figures["to_send"])
        counts = self.counts
        self.ctx.logger.info(
            "progress: unsettled {unsettled}/{max_unsettled}, in doubt {in_doubt}/{window} "
            "(oldest {oldest:.1f}s), to send {to_send}, acked {acked}, done {done}, "
            "expired {before} before send + {after} after look-up, look-ups {lookups}, "
            "longest step {step:.1f} ms ({kind}), take-over {take_over:.1f} ms",
            unsettled=figures["unsettled"],
            max_unsettled=figures["max_unsettled"],
            in_doubt=figures["send_window_used"],
            window=figures["send_window"],
            oldest=figures["oldest_in_doubt_age"],
            to_send=figures["to_send"],
            acked=counts["acked"],
            done=counts["done"],
            before=counts["expired_before_send"],
            after=counts["expired_after_lookup"],
            lookups=counts["lookups"],
            step=figures["longest_step_ms"],
            kind=self.longest_kind,
            take_over=figures["take_over_ms"],
        )

    async def submit(
        self, marked: asyncio.Future[None], ready: list[OrderIntent], deadlines: list[float]
    ) -> None:
        """Hand the batch to the gateway once its SENDING mark is durable (never before), each
        Submit with its orders' earliest expiry as ``not_after``: the gateway never writes one late."""
        await marked
        gateway = self.ctx.node.lookup(paths.GATEWAY)
        now = self.ctx.node.clock.now()
        for start in range(0, len(ready), SUBMITS_PER_STEP):
            if start:
                # A tell with room does not suspend: a batch of 256 in one go held the loop for ms.
                await asyncio.sleep(0)
                now = self.ctx.node.clock.now()
            chunk = tuple(ready[start : start + SUBMITS_PER_STEP])
            not_after = min(deadlines[start : start + SUBMITS_PER_STEP])
            for intent in chunk:
                cid = intent.client_order_id
                self.marking.discard(cid)
                # From now on the broker may have it: "not found" is trusted only lookup_lag after this.
                self.sent_at[cid] = now
            self.counts["sent"] += len(chunk)
            await gateway.tell(Submit(chunk, not_after))
