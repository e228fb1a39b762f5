"""Durable streams with consumer groups: at-least-once delivery, ack after the effect.

Contract at this boundary (DESIGN §6):

- enters: payloads appended to a journal stream, each with a gap-free seq;
- duplicates: possible — an entry is redelivered after a crash until acked;
- acknowledgement: cumulative, per group (``ack(seq)`` covers every entry
  up to seq), stored in the journal;
- before the ack: the consumer's durable effect. On SQLite commit the effect
  and the ack together: ``journal.append(..., acks=[group.ack_marker(seq)])``;
- cancelled or killed mid-entry: nothing was acked, so the entry comes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import msgspec

from garrison._clock import Clock, MonotonicClock
from garrison._errors import InvalidConfig, SequenceConflict
from garrison.persistence._journal import Ack, Journal, check_positive_int, check_seq, check_stream


class Delivery(msgspec.Struct, frozen=True):
    """One entry handed to a consumer group."""

    stream: str
    seq: int
    payload: bytes
    delivery_count: int = 1
    """How many times this entry has been delivered (Redis groups count; SQLite groups say 1)."""


class DurableStream:
    """A journal stream that producers append to and consumer groups read.

    Appends from this object are serialized and retried on SequenceConflict
    (another producer appended first), so several producers can share a
    stream. Consumer groups made from this object are woken as soon as an
    entry lands through it; appends by other objects or processes are seen
    at the next poll.
    """

    def __init__(self, journal: Journal, name: str) -> None:
        self.journal = journal
        self.name = check_stream(name)
        self._highest: int | None = None
        self._lock = asyncio.Lock()
        self._appended = asyncio.Event()

    async def append(self, *payloads: bytes) -> int:
        """Append payloads atomically; returns the seq of the last one. Awaits durability.

        Retries when another producer appended first; raises SequenceConflict
        only if it lost that race 100 times in a row."""
        if not payloads:
            raise InvalidConfig("payloads", (), "append at least one payload")
        async with self._lock:
            conflict: SequenceConflict | None = None
            for _ in range(100):
                if self._highest is None:
                    self._highest = await self.journal.highest_seq(self.name)
                try:
                    self._highest = await self.journal.append(self.name, list(payloads), self._highest)
                except SequenceConflict as error:
                    # Retry from where the journal says the stream is: it may know
                    # better than a fresh read (and must agree before it accepts).
                    conflict = error
                    self._highest = error.actual_seq if error.actual_seq >= 0 else None
                    continue
                break
            else:
                assert conflict is not None
                raise conflict
        self._appended.set()
        self._appended = asyncio.Event()
        return self._highest

    async def highest_seq(self) -> int:
        return await self.journal.highest_seq(self.name)

    def next_append(self) -> asyncio.Event:
        """An event that the next append through this object sets (each append makes a new one).

        Take it *before* reading the stream: an append that lands while the read goes
        on then sets the event already taken, so a reader waiting on it misses
        nothing. Appends by other objects or processes never set it (poll for those).
        """
        return self._appended

    def group(self, name: str, *, batch: int = 100) -> ConsumerGroup:
        """The consumer group ``name`` on this stream (its offset lives in the journal)."""
        return ConsumerGroup(self, name, batch=batch)


class ConsumerGroup:
    """Reads a durable stream from the group's acknowledged offset.

    A fresh ConsumerGroup (after a restart) starts again right after the
    last ack, so whatever was delivered but not acked is delivered again.
    """

    def __init__(self, stream: DurableStream, name: str, *, batch: int = 100) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidConfig("group", name, "a consumer group name is a non-empty string")
        check_positive_int("batch", batch)
        self.stream = stream
        self.name = name
        self.batch = batch
        self._cursor: int | None = None
        self._acked = 0

    async def _position(self) -> int:
        if self._cursor is None:
            self._acked = await self.stream.journal.acked_seq(self.stream.name, self.name)
            self._cursor = self._acked
        return self._cursor

    async def read(self) -> list[Delivery]:
        """Up to ``batch`` entries after those already delivered; [] when caught up. Never waits."""
        cursor = await self._position()
        deliveries: list[Delivery] = []
        async with aclosing(self.stream.journal.read(self.stream.name, cursor)) as entries:
            async for seq, payload in entries:
                deliveries.append(Delivery(self.stream.name, seq, payload))
                if len(deliveries) >= self.batch:
                    break
        if deliveries:
            self._cursor = deliveries[-1].seq
        return deliveries

    async def subscribe(
        self, *, clock: Clock | None = None, poll_interval: float = 0.05
    ) -> AsyncIterator[Delivery]:
        """Deliver entries forever: woken by appends in this process, polling for others."""
        clock = clock if clock is not None else MonotonicClock()
        while True:
            # Taken before reading: an append that lands while we read sets this
            # very event, so it is never missed.
            appended = self.stream.next_append()
            deliveries = await self.read()
            for delivery in deliveries:
                yield delivery
            if deliveries:
                continue
            waiter = asyncio.ensure_future(appended.wait())
            sleeper = asyncio.ensure_future(clock.sleep(poll_interval))
            try:
                await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                sleeper.cancel()

    def ack_marker(self, seq: int) -> Ack:
        """An Ack to commit with the consumer's own append (effect and offset in one transaction).

        Call ``acked(seq)`` after that append returns."""
        return Ack(self.stream.name, self.name, check_seq("seq", seq))

    def acked(self, seq: int) -> None:
        """Record locally that ``seq`` was acked through an append's ``acks``."""
        self._acked = max(self._acked, seq)

    async def ack(self, seq: int) -> None:
        """Acknowledge every entry up to ``seq`` durably (after the effect is durable)."""
        await self.stream.journal.ack(self.stream.name, self.name, seq)
        self._acked = max(self._acked, seq)

    def rewind(self) -> None:
        """Deliver again from the last ack (after a failed effect, without a restart)."""
        if self._cursor is not None:
            self._cursor = self._acked

    @property
    def acked_seq(self) -> int:
        """The highest seq this object knows the group acknowledged (``lag()`` refreshes it)."""
        return self._acked

    async def lag(self) -> int:
        """Consumer lag: last appended seq minus the group's last durably acked seq.

        Reads both from the journal, so it counts acks made by any consumer of
        the group, in any process. Awaits two reads."""
        if self._cursor is None:
            await self._position()  # reads the acked seq as it places the cursor
        else:
            self._acked = max(self._acked, await self.stream.journal.acked_seq(self.stream.name, self.name))
        return max(0, await self.stream.highest_seq() - self._acked)
