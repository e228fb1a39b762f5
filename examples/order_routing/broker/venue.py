"""The simulated venue: its orders, dedupe, faults, fills and look-ups.

Everything a client hears is durable first: each request's reply, and each
fill, is released only after the store transaction holding every change made
before it has committed (``commit.GroupCommit``). Replies then wait ``latency_ms`` in one FIFO (the
latency is the same for all, so a deque and one timer keep them in order);
fills go out as soon as they are durable.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from bisect import bisect_right
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import msgspec

from ..protocol import (
    OPEN_STATES,
    CancelOrder,
    CancelResult,
    Fill,
    Hello,
    NewOrder,
    OrderAccepted,
    OrderRejected,
    OrderState,
    OrderStatus,
    QueryOrder,
    Welcome,
    encode_frame,
)
from .commit import GroupCommit
from .config import BrokerConfig, DedupeMode
from .store import BrokerStore, StoredFill, StoredOrder, fill_row, order_row

MAX_ID_LENGTH = 64
GARBAGE = tuple(
    len(payload).to_bytes(4, "big") + payload
    for payload in (
        b"\xc1\xc1\xc1\xc1",  # not msgpack
        msgspec.msgpack.encode(["surprise", 1, 2]),  # an unknown tag
        msgspec.msgpack.encode(["fill", "one", 2, 3]),  # a known tag, fields of the wrong types
    )
)
"""Frames a broken venue sends (``garbage_rate``): each well framed, none decodes."""
MAX_QTY = 1_000_000_000


class Peer(Protocol):
    """What the venue needs of a client connection."""

    @property
    def closed(self) -> bool: ...

    def send(self, frame: bytes) -> None: ...

    def hold(self) -> None:
        """Stop taking requests: a reset is coming."""

    def reset(self) -> None:
        """Drop the connection abruptly (TCP RST), losing whatever was not yet sent."""


@dataclass(slots=True)
class BrokerStats:
    """Counters of what the broker did since it started (not persisted)."""

    orders_received: int = 0
    orders_accepted: int = 0
    orders_rejected: int = 0
    duplicates_rejected: int = 0
    replies_dropped: int = 0
    connections_reset: int = 0
    fills: int = 0
    cancels: int = 0
    queries: int = 0
    garbage_sent: int = 0
    ghost_fills_sent: int = 0
    bad_frames: int = 0
    commits: int = 0
    fix_gaps: int = 0
    """FIX: messages numbered and never written (``fix_gap_rate``)."""
    fix_duplicates: int = 0
    """FIX: messages written twice (``fix_duplicate_rate``)."""


class Order(StoredOrder, frozen=False, eq=False):
    """An order the venue holds: what it stores, changed in place as it fills or is cancelled,
    and from when look-ups see it."""

    visible_at: float = math.inf
    """Loop time from which QueryOrder sees it: once durable, the lookup lag after it was received
    (from receipt, not commit, so "not found" is honest for an order sent more than the lag ago)."""

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


def order_problem(order: NewOrder) -> str | None:
    """Why the venue refuses this order as malformed, or None if it is well formed."""
    if not order.client_order_id:
        return "client_order_id must not be empty"
    if len(order.client_order_id) > MAX_ID_LENGTH:
        return f"client_order_id must be at most {MAX_ID_LENGTH} characters, got {len(order.client_order_id)}"
    if not order.symbol.strip():
        return f"symbol must not be empty, got {order.symbol!r}"
    if order.qty <= 0:
        return f"qty must be > 0, got {order.qty}"
    if order.qty > MAX_QTY:
        return f"qty must be <= {MAX_QTY}, got {order.qty}"
    if not (math.isfinite(order.price) and order.price > 0):
        return f"price must be a finite number > 0, got {order.price!r}"
    return None


@dataclass(slots=True)
class _Reply:
    due: float
    peer: Peer
    frame: bytes


@dataclass(slots=True, eq=False)
class _FillStep:
    order: Order
    sizes: list[int]
    """The order's fills, by quantity, in the order they happen."""
    index: int = 0


