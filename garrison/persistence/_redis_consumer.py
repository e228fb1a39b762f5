"""``RedisConsumer``: one consumer in a Redis consumer group on a RedisJournal stream.

XREADGROUP to read, XACK after the effect, XAUTOCLAIM to take over a dead
consumer's entries, a dead-letter journal stream for entries delivered too
often, and the group's lag from XINFO GROUPS.
"""

from __future__ import annotations

import time
from typing import Any

from garrison._aio import kept_cancelled
from garrison._errors import InvalidConfig
from garrison._validate import check_seconds
from garrison.persistence import _redis_scripts as scripts
from garrison.persistence._checksum import checksum
from garrison.persistence._journal import check_positive_int, check_stream
from garrison.persistence._redis import RedisJournal, as_text
from garrison.persistence._redis_ids import entry_id, entry_seq
from garrison.persistence._streams import Delivery


class RedisConsumer:
    """One consumer in a Redis consumer group on a journal stream: XREADGROUP, XACK, XAUTOCLAIM.

    Contract (DESIGN §6): at-least-once. An entry is delivered again until
    acked: to this consumer after a restart under the same name (its own
    pending entries come first), or to any live consumer of the group once
    it has been pending longer than ``claim_idle`` seconds (a dead consumer's
    entries are reclaimed; reclaiming is tried at least every
    ``claim_idle / 4`` seconds while reading). An entry delivered more than
    ``max_deliveries`` times is moved to the dead-letter stream — a journal
    stream, readable like any other, its Redis entries carrying the reason —
    and acked, so a poison entry cannot block the group. Ack only after the
    effect is durable (and guard the effect with the intent log: a reclaimed
    entry may have had its effect already).
    """

    def __init__(
        self,
        journal: RedisJournal,
        stream: str,
        group: str,
        consumer: str,
        *,
        claim_idle: float = 30.0,
        max_deliveries: int = 5,
        dead_letter_stream: str | None = None,
        batch: int = 100,
    ) -> None:
        check_stream(stream)
        for field, value in (("group", group), ("consumer", consumer)):
            if not isinstance(value, str) or not value:
                raise InvalidConfig(field, value, "must be a non-empty string")
        check_positive_int("max_deliveries", max_deliveries)
        check_seconds("claim_idle", claim_idle)
        check_positive_int("batch", batch)
        self.journal = journal
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.claim_idle = float(claim_idle)
        self.max_deliveries = max_deliveries
        self.dead_letter_stream = check_stream(dead_letter_stream or f"{stream}.dead-letters")
        self.batch = batch
        self.dead_lettered = 0
        self.reclaimed = 0
        """Entries this consumer took over from another (XAUTOCLAIM)."""
        self._key = journal.events_key(stream)
        # On Redis Cluster a dead-letter stream in another slot is written in two steps.
        self._dead_letters_apart = (
            journal.stream_keys(self.dead_letter_stream).slot != journal.stream_keys(stream).slot
        )
        self._own_cursor: str | None = "0-0"
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._dead_letter_script: Any = None
        self._renew_script: Any = None

    @property
    def name(self) -> str:
        """The group's name (as ``ConsumerGroup.name``: lag is per group)."""
        return self.group

    async def ensure_group(self, from_seq: int = 0) -> None:
        """Create the group (idempotent), delivering entries after ``from_seq``."""
        import redis.exceptions

        try:
            await self.journal.client().xgroup_create(
                self._key, self.group, id=entry_id(from_seq), mkstream=True
            )
        except redis.exceptions.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def read(self, *, block: float | None = None) -> list[Delivery]:
        """Entries for this consumer: its own unacked ones first (once, after it starts), then
        ones reclaimed from consumers idle longer than ``claim_idle``, then new ones (waiting
        up to ``block`` seconds of real time for new ones). Awaits one or two round trips."""
        client = self.journal.client()
        if self._own_cursor is not None:
            rows = await kept_cancelled(
                client.xreadgroup(self.group, self.consumer, {self._key: self._own_cursor}, count=self.batch)
            )
            entries = rows[0][1] if rows else []
            # Read on from the last one: a caller that has not acked them yet must not get
            # them again (each read would count as one more delivery).
            self._own_cursor = as_text(entries[-1][0]) if len(entries) >= self.batch else None
            entries = [entry for entry in entries if entry[1]]
            if entries:
                return await self._screen(client, entries)
        if time.monotonic() >= self._next_claim:
            entries = await self._claim(client)
            if entries:
                self.reclaimed += len(entries)
                return await self._screen(client, entries)
        rows = await kept_cancelled(
            client.xreadgroup(
                self.group,
                self.consumer,
                {self._key: ">"},
                count=self.batch,
                block=int(block * 1000) if block else None,
            )
        )
        entries = rows[0][1] if rows else []
        return [_delivery(self.stream, entry_id, fields, 1) for entry_id, fields in entries]

    async def _claim(self, client: Any) -> list[Any]:
        """Take over entries idle longer than ``claim_idle``. Scans the pending list on from
        where the last scan stopped (one XAUTOCLAIM looks at no more than 10 x COUNT
        pending entries), and waits ``claim_idle / 4`` after a full pass."""
        for _ in range(10):
            cursor, entries, *_ = await kept_cancelled(
                client.xautoclaim(
                    self._key,
                    self.group,
                    self.consumer,
                    int(self.claim_idle * 1000),
                    self._claim_cursor,
                    count=self.batch,
                )
            )
            self._claim_cursor = as_text(cursor)
            if self._claim_cursor == "0-0":
                self._next_claim = time.monotonic() + self.claim_idle / 4
            entries = [entry for entry in entries if entry[1]]
            if entries or self._claim_cursor == "0-0":
                return entries
        return []

    async def _screen(self, client: Any, entries: list[Any]) -> list[Delivery]:
        """Attach delivery counts; move entries delivered too often to the dead-letter stream."""
        async with client.pipeline(transaction=False) as pipe:
            for entry_id, _ in entries:
                pipe.xpending_range(self._key, self.group, min=entry_id, max=entry_id, count=1)
            pending: list[Any] = await kept_cancelled(pipe.execute())
        deliveries = []
        for (entry_id, fields), rows in zip(entries, pending, strict=True):
            times = int(rows[0]["times_delivered"]) if rows else 1
            delivery = _delivery(self.stream, entry_id, fields, times)
            if times > self.max_deliveries:
                await self._dead_letter(client, entry_id, delivery)
                continue
            deliveries.append(delivery)
        return deliveries

    async def _dead_letter(self, client: Any, entry_id: Any, delivery: Delivery) -> None:
        reason = (
            f"delivered {delivery.delivery_count} times to group {self.group!r} without an ack "
            f"(max_deliveries={self.max_deliveries})"
        )
        dead = self.journal.stream_keys(self.dead_letter_stream)
        args = [
            self.group,
            entry_id,
            delivery.payload,
            reason,
            self.stream,
            delivery.seq,
            delivery.delivery_count,
            checksum(delivery.payload),
        ]
        if self._dead_letters_apart:
            if self._dead_letter_script is None:
                self._dead_letter_script = client.register_script(scripts.DEAD_LETTER_APPEND)
            marker = f"dead-letter:{self.stream}:{self.group}:{delivery.seq}"
            written = int(await self._dead_letter_script(keys=[dead.events, dead.meta], args=[*args, marker]))
            await client.xack(self._key, self.group, entry_id)
            moved = written > 0
        else:
            if self._dead_letter_script is None:
                self._dead_letter_script = client.register_script(scripts.DEAD_LETTER)
            moved = bool(await self._dead_letter_script(keys=[self._key, dead.events, dead.meta], args=args))
        if moved:
            self.dead_lettered += 1

    async def ack(self, *seqs: int) -> int:
        """Acknowledge entries by seq after their effect is durable; returns how many were pending."""
        if not seqs:
            return 0
        return int(await self.journal.client().xack(self._key, self.group, *(entry_id(seq) for seq in seqs)))

    async def renew(self, *seqs: int) -> set[int]:
        """Keep holding entries delivered to this consumer: those still pending under its name
        have their idle time reset, so no other consumer reclaims them for another
        ``claim_idle``; returns the seqs renewed (one missing was acked, or claimed by another
        consumer after this one stayed silent for ``claim_idle``). Awaits one round trip.

        A consumer that holds entries for longer than ``claim_idle`` renews them every
        ``claim_idle / 4`` or so, and acts on an entry (a send) only while its last renewal
        is recent: an idle threshold cannot tell a slow consumer from a dead one.
        """
        if not seqs:
            return set()
        client = self.journal.client()
        if self._renew_script is None:
            self._renew_script = client.register_script(scripts.RENEW)
        kept = await kept_cancelled(
            self._renew_script(
                keys=[self._key], args=[self.group, self.consumer, *(entry_id(seq) for seq in seqs)]
            )
        )
        return {entry_seq(entry_id) for entry_id in kept}

    async def lag(self) -> int:
        """Entries of the stream this group has not acked: never delivered plus pending.

        Read from the server (XINFO GROUPS), so it counts every consumer of the
        group in every process; the same figure as ``ConsumerGroup.lag()``."""
        client = self.journal.client()
        if not await client.exists(self._key):
            return 0
        for info in await client.xinfo_groups(self._key):
            if as_text(info["name"]) == self.group:
                undelivered = info.get("lag")
                if undelivered is None:
                    undelivered = max(
                        0, await self.journal.highest_seq(self.stream) - entry_seq(info["last-delivered-id"])
                    )
                return int(undelivered) + int(info["pending"])
        return await self.journal.highest_seq(self.stream)


def _delivery(stream: str, entry_id: Any, fields: Any, times: int) -> Delivery:
    return Delivery(stream, entry_seq(entry_id), fields[b"p"], times)
