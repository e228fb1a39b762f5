"""``RedisJournal``: the Journal protocol on Redis Streams, for work across processes and hosts.

One Redis stream per journal stream, entry ids ``<seq>-0``: the server itself
refuses an entry id at or below the stream's top, so a stale or duplicate
append can never land. The appends waiting at the same moment (group
commit) run as one Lua script: each checked and written on its own (the
expected-seq check, every XADD, the consumer acks: all or nothing), the
batch one atomic step on the server, one round trip, and with
``appendfsync always`` one fsync, for many producers.

Durability (see docs/persistence.md): with ``appendonly yes`` and
``appendfsync always`` an acknowledged append is on disk before Redis
replies; with ``everysec`` up to a second of acknowledged appends can be lost
on a crash of the Redis host. ``confirm_aof=True`` makes every append wait
for ``WAITAOF`` where the server has it (7.2+); otherwise it refuses to open
unless the server runs with ``appendfsync always``, and re-reads that policy
with every commit.

A connection lost mid-append is ambiguous: the journal reconnects and runs
the same conditional append again, and if the stream has moved it reads the
entries back to see whether they are its own. It never appends blindly.

Consumer groups on these streams (XREADGROUP, XAUTOCLAIM, dead letters):
``RedisConsumer`` in ``_redis_consumer.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, NamedTuple, Never
from zlib import crc32

import msgspec

from garrison._aio import kept_cancelled
from garrison._errors import (
    Fenced,
    InvalidConfig,
    JournalClosed,
    JournalCorrupt,
    JournalWriteError,
    SequenceConflict,
)
from garrison._secret import MASK, mask_text, redact_url
from garrison.persistence import _redis_scripts as scripts
from garrison.persistence._checksum import snapshot_checksum, snapshot_intact
from garrison.persistence._groupcommit import GroupCommitJournal, PendingAppend
from garrison.persistence._journal import (
    Ack,
    Journal,
    JournalProblem,
    PackedEvents,
    QuarantinedEvent,
    ReadsInBatches,
    StreamSummary,
    check_append,
    check_positive_int,
    check_seq,
    check_stream,
)
from garrison.persistence._redis_connection import RedisConnection
from garrison.persistence._redis_ids import entry_id, entry_seq

MAX_APPENDS_PER_SCRIPT = 500
"""A bigger group commit runs as several scripts in one pipeline (Redis serves no one
else while a script runs)."""

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)

SCHEMA_VERSION = 2
"""The namespace's key layout and entry fields: 1 had no checksums, 2 has one on every
entry (field ``c``) and snapshot (``snapshot_crc``). Kept in ``RedisJournal.schema_key``."""

_QUARANTINE_ENCODER = msgspec.msgpack.Encoder()
_QUARANTINE_DECODER = msgspec.msgpack.Decoder(QuarantinedEvent)


_KEYS_KEPT = 100_000
"""Streams whose key names a journal keeps built at most (then it starts over)."""


class StreamKeys(NamedTuple):
    """The Redis keys of one journal stream, built once per stream (``RedisJournal.stream_keys``).

    All of them carry the stream's hash tag (``<namespace>:{<stream>}:...``), so on a
    Redis Cluster they live in one slot: ``slot`` (-1 when the journal is not on a cluster).
    Streams whose names begin with the same ``{tag}`` share a slot too."""

    events: str
    """The Redis stream of events (entry ids ``<seq>-0``, payload in ``p``, checksum in ``c``)."""
    meta: str
    """The hash of ``highest`` and the snapshot (``snapshot_seq``, ``snapshot``, ``snapshot_crc``)."""
    offsets: str
    """The hash of consumer groups' acked seqs (``RedisJournal.ack``, appends' acks)."""
    quarantine: str
    """The hash of events set aside (``RedisJournal.quarantine``)."""
    fence: str
    """The highest fencing token a fenced writer of the stream has used (``RedisJournal.fenced``)."""
    slot: int


def _glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis SCAN pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _response_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.ResponseError,)


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, *_CONNECTION_ERRORS)


class RedisJournal(GroupCommitJournal[Never], ReadsInBatches):
    """A journal on a Redis server (redis-py asyncio; ``pip install 'garrison[redis]'``).

    ``url`` as redis-py takes it (``redis://127.0.0.1:6379/0``), or a
    ``RedisConnection`` (password, TLS, Redis Cluster). ``namespace``
    prefixes every key; keys of one stream share a hash tag so they live in
    one cluster slot (``stream_keys``). ``ambiguity_timeout`` bounds how long an append keeps
    reconnecting to resolve a lost connection before it reports
    JournalWriteError (outcome unknown: read back).

    Appends, ``stats``, ``open``/``close`` and group commit are the journal
    core's (``GroupCommitJournal``); a batch commits as one round trip of
    Lua scripts (``_commit_batch``), and ``commits`` counts round trips.
    """

    def __init__(
        self,
        url: str | RedisConnection,
        *,
        namespace: str = "garrison",
        read_batch: int = 1000,
        confirm_aof: bool = False,
        ambiguity_timeout: float = 10.0,
        socket_timeout: float = 5.0,
        migrate: bool = False,
    ) -> None:
        connection = url if isinstance(url, RedisConnection) else RedisConnection(url=url)
        check_positive_int("read_batch", read_batch)
        if not isinstance(namespace, str) or not namespace:
            raise InvalidConfig("namespace", namespace, "a non-empty string that prefixes every key")
        if connection.cluster and ("{" in namespace or "}" in namespace):
            raise InvalidConfig(
                "namespace",
                namespace,
                "on Redis Cluster it cannot hold '{' or '}' (a stream's hash tag follows it)",
            )
        if connection.cluster and confirm_aof:
            raise InvalidConfig(
                "confirm_aof",
                True,
                "is not supported on Redis Cluster (an append's AOF fsync would have to be confirmed on "
                "each master it wrote to): run every master with appendonly yes and appendfsync always",
            )
        self.connection = connection
        self.url = connection.url
        # The journal core names the journal in its errors (JournalClosed): never the password.
        super().__init__(redact_url(self.url), "garrison:redis-journal")
        self.namespace = namespace
        self.read_batch = read_batch
        self.confirm_aof = confirm_aof
        self.ambiguity_timeout = ambiguity_timeout
        self.socket_timeout = socket_timeout
        self.migrate = migrate
        self.resolved_ambiguous = 0
        """Appends whose connection dropped and that were settled by reading back."""
        self._client: Any = None
        self._writer_client: Any = None
        self._append_script: Any = None
        self._snapshot_script: Any = None
        self._snapshot_if_script: Any = None
        self._ack_script: Any = None
        self._fenced_snapshot_script: Any = None
        self._fenced_snapshot_if_script: Any = None
        self._fenced_ack_script: Any = None
        self._fence_check_script: Any = None
        self._append_sha = ""
        self._waitaof = False
        self._keys: dict[str, StreamKeys] = {}

    # -- keys ---------------------------------------------------------------------------

    def stream_keys(self, stream: str) -> StreamKeys:
        """Every key of ``stream``, built on its first use and kept (no cost per append).

        The one place the journal names a stream's keys: ``<namespace>:{<stream>}:<kind>``.
        The ``{...}`` is the stream's hash tag, so a Redis Cluster keeps all of them in one
        slot; two streams whose names begin with the same ``{tag}`` share that slot. On a
        cluster a stream name beginning with ``}`` is refused (InvalidConfig): its keys would
        have no hash tag."""
        keys = self._keys.get(stream)
        if keys is None:
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            keys = self._keys[stream] = self._build_keys(stream)
        return keys

    def _build_keys(self, stream: str) -> StreamKeys:
        prefix = f"{self.namespace}:{{{stream}}}"
        slot = -1
        if self.connection.cluster:
            if stream.startswith("}"):
                raise InvalidConfig(
                    "stream", stream, "on Redis Cluster a stream name cannot begin with '}' (no hash tag)"
                )
            from redis.crc import key_slot

            slot = key_slot(prefix.encode())
        return StreamKeys(
            f"{prefix}:events",
            f"{prefix}:meta",
            f"{prefix}:offsets",
            f"{prefix}:quarantine",
            f"{prefix}:fence",
            slot,
        )

    def events_key(self, stream: str) -> str:
        """The Redis stream that holds ``stream``'s events (entry ids ``<seq>-0``, payload in ``p``)."""
        return self.stream_keys(stream).events

    def meta_key(self, stream: str) -> str:
        """The hash of ``stream``'s ``highest`` seq and its snapshot (``snapshot_seq``, ``snapshot``).

        A script that appends to a journal stream on the server (a dead letter) moves
        ``highest`` with its XADD, in the same script."""
        return self.stream_keys(stream).meta

    def fence_key(self, stream: str) -> str:
        """The highest fencing token a fenced writer of ``stream`` has used (``fenced``):
        a plain integer, in the stream's hash tag, so one script checks it with the stream."""
        return self.stream_keys(stream).fence

    def _offsets_key(self, stream: str) -> str:
        return self.stream_keys(stream).offsets

    def _quarantine_key(self, stream: str) -> str:
        return self.stream_keys(stream).quarantine

    def schema_key(self) -> str:
        """The key that holds the namespace's schema version (``SCHEMA_VERSION``). One key alone,
        so it needs no hash tag: no script touches it with another."""
        return f"{self.namespace}:schema"

    def redacted_url(self) -> str:
        """``url`` without its password, for messages and logs."""
        return redact_url(self.url)

    def _masked(self, error: BaseException) -> str:
        """``error``'s text with this journal's secrets (the password) masked."""
        return mask_text(str(error), self.connection.secret_texts())

    # -- open and close (the journal core's hooks) ----------------------------------------

    async def _open_connections(self) -> None:
        """Connect (two clients: the writer's and the rest's), check the server and load the
        scripts; raises ConnectionError or InvalidConfig, leaving nothing open."""
        try:
            import redis  # noqa: F401  # only to tell the user what is missing
        except ImportError as error:
            raise InvalidConfig(
                "url", self.redacted_url(), "RedisJournal needs redis-py: pip install 'garrison[redis]'"
            ) from error
        # No retries inside redis-py: a re-sent append whose first reply was lost would
        # come back as a conflict with itself. The journal settles a lost reply itself.
        client = self.connection.client(
            socket_timeout=self.socket_timeout, socket_connect_timeout=self.socket_timeout
        )
        # The writer's own connections: their round trips are bounded by the writer
        # (asyncio.timeout around each commit), not per socket operation, which in
        # redis-py costs a task per send (a fifth of a lone producer's append rate).
        writer_client = self.connection.client(
            socket_timeout=None, socket_connect_timeout=self.socket_timeout
        )
        async with contextlib.AsyncExitStack() as opened:
            opened.push_async_callback(writer_client.aclose)
            opened.push_async_callback(client.aclose)
            try:
                info = await client.info("server")
            except (*_redis_errors(), *_cluster_errors()) as error:
                raise self._connect_failure(error) from error
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
            await self._check_schema(client)
            opened.pop_all()  # the server passed: _close_connections closes both clients
        self._client = client
        self._writer_client = writer_client
        self._append_script = client.register_script(scripts.APPEND)
        self._snapshot_script = client.register_script(scripts.SNAPSHOT)
        self._snapshot_if_script = client.register_script(scripts.SNAPSHOT_IF)
        self._ack_script = client.register_script(scripts.ACK)
        self._fenced_snapshot_script = client.register_script(scripts.FENCE_PRELUDE + scripts.SNAPSHOT)
        self._fenced_snapshot_if_script = client.register_script(scripts.FENCE_PRELUDE + scripts.SNAPSHOT_IF)
        self._fenced_ack_script = client.register_script(scripts.FENCE_PRELUDE + scripts.ACK)
        self._fence_check_script = client.register_script(scripts.FENCE_CHECK)
        await self._load_scripts(client)

    def _connect_failure(self, error: BaseException) -> Exception:
        """The error for a first command that failed: InvalidConfig naming the setting for a
        refused password or TLS handshake, ConnectionError for an unreachable server."""
        import redis.exceptions

        where = self.redacted_url()
        if any(isinstance(cause, redis.exceptions.AuthenticationError) for cause in _causes(error)):
            given = self.connection.password is not None or bool(self.connection.secret_texts())
            return InvalidConfig(
                "password",
                MASK if given else None,
                f"Redis at {where} refused {'the password' if given else 'to serve without one'}: "
                "set journal.password (GARRISON_JOURNAL_PASSWORD_FILE: a file holding it) to the "
                "server's requirepass",
            )
        if _ssl_failure(error):
            return InvalidConfig(
                "tls_ca",
                self.connection.tls_ca,
                f"the TLS handshake with Redis at {where} failed ({type(_ssl_failure(error)).__name__}): "
                "check journal.tls_ca (the CA that signed the server's certificate) and, if the server "
                "asks for one, journal.tls_cert and journal.tls_key",
            )
        return ConnectionError(f"cannot reach Redis at {where}: {self._masked(error)}")

    async def _check_schema(self, client: Any) -> None:
        """Refuse a namespace written by another schema version (migrating it first with
        ``migrate=True``), or holding keys of another program; mark a new one."""
        key = self.schema_key()
        try:
            value = await client.get(key)
        except _response_errors() as error:
            raise self._wrong_type(key, error) from error
        if value is None:
            if not await self._has_data(client):
                await client.set(key, SCHEMA_VERSION, nx=True)
                return
            version = 1
        else:
            try:
                version = int(value)
            except ValueError:
                raise JournalCorrupt(
                    self.redacted_url(), f"key {key!r} holds {value!r}, not a schema version"
                ) from None
        if version > SCHEMA_VERSION:
            raise JournalCorrupt(
                self.redacted_url(),
                f"namespace {self.namespace!r} was written by a newer garrison (schema version {version}; "
                f"this one reads up to {SCHEMA_VERSION}); upgrade garrison",
            )
        if version < SCHEMA_VERSION:
            if not self.migrate:
                raise JournalCorrupt(
                    self.redacted_url(),
                    f"namespace {self.namespace!r} has schema version {version}, older than "
                    f"{SCHEMA_VERSION}; back Redis up and run 'garrison journal migrate --redis URL "
                    f"--namespace {self.namespace}' (or open it with RedisJournal(..., migrate=True))",
                )
            await self._migrate(client)
            await client.set(key, SCHEMA_VERSION)

    async def _has_data(self, client: Any) -> bool:
        async for _ in client.scan_iter(match=f"{_glob_escape(self.namespace)}:{{*", count=1000):
            return True
        return False

    async def _migrate(self, client: Any) -> None:
        """Version 1 to 2: a checksum on every entry and snapshot. Each stream is rewritten
        into a new key and renamed over the old one (atomic per stream; running it again
        rewrites nothing twice). A stream with deliveries pending in a consumer group is
        refused: its consumers must ack them first, since pending entries cannot be moved."""
        pattern = f"{_glob_escape(self.namespace)}:{{*}}:events"
        async for raw_key in client.scan_iter(match=pattern, count=1000):
            key = as_text(raw_key)
            groups = await client.xinfo_groups(key)
            for group in groups:
                if int(group.get("pending", 0)):
                    raise JournalCorrupt(
                        self.redacted_url(),
                        f"cannot migrate {key!r}: group {as_text(group['name'])!r} has {group['pending']} "
                        "pending deliveries; let its consumers ack them, then migrate again",
                    )
            await self._rewrite_with_checksums(client, key, groups)
        async for raw_key in client.scan_iter(match=f"{_glob_escape(self.namespace)}:{{*}}:meta", count=1000):
            seq, state = await client.hmget(raw_key, ["snapshot_seq", "snapshot"])
            if seq is not None and state is not None:
                await client.hset(raw_key, "snapshot_crc", snapshot_checksum(bytes(seq), bytes(state)))

    async def _rewrite_with_checksums(self, client: Any, key: str, groups: list[dict[Any, Any]]) -> None:
        info = await client.xinfo_stream(key)
        if not info.get("length"):
            return
        staging = f"{key}:migrating"
        await client.delete(staging)
        cursor = "-"
        while True:
            rows = await client.xrange(key, cursor, "+", count=self.read_batch)
            rows = [row for row in rows if as_text(row[0]) != cursor] if cursor != "-" else rows
            if not rows:
                break
            async with client.pipeline(transaction=False) as pipe:
                for entry, fields in rows:
                    if b"c" not in fields and b"p" in fields:
                        fields = {**fields, b"c": crc32(bytes(fields[b"p"]))}
                    pipe.xadd(staging, fields, id=entry)
                await pipe.execute()
            cursor = as_text(rows[-1][0])
        await client.execute_command("XSETID", staging, as_text(info["last-generated-id"]))
        for group in groups:
            await client.xgroup_create(
                staging, as_text(group["name"]), id=as_text(group["last-delivered-id"])
            )
        await client.rename(staging, key)

    async def _close_connections(self) -> None:
        await self._client.aclose()
        await self._writer_client.aclose()
        self._client = self._writer_client = None

    def client(self) -> Any:
        """The journal's general connection (a redis-py asyncio client), for ``RedisConsumer``
        and tools that work on the journal's keys (``events_key``, ``meta_key``).

        Appends never go through it: the writer has a connection of its own. Raises
        JournalClosed while the journal is closed. A command on it has the journal's
        ``socket_timeout`` and no retries."""
        if self._client is None:
            raise JournalClosed(self.redacted_url())
        return self._client

    # -- appends (group commit: one script per round trip) -------------------------------

    def _script_call(self, appends: Sequence[PendingAppend]) -> tuple[list[str], list[Any]]:
        keys: list[str] = []
        args: list[Any] = []
        built = self._keys
        for append in appends:
            stream = built.get(append.stream) or self.stream_keys(append.stream)
            keys += (stream.events, stream.meta)
            args += (append.expected_seq, len(append.events), len(append.acks), append.fence)
            if append.fence:
                keys.append(stream.fence)
            for payload in append.events:
                args += (payload, crc32(payload))
            for ack in append.acks:
                keys.append(self.stream_keys(ack.stream).offsets)
                args += (ack.group, ack.seq)
        return keys, args

    def _in_slot_order(self, batch: list[PendingAppend]) -> list[PendingAppend]:
        """On Redis Cluster: the batch sorted by slot (appends of one stream keep their order),
        so that each script touches one slot; an append whose acks are of a stream in another
        slot is answered with InvalidConfig and left out (its script would be refused whole)."""
        kept = []
        for append in batch:
            slot = self.stream_keys(append.stream).slot
            stranger = next((ack for ack in append.acks if self.stream_keys(ack.stream).slot != slot), None)
            if stranger is None:
                kept.append(append)
                continue
            append.fail(
                InvalidConfig(
                    "acks",
                    stranger.stream,
                    f"on Redis Cluster an append to {append.stream!r} can ack only streams in its slot: "
                    "give both streams names that begin with the same hash tag, e.g. "
                    f"'{{orders}}.in' and '{{orders}}.out'",
                )
            )
        kept.sort(key=lambda append: self.stream_keys(append.stream).slot)
        return kept

    async def append_fenced(
        self, stream: str, events: Sequence[bytes], expected_seq: int, fence: int, *, acks: Sequence[Ack] = ()
    ) -> int:
        """Internal, for a journal's fenced view (``RedisJournal.fenced``): ``append`` carrying
        fencing token ``fence`` (> 0), which the journal's commit checks. Kept apart from
        ``append`` so that the unfenced path pays nothing for it."""
        check_append(stream, events, expected_seq)
        if not events and not acks:
            return expected_seq
        if self._writer is None:
            raise JournalClosed(self._location)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put(PendingAppend(stream, events, expected_seq, acks, future, fence))
        started = time.monotonic()
        highest = await future
        self._histograms.latency(time.monotonic() - started)
        return highest

    def fenced(self, token: int, on_fenced: Callable[[Fenced], None] | None = None) -> FencedJournal:
        """A view of this journal whose every write carries fencing token ``token``.

        Reads go to this journal unchanged. Appends, snapshots, trims and acks
        through the view are refused with Fenced (nothing written) once their
        stream has seen a higher token; a higher token than the stream has seen
        becomes its highest, in the same atomic step as the write. A cluster
        singleton's persistent actors write through such a view, so that an owner
        that lost its lease (frozen, partitioned) can never write again.
        ``on_fenced`` is called with each Fenced before it is raised.

        The view shares this journal's connections: it is opened and closed with
        it (its own ``open``/``close`` do nothing). Raises InvalidConfig for a
        token that is not an int >= 1.
        """
        if isinstance(token, bool) or not isinstance(token, int) or token < 1:
            raise InvalidConfig("token", token, "a fencing token is an int >= 1 (from the singleton's lease)")
        return FencedJournal(self, token, on_fenced)

    async def _commit_batch(self, batch: list[PendingAppend]) -> None:
        """The journal core's hook: the batch's appends in one round trip (several scripts in
        one pipeline past MAX_APPENDS_PER_SCRIPT); a lost connection is settled by reading
        back, append by append."""
        client = self._writer_client
        if self.connection.cluster:
            batch = self._in_slot_order(batch)
            if not batch:
                return
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
            # One bound for the whole group: ambiguity_timeout, not that much per append.
            deadline = time.monotonic() + self.ambiguity_timeout
            for append in batch:
                await self._resolve(append, deadline)
            return
        unconfirmed = self._unconfirmed(confirmation)
        self.commits += 1
        accepted = 0
        for append, result in zip(batch, results, strict=True):
            if unconfirmed is not None and not isinstance(result, Exception):
                # Written (the script ran), but not confirmed on disk: the outcome is
                # unknown to the caller in the sense that matters, durability.
                append.fail(JournalWriteError(append.stream, unconfirmed))
                continue
            accepted += self._settle(append, result)
        if accepted:
            # As SqliteJournal counts it: the appends this commit accepted, not the ones
            # that came back as a conflict or an error.
            self._histograms.batch(accepted)

    async def _pipeline(self, client: Any, batch: list[PendingAppend]) -> tuple[list[Any], list[Any]]:
        """One round trip: the appends' script(s), then the AOF confirmation asked for.
        Returns one result per append (a (code, value) pair or an error) and the
        confirmation's replies."""
        chunks = (
            self._slot_chunks(batch)
            if self.connection.cluster
            else [
                batch[start : start + MAX_APPENDS_PER_SCRIPT]
                for start in range(0, len(batch), MAX_APPENDS_PER_SCRIPT)
            ]
        )
        if len(chunks) == 1 and not self.confirm_aof:
            # No pipeline object (nor the task its reset spawns) for a single command.
            import redis.exceptions

            keys, args = self._script_call(batch)
            try:
                reply: Any = await client.evalsha(self._append_sha, len(keys), *keys, *args)
            except redis.exceptions.ResponseError as error:
                reply = error
            return _unpack(reply, len(batch)), []
        if self.connection.cluster:
            per_slot: list[Any] = []
            for chunk, answer in zip(chunks, await self._per_slot(client, chunks), strict=True):
                per_slot += _unpack(answer, len(chunk))
            return per_slot, []
        # EVALSHA directly: redis-py's script objects re-check the cache on every pipeline.
        async with client.pipeline(transaction=False) as pipe:
            for chunk in chunks:
                keys, args = self._script_call(chunk)
                pipe.evalsha(self._append_sha, len(keys), *keys, *args)
            self._queue_confirmation(pipe)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        results: list[Any] = []
        for chunk, reply in zip(chunks, replies, strict=False):
            results += _unpack(reply, len(chunk))
        return results, replies[len(chunks) :]

    async def _per_slot(self, client: Any, chunks: list[list[PendingAppend]]) -> list[Any]:
        """On Redis Cluster: each slot's script as a call of its own, all in flight at once (redis-py
        refuses EVALSHA in a cluster pipeline before 8.2; confirm_aof is refused on a cluster, so
        there is no confirmation to queue). A script's error is its reply, as in a pipeline with
        ``raise_on_error=False``; any other failure (a lost connection) is raised once every call
        has ended, for the caller to settle by reading back."""
        import redis.exceptions

        async def one(chunk: list[PendingAppend]) -> Any:
            keys, args = self._script_call(chunk)
            return await client.evalsha(self._append_sha, len(keys), *keys, *args)

        replies = await asyncio.gather(*(one(chunk) for chunk in chunks), return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException) and not isinstance(reply, redis.exceptions.ResponseError):
                raise reply
        return replies

    def _slot_chunks(self, batch: list[PendingAppend]) -> list[list[PendingAppend]]:
        """A batch in slot order (``_in_slot_order``) cut into scripts of one slot each."""
        chunks: list[list[PendingAppend]] = []
        slot = None
        for append in batch:
            here = self.stream_keys(append.stream).slot
            if here != slot or len(chunks[-1]) >= MAX_APPENDS_PER_SCRIPT:
                chunks.append([])
                slot = here
            chunks[-1].append(append)
        return chunks

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
            settings.update({as_text(key): as_text(value) for key, value in dict(reply).items()})
        if settings.get("appendonly") != "yes" or settings.get("appendfsync") != "always":
            return RuntimeError(
                f"written, but the server now runs appendonly={settings.get('appendonly')} "
                f"appendfsync={settings.get('appendfsync')}: not confirmed on disk (confirm_aof needs "
                "appendonly yes and appendfsync always on a server without WAITAOF)"
            )
        return None

    async def _load_scripts(self, client: Any) -> None:
        self._append_sha = await client.script_load(scripts.APPEND)

    def _settle(self, append: PendingAppend, result: Any) -> bool:
        """Answer ``append`` with its script result; True if it was accepted."""
        if isinstance(result, Exception):
            append.fail(JournalWriteError(append.stream, result))
            return False
        code, highest = result
        if code == 1:
            self.appends += 1
            append.succeed(highest)
            return True
        if code == 2:
            append.fail(Fenced(append.stream, append.fence, highest))
            return False
        append.fail(SequenceConflict(append.stream, append.expected_seq, highest))
        return False

    async def _resolve(self, append: PendingAppend, deadline: float) -> None:
        """The connection dropped mid-append: run the same conditional append again, and if
        the stream moved, read back whether the entries are ours. Never appends blindly.
        Retries until ``deadline`` (time.monotonic()); always tries at least once."""
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
        keys, args = self._script_call([append])
        client = self.client()
        if self.connection.cluster:
            # No pipeline: redis-py refuses scripts in a cluster pipeline before 8.2, and a
            # cluster has no AOF confirmation to ask for. The script object reloads the script
            # if the server lost it.
            import redis.exceptions

            try:
                reply: Any = await self._append_script(keys=keys, args=args, client=client)
            except redis.exceptions.ResponseError as error:
                reply = error
            [result], confirmation = _unpack(reply, 1), []
        else:
            async with client.pipeline(transaction=False) as pipe:
                # The script object loads the script if the server lost it (a restart).
                await self._append_script(keys=keys, args=args, client=pipe)
                marked = self.confirm_aof and self._waitaof
                if marked:
                    # WAITAOF waits for this connection's last write: make one, so that it
                    # also covers entries the lost connection may have written before it.
                    pipe.hincrby(self.meta_key(append.stream), "resolved", 1)
                self._queue_confirmation(pipe)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
            [result], confirmation = _unpack(replies[0], 1), replies[2:] if marked else replies[1:]
        if isinstance(result, Exception):
            if isinstance(result, _redis_errors()):
                raise result
            return JournalWriteError(append.stream, result)
        accepted, highest = int(result[0]), int(result[1])
        expected, count = append.expected_seq, len(append.events)
        if accepted == 2:
            # Refused now, but the lost attempt may have landed before the newer owner came.
            landed = count and await self.highest_seq(append.stream) >= expected + count
            if landed and await self._entries(append.stream, expected, count) == list(append.events):
                return expected + count
            return Fenced(append.stream, append.fence, highest)
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
        rows = await kept_cancelled(
            self.client().xrange(self.events_key(stream), entry_id(after_seq + 1), "+", count=count)
        )
        return [self._payload(stream, entry_id, fields)[1] for entry_id, fields in rows]

    # -- other writes ------------------------------------------------------------------------

    async def save_snapshot(self, stream: str, seq: int, state: bytes, *, fence: int = 0) -> None:
        """Store a snapshot unless a newer one is stored. ``fence``: internal, the fencing
        token of a fenced view (``fenced``); raises Fenced for a stale one."""
        check_stream(stream)
        check_seq("seq", seq)
        if not isinstance(state, bytes):
            raise InvalidConfig("state", type(state).__name__, "a snapshot state must be bytes")
        client = self.client()
        keys, args = [self.meta_key(stream)], [seq, state, snapshot_checksum(seq, state)]
        script = self._snapshot_script
        if fence:
            keys, args, script = [*keys, self.fence_key(stream)], [*args, fence], self._fenced_snapshot_script
        try:
            await script(keys=keys, args=args, client=client)
        except _response_errors() as error:
            raise self._fenced_or(stream, fence, error) from error
        except _redis_errors() as error:
            raise JournalWriteError(stream, error) from error

    async def replace_snapshot(
        self, stream: str, expected_seq: int | None, seq: int, state: bytes, *, fence: int = 0
    ) -> bool:
        """Store ``state`` as of ``seq`` only if the stored snapshot is still the one at
        ``expected_seq`` (None: none is stored); one script, so atomic. True if stored.
        ``fence``: internal, as for ``save_snapshot``."""
        check_stream(stream)
        check_seq("seq", seq)
        if expected_seq is not None:
            check_seq("expected_seq", expected_seq)
        if not isinstance(state, bytes):
            raise InvalidConfig("state", type(state).__name__, "a snapshot state must be bytes")
        client = self.client()
        expected = "" if expected_seq is None else str(expected_seq)
        keys, args = [self.meta_key(stream)], [seq, state, snapshot_checksum(seq, state), expected]
        script = self._snapshot_if_script
        if fence:
            keys, args = [*keys, self.fence_key(stream)], [*args, fence]
            script = self._fenced_snapshot_if_script
        try:
            stored = await script(keys=keys, args=args, client=client)
        except _response_errors() as error:
            raise self._fenced_or(stream, fence, error) from error
        except _redis_errors() as error:
            raise JournalWriteError(stream, error) from error
        return bool(int(stored))

    async def delete_events(self, stream: str, up_to_seq: int, *, fence: int = 0) -> None:
        """Delete events up to ``up_to_seq``, but never one a consumer group has not acked.
        ``fence``: internal, as for ``save_snapshot`` (checked before the trim)."""
        check_stream(stream)
        check_seq("up_to_seq", up_to_seq)
        client = self.client()
        key = self.events_key(stream)
        limit = up_to_seq
        if fence:
            await self.check_fence(stream, fence)
        try:
            if await client.exists(key):
                for group in await client.xinfo_groups(key):
                    limit = min(limit, await _unacked_floor(client, key, group))
            if limit > 0:
                await client.xtrim(key, minid=entry_id(limit + 1), approximate=False)
        except _redis_errors() as error:
            raise JournalWriteError(stream, error) from error

    async def ack(self, stream: str, group: str, seq: int, *, fence: int = 0) -> None:
        """Move ``group``'s offset on ``stream`` to ``seq`` (never backwards). ``fence``:
        internal, as for ``save_snapshot``."""
        check_stream(stream)
        check_seq("seq", seq)
        client = self.client()
        keys, args, script = [self._offsets_key(stream)], [group, seq], self._ack_script
        if fence:
            keys, args, script = [*keys, self.fence_key(stream)], [*args, fence], self._fenced_ack_script
        try:
            await script(keys=keys, args=args, client=client)
        except _response_errors() as error:
            raise self._fenced_or(stream, fence, error) from error
        except _redis_errors() as error:
            raise JournalWriteError(stream, error) from error

    async def check_fence(self, stream: str, fence: int) -> None:
        """Raise Fenced if ``stream`` has seen a fencing token above ``fence``; otherwise
        record ``fence`` as its highest if it is. Internal, for fenced views."""
        try:
            await self._fence_check_script(keys=[self.fence_key(stream)], args=[fence], client=self.client())
        except _response_errors() as error:
            raise self._fenced_or(stream, fence, error) from error
        except _redis_errors() as error:
            raise JournalWriteError(stream, error) from error

    def _fenced_or(self, stream: str, fence: int, error: BaseException) -> BaseException:
        """A script's error reply as Fenced if the fence refused the write, else a JournalWriteError."""
        text = str(error)
        if fence and text.startswith("FENCED "):
            return Fenced(stream, fence, int(text.split()[1]))
        return JournalWriteError(stream, error)

    async def fenced_highest(self, stream: str) -> int:
        """The highest fencing token a fenced writer of ``stream`` has used (0: none yet)."""
        check_stream(stream)
        value = await kept_cancelled(self.client().get(self.fence_key(stream)))
        return int(value) if value is not None else 0

    # -- reads ----------------------------------------------------------------------------------

    async def read_batches(
        self, stream: str, after_seq: int = 0
    ) -> AsyncGenerator[list[tuple[int, bytes]], None]:
        check_stream(stream)
        check_seq("after_seq", after_seq)
        client = self.client()
        key = self.events_key(stream)
        set_aside = {int(seq) for seq in await kept_cancelled(client.hkeys(self._quarantine_key(stream)))}
        cursor = after_seq
        while True:
            try:
                rows = await kept_cancelled(
                    client.xrange(key, entry_id(cursor + 1), "+", count=self.read_batch)
                )
            except _response_errors() as error:
                raise self._wrong_type(key, error) from error
            if not rows:
                return
            batch = [self._payload(stream, entry_id, fields) for entry_id, fields in rows]
            cursor = batch[-1][0]
            if set_aside:
                batch = [row for row in batch if row[0] not in set_aside]
            if batch:
                yield batch
            if len(rows) < self.read_batch:
                return

    def _payload(self, stream: str, entry: Any, fields: dict[bytes, Any]) -> tuple[int, bytes]:
        """An entry's ``(seq, payload)``, its checksum verified; raises JournalCorrupt if it
        does not match (or the entry has no payload or no checksum)."""
        seq = entry_seq(entry)
        payload = fields.get(b"p")
        stored = fields.get(b"c")
        if payload is None or stored is None:
            raise JournalCorrupt(
                self.redacted_url(),
                f"stream {stream!r}: entry {seq} has no {'payload' if payload is None else 'checksum'}; "
                f"run 'garrison journal verify {self.redacted_url()}'",
                stream=stream,
                seq=seq,
            )
        payload = bytes(payload)
        found = crc32(payload)
        if found != int(stored):
            raise self.damaged(stream, seq, int(stored), found)
        return seq, payload

    def damaged(
        self, stream: str, seq: int, expected: int, found: int, what: str = "event"
    ) -> JournalCorrupt:
        """The error for a stored event (or snapshot) whose checksum does not match."""
        return JournalCorrupt(
            self.redacted_url(),
            f"stream {stream!r}: {what} {seq} is damaged (checksum expected {expected:#010x}, found "
            f"{found:#010x}); run 'garrison journal verify', then 'garrison journal quarantine' "
            f"with stream {stream} and seq {seq} to set it aside",
            stream=stream,
            seq=seq,
            expected=expected,
            found=found,
        )

    def _wrong_type(self, key: str, error: BaseException) -> BaseException:
        if "WRONGTYPE" in str(error).upper():
            return JournalCorrupt(
                self.redacted_url(),
                f"key {key!r} is not of the type the journal keeps there ({error.__class__.__name__}); "
                "another program uses this namespace: choose another namespace",
            )
        return error

    # -- operator tools: quarantine, summary, verify ------------------------------------------

    async def quarantine(self, stream: str, seq: int, reason: str) -> QuarantinedEvent:
        """Set event ``seq`` of ``stream`` aside, so that replay skips it and its actor can
        start. The entry stays in the Redis stream (entries cannot move within one); the
        quarantine hash keeps a copy and the reason, and ``restore`` takes it off the list.
        Raises InvalidConfig if there is no such stored event."""
        check_stream(stream)
        check_seq("seq", seq)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidConfig("reason", reason, "say why the event is set aside (it is kept with it)")
        client = self.client()
        rows = await client.xrange(self.events_key(stream), entry_id(seq), entry_id(seq), count=1)
        if not rows:
            raise InvalidConfig("seq", seq, f"stream {stream!r} has no stored event {seq} to set aside")
        event = QuarantinedEvent(stream, seq, bytes(rows[0][1].get(b"p", b"")), reason, time.time())
        await client.hset(self._quarantine_key(stream), str(seq), _QUARANTINE_ENCODER.encode(event))
        return event

    async def restore(self, stream: str, seq: int) -> None:
        """Take event ``seq`` of ``stream`` off the quarantine list, so that replay reads it
        again. Raises InvalidConfig if it is not quarantined."""
        check_stream(stream)
        check_seq("seq", seq)
        if not await self.client().hdel(self._quarantine_key(stream), str(seq)):
            raise InvalidConfig("seq", seq, f"stream {stream!r} has no quarantined event {seq}")

    async def quarantined(self, stream: str) -> list[QuarantinedEvent]:
        check_stream(stream)
        values = await kept_cancelled(self.client().hvals(self._quarantine_key(stream)))
        return sorted((_QUARANTINE_DECODER.decode(value) for value in values), key=lambda event: event.seq)

    async def stream_names(self) -> list[str]:
        """Every stream with events or a meta hash in the namespace, by name."""
        names: set[str] = set()
        prefix = f"{self.namespace}:{{"
        async for raw_key in self.client().scan_iter(
            match=f"{_glob_escape(self.namespace)}:{{*}}:*", count=1000
        ):
            key = as_text(raw_key)
            if key.startswith(prefix) and key.endswith(("}:events", "}:meta")):
                names.add(key[len(prefix) : key.rindex("}")])
        return sorted(names)

    async def streams(self) -> list[StreamSummary]:
        """Every stream of the namespace, by name."""
        client = self.client()
        summaries = []
        for stream in await self.stream_names():
            key = self.events_key(stream)
            try:
                count = int(await client.xlen(key))
                first = await client.xrange(key, "-", "+", count=1)
            except _response_errors() as error:
                raise self._wrong_type(key, error) from error
            snapshot = await client.hget(self.meta_key(stream), "snapshot_seq")
            summaries.append(
                StreamSummary(
                    stream=stream,
                    events=count,
                    first_seq=entry_seq(first[0][0]) if first else 0,
                    highest_seq=await self.highest_seq(stream),
                    snapshot_seq=None if snapshot is None else int(snapshot),
                    quarantined=int(await client.hlen(self._quarantine_key(stream))),
                )
            )
        return summaries

    async def verify(self) -> AsyncGenerator[JournalProblem, None]:
        """Walk every stream of the namespace and yield every problem found: keys of the wrong
        type, entries whose checksum does not match or that lack one, seqs missing from the
        middle of a stream, snapshots. Reads only."""
        client = self.client()
        for stream in await self.stream_names():
            key = self.events_key(stream)
            previous = None
            cursor = 0
            while True:
                try:
                    rows = await client.xrange(key, entry_id(cursor + 1), "+", count=self.read_batch)
                except _response_errors() as error:
                    yield JournalProblem("key-type", stream, None, str(self._wrong_type(key, error)))
                    break
                for entry, fields in rows:
                    seq = entry_seq(entry)
                    if previous is not None and seq != previous + 1:
                        yield JournalProblem(
                            "missing", stream, seq - 1, f"events {previous + 1}..{seq - 1} are gone"
                        )
                    previous = seq
                    try:
                        self._payload(stream, entry, fields)
                    except JournalCorrupt as error:
                        yield JournalProblem("checksum", stream, seq, error.problem)
                if len(rows) < self.read_batch:
                    break
                cursor = entry_seq(rows[-1][0])
            try:
                await self.load_snapshot(stream)
            except JournalCorrupt as error:
                yield JournalProblem("snapshot", stream, error.seq, error.problem)

    async def highest_seq(self, stream: str) -> int:
        check_stream(stream)
        value = await kept_cancelled(self.client().hget(self.meta_key(stream), "highest"))
        return int(value) if value is not None else 0

    async def load_snapshot(self, stream: str) -> tuple[int, bytes] | None:
        check_stream(stream)
        seq, state, stored = await kept_cancelled(
            self.client().hmget(self.meta_key(stream), ["snapshot_seq", "snapshot", "snapshot_crc"])
        )
        if seq is None or state is None:
            return None
        if stored is None or not snapshot_intact(bytes(seq), bytes(state), int(stored)):
            raise self.damaged(
                stream,
                int(seq),
                -1 if stored is None else int(stored),
                snapshot_checksum(bytes(seq), bytes(state)),
                "snapshot at seq",
            )
        return int(seq), bytes(state)

    async def acked_seq(self, stream: str, group: str) -> int:
        check_stream(stream)
        value = await kept_cancelled(self.client().hget(self._offsets_key(stream), group))
        return int(value) if value is not None else 0

    def __repr__(self) -> str:
        return f"RedisJournal({self.redacted_url()!r}, {'open' if self._writer is not None else 'closed'})"


