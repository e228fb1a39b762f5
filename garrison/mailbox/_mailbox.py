"""The bounded mailbox: the hot path of every actor.

A mailbox holds user messages in a bounded FIFO (a deque, or for CONFLATE an
ordered map from key to message) and system messages in an unbounded lane
that the owner always serves first. Enqueue and dequeue are O(1). The owner
drains everything queued without yielding; a consumer that finds the mailbox
empty waits on one future for the whole idle period.

Counters satisfy ``enqueued == processed + dropped + depth`` at every step:
``dropped`` counts every message that left the mailbox unprocessed (overflow
drops, conflation replacements, and what is drained when the owner stops);
``conflated`` is the part of ``dropped`` that conflation replaced.
Messages refused (``rejected``) and the owner's own messages moved to the
system lane because the queue was full (``deferred``) are outside that sum:
they never entered the user queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from bisect import bisect_left, insort
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, cast

import msgspec

from garrison._errors import ActorStopped, MailboxFull, MessageDropped
from garrison.mailbox._config import MailboxConfig, Overflow

Envelope = tuple[Any, float, "asyncio.Future[Any] | None"]
"""(message, enqueue time on the node clock, reply future of an ask or None). The enqueue time
is read for a message that arrives while fewer than 16 are queued and for every 16th one; the
others carry the time read before them (see ``STAMP_ALWAYS_BELOW``)."""

DropHook = Callable[[Any, "asyncio.Future[Any] | None", str], None]
"""Called with (message, reply future, reason) for every message dropped unprocessed."""

WAIT_BUCKETS: tuple[float, ...] = (
    *(base * 10.0**exponent for exponent in range(-6, 1) for base in (1.0, 2.5, 5.0)),
    10.0,
)
"""Upper bounds (seconds) of the wait-time histogram; one more bucket holds the rest."""

WAIT_SAMPLE = 16
"""The wait-time histogram records one message taken in 16: an unbiased sample
that keeps the metric's cost on the hot path within a few percent."""

STAMP_ALWAYS_BELOW = 16
"""A message that arrives while fewer than this many are queued has its enqueue time read."""
STAMP_STRIDE_MASK = 15
"""At a longer backlog the clock is read for every 16th message enqueued; the others carry the
time read last. The consumer lag and a sampled wait then read high by at most the time the 15
messages before took to arrive (never more than the backlog's own age): a clock read per
message was most of what the metrics cost on a tell (docs/mailboxes.md)."""

_NEVER = (1 << 62) - 1
"""A sample period no message count reaches: no wait samples (metrics off)."""


class MailboxMetrics(msgspec.Struct, frozen=True):
    """A snapshot of one mailbox's counters and consumer lag."""

    depth: int
    capacity: int
    enqueued: int
    processed: int
    dropped: int
    conflated: int
    rejected: int
    """Messages refused to a sender: ``MailboxFull`` raised, nothing queued."""
    deferred: int
    """The owner's own messages (timers to itself) that found the queue full and were
    queued on the system lane instead (see ``Mailbox.put_or_defer``): not refused, and
    delivered unless the incarnation that set the timer ends first (then dead-lettered)."""
    oldest_age_seconds: float
    """Age of the oldest queued message: the consumer lag right now. Exact below a backlog of
    16; beyond, it may read high by the time the 15 arrivals before that message took (see
    ``STAMP_STRIDE_MASK``)."""
    wait_count: int
    wait_sum_seconds: float
    wait_buckets: tuple[tuple[float, int], ...]
    """(upper bound in seconds, count) per bucket; the last bound is +inf."""

    def wait_quantile(self, q: float) -> float:
        """Estimated q-quantile (0..1) of the time messages waited, as a bucket bound."""
        if self.wait_count == 0:
            return 0.0
        rank = q * self.wait_count
        seen = 0
        for bound, count in self.wait_buckets:
            seen += count
            if seen >= rank and count:
                return bound
        return self.wait_buckets[-1][0]


