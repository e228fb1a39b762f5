"""The cluster singleton: a lease on Redis with a fencing token, and ``RedisSingletons``,
the coordinator a node's supervisors claim their ``singleton=True`` children through.

The lease of singleton ``name`` is one key with a TTL. A node takes it with one
script: if no one holds it, INCR the singleton's token counter and SET the key
(NX, PX ttl) to ``<owner>#<token>``, so every grant carries a fencing token
strictly higher than all before it. The owner refreshes it every ``refresh``
seconds with a compare-and-PEXPIRE (only while the key still holds its own
value). The owner counts the lease as its own only until ``ttl -
safety_margin`` after the last refresh it *sent* (by its own clock): then it
stops its singleton, while the key can still live up to ``safety_margin``
longer on the server, so it has stopped before anyone else can take it. A
stand-by node polls, sleeping no longer than the key's remaining time to live,
and takes the lease once the key has expired.

A stop that outlasts the margin (a frozen process, a long ``on_stop``) is what
fencing is for: the singleton's persistent actors write through a journal
fenced with the token (``node.journal_for``), and the journal refuses a token
lower than the highest it has seen for a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from typing import Any

from loguru import logger

from garrison._aio import kept_cancelled
from garrison._clock import Cancellable, Clock
from garrison._errors import InvalidConfig
from garrison._secret import Secret, redact_url
from garrison._validate import number_problem
from garrison.persistence import RedisConnection
from garrison.supervision import SingletonEvents

DEFAULT_TTL = 3.0
"""Seconds a singleton's lease lives on Redis without a refresh."""
DEFAULT_REFRESH = 1.0
"""Seconds between the owner's refreshes of its lease (and a stand-by's polls, at most)."""

