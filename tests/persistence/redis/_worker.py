"""An order-intent worker: one consumer of a Redis consumer group, effects guarded by an intent log.

Run as ``python _worker.py URL NAMESPACE CONSUMER [--claim-idle S] [--die-after-effect]``.
It consumes the ``orders`` journal stream through the group ``executors``
(RedisConsumer), and for each order:

1. records an intent under an id derived from the order (``client_order_id``)
   in the ``intents`` stream, which every worker shares (IntentLog: a second
   record of an id writes nothing and returns the first);
2. decides from the durable state, read fresh (``refresh``): DONE means
   nothing to do; SENDING means a worker may have sent it and died — ask the
   venue before sending again; RECORDED means it was certainly never sent;
3. moves it to SENDING (durable) before sending, sends, moves it to DONE;
4. and only then acks the entry (XACK).

The venue (``Venue``) is Redis too: ``send`` appends one effect to an
``effects`` stream and indexes it by client order id, atomically; it does
not dedupe, so an order sent twice shows up twice. ``--die-after-effect``
SIGKILLs the worker right after its first send, before the DONE move and
the ack. Prints ``ready``, then ``handled N reclaimed M redelivered K`` per
batch (M taken over from other consumers, K delivered before, to anyone).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from garrison.persistence import (
    Delivery,
    Intent,
    IntentLog,
    IntentState,
    IntentTransitionError,
    RedisConnection,
    RedisConsumer,
    RedisJournal,
    client_order_id,
)

ORDERS = "orders"
INTENTS = "intents"
GROUP = "executors"


class Order(msgspec.Struct, frozen=True):
    order_id: str
    symbol: str
    quantity: int


def intent_id(order: Order) -> str:
    return client_order_id("redis-orders", int(order.order_id.rsplit("-", 1)[1]))


SEND_SCRIPT = """
for i = 1, #ARGV, 2 do
    redis.call('XADD', KEYS[1], '*', 'coid', ARGV[i], 'order', ARGV[i + 1])
    redis.call('HINCRBY', KEYS[2], ARGV[i], 1)
