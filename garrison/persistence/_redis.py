"""``RedisJournal``: the Journal protocol on Redis Streams, for work across processes and hosts.

One Redis stream per journal stream, entry ids ``<seq>-0``: the server itself
refuses an entry id at or below the stream's top, so a stale or duplicate
append can never land. Each append runs as one Lua script (atomic: the
expected-seq check, every XADD, the consumer acks), and appends waiting at
the same moment travel in one pipeline: one round trip, and with
``appendfsync always`` one fsync on the server, for many producers.

Durability (see docs/persistence.md): with ``appendonly yes`` and
``appendfsync always`` an acknowledged append is on disk before Redis
replies; with ``everysec`` up to a second of acknowledged appends can be lost
on a crash of the Redis host. ``confirm_aof=True`` makes every append wait
for ``WAITAOF`` where the server has it (7.2+), and otherwise refuses to open
unless the server runs with ``appendfsync always``.

A connection lost mid-append is ambiguous: the journal reconnects and runs
the same conditional append again, and if the stream has moved it reads the
entries back to see whether they are its own. It never appends blindly.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from garrison._errors import InvalidConfig, JournalClosed, JournalWriteError, SequenceConflict
from garrison.persistence._journal import Ack, ReadsInBatches, check_append, check_seq, check_stream
from garrison.persistence._sqlite import BATCH_BUCKETS, LATENCY_BUCKETS
from garrison.persistence._streams import Delivery
from garrison.persistence._writer import PendingAppend, WriterQueue

_APPEND = """
local current = tonumber(redis.call('HGET', KEYS[2], 'highest') or '0')
local expected = tonumber(ARGV[1])
if current ~= expected then return {0, current} end
local n = tonumber(ARGV[2])
for i = 1, n do
  redis.call('XADD', KEYS[1], string.format('%d-0', expected + i), 'p', ARGV[2 + i])
end
if n > 0 then redis.call('HSET', KEYS[2], 'highest', string.format('%d', expected + n)) end
local a = 3 + n
for k = 3, #KEYS do
  local group = ARGV[a]
  local seq = tonumber(ARGV[a + 1])
  a = a + 2
  local old = tonumber(redis.call('HGET', KEYS[k], group) or '0')
  if seq > old then redis.call('HSET', KEYS[k], group, ARGV[a - 1]) end
end
return {1, expected + n}
"""

_SNAPSHOT = """
local old = tonumber(redis.call('HGET', KEYS[1], 'snapshot_seq') or '-1')
if tonumber(ARGV[1]) >= old then
  redis.call('HSET', KEYS[1], 'snapshot_seq', ARGV[1], 'snapshot', ARGV[2])
end
return 1
"""

_ACK = """
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > old then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""

# Dead-letter an entry: ack it in the group and, only if this call acked it (a
# racing consumer may have), append it to the dead-letter journal stream under
# the next seq, with the reason beside the payload. One script: both or neither.
_DEAD_LETTER = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local seq = tonumber(redis.call('HGET', KEYS[3], 'highest') or '0') + 1
redis.call('XADD', KEYS[2], string.format('%d-0', seq), 'p', ARGV[3], 'reason', ARGV[4],
  'stream', ARGV[5], 'seq', ARGV[6], 'group', ARGV[1], 'deliveries', ARGV[7])