# KEYS[1] the lease, KEYS[2] the token counter; ARGV[1] the owner, ARGV[2] the TTL in ms.
# Answers {token, 0} when taken (INCR: strictly higher than every token before), or
# {0, remaining ms of the holder's lease} when someone holds it.
ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('PTTL', KEYS[1])} end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '#' .. token, 'NX', 'PX', ARGV[2])
return {token, 0}
"""

# Extend the lease only while it is still ours (ARGV[1] is '<owner>#<token>'): 1 if extended.
REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# Delete the lease only while it is still ours: 1 if deleted.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def singleton_keys(namespace: str, name: str) -> tuple[str, str]:
    """The lease key and the token counter of singleton ``name``: one hash tag, one slot."""
    tag = f"{namespace}:{{singleton:{name}}}"
    return f"{tag}:lease", f"{tag}:token"


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.RedisError, ConnectionError, TimeoutError, OSError)


def _seconds(field: str, value: object) -> float:
    problem = number_problem(value, allow_minimum=False, what="a number of seconds")
    if problem is not None:
        raise InvalidConfig(field, value, problem)
    return float(value)  # type: ignore[arg-type]  # a number: checked above


class RedisSingletons:
    """The cluster's singleton coordinator on one Redis (``Node(singletons=RedisSingletons(url))``).

    Implements ``garrison.supervision.SingletonCoordinator``: each
    ``singleton=True`` child of the node's supervisors runs on exactly one of
    the nodes sharing ``url`` and ``namespace`` (all with the same tree), and
    stands by on the others. ``ttl`` (default 3 s) is the lease's life on
    Redis, ``refresh`` (default 1 s) the owner's refresh interval and a
    stand-by's longest poll; ``safety_margin`` (default ``ttl / 5``) is how much
    earlier than the TTL an owner that cannot refresh stops its singleton. A
    takeover after the owner dies takes at most about ``ttl``.

    ``node_id`` names this node in the lease's value (default: a random id).
    ``password`` (a ``Secret`` or str) is sent with AUTH; ``cluster=True``
    talks to a Redis Cluster (``url`` names any node: a singleton's lease and
    token share a hash tag). A node that joined a cluster from a ``[cluster]``
    section gets one built from it (``ClusterSettings.singletons``), and its
    singletons stand down when the node is out of the cluster (``stand_down``).
    Raises InvalidConfig for a bad URL or timing (``refresh + safety_margin``
    must stay below ``ttl``, so that one refresh may fail without a stop).

    Example::

        node = Node("router-a", journal=RedisJournal(url), singletons=RedisSingletons(url))
    """

    def __init__(
        self,
        url: str,
        *,
        node_id: str | None = None,
        namespace: str = "garrison",
        ttl: float = DEFAULT_TTL,
        refresh: float = DEFAULT_REFRESH,
        safety_margin: float | None = None,
        password: Secret | str | None = None,
        cluster: bool = False,
    ) -> None:
        secret = Secret(password) if isinstance(password, str) else password
        self.connection = RedisConnection(url=url, password=secret, cluster=cluster)
        """Where the leases live (URL, password, Redis Cluster)."""
        if node_id is not None and (not isinstance(node_id, str) or not node_id or "#" in node_id):
            raise InvalidConfig("node_id", node_id, "a non-empty string without '#', or None for a random id")
        if not isinstance(namespace, str) or not namespace:
            raise InvalidConfig("namespace", namespace, "a non-empty string (the prefix of every key)")
        self.url = url
        self.namespace = namespace
        self.node_id = node_id if node_id is not None else uuid.uuid4().hex[:12]
        self.ttl = _seconds("ttl", ttl)
        self.refresh = _seconds("refresh", refresh)
        self.safety_margin = (
            self.ttl / 5 if safety_margin is None else _seconds("safety_margin", safety_margin)
        )
        if self.refresh + self.safety_margin >= self.ttl:
            raise InvalidConfig(
                "refresh",
                refresh,
                f"refresh + safety_margin ({self.refresh} + {self.safety_margin}) must be below ttl "
                f"({self.ttl}), so that an owner outlives one failed refresh; raise ttl or lower refresh",
            )
        self._clock: Clock | None = None
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._claims: dict[str, SingletonLease] = {}
        self.down: str | None = None
        """Why this node stood down for good (``stand_down``), or None: it claims nothing then."""

    # -- the node's lifecycle (SingletonCoordinator) -------------------------------------

    async def open(self, clock: Clock) -> None:
        """Connect to Redis and time leases on ``clock`` (the node's). Raises ConnectionError
        if Redis cannot be reached, InvalidConfig without redis-py. Idempotent."""
        if self._client is not None:
            return
        try:
            import redis.asyncio  # noqa: F401  # only to tell a missing redis-py apart
        except ImportError as error:
            raise InvalidConfig(
                "url", redact_url(self.url), "RedisSingletons needs redis-py: pip install 'garrison[redis]'"
            ) from error
        # A lease command that takes longer than a refresh interval is a failed refresh; none is retried.
        client = self.connection.client(socket_timeout=self.refresh, socket_connect_timeout=self.refresh)
        try:
            await client.ping()
        except _redis_errors() as error:
            await client.aclose()
            raise ConnectionError(f"cannot reach Redis at {redact_url(self.url)}: {error}") from error
        self._clock = clock
        self._client = client
        self._scripts = {
            "acquire": client.register_script(ACQUIRE),
            "refresh": client.register_script(REFRESH),
            "release": client.register_script(RELEASE),
        }

    async def close(self) -> None:
        """Release every lease this node holds (its singletons have stopped) and disconnect.
        Idempotent."""
        for claim in list(self._claims.values()):
            await claim.release()
        self._claims.clear()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- what supervisors use (SingletonCoordinator) --------------------------------------

    def stand_down(self, reason: str) -> None:
        """This node may own no singleton any more (it is out of the cluster: ``Cluster.join``
        calls this from ``on_self_down``): every singleton it owns is lost at once (its
        supervisor stops it), its lease is given back, and no claim takes a lease again; the
        slots stand by until the node restarts. Idempotent."""
        if self.down is not None:
            return
        self.down = reason
        for claim in self._claims.values():
            claim.stand_down(reason)

    def claim(self, name: str, events: SingletonEvents) -> SingletonLease:
        """Start claiming singleton ``name`` for a supervisor; see ``SingletonCoordinator.claim``.
        Raises RuntimeError before ``open``."""
        if self._client is None or self._clock is None:
            raise RuntimeError("RedisSingletons is not open: give it to Node(singletons=...)")
        previous = self._claims.pop(name, None)
        claim = SingletonLease(self, name, events, self._clock, previous)
        self._claims[name] = claim
        return claim

    def fence_for(self, path: str) -> tuple[int, Any] | None:
        """The token of the singleton whose subtree holds ``path`` (the last one granted, even
        if lost since) and its claim's fenced-write callback; None outside every singleton."""
        for name, claim in self._claims.items():
            if claim.last_token is not None and (path == name or path.startswith(name + "/")):
                return claim.last_token, claim.fenced
        return None

    def valid_until(self, path: str) -> float:
        """Until when (node clock) this node counts the singleton whose subtree holds ``path``
        as its own: ``-inf`` if it does not hold it now, ``inf`` outside every singleton.

        An effect outside the journal (an order written to a socket) checks it in the same
        step as it happens: a process frozen past its lease wakes up with its clock past
        this time, before its lease-lost timer has run."""
        for name, claim in self._claims.items():
            if path == name or path.startswith(name + "/"):
                return claim.valid_until
        return math.inf

    def owned(self) -> dict[str, int]:
        """The singletons this node holds now, by name, with their fencing tokens."""
        return {name: claim.token for name, claim in self._claims.items() if claim.token is not None}

    # -- the lease's commands ------------------------------------------------------------------

    async def acquire(self, name: str, owner: str) -> tuple[int, float]:
        """Take the lease if no one holds it: ``(token, 0)``; else ``(0, seconds it has left)``."""
        lease, counter = singleton_keys(self.namespace, name)
        token, remaining = await kept_cancelled(
            self._scripts["acquire"](keys=[lease, counter], args=[owner, int(self.ttl * 1000)])
        )
        # A key without a TTL (-1: not one this coordinator wrote) is polled every refresh.
        return int(token), self.refresh if int(remaining) < 0 else int(remaining) / 1000

    async def extend(self, name: str, value: str) -> bool:
        """Extend the lease by ``ttl`` if it still holds ``value`` (``<owner>#<token>``)."""
        lease, _ = singleton_keys(self.namespace, name)
        return bool(
            int(
                await kept_cancelled(
                    self._scripts["refresh"](keys=[lease], args=[value, int(self.ttl * 1000)])
                )
            )
        )

    async def give_up(self, name: str, value: str) -> bool:
        """Delete the lease if it still holds ``value``."""
        lease, _ = singleton_keys(self.namespace, name)
        return bool(int(await self._scripts["release"](keys=[lease], args=[value])))

    def __repr__(self) -> str:
        return (
            f"RedisSingletons({redact_url(self.url)!r}, node_id={self.node_id!r}, ttl={self.ttl}, "
            f"cluster={self.connection.cluster})"
        )


class SingletonLease:
    """One supervisor's claim on one singleton (``garrison.supervision.SingletonClaim``): a
    task that polls for the lease while standing by and refreshes it while owning it.

    ``token`` is the fencing token while this node owns the singleton (None otherwise);
    ``last_token`` the last one granted, kept after a loss so that a stale writer stays
    fenced rather than unfenced.
    """

    def __init__(
        self,
        coordinator: RedisSingletons,
        name: str,
        events: SingletonEvents,
        clock: Clock,
        previous: SingletonLease | None = None,
    ) -> None:
        self.name = name
        self.token: int | None = None
        self.last_token: int | None = None
        self.valid_until = -math.inf
        """Node-clock time until which the lease counts as this node's (``-inf``: not held)."""
        self._coordinator = coordinator
        self._events = events
        self._clock = clock
        self._owner = f"{coordinator.node_id}:{uuid.uuid4().hex[:8]}"
        self._deadline: Cancellable | None = None
        self._quiet_until = 0.0
        self._log = logger.bind(singleton=name, node=coordinator.node_id)
        self._task = asyncio.get_running_loop().create_task(
            self._run(previous), name=f"garrison:singleton:{name}"
        )

    @property
    def value(self) -> str:
        """What the lease key holds while this claim owns it."""
        return f"{self._owner}#{self.token}"

    # -- the claim's loop: stand by, take, keep ---------------------------------------------

    async def _run(self, previous: SingletonLease | None) -> None:
        if previous is not None:
            await previous.release()
        coordinator = self._coordinator
        me = asyncio.current_task()
        # Only the claim's current task runs the loop: one replaced (resign) or cancelled ends here,
        # even if a Redis call swallowed its cancellation (redis-py can; see kept_cancelled).
        while self._task is me and not (me is not None and me.cancelling()):
            if self.token is None:
                await self._stand_by(coordinator)
            else:
                await self._keep(coordinator, self.token)

    async def _stand_by(self, coordinator: RedisSingletons) -> None:
        wait = self._quiet_until - self._clock.now()
        if wait > 0:
            await self._clock.sleep(wait)
        if coordinator.down is not None:  # out of the cluster: never claim again
            await self._clock.sleep(coordinator.refresh)
            return
        sent = self._clock.now()
        try:
            token, remaining = await coordinator.acquire(self.name, self._owner)
        except _redis_errors() as error:
            self._log.warning(
                "singleton {name}: cannot reach Redis to claim it: {error}", name=self.name, error=error
            )
            await self._clock.sleep(coordinator.refresh)
            return
        if token and (self._task is not asyncio.current_task() or coordinator.down is not None):
            # Replaced, released or stood down meanwhile: this grant is no one's.
            with contextlib.suppress(*_redis_errors()):
                await coordinator.give_up(self.name, f"{self._owner}#{token}")
            return
        if not token:
            # Wake just after the holder's lease would expire, or after a poll interval.
            await self._clock.sleep(min(coordinator.refresh, remaining + 0.005))
            return
        self.token = self.last_token = token
        self._arm(sent)
        self._log.info(
            "singleton {name}: this node holds its lease, token {token}", name=self.name, token=token
        )
        self._events.granted(token)

    async def _keep(self, coordinator: RedisSingletons, token: int) -> None:
        await self._clock.sleep(coordinator.refresh)
        if self.token != token:
            return
        value = self.value
        sent = self._clock.now()
        try:
            extended = await coordinator.extend(self.name, value)
        except _redis_errors() as error:
            # Not lost yet: the deadline timer stops the singleton if no refresh lands in time.
            self._log.warning("singleton {name}: lease refresh failed: {error}", name=self.name, error=error)
            return
        if self.token != token:
            return
        if extended:
            self._arm(sent)
        else:
            self._lose("another node holds its lease now")

    def _arm(self, sent: float) -> None:
        """Count the lease ours until ``ttl - safety_margin`` after ``sent`` (when the last
        successful command was sent), by this node's clock."""
        if self._deadline is not None:
            self._deadline.cancel()
        coordinator = self._coordinator
        self.valid_until = sent + coordinator.ttl - coordinator.safety_margin
        self._deadline = self._clock.call_later(max(self.valid_until - self._clock.now(), 0.0), self._expired)

    def _expired(self) -> None:
        if self.token is not None:
            coordinator = self._coordinator
            self._lose(
                f"its lease could not be refreshed for {coordinator.ttl - coordinator.safety_margin:g}s "
                f"(ttl {coordinator.ttl:g}s less the safety margin)"
            )

    def _lose(self, reason: str) -> None:
        self.token = None
        self.valid_until = -math.inf
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._log.warning("singleton {name}: lost: {reason}", name=self.name, reason=reason)
        self._events.lost(reason)

    # -- what the supervisor and the fenced journal call (SingletonClaim) -----------------------

    def fenced(self, error: BaseException) -> None:
        """A write under this claim's token was refused (Fenced): a newer owner exists."""
        token = getattr(error, "token", None)
        if self.token is not None and token == self.token:
            self._lose(f"a write with token {token} was fenced: another node owns the singleton now")

    def stand_down(self, reason: str) -> None:
        """Lose the singleton now if owned (its supervisor stops it) and give the lease back;
        the coordinator's ``down`` keeps this claim from taking it again."""
        if self.token is None:
            return
        value = self.value
        self._lose(f"this node stood down: {reason}")
        self._task.cancel()
        self._task = asyncio.get_running_loop().create_task(
            self._give_up_then_run(value), name=f"garrison:singleton:{self.name}"
        )

    def resign(self, reason: str) -> None:
        """Give up ownership now and stand by, claiming again only after one TTL."""
        self._quiet_until = self._clock.now() + self._coordinator.ttl
        if self.token is None:
            return
        value = self.value
        self.token = None
        self.valid_until = -math.inf
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._log.warning("singleton {name}: resigned: {reason}", name=self.name, reason=reason)
        self._task.cancel()
        self._task = asyncio.get_running_loop().create_task(
            self._give_up_then_run(value), name=f"garrison:singleton:{self.name}"
        )

    async def _give_up_then_run(self, value: str) -> None:
        with contextlib.suppress(*_redis_errors()):
            await self._coordinator.give_up(self.name, value)
        await self._run(None)

    async def release(self) -> None:
        """Stop claiming and delete the lease if this claim holds it. Idempotent."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.valid_until = -math.inf
        if self.token is not None:
            value = self.value
            self.token = None
            with contextlib.suppress(*_redis_errors()):
                await self._coordinator.give_up(self.name, value)