def _resolve_waiter(waiter: asyncio.Future[None], _: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _ticket(entry: tuple[int, asyncio.Future[None]]) -> int:
    return entry[0]


def _zero() -> float:
    return 0.0


_UNALLOCATED = cast("deque[Envelope]", ())
"""The queue of a mailbox that has had no user message yet. An empty deque is 760 bytes (its
first block is allocated with it), a quarter of an idle actor: it is made at the first message
(``Mailbox._allocate``). Everything that reads the queue works on this empty tuple; what
appends to it (``try_put``, ``put_front``) makes the deque first."""


class Mailbox:
    """A bounded FIFO of user messages plus an unbounded system lane.

    One consumer (the owning actor) and any number of producers, all on one
    event loop. Not thread-safe: other threads reach an actor through the
    loop (``loop.call_soon_threadsafe``).
    """

    __slots__ = (
        "_closed",
        "_done",
        "_loop",
        "_metrics",
        "_now",
        "_on_drop",
        "_next_ticket",
        "_queue",
        "_taken",
        "_wait_counts",
        "_wait_sum",
        "_waiter",
        "wait_sample",
        "capacity",
        "conflated",
        "deferred",
        "dropped",
        "enqueued",
        "overflow",
        "path",
        "pending",
        "put_waiters",
        "rejected",
        "room",
        "stamp",
        "system",
    )

    def __init__(
        self,
        config: MailboxConfig,
        *,
        path: str,
        now: Callable[[], float],
        on_drop: DropHook,
        done: asyncio.Future[None] | None = None,
    ) -> None:
        self.path = path
        self.capacity = config.capacity
        self.overflow = config.overflow
        self.enqueued = 0
        self.dropped = 0
        self.conflated = 0
        self.rejected = 0
        self.deferred = 0
        self._queue: deque[Envelope] = _UNALLOCATED
        self.pending: deque[Envelope] | KeyedQueue = self._queue
        """The container of queued user messages: truthy while any is queued; its ``popleft()``
        removes and returns the oldest envelope and does nothing else (the owning slot's loop
        takes with it, doing :meth:`take`'s bookkeeping inline). Replaced once, when the first
        user message comes (see ``_UNALLOCATED``): read it again after a wait."""
        self.system: list[Any] = []
        """The system lane: control messages, served before any user message; truthy while any
        is queued. Producers use ``put_system``; the owning slot's loop pops it directly."""
        self._waiter: asyncio.Future[None] | None = None
        self.put_waiters: list[tuple[int, asyncio.Future[None]]] = []
        """Producers waiting for space, in arrival order: (ticket, waiter); truthy while any
        waits. The same list for the mailbox's life: the owning slot's loop holds it."""
        self._next_ticket = 0  # an int, not a counter object: one object less per mailbox
        self._closed: str | None = None
        self.room = self.capacity
        """The depth below which a put takes the fast path: ``capacity`` while open, 0 once
        closed (so that the fast path needs no separate closed check). Read by
        ``ActorRef.tell``'s inline path too."""
        self._metrics = config.metrics
        self.wait_sample = WAIT_SAMPLE if config.metrics else _NEVER
        """The owner samples the wait of one message in ``wait_sample`` (``record_wait``): the
        slot's loop, the next user message it takes once that many were served since the last
        sample; :meth:`take`, every ``wait_sample``-th. A count no loop reaches when metrics
        are off."""
        self._taken = 0
        """Messages taken with :meth:`take` (the test kit's probe; the owning slot counts its own)."""
        self._now = now if config.metrics else _zero
        self._wait_counts: list[int] | None = None
        """The wait histogram's bucket counts, created at the first sample (240 bytes an idle
        actor does without)."""
        self._wait_sum = 0.0
        self.stamp = 0.0
        """The enqueue time read last (see ``STAMP_ALWAYS_BELOW``): what a message that arrives
        at a backlog carries unless it is the 16th."""
        self._on_drop = on_drop
        self._loop = asyncio.get_running_loop()
        if done is None:
            done = self._loop.create_future()
            done.set_result(None)
        self._done = done
        """A completed future: what :meth:`send` returns when the message is queued (awaiting
        it returns at once, cheaper than a coroutine). The node's, shared by its mailboxes."""

    # -- producer side -------------------------------------------------

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processed(self) -> int:
        """Messages taken for processing so far: what entered and neither was dropped nor is
        queued (``enqueued == processed + dropped + depth`` holds at every step, so no
        per-message counter is kept)."""
        return self.enqueued - self.dropped - len(self)

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def try_put(self, message: Any, reply: asyncio.Future[Any] | None = None) -> bool:
        """Enqueue if the policy allows it now.

        Returns False only when the mailbox is full and the message must wait
        for space (BACKPRESSURE, or CONFLATE with a new key). Raises
        MailboxFull under REJECT and ActorStopped once the mailbox is closed.
        """
        queue = self._queue
        depth = len(queue)
        if depth < self.room:
            enqueued = self.enqueued + 1
            self.enqueued = enqueued
            if depth < STAMP_ALWAYS_BELOW or not enqueued & STAMP_STRIDE_MASK:
                stamp = self.stamp = self._now()
            else:
                stamp = self.stamp
            try:
                queue.append((message, stamp, reply))
            except AttributeError:  # the first message: the queue is still _UNALLOCATED
                self._allocate().append((message, stamp, reply))
            if not depth:  # the consumer waits only on an empty mailbox
                waiter = self._waiter
                if waiter is not None:
                    self._waiter = None
                    if not waiter.done():
                        waiter.set_result(None)
            return True
        if self._closed is not None:
            raise ActorStopped(self.path, self._closed)
        return self._overflow(message, reply)

    def send(self, message: Any) -> Awaitable[None]:
        """Enqueue a tell: what ``ActorRef.tell`` calls when it does not queue inline (an
        actor with a backlog under STAMP_ALWAYS_BELOW, every 16th message, a full mailbox).

        Returns a completed future when the policy took the message now, else
        the wait for space (:meth:`put`). Raises as :meth:`try_put` does.
        The body is :meth:`try_put`'s, repeated on purpose: calling it would cost a tell one
        more Python call (~7% of a tell, measured; bench/HOT_PATHS.md, round 3). A change to
        one is a change to both.
        """
        queue = self._queue
        depth = len(queue)
        if depth < self.room:
            enqueued = self.enqueued + 1
            self.enqueued = enqueued
            if depth < STAMP_ALWAYS_BELOW or not enqueued & STAMP_STRIDE_MASK:
                stamp = self.stamp = self._now()
            else:
                stamp = self.stamp
            try:
                queue.append((message, stamp, None))
            except AttributeError:  # the first message: the queue is still _UNALLOCATED
                self._allocate().append((message, stamp, None))
            if not depth:  # the consumer waits only on an empty mailbox
                waiter = self._waiter
                if waiter is not None:
                    self._waiter = None
                    if not waiter.done():
                        waiter.set_result(None)
            return self._done
        if self._closed is not None:
            raise ActorStopped(self.path, self._closed)
        if self._overflow(message, None):
            return self._done
        return self.put(message)

    def _allocate(self) -> deque[Envelope]:
        queue: deque[Envelope] = deque()
        self._queue = queue
        self.pending = queue
        return queue

    def _overflow(self, message: Any, reply: asyncio.Future[Any] | None) -> bool:
        policy = self.overflow
        if policy is Overflow.BACKPRESSURE:
            return False
        if policy is Overflow.REJECT:
            self.rejected += 1
            raise MailboxFull(self.path, self.capacity, policy.name)
        self.enqueued += 1
        self.dropped += 1
        if policy is Overflow.DROP_NEWEST:
            self._on_drop(message, reply, "mailbox full: DROP_NEWEST dropped the new message")
            return True
        # DROP_OLDEST
        old_message, _, old_reply = self._queue.popleft()
        self._queue.append((message, self._now(), reply))
        self._on_drop(old_message, old_reply, "mailbox full: DROP_OLDEST dropped the oldest message")
        return True

    def put_nowait(self, message: Any, reply: asyncio.Future[Any] | None = None) -> None:
        """Enqueue without waiting; raise MailboxFull where the policy would wait."""
        if not self.try_put(message, reply):
            self.rejected += 1
            raise MailboxFull(self.path, self.capacity, self.overflow.name)

    def put_or_defer(self, message: Any, deferred: Callable[[Any], Any]) -> bool:
        """Enqueue the owner's own message (a timer to itself); where a sender would wait, defer it.

        Where a sender would wait or be refused (a full queue under BACKPRESSURE
        or REJECT, a new key under CONFLATE), ``deferred(message)`` goes on the
        system lane instead, served before the queued user messages, and is
        counted as ``deferred``, not ``rejected``: no sender is there to retry
        it, and a self-rescheduling poll must not stop because its actor is
        busy. Under DROP_NEWEST / DROP_OLDEST the policy drops as for any
        message. Returns True when queued as a user message. Never awaits;
        raises ActorStopped once the mailbox is closed.
        """
        if self._closed is not None:
            raise ActorStopped(self.path, self._closed)
        # REJECT would count a refusal before we could defer; its refusal is just "full".
        if not (self.overflow is Overflow.REJECT and len(self) >= self.capacity) and self.try_put(message):
            return True
        self.deferred += 1
        self.put_system(deferred(message))
        return False

    async def put(self, message: Any, reply: asyncio.Future[Any] | None = None) -> None:
        """Enqueue, waiting for space while the policy is BACKPRESSURE.

        Producers waiting for space are served in arrival order. Cancelling
        the wait leaves the message unsent, and so does an ask whose reply
        future completes (times out) while it waits. Raises ActorStopped if
        the mailbox closes while waiting.
        """
        ticket: int | None = None
        while True:
            if reply is not None and reply.done():
                # The ask gave up (timed out or was cancelled): nothing to send. Checked
                # before enqueueing, and space we were woken for goes to the next producer.
                if self.put_waiters and len(self) < self.capacity:
                    self.wake_producer()
                return
            if self.try_put(message, reply):
                return
            waiter: asyncio.Future[None] = self._loop.create_future()
            if ticket is None:
                ticket = self._next_ticket
                self._next_ticket += 1
                self.put_waiters.append((ticket, waiter))
            else:
                # Woken, but a producer that never waited took the space first: back
                # in line at our original place, not behind those who came later.
                insort(self.put_waiters, (ticket, waiter), key=_ticket)
            if reply is not None:
                reply.add_done_callback(functools.partial(_resolve_waiter, waiter))
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self.wake_producer()
                else:
                    with contextlib.suppress(ValueError):
                        self.put_waiters.remove((ticket, waiter))
                raise

    def wake_producer(self) -> None:
        waiters = self.put_waiters
        while waiters:
            _, waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    def put_system(self, message: Any) -> None:
        """Queue a control message; it is served before any user message. Never blocks."""
        self.system.append(message)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def put_front(self, messages: list[tuple[Any, asyncio.Future[Any] | None]]) -> None:
        """Queue ``(message, reply)`` pairs ahead of every queued user message, in their order.

        The owner's own messages coming back (an unstash): taken next, before
        anything a sender queued. They may take the queue past ``capacity``
        for a while: they were already accepted once, and refusing them now
        would lose them. Counted as ``enqueued`` again. Never awaits; raises
        ActorStopped once the mailbox is closed.
        """
        if self._closed is not None:
            raise ActorStopped(self.path, self._closed)
        if not messages:
            return
        now = self._now()
        queue = self._queue if self._queue is not _UNALLOCATED else self._allocate()
        queue.extendleft((message, now, reply) for message, reply in reversed(messages))
        self.enqueued += len(messages)
        self._wake_consumer()

    def _wake_consumer(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- consumer side -------------------------------------------------

    def take(self) -> Envelope:
        """Remove and return the oldest user message. The mailbox must not be empty.

        What a reader other than the owning slot uses (the test kit's probe). The slot's
        loop takes with ``pending.popleft()``, sampling one wait in ``wait_sample``
        (``record_wait``) and calling ``wake_producer`` while ``put_waiters``."""
        envelope = self.pending.popleft()
        taken = self._taken + 1
        self._taken = taken
        if not taken % self.wait_sample:
            self.record_wait(envelope[1])
        if self.put_waiters:
            self.wake_producer()
        return envelope

    def record_wait(self, enqueued_at: float) -> None:
        """Add one sampled wait (from ``enqueued_at`` to now) to the wait histogram."""
        waited = self._now() - enqueued_at
        self._wait_sum += waited
        counts = self._wait_counts
        if counts is None:
            counts = self._wait_counts = [0] * (len(WAIT_BUCKETS) + 1)
        # Bounds are inclusive (Prometheus' "le"): a wait equal to a bound counts in its bucket.
        counts[bisect_left(WAIT_BUCKETS, waited)] += 1

    def take_system(self) -> Any | None:
        """Remove and return the oldest system message, or None."""
        return self.system.pop(0) if self.system else None

    def wait(self) -> asyncio.Future[None]:
        """A future the consumer awaits while both lanes are empty; any put resolves it."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        if self.system or self._queue:
            waiter.set_result(None)
        else:
            self._waiter = waiter
        return waiter

    def has_system(self) -> bool:
        return bool(self.system)

    @property
    def consumer_waiting(self) -> bool:
        """The consumer is parked in :meth:`wait` on an empty mailbox: it runs no message now."""
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def close(self, reason: str) -> None:
        """Refuse new user messages from now on; producers waiting for space get ActorStopped."""
        if self._closed is not None:
            return
        self._closed = reason
        self.room = 0
        waiters = list(self.put_waiters)
        self.put_waiters.clear()
        for _, waiter in waiters:
            if not waiter.done():
                waiter.set_exception(ActorStopped(self.path, reason))

    def reopen(self) -> None:
        """Accept user messages again (used when a stopped slot is started anew)."""
        self._closed = None
        self.room = self.capacity

    def drain(self, reason: str) -> int:
        """Drop every queued user message to the drop hook with ``reason``; returns how many."""
        on_drop = self._on_drop
        envelopes = self._drain_envelopes()
        # Counted before the hooks run: a hook that reads the metrics sees the counters add up.
        self.dropped += len(envelopes)
        for message, _, reply in envelopes:
            on_drop(message, reply, reason)
        return len(envelopes)

    def _drain_envelopes(self) -> list[Envelope]:
        envelopes = list(self._queue)
        if envelopes:
            self._queue.clear()
        return envelopes

    def remove_system(self, message: Any) -> bool:
        """Take ``message`` (by identity) off the system lane if still queued; True if it was."""
        system = self.system
        for index, queued in enumerate(system):
            if queued is message:
                del system[index]
                return True
        return False

    def extract_system(self, selected: Callable[[Any], bool]) -> list[Any]:
        """Take every queued control message ``selected`` says yes to off the system lane, in
        order; the others stay queued in their order."""
        system = self.system
        if not any(selected(control) for control in system):
            return []
        taken = [control for control in system if selected(control)]
        system[:] = [control for control in system if not selected(control)]
        return taken

    def drain_system(self) -> list[Any]:
        messages = list(self.system)
        self.system.clear()
        return messages

    # -- metrics ---------------------------------------------------------

    def oldest_enqueued_at(self) -> float | None:
        return self._queue[0][1] if self._queue else None

    def metrics(self) -> MailboxMetrics:
        """A consistent snapshot of the counters and the consumer lag now."""
        oldest = self.oldest_enqueued_at()
        age = 0.0 if oldest is None or not self._metrics else max(0.0, self._now() - oldest)
        bounds = (*WAIT_BUCKETS, float("inf"))
        counts = self._wait_counts or [0] * len(bounds)
        return MailboxMetrics(
            depth=len(self),
            capacity=self.capacity,
            enqueued=self.enqueued,
            processed=self.processed,
            dropped=self.dropped,
            conflated=self.conflated,
            rejected=self.rejected,
            deferred=self.deferred,
            oldest_age_seconds=age,
            wait_count=sum(counts),
            wait_sum_seconds=self._wait_sum,
            wait_buckets=tuple(zip(bounds, counts, strict=True)),
        )


class KeyedQueue(OrderedDict[Hashable, Envelope]):
    """CONFLATE's queue: envelopes by key in order of the key's first arrival, taken from the
    front as from a deque (``popleft``)."""

    __slots__ = ()

    def popleft(self) -> Envelope:
        return self.popitem(last=False)[1]


class ConflatingMailbox(Mailbox):
    """CONFLATE: at most one queued message per key, in order of the key's first arrival."""

    __slots__ = ("_by_key", "_key")

    def __init__(
        self,
        config: MailboxConfig,
        *,
        path: str,
        now: Callable[[], float],
        on_drop: DropHook,
        done: asyncio.Future[None] | None = None,
    ) -> None:
        super().__init__(config, path=path, now=now, on_drop=on_drop, done=done)
        assert config.key is not None
        self._key: Callable[[Any], Hashable | None] = config.key
        self._by_key = KeyedQueue()
        self.pending = self._by_key

    def __len__(self) -> int:
        return len(self._by_key)

    def try_put(self, message: Any, reply: asyncio.Future[Any] | None = None) -> bool:
        if self._closed is not None:
            raise ActorStopped(self.path, self._closed)
        by_key = self._by_key
        key = self._key(message)
        if key is None:
            # A message the key function exempts from conflation: a key equal only to itself.
            # A bare object(), unlike an instance of a class of our own, is not tracked by the
            # garbage collector (one per proposal at capacity: young collections came sooner).
            key = object()
        replaced = by_key.get(key)
        if replaced is not None:
            # Assigning to an existing key keeps its place in the order.
            by_key[key] = (message, replaced[1], reply)
            self.enqueued += 1
            self.dropped += 1
            self.conflated += 1
            old_reply = replaced[2]
            if old_reply is not None and not old_reply.done():
                old_reply.set_exception(MessageDropped(self.path, "conflated by a newer message"))
            return True
        if len(by_key) >= self.capacity:
            return False
        by_key[key] = (message, self._now(), reply)
        self.enqueued += 1
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return True

    def put_front(self, messages: list[tuple[Any, asyncio.Future[Any] | None]]) -> None:
        """As :meth:`Mailbox.put_front`; the messages come back unconflated (a key equal only
        to itself each), since a newer message of the same key may already be queued behind."""
        if self._closed is not None:
            raise ActorStopped(self.path, self._closed)
        if not messages:
            return
        now = self._now()
        by_key = self._by_key
        for message, reply in reversed(messages):
            key = object()
            by_key[key] = (message, now, reply)
            by_key.move_to_end(key, last=False)
        self.enqueued += len(messages)
        self._wake_consumer()

    def send(self, message: Any) -> Awaitable[None]:
        if self.try_put(message):
            return self._done
        return self.put(message)

    def wait(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = self._loop.create_future()
        if self.system or self._by_key:
            waiter.set_result(None)
        else:
            self._waiter = waiter
        return waiter

    def _drain_envelopes(self) -> list[Envelope]:
        envelopes = list(self._by_key.values())
        self._by_key.clear()
        return envelopes

    def oldest_enqueued_at(self) -> float | None:
        if not self._by_key:
            return None
        return next(iter(self._by_key.values()))[1]


def make_mailbox(
    config: MailboxConfig,
    *,
    path: str,
    now: Callable[[], float],
    on_drop: DropHook,
    done: asyncio.Future[None] | None = None,
) -> Mailbox:
    """Build the mailbox class that fits the config's overflow policy. ``done``: a completed
    future for :meth:`Mailbox.send` to return (one of its own when None)."""
    cls = ConflatingMailbox if config.overflow is Overflow.CONFLATE else Mailbox
    return cls(config, path=path, now=now, on_drop=on_drop, done=done)