end
return 1
"""
"""The venue's send: each order's effect and its index entry, committed together."""


class Venue:
    """The broker stand-in: effects land in a stream, indexed by client order id. No dedupe."""

    def __init__(self, journal: RedisJournal) -> None:
        self.journal = journal
        # One hash tag: the two keys commit in one script, which a Redis Cluster keeps to one slot.
        self.effects_key = f"{journal.namespace}:{{venue}}:effects"
        self.index_key = f"{journal.namespace}:{{venue}}:by-client-order-id"

    async def send(self, orders: Sequence[tuple[str, Order]]) -> None:
        # One script, not a MULTI pipeline: redis-py's cluster client refuses transactions in
        # its older releases (the floor), and a script is as atomic.
        fields = [value for coid, order in orders for value in (coid, order.order_id)]
        await self.journal.client().eval(SEND_SCRIPT, 2, self.effects_key, self.index_key, *fields)

    async def lookup(self, coid: str) -> bool:
        """Did the venue ever get this order? (Reliable: the index commits with the effect.)"""
        return bool(await self.journal.client().hexists(self.index_key, coid))

    async def effects(self) -> list[str]:
        rows = await self.journal.client().xrange(self.effects_key)
        return [fields[b"coid"].decode() for _, fields in rows]


class OrderExecutor:
    """Handles batches of deliveries: at most one effect per order, acked after it."""

    def __init__(
        self,
        consumer: RedisConsumer,
        log: IntentLog[Order],
        venue: Venue,
        *,
        die_after_effect: bool = False,
    ) -> None:
        self.consumer = consumer
        self.log = log
        self.venue = venue
        self.die_after_effect = die_after_effect
        self.sent = 0

    async def handle(self, deliveries: Sequence[Delivery]) -> None:
        decoder = msgspec.msgpack.Decoder(Order)
        orders = {delivery.seq: decoder.decode(delivery.payload) for delivery in deliveries}
        # What the other workers did (one of them may have died mid-order) decides.
        await self.log.refresh()
        recorded = await asyncio.gather(*(self.log.record(intent_id(o), o) for o in orders.values()))
        finishing: list[asyncio.Future[None]] = []
        candidates: dict[int, Intent[Order]] = {}
        for seq, intent in zip(orders, recorded, strict=True):
            if intent.terminal:
                continue
            if intent.may_have_happened and await self.venue.lookup(intent.id):
                finishing.append(self.log.move_nowait(intent.id, IntentState.DONE, "found at the venue"))
                continue
            candidates[seq] = intent
        moves = await asyncio.gather(
            *(self.log.move_nowait(i.id, IntentState.SENDING) for i in candidates.values()),
            return_exceptions=True,
        )
        _raise_unexpected(moves)
        mine = await self._owned(list(orders))
        # Sent only if SENDING is durable and the entry is still ours: a consumer slower
        # than claim_idle may have lost it to another, which then decides.
        to_send = [
            (intent.id, intent.payload)
            for (seq, intent), moved in zip(candidates.items(), moves, strict=True)
            if moved is None and seq in mine
        ]
        if to_send:
            await self.venue.send(to_send)
            self.sent += len(to_send)
            if self.die_after_effect:
                os.kill(os.getpid(), signal.SIGKILL)
            finishing.extend(self.log.move_nowait(coid, IntentState.DONE, "sent") for coid, _ in to_send)
        _raise_unexpected(await asyncio.gather(*finishing, return_exceptions=True))
        await self.consumer.ack(*(seq for seq in orders if seq in mine))

    async def _owned(self, seqs: Sequence[int]) -> set[int]:
        """The entries still pending under this consumer's name."""
        key = self.consumer.journal.events_key(ORDERS)
        async with self.consumer.journal.client().pipeline(transaction=False) as pipe:
            for seq in seqs:
                pipe.xpending_range(key, GROUP, min=f"{seq}-0", max=f"{seq}-0", count=1)
            replies: list[Any] = await pipe.execute()
        return {
            seq
            for seq, rows in zip(seqs, replies, strict=True)
            if rows and rows[0]["consumer"].decode() == self.consumer.consumer
        }


def _raise_unexpected(outcomes: Sequence[object]) -> None:
    """A move another worker's moves made illegal (it finished the order) is expected."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, IntentTransitionError):
            raise outcome


async def work(
    url: str, namespace: str, name: str, claim_idle: float, die_after_effect: bool, *, cluster: bool = False
) -> None:
    async with RedisJournal(RedisConnection(url=url, cluster=cluster), namespace=namespace) as journal:
        consumer = RedisConsumer(
            journal, ORDERS, GROUP, name, claim_idle=claim_idle, max_deliveries=1000, batch=20
        )
        await consumer.ensure_group()
        log = await IntentLog(journal, INTENTS, Order).open()
        executor = OrderExecutor(consumer, log, Venue(journal), die_after_effect=die_after_effect)
        print("ready", flush=True)
        while True:
            before = consumer.reclaimed
            deliveries = await consumer.read(block=0.1)
            if deliveries:
                await executor.handle(deliveries)
                again = sum(delivery.delivery_count > 1 for delivery in deliveries)
                print(
                    f"handled {len(deliveries)} reclaimed {consumer.reclaimed - before} redelivered {again}",
                    flush=True,
                )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("consumer")
    parser.add_argument("--claim-idle", type=float, default=0.5)
    parser.add_argument("--die-after-effect", action="store_true")
    parser.add_argument("--cluster", action="store_true", help="url is a node of a Redis Cluster")
    args = parser.parse_args(argv)
    asyncio.run(
        work(
            args.url,
            args.namespace,
            args.consumer,
            args.claim_idle,
            args.die_after_effect,
            cluster=args.cluster,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