class FencedJournal(ReadsInBatches):
    """``RedisJournal.fenced(token)``: the journal with every write carrying fencing token
    ``token``; implements the Journal protocol. See ``RedisJournal.fenced``."""

    def __init__(
        self, journal: RedisJournal, token: int, on_fenced: Callable[[Fenced], None] | None = None
    ) -> None:
        self.journal = journal
        self.token = token
        self._on_fenced = on_fenced

    def _refused(self, error: Fenced) -> Fenced:
        if self._on_fenced is not None:
            self._on_fenced(error)
        return error

    async def append(
        self, stream: str, events: Sequence[bytes], expected_seq: int, *, acks: Sequence[Ack] = ()
    ) -> int:
        """``Journal.append`` with this view's token; raises Fenced (nothing written) once
        the stream has seen a higher one."""
        try:
            return await self.journal.append_fenced(stream, events, expected_seq, self.token, acks=acks)
        except Fenced as error:
            raise self._refused(error) from None

    async def save_snapshot(self, stream: str, seq: int, state: bytes) -> None:
        try:
            await self.journal.save_snapshot(stream, seq, state, fence=self.token)
        except Fenced as error:
            raise self._refused(error) from None

    async def replace_snapshot(self, stream: str, expected_seq: int | None, seq: int, state: bytes) -> bool:
        try:
            return await self.journal.replace_snapshot(stream, expected_seq, seq, state, fence=self.token)
        except Fenced as error:
            raise self._refused(error) from None

    async def delete_events(self, stream: str, up_to_seq: int) -> None:
        try:
            await self.journal.delete_events(stream, up_to_seq, fence=self.token)
        except Fenced as error:
            raise self._refused(error) from None

    async def ack(self, stream: str, group: str, seq: int) -> None:
        try:
            await self.journal.ack(stream, group, seq, fence=self.token)
        except Fenced as error:
            raise self._refused(error) from None

    def read_batches(self, stream: str, after_seq: int = 0) -> AsyncGenerator[list[tuple[int, bytes]], None]:
        return self.journal.read_batches(stream, after_seq)

    def read_packed(self, stream: str, after_seq: int = 0) -> AsyncGenerator[PackedEvents, None]:
        return self.journal.read_packed(stream, after_seq)

    async def highest_seq(self, stream: str) -> int:
        return await self.journal.highest_seq(stream)

    async def load_snapshot(self, stream: str) -> tuple[int, bytes] | None:
        return await self.journal.load_snapshot(stream)

    async def acked_seq(self, stream: str, group: str) -> int:
        return await self.journal.acked_seq(stream, group)

    async def quarantined(self, stream: str) -> list[QuarantinedEvent]:
        return await self.journal.quarantined(stream)

    def stats(self) -> dict[str, Any]:
        """The underlying journal's counters."""
        return self.journal.stats()

    async def open(self) -> Journal:
        """Nothing to open: the view shares its journal's connections (opened with the node)."""
        return self

    async def close(self) -> None:
        """Nothing to close: the journal the view writes through is closed by its owner."""

    def __repr__(self) -> str:
        return f"FencedJournal({self.journal!r}, token={self.token})"