redis.call('HSET', KEYS[3], 'highest', string.format('%d', seq))
return seq
"""

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, *_CONNECTION_ERRORS)


class RedisJournal(ReadsInBatches):
    """A journal on a Redis server (redis-py asyncio; ``pip install 'garrison[redis]'``).

    ``url`` as redis-py takes it (``redis://127.0.0.1:6379/0``). ``namespace``
    prefixes every key; keys of one stream share a hash tag so they live in
    one cluster slot. ``ambiguity_timeout`` bounds how long an append keeps
    reconnecting to resolve a lost connection before it reports
    JournalWriteError (outcome unknown: read back).
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "garrison",
        read_batch: int = 1000,
        confirm_aof: bool = False,
        ambiguity_timeout: float = 10.0,
        socket_timeout: float = 5.0,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise InvalidConfig("url", url, "a Redis URL such as redis://127.0.0.1:6379/0")
        if isinstance(read_batch, bool) or not isinstance(read_batch, int) or read_batch <= 0:
            raise InvalidConfig("read_batch", read_batch, "must be an int > 0")
        self.url = url
        self.namespace = namespace
        self.read_batch = read_batch
        self.confirm_aof = confirm_aof
        self.ambiguity_timeout = ambiguity_timeout
        self.socket_timeout = socket_timeout
        self.commits = 0
        self.appends = 0
        self.resolved_ambiguous = 0
        """Appends whose connection dropped and that were settled by reading back."""
        self._latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._batch_counts = [0] * (len(BATCH_BUCKETS) + 1)
        self._client: Any = None
        self._writer_client: Any = None
        self._append_script: Any = None
        self._snapshot_script: Any = None
        self._ack_script: Any = None
        self._append_sha = ""
        self._waitaof = False
        self._queue: WriterQueue[PendingAppend] = WriterQueue()
        self._writer: asyncio.Task[None] | None = None

    # -- keys ---------------------------------------------------------------------------

    def events_key(self, stream: str) -> str:
        return f"{self.namespace}:{{{stream}}}:events"

    def _meta_key(self, stream: str) -> str:
        return f"{self.namespace}:{{{stream}}}:meta"

    def _offsets_key(self, stream: str) -> str:
        return f"{self.namespace}:{{{stream}}}:offsets"

    # -- open and close ------------------------------------------------------------------

    async def open(self) -> RedisJournal:
        if self._writer is not None:
            return self
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as error:
            raise InvalidConfig(
                "url", self.url, "RedisJournal needs redis-py: pip install 'garrison[redis]'"
            ) from error
        # No retries inside redis-py: a re-sent append whose first reply was lost would
        # come back as a conflict with itself. The journal settles a lost reply itself.
        client = aioredis.Redis.from_url(
            self.url,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )
        # The writer's own connections: their round trips are bounded by the writer
        # (asyncio.timeout around each commit), not per socket operation, which in
        # redis-py costs a task per send (a fifth of a lone producer's append rate).
        writer_client = aioredis.Redis.from_url(
            self.url,
            socket_timeout=None,
            socket_connect_timeout=self.socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            try:
                info = await client.info("server")
            except _redis_errors() as error:
                raise ConnectionError(f"cannot reach Redis at {self.url}: {error}") from error
            version = tuple(int(part) for part in str(info.get("redis_version", "0")).split(".")[:2])
            self._waitaof = version >= (7, 2)
            if self.confirm_aof and not self._waitaof:
                config = await client.config_get("appendfsync")
                appendonly = await client.config_get("appendonly")
                if appendonly.get("appendonly") != "yes" or config.get("appendfsync") != "always":
                    raise InvalidConfig(
                        "confirm_aof",
                        True,
                        f"Redis {info.get('redis_version')} has no WAITAOF; run it with appendonly yes and "
                        "appendfsync always so every acknowledged append is on disk",
                    )
        except BaseException:
            await client.aclose()
            await writer_client.aclose()
            raise
        self._client = client
        self._writer_client = writer_client
        self._append_script = client.register_script(_APPEND)
        self._snapshot_script = client.register_script(_SNAPSHOT)
        self._ack_script = client.register_script(_ACK)
        await self._load_scripts(client)
        self._queue.reopen()
        self._writer = asyncio.get_running_loop().create_task(
            self._write_loop(), name="garrison:redis-journal"
        )
        return self

    async def close(self) -> None:
        writer = self._writer
        if writer is None:
            return
        self._writer = None
        self._queue.close()
        await asyncio.wait({writer})
        for append in self._queue.drain():
            append.fail(JournalClosed(self.url))
        await self._client.aclose()
        await self._writer_client.aclose()
        self._client = self._writer_client = None

    async def __aenter__(self) -> RedisJournal:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _redis(self) -> Any:
        if self._client is None:
            raise JournalClosed(self.url)
        return self._client

    # -- appends (group commit over one pipeline) -----------------------------------------

    async def append(
        self, stream: str, events: Sequence[bytes], expected_seq: int, *, acks: Sequence[Ack] = ()
    ) -> int:
        """Append atomically after ``expected_seq``; returns the new highest seq once Redis
        acknowledged it (and, with ``confirm_aof``, once it reached the AOF). Raises
        SequenceConflict (nothing written) or JournalWriteError (outcome unknown)."""
        check_append(stream, events, expected_seq)
        if not events and not acks:
            return expected_seq
        if self._writer is None:
            raise JournalClosed(self.url)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put(PendingAppend(stream, events, expected_seq, acks, future))
        started = time.monotonic()
        highest = await future
        latency = time.monotonic() - started
        self._latency_sum += latency
        self._latency_counts[bisect_left(LATENCY_BUCKETS, latency)] += 1
        return highest

    def _script_call(self, append: PendingAppend) -> tuple[list[str], list[Any]]:
        keys = [self.events_key(append.stream), self._meta_key(append.stream)]
        args: list[Any] = [append.expected_seq, len(append.events), *append.events]
        for ack in append.acks:
            keys.append(self._offsets_key(ack.stream))
            args.extend((ack.group, ack.seq))
        return keys, args

    async def _write_loop(self) -> None:
        while (batch := await self._queue.next_batch()) is not None:
            try:
                await self._commit(batch)
            except Exception as error:
                # Whatever went wrong, the writer lives on: a dead writer would leave
                # every later append waiting forever.
                for append in batch:
                    append.fail(JournalWriteError(append.stream, error))

    async def _commit(self, batch: list[PendingAppend]) -> None:
        client = self._writer_client
        # A round trip that takes longer is treated as a lost connection (settled by
        # reading back); WAITAOF may itself wait up to socket_timeout.
        limit = self.socket_timeout * (2 if self.confirm_aof else 1)
        try:
            async with asyncio.timeout(limit):
                results, confirmation = await self._pipeline(client, batch)
            lost = [index for index, result in enumerate(results) if _is_noscript(result)]
            if lost:
                # The server lost its script cache (SCRIPT FLUSH, a failover): those did not
                # run. Run exactly those again, once the script is loaded.
                async with asyncio.timeout(limit):
                    await self._load_scripts(client)
                    retried, confirmation = await self._pipeline(client, [batch[i] for i in lost])
                for index, result in zip(lost, retried, strict=True):
                    results[index] = result
        except _redis_errors():
            for append in batch:
                await self._resolve(append)
            return
        unconfirmed = self._unconfirmed(confirmation)
        self.commits += 1
        self._batch_counts[bisect_left(BATCH_BUCKETS, len(batch))] += 1
        for append, result in zip(batch, results, strict=True):
            if unconfirmed is not None and not isinstance(result, Exception):
                # Written (the script ran), but not confirmed on disk: the outcome is
                # unknown to the caller in the sense that matters, durability.
                append.fail(JournalWriteError(append.stream, unconfirmed))
                continue
            self._settle(append, result)

    async def _pipeline(self, client: Any, batch: list[PendingAppend]) -> tuple[list[Any], list[Any]]:
        """One round trip: every append's script, then the AOF confirmation asked for."""
        if len(batch) == 1 and not self.confirm_aof:
            # A lone append skips the pipeline object (and the task its reset spawns).
            import redis.exceptions

            keys, args = self._script_call(batch[0])
            try:
                return [await client.evalsha(self._append_sha, len(keys), *keys, *args)], []
            except redis.exceptions.ResponseError as error:
                return [error], []
        # EVALSHA directly: redis-py's script objects re-check the cache on every pipeline.
        async with client.pipeline(transaction=False) as pipe:
            for append in batch:
                keys, args = self._script_call(append)
                pipe.evalsha(self._append_sha, len(keys), *keys, *args)
            self._queue_confirmation(pipe)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results[: len(batch)], results[len(batch) :]

    def _queue_confirmation(self, pipe: Any) -> None:
        if not self.confirm_aof:
            return
        if self._waitaof:
            pipe.execute_command("WAITAOF", 1, 0, int(self.socket_timeout * 1000))
        else:
            # No WAITAOF before 7.2: with appendonly yes and appendfsync always, Redis
            # fsyncs the scripts' writes before it sends any reply; read the policy in
            # the same round trip, after them, so a CONFIG SET since open() is seen.
            pipe.execute_command("CONFIG GET", "appendonly")
            pipe.execute_command("CONFIG GET", "appendfsync")

    def _unconfirmed(self, confirmation: list[Any]) -> BaseException | None:
        """Why the appends of this round trip are not confirmed on disk, or None if they are."""
        if not self.confirm_aof:
            return None
        if self._waitaof:
            reply = confirmation[0] if confirmation else None
            if isinstance(reply, Exception) or not reply or int(reply[0]) < 1:
                return RuntimeError(f"WAITAOF did not confirm the local AOF fsync: {reply!r}")
            return None
        settings: dict[str, str] = {}
        for reply in confirmation:
            if isinstance(reply, Exception):
                return RuntimeError(f"could not read the AOF policy: {reply}")
            settings.update({_text(key): _text(value) for key, value in dict(reply).items()})
        if settings.get("appendonly") != "yes" or settings.get("appendfsync") != "always":
            return RuntimeError(
                f"written, but the server now runs appendonly={settings.get('appendonly')} "
                f"appendfsync={settings.get('appendfsync')}: not confirmed on disk (confirm_aof needs "
                "appendonly yes and appendfsync always on a server without WAITAOF)"
            )
        return None

    async def _load_scripts(self, client: Any) -> None:
        self._append_sha = await client.script_load(_APPEND)

    def _settle(self, append: PendingAppend, result: Any) -> None:
        if isinstance(result, Exception):
            append.fail(JournalWriteError(append.stream, result))
            return
        accepted, highest = int(result[0]), int(result[1])
        if accepted:
            self.appends += 1
            if not append.future.done():
                append.future.set_result(highest)
        else:
            append.fail(SequenceConflict(append.stream, append.expected_seq, highest))

    async def _resolve(self, append: PendingAppend) -> None:
        """The connection dropped mid-append: run the same conditional append again, and if
        the stream moved, read back whether the entries are ours. Never appends blindly."""
        deadline = time.monotonic() + self.ambiguity_timeout
        delay = 0.05
        while True:
            try:
                outcome = await self._settle_ambiguous(append)
            except _redis_errors() as error:
                if time.monotonic() >= deadline:
                    append.fail(JournalWriteError(append.stream, error))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self.resolved_ambiguous += 1
            if isinstance(outcome, BaseException):
                append.fail(outcome)
            else:
                self.appends += 1
                append.succeed(outcome)
            return

    async def _settle_ambiguous(self, append: PendingAppend) -> int | BaseException:
        """Run the conditional append again; the new highest seq, or the error to report."""
        keys, args = self._script_call(append)
        client = self._redis()
        async with client.pipeline(transaction=False) as pipe:
            # The script object loads the script if the server lost it (a restart).
            await self._append_script(keys=keys, args=args, client=pipe)
            marked = self.confirm_aof and self._waitaof
            if marked:
                # WAITAOF waits for this connection's last write: make one, so that it
                # also covers entries the lost connection may have written before it.
                pipe.hincrby(self._meta_key(append.stream), "resolved", 1)
            self._queue_confirmation(pipe)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        result, confirmation = replies[0], replies[2:] if marked else replies[1:]
        if isinstance(result, Exception):
            if isinstance(result, _redis_errors()):
                raise result
            return JournalWriteError(append.stream, result)
        accepted, highest = int(result[0]), int(result[1])
        expected, count = append.expected_seq, len(append.events)
        if not accepted and highest >= expected + count:
            if count:
                mine = await self._entries(append.stream, expected, count)
                if len(mine) < count:
                    # Trimmed since: whether they were ours cannot be told any more.
                    return JournalWriteError(
                        append.stream, RuntimeError("the entries to read back were deleted")
                    )
                accepted = int(mine == list(append.events))
            else:
                # Acks alone: they are ours if every offset is where the append put it.
                accepted = int(await self._acks_applied(append.acks))
            highest = expected + count if accepted else highest
        if not accepted:
            return SequenceConflict(append.stream, expected, highest)
        unconfirmed = self._unconfirmed(confirmation)
        if unconfirmed is not None:
            return JournalWriteError(append.stream, unconfirmed)
        return highest

    async def _acks_applied(self, acks: Sequence[Ack]) -> bool:
        for ack in acks:
            if await self.acked_seq(ack.stream, ack.group) < ack.seq:
                return False
        return True

    async def _entries(self, stream: str, after_seq: int, count: int) -> list[bytes]:
        rows = await self._redis().xrange(self.events_key(stream), f"{after_seq + 1}-0", "+", count=count)
        return [bytes(fields[b"p"]) for _, fields in rows]

    # -- other writes ------------------------------------------------------------------------

    async def save_snapshot(self, stream: str, seq: int, state: bytes) -> None:
        check_stream(stream)
        check_seq("seq", seq)
        if not isinstance(state, bytes):
            raise InvalidConfig("state", type(state).__name__, "a snapshot state must be bytes")
        client = self._redis()
        try:
            await self._snapshot_script(keys=[self._meta_key(stream)], args=[seq, state], client=client)
        except _redis_errors() as error:
            raise JournalWriteError(stream, error) from error

    async def delete_events(self, stream: str, up_to_seq: int) -> None:
        """Delete events up to ``up_to_seq``, but never one a consumer group has not acked."""
        check_stream(stream)
        check_seq("up_to_seq", up_to_seq)
        client = self._redis()
        key = self.events_key(stream)
        limit = up_to_seq
        try:
            if await client.exists(key):
                for group in await client.xinfo_groups(key):
                    limit = min(limit, await _unacked_floor(client, key, group))
            if limit > 0:
                await client.xtrim(key, minid=f"{limit + 1}-0", approximate=False)
        except _redis_errors() as error:
            raise JournalWriteError(stream, error) from error

    async def ack(self, stream: str, group: str, seq: int) -> None:
        check_stream(stream)
        check_seq("seq", seq)
        client = self._redis()
        try:
            await self._ack_script(keys=[self._offsets_key(stream)], args=[group, seq], client=client)
        except _redis_errors() as error:
            raise JournalWriteError(stream, error) from error

    # -- reads ----------------------------------------------------------------------------------

    async def read_batches(
        self, stream: str, after_seq: int = 0
    ) -> AsyncGenerator[list[tuple[int, bytes]], None]:
        check_stream(stream)
        check_seq("after_seq", after_seq)
        client = self._redis()
        key = self.events_key(stream)
        cursor = after_seq
        while True:
            rows = await client.xrange(key, f"{cursor + 1}-0", "+", count=self.read_batch)
            if not rows:
                return
            batch = [(int(entry_id.split(b"-", 1)[0]), bytes(fields[b"p"])) for entry_id, fields in rows]
            yield batch
            cursor = batch[-1][0]
            if len(rows) < self.read_batch:
                return

    async def highest_seq(self, stream: str) -> int:
        check_stream(stream)
        value = await self._redis().hget(self._meta_key(stream), "highest")
        return int(value) if value is not None else 0

    async def load_snapshot(self, stream: str) -> tuple[int, bytes] | None:
        check_stream(stream)
        seq, state = await self._redis().hmget(self._meta_key(stream), ["snapshot_seq", "snapshot"])
        if seq is None or state is None:
            return None
        return int(seq), bytes(state)

    async def acked_seq(self, stream: str, group: str) -> int:
        check_stream(stream)
        value = await self._redis().hget(self._offsets_key(stream), group)
        return int(value) if value is not None else 0

    def stats(self) -> dict[str, Any]:
        """Counters for metrics, as SqliteJournal reports them: appends, commits (round trips),
        append latency and appends-per-round-trip histograms."""
        return {
            "appends": self.appends,
            "commits": self.commits,
            "latency_buckets": tuple(
                zip((*LATENCY_BUCKETS, float("inf")), self._latency_counts, strict=True)
            ),
            "latency_sum": self._latency_sum,
            "batch_buckets": tuple(zip((*BATCH_BUCKETS, float("inf")), self._batch_counts, strict=True)),
        }

    def __repr__(self) -> str:
        return f"RedisJournal({self.url!r}, {'open' if self._writer is not None else 'closed'})"


async def _unacked_floor(client: Any, key: str, group: dict[Any, Any]) -> int:
    """The highest seq below every entry ``group`` has not acked (delivered or not)."""
    pending = await client.xpending(key, group["name"])
    if pending and pending.get("pending"):
        return _seq(pending["min"]) - 1
    return _seq(group["last-delivered-id"])


def _is_noscript(result: Any) -> bool:
    # redis-py strips the "NOSCRIPT" prefix from the message: match the type.
    import redis.exceptions

    return isinstance(result, redis.exceptions.NoScriptError)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
        if isinstance(max_deliveries, bool) or not isinstance(max_deliveries, int) or max_deliveries <= 0:
            raise InvalidConfig("max_deliveries", max_deliveries, "must be an int > 0")
        if isinstance(claim_idle, bool) or not isinstance(claim_idle, int | float) or claim_idle <= 0:
            raise InvalidConfig("claim_idle", claim_idle, "must be > 0 seconds")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0:
            raise InvalidConfig("batch", batch, "must be an int > 0")
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
        self._own_cursor: str | None = "0-0"
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._dead_letter_script: Any = None

    @property
    def name(self) -> str:
        """The group's name (as ``ConsumerGroup.name``: lag is per group)."""
        return self.group

    async def ensure_group(self, from_seq: int = 0) -> None:
        """Create the group (idempotent), delivering entries after ``from_seq``."""
        import redis.exceptions

        try:
            await self.journal._redis().xgroup_create(
                self._key, self.group, id=f"{from_seq}-0", mkstream=True
            )
        except redis.exceptions.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def read(self, *, block: float | None = None) -> list[Delivery]:
        """Entries for this consumer: its own unacked ones first (once, after it starts), then
        ones reclaimed from consumers idle longer than ``claim_idle``, then new ones (waiting
        up to ``block`` seconds of real time for new ones). Awaits one or two round trips."""
        client = self.journal._redis()
        if self._own_cursor is not None:
            rows = await client.xreadgroup(
                self.group, self.consumer, {self._key: self._own_cursor}, count=self.batch
            )
            entries = rows[0][1] if rows else []
            # Read on from the last one: a caller that has not acked them yet must not get
            # them again (each read would count as one more delivery).
            self._own_cursor = _text(entries[-1][0]) if len(entries) >= self.batch else None
            entries = [entry for entry in entries if entry[1]]
            if entries:
                return await self._screen(client, entries)
        if time.monotonic() >= self._next_claim:
            entries = await self._claim(client)
            if entries:
                self.reclaimed += len(entries)
                return await self._screen(client, entries)
        rows = await client.xreadgroup(
            self.group,
            self.consumer,
            {self._key: ">"},
            count=self.batch,
            block=int(block * 1000) if block else None,
        )
        entries = rows[0][1] if rows else []
        return [_delivery(self.stream, entry_id, fields, 1) for entry_id, fields in entries]

    async def _claim(self, client: Any) -> list[Any]:
        """Take over entries idle longer than ``claim_idle``. Scans the pending list on from
        where the last scan stopped (one XAUTOCLAIM looks at no more than 10 x COUNT
        pending entries), and waits ``claim_idle / 4`` after a full pass."""
        for _ in range(10):
            cursor, entries, *_ = await client.xautoclaim(
                self._key,
                self.group,
                self.consumer,
                int(self.claim_idle * 1000),
                self._claim_cursor,
                count=self.batch,
            )
            self._claim_cursor = _text(cursor)
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
            pending: list[Any] = await pipe.execute()
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
        if self._dead_letter_script is None:
            self._dead_letter_script = client.register_script(_DEAD_LETTER)
        moved = await self._dead_letter_script(
            keys=[
                self._key,
                self.journal.events_key(self.dead_letter_stream),
                self.journal._meta_key(self.dead_letter_stream),
            ],
            args=[
                self.group,
                entry_id,
                delivery.payload,
                reason,
                self.stream,
                delivery.seq,
                delivery.delivery_count,
            ],
        )
        if moved:
            self.dead_lettered += 1

    async def ack(self, *seqs: int) -> int:
        """Acknowledge entries by seq after their effect is durable; returns how many were pending."""
        if not seqs:
            return 0
        return int(await self.journal._redis().xack(self._key, self.group, *(f"{seq}-0" for seq in seqs)))

    async def lag(self) -> int:
        """Entries of the stream this group has not acked: never delivered plus pending.

        Read from the server (XINFO GROUPS), so it counts every consumer of the
        group in every process; the same figure as ``ConsumerGroup.lag()``."""
        client = self.journal._redis()
        if not await client.exists(self._key):
            return 0
        for info in await client.xinfo_groups(self._key):
            if _text(info["name"]) == self.group:
                undelivered = info.get("lag")
                if undelivered is None:
                    undelivered = max(
                        0, await self.journal.highest_seq(self.stream) - _seq(info["last-delivered-id"])
                    )
                return int(undelivered) + int(info["pending"])
        return await self.journal.highest_seq(self.stream)


def _delivery(stream: str, entry_id: Any, fields: Any, times: int) -> Delivery:
    return Delivery(stream, _seq(entry_id), bytes(fields[b"p"]), times)


def _seq(entry_id: Any) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.split("-", 1)[0])