class Venue:
    """One broker's order book and behaviour. Call ``restore`` then ``start``; ``close`` to finish."""

    def __init__(
        self, config: BrokerConfig, store: BrokerStore, executor: Executor, stats: BrokerStats
    ) -> None:
        self.config = config
        self.stats = stats
        self._store = store
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self._rng = random.Random(config.seed)
        self._latency = config.latency_ms / 1000
        self._fill_delay = config.fill_delay_ms / 1000
        self._orders: dict[tuple[str, str], list[Order]] = {}
        self._fills: dict[str, list[Fill]] = {}
        """Durable fills per client, in fill_seq order: what a Hello replays."""
        self._subscribers: dict[str, set[Peer]] = {}
        self._next_order_number = 1
        self._next_fill_seq = 1
        self._replies: deque[_Reply] = deque()
        self._reply_timer: asyncio.TimerHandle | None = None
        self._commit = GroupCommit(store, executor, on_batch_done=self._fill_accepted_later)
        self._to_fill: list[_FillStep] = []
        """Orders accepted by the commit in hand, to fill ``latency + fill_delay`` after it."""
        self._closing = False

    # -- life -------------------------------------------------------------------------------

    def restore(self, orders: list[StoredOrder], fills: list[StoredFill]) -> None:
        """Take back what the store holds; open orders go on to fill as if never interrupted."""
        by_id: dict[str, Order] = {}
        for stored in orders:
            order = Order(*msgspec.structs.astuple(stored), visible_at=-math.inf)
            self._orders.setdefault((order.client_id, order.client_order_id), []).append(order)
            by_id[order.order_id] = order
        for stored_fill in fills:
            self._fills.setdefault(stored_fill.client_id, []).append(stored_fill.as_sent())
        self._next_order_number = len(orders) + 1
        self._next_fill_seq = (fills[-1].fill_seq + 1) if fills else 1
        resumed = [
            _FillStep(order, [order.qty - order.filled_qty]) for order in by_id.values() if order.is_open
        ]
        if resumed:
            self._loop.call_later(self._fill_delay, self._fill_steps, resumed)

    def start(self) -> asyncio.Task[None]:
        """Start the group-commit writer; the task fails if the store does (the broker must stop)."""
        return self._commit.start()

    async def close(self) -> None:
        """Commit what is staged, then stop: no more replies, fills or commits."""
        self._closing = True
        try:
            await self._commit.close()
        finally:
            self.stats.commits = self._commit.commits
        if self._reply_timer is not None:
            self._reply_timer.cancel()
        self._replies.clear()

    # -- requests ---------------------------------------------------------------------------

    def hello(self, peer: Peer, hello: Hello) -> None:
        """Welcome the client, replay its durable fills after ``fills_after``, then stream live ones."""
        self._subscribers.setdefault(hello.client_id, set()).add(peer)
        peer.send(
            encode_frame(Welcome(self.config.broker_id, self.config.lookup_lag, self.config.dedupe.value))
        )
        fills = self._fills.get(hello.client_id, [])
        for fill in fills[bisect_right(fills, hello.fills_after, key=_fill_seq) :]:
            peer.send(encode_frame(fill))

    def disconnect(self, peer: Peer, client_id: str) -> None:
        subscribers = self._subscribers.get(client_id)
        if subscribers is not None:
            subscribers.discard(peer)
            if not subscribers:
                del self._subscribers[client_id]

    def new_order(self, peer: Peer, client_id: str, request: NewOrder) -> None:
        self.stats.orders_received += 1
        config, rng = self.config, self._rng
        reset = rng.random() < config.reset_rate
        if reset:
            self.stats.connections_reset += 1
            if rng.random() < 0.5:
                peer.reset()  # before the order is recorded: the venue never saw it
                return
            peer.hold()  # after: recorded, and the connection dies before any reply

        def refuse(reason: str, duplicate: bool = False) -> None:
            self.stats.orders_rejected += 1
            self.stats.duplicates_rejected += duplicate
            if reset:
                self._commit.after_commit(peer.reset)
            else:
                self._reply_after_commit(peer, OrderRejected(request.client_order_id, reason, duplicate))

        problem = order_problem(request)
        if problem is not None:
            return refuse(problem)
        key = (client_id, request.client_order_id)
        earlier = self._orders.get(key)
        if earlier and self._is_duplicate(earlier[-1]):
            last = earlier[-1]
            return refuse(
                f"duplicate client_order_id {request.client_order_id!r}: order {last.order_id} "
                f"is {last.state} (dedupe {config.dedupe.value})",
                duplicate=True,
            )
        if rng.random() < config.reject_rate:
            return refuse("simulated venue reject")
        drop_reply = rng.random() < config.drop_reply_rate

        order = Order(
            f"{config.broker_id}-{self._next_order_number}",
            client_id,
            request.client_order_id,
            request.symbol,
            request.side,
            request.qty,
            request.price,
            OrderState.ACCEPTED,
            filled_qty=0,
            accepted_at=time.time(),
        )
        self._next_order_number += 1
        if earlier:
            earlier.append(order)
        else:
            self._orders[key] = [order]
        self._commit.batch.new_orders.append(order_row(order))
        received = self._loop.time()
        self._commit.after_commit(partial(self._accepted, peer, order, received, reset, drop_reply))

    def cancel_order(self, peer: Peer, client_id: str, request: CancelOrder) -> None:
        orders = self._orders.get((client_id, request.client_order_id), [])
        target = next((order for order in reversed(orders) if order.is_open), None)
        if target is None:
            reason = (
                f"order {orders[-1].order_id} is already {orders[-1].state}"
                if orders
                else f"unknown client_order_id {request.client_order_id!r}"
            )
            result = CancelResult(request.client_order_id, cancelled=False, reason=reason)
        else:
            target.state = OrderState.CANCELLED
            self.stats.cancels += 1
            self._commit.batch.order_updates.append((target.state, target.filled_qty, target.order_id))
            result = CancelResult(request.client_order_id, cancelled=True)
        self._reply_after_commit(peer, result)

    def query_order(self, peer: Peer, client_id: str, request: QueryOrder) -> None:
        """Report the most recent order with that id the look-up can see (it lags acceptance)."""
        self.stats.queries += 1
        now = self._loop.time()
        orders = self._orders.get((client_id, request.client_order_id), [])
        seen = next((order for order in reversed(orders) if order.visible_at <= now), None)
        if seen is None:
            status = OrderStatus(request.request_id, request.client_order_id, found=False)
        else:
            status = OrderStatus(
                request.request_id,
                request.client_order_id,
                True,
                seen.state,
                seen.order_id,
                seen.filled_qty,
                seen.qty,
            )
        self._reply_after_commit(peer, status)

    def _is_duplicate(self, earlier: Order) -> bool:
        mode = self.config.dedupe
        return mode is DedupeMode.ALWAYS or (mode is DedupeMode.WHILE_OPEN and earlier.is_open)

    # -- after commit -----------------------------------------------------------------------

    def _accepted(self, peer: Peer, order: Order, received: float, reset: bool, drop_reply: bool) -> None:
        self.stats.orders_accepted += 1
        order.visible_at = received + self.config.lookup_lag
        if reset:
            peer.reset()
        elif drop_reply:
            self.stats.replies_dropped += 1
        else:
            self._reply(peer, OrderAccepted(order.client_order_id, order.order_id))
        self._to_fill.append(_FillStep(order, self._fill_sizes(order.qty)))

    def _fill_sizes(self, qty: int) -> list[int]:
        if not self.config.partial_fills or qty == 1:
            return [qty]
        count = self._rng.randint(1, min(3, qty))
        cuts = sorted(self._rng.sample(range(1, qty), count - 1))
        return [high - low for low, high in zip([0, *cuts], [*cuts, qty], strict=True)]

    def _fill_steps(self, steps: list[_FillStep]) -> None:
        """Fill each order's next slice; all of them fell due together (one timer, not one per order)."""
        if self._closing:
            return
        later: list[_FillStep] = []
        for step in steps:
            order = step.order
            if order.is_open:
                self._fill(order, step.sizes[step.index])
                step.index += 1
                if step.index < len(step.sizes):
                    later.append(step)
        if later:
            self._loop.call_later(self._fill_delay, self._fill_steps, later)

    def _fill(self, order: Order, qty: int) -> None:
        order.filled_qty += qty
        leaves_qty = order.qty - order.filled_qty
        order.state = OrderState.FILLED if leaves_qty == 0 else OrderState.PARTIALLY_FILLED
        fill = Fill(
            self._next_fill_seq,
            order.client_order_id,
            order.order_id,
            order.symbol,
            order.side,
            qty,
            order.price,
            leaves_qty,
        )
        self._next_fill_seq += 1
        batch = self._commit.batch
        batch.fills.append(fill_row(fill, order.client_id, time.time()))
        batch.order_updates.append((order.state, order.filled_qty, order.order_id))
        self._commit.after_commit(partial(self._filled, order.client_id, fill))

    def _filled(self, client_id: str, fill: Fill) -> None:
        self.stats.fills += 1
        self._fills.setdefault(client_id, []).append(fill)
        subscribers = self._subscribers.get(client_id)
        if subscribers:
            frame = encode_frame(fill)
            if self.config.ghost_fill_rate and self._rng.random() < self.config.ghost_fill_rate:
                self.stats.ghost_fills_sent += 1
                ghost = msgspec.structs.replace(
                    fill, client_order_id=f"ghost-{self.stats.ghost_fills_sent}", order_id="ghost"
                )
                frame += encode_frame(ghost)
            for peer in subscribers:
                peer.send(frame)

    # -- replies and the group commit -------------------------------------------------------

    def _reply_after_commit(self, peer: Peer, message: msgspec.Struct) -> None:
        self._commit.after_commit(partial(self._reply, peer, message))

    def _reply(self, peer: Peer, message: msgspec.Struct) -> None:
        if self.config.garbage_rate and self._rng.random() < self.config.garbage_rate:
            # The bad frame goes first, so a client that drops the connection for it loses the reply.
            self.stats.garbage_sent += 1
            self._reply_frame(peer, GARBAGE[self.stats.garbage_sent % len(GARBAGE)])
        self._reply_frame(peer, encode_frame(message))

    def _reply_frame(self, peer: Peer, frame: bytes) -> None:
        if self._latency == 0:
            peer.send(frame)
            return
        reply = _Reply(self._loop.time() + self._latency, peer, frame)
        self._replies.append(reply)
        if self._reply_timer is None:
            self._reply_timer = self._loop.call_at(reply.due, self._send_due_replies)

    def _send_due_replies(self) -> None:
        self._reply_timer = None
        now, replies = self._loop.time(), self._replies
        while replies and replies[0].due <= now:
            reply = replies.popleft()
            if not reply.peer.closed:
                reply.peer.send(reply.frame)
        if replies:
            self._reply_timer = self._loop.call_at(replies[0].due, self._send_due_replies)

    def _fill_accepted_later(self) -> None:
        self.stats.commits = self._commit.commits
        if self._to_fill:
            # Every order accepted by this commit falls due at once: one timer for the lot.
            self._loop.call_later(self._latency + self._fill_delay, self._fill_steps, self._to_fill)
            self._to_fill = []


def _fill_seq(fill: Fill) -> int:
    return fill.fill_seq