async def _unacked_floor(client: Any, key: str, group: dict[Any, Any]) -> int:
    """The highest seq below every entry ``group`` has not acked (delivered or not)."""
    pending = await client.xpending(key, group["name"])
    if pending and pending.get("pending"):
        return entry_seq(pending["min"]) - 1
    return entry_seq(group["last-delivered-id"])


def _cluster_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.RedisClusterException, redis.exceptions.ClusterError)


def _causes(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _ssl_failure(error: BaseException) -> BaseException | None:
    """The ``ssl.SSLError`` ``error`` came from, if any (a refused certificate, a handshake)."""
    import ssl

    return next((cause for cause in _causes(error) if isinstance(cause, ssl.SSLError)), None)


def _unpack(reply: Any, count: int) -> list[Any]:
    """The append script's reply as one result per append: ``(1, highest)`` appended,
    ``(0, highest)`` conflict, or an exception (the whole script's, or that append's)."""
    if isinstance(reply, Exception):
        return [reply] * count
    results: list[Any] = []
    for part in bytes(reply).split(b","):
        code, _, value = part.partition(b":")
        if code == b"-1":
            results.append(RuntimeError(value.decode(errors="replace")))
        else:
            results.append((int(code), int(value)))
    if len(results) != count:
        return [RuntimeError(f"the append script answered {reply!r} for {count} appends")] * count
    return results


def _is_noscript(result: Any) -> bool:
    # redis-py strips the "NOSCRIPT" prefix from the message: match the type. Called for
    # every append's result, nearly always a reply: only an error needs the import.
    if not isinstance(result, Exception):
        return False
    import redis.exceptions

    return isinstance(result, redis.exceptions.NoScriptError)


def as_text(value: Any) -> str:
    """A reply's bytes as text (a str as it is)."""
    return value.decode() if isinstance(value, bytes) else str(value)
