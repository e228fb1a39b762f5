"""``Cluster``: a node's membership of a named cluster on one Redis, and its remote refs."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from garrison._errors import ActorNotFound, ActorStopped, InvalidConfig, NameTaken, NodeNotRunning
from garrison._validate import check_count, check_seconds
from garrison.actors import ActorRef
from garrison.cluster._config import ClusterConnection, ClusterSettings, check_cluster_name
from garrison.cluster._keys import cluster_key
from garrison.cluster._membership import Member, MemberDown, Membership, MemberUp
from garrison.cluster._remote import RemoteRef, Transport
from garrison.cluster._singleton import RedisSingletons
from garrison.cluster._wire import MessageTypes, encode

if TYPE_CHECKING:
    from garrison._node import Node
    from garrison.cluster._config import RedisClient

DEFAULT_MAX_INBOX_LENGTH = 100_000
"""A node's inbox is trimmed to about this many entries (XADD MAXLEN ~)."""

DEFAULT_READ_COUNT = 512
"""Entries read from the inbox per XREADGROUP."""


class Cluster:
    """This node's membership of a cluster, and the way to its actors on other nodes.

    Join with ``cluster = await Cluster.join(node, "redis://...", name="prod")``
    inside ``async with Node(...)``; the node then holds it as ``node.cluster``
    and leaves the cluster when it shuts down (after its actors stopped).

    Membership: each node holds a lease in Redis (``lease_ttl``, renewed every
    ``refresh_interval`` seconds of the node's clock); ``members()`` is the
    view of the last refresh; ``MemberUp`` and ``MemberDown`` are published on
    ``node.bus``. A node that cannot renew its lease for longer than
    ``lease_ttl``, or finds it gone, considers itself out: ``self_down`` is
    set, ``on_self_down`` callbacks run, every other member is down for it,
    and it never rejoins (restart the node to join again).

    Remote refs: ``ref(node_id, path)``, ``register(name, ref)`` and
    ``whereis(name)``; see :class:`RemoteRef` for the delivery guarantees.

    Raises (``join``): InvalidConfig for a bad argument or a node id another
    live node holds; redis-py's ConnectionError when Redis cannot be reached.

    >>> async def main() -> None:  # doctest: +SKIP
    ...     async with Node("a") as node:
    ...         cluster = await Cluster.join(node, "redis://127.0.0.1:6379/0", name="demo")
    ...         print([member.node_id for member in cluster.members()])
    """

    def __init__(
        self,
        node: Node,
        client: RedisClient,
        *,
        owns_client: bool,
        name: str,
        node_id: str,
        lease_ttl: float,
        refresh_interval: float,
        types: MessageTypes,
        wall_clock: Callable[[], float],
        max_inbox_length: int,
        read_count: int,
    ) -> None:
        self.node = node
        self.name = name
        """The cluster's name."""
        self.node_id = node_id
        """This node's id in the cluster."""
        self.member = Member(node_id, uuid.uuid4().hex)
        """This node's incarnation in the cluster."""
        self.types = types
        """The registry of message types this node sends and understands."""
        self.self_down = asyncio.Event()
        """Set once this node considers itself out of the cluster (see ``on_self_down``)."""
        self._client = client
        self._owns_client = owns_client
        self._self_down_callbacks: list[Callable[[str], None]] = []
        self._names_key = cluster_key(name, "names")
        self._name_tasks: dict[str, asyncio.Task[None]] = {}
        self._left = False
        self.membership = Membership(
            node,
            client,
            cluster=name,
            member=self.member,
            lease_ttl=lease_ttl,
            refresh_interval=refresh_interval,
            on_up=self._member_up,
            on_down=self._member_down,
            on_self_down=self._went_out,
        )
        self.transport = Transport(
            node,
            client,
            cluster=name,
            member=self.member,
            types=types,
            is_up=self.is_up,
            wall_clock=wall_clock,
            max_inbox_length=max_inbox_length,
            read_count=read_count,
        )

    # -- joining and leaving -------------------------------------------------------------

    @classmethod
    async def join(
        cls,
        node: Node,
        redis: str | ClusterConnection | RedisClient,
        *,
        name: str = "garrison",
        node_id: str | None = None,
        lease_ttl: float = 3.0,
        refresh_interval: float = 1.0,
        message_types: Iterable[type] | MessageTypes = (),
        max_inbox_length: int = DEFAULT_MAX_INBOX_LENGTH,
        read_count: int = DEFAULT_READ_COUNT,
        wall_clock: Callable[[], float] = time.time,
    ) -> Cluster:
        """Join the cluster ``name`` on ``redis`` (a URL, a :class:`ClusterConnection` —
        ``cluster=True`` for a Redis Cluster —, or a redis-py asyncio ``Redis`` or
        ``RedisCluster`` client the caller keeps and closes) as ``node_id`` (default: the
        node's name). Awaits the first view of the members; ``node.cluster`` is then set.
        When the node's ``singletons`` is a :class:`RedisSingletons`, the node's singletons
        stand down (stop, and stand by) as soon as it considers itself out of the cluster.

        ``message_types`` registers the types sent between nodes (more with
        ``message_types(...)``). ``wall_clock`` is where ask deadlines are read
        (they cross machines: keep the clocks in sync, as NTP does).
        """
        if node.state != "running":
            raise NodeNotRunning(node.name, node.state)
        if node.cluster is not None:
            raise InvalidConfig("node", node.name, "has joined a cluster already (node.cluster)")
        check_cluster_name("name", name)
        chosen_id = check_cluster_name("node_id", node.name if node_id is None else node_id)
        check_seconds("lease_ttl", lease_ttl)
        check_seconds("refresh_interval", refresh_interval)
        if lease_ttl == 0 or refresh_interval == 0 or refresh_interval >= lease_ttl:
            raise InvalidConfig(
                "refresh_interval",
                refresh_interval,
                f"must be > 0 and less than lease_ttl={lease_ttl} (else the lease lapses between refreshes)",
            )
        check_count("max_inbox_length", max_inbox_length)
        check_count("read_count", read_count)
        types = message_types if isinstance(message_types, MessageTypes) else MessageTypes(message_types)
        if isinstance(redis, str):
            redis = ClusterConnection(redis)
        owns = isinstance(redis, ClusterConnection)
        client = redis.client() if isinstance(redis, ClusterConnection) else redis
        cluster = cls(
            node,
            client,
            owns_client=owns,
            name=name,
            node_id=chosen_id,
            lease_ttl=float(lease_ttl),
            refresh_interval=float(refresh_interval),
            types=types,
            wall_clock=wall_clock,
            max_inbox_length=max_inbox_length,
            read_count=read_count,
        )
        try:
            # The lease first: a node id another live node holds is refused before its inbox is touched.
            await cluster.membership.join()
            try:
                await cluster.transport.open()
            except BaseException:
                await cluster.transport.close()
                await cluster.membership.leave()
                raise
        except BaseException:
            if owns:
                await client.aclose()
            raise
        node.attach_cluster(cluster)
        if isinstance(node.singletons, RedisSingletons):
            # Out of the cluster, this node may own no singleton: they stop and stand by at once.
            cluster.on_self_down(node.singletons.stand_down)
        node.logger.info(
            "node {node} joined cluster {cluster} ({count} member(s) up)",
            node=chosen_id,
            cluster=name,
            count=len(cluster.members()),
        )
        return cluster

    @classmethod
    async def join_settings(cls, node: Node, settings: ClusterSettings, **options: Any) -> Cluster:
        """Join the cluster a ``[cluster]`` settings section names (``garrison run`` does)."""
        return await cls.join(
            node,
            settings.connection(),
            name=settings.name,
            node_id=settings.node_id,
            lease_ttl=settings.lease_ttl,
            refresh_interval=settings.refresh_interval,
            **options,
        )

    async def leave(self) -> None:
        """Leave the cluster: send what is buffered, stop reading, free the names this node
        registered and delete its lease and inbox. The node calls it on shutdown, after its
        actors stopped; safe to call twice. Never raises."""
        if self._left:
            return
        self._left = True
        for task in self._name_tasks.values():
            task.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.membership.lease_ttl):
                owned = [
                    name for name, holder in (await self._read_names()).items() if holder[0] == self.node_id
                ]
                if owned:
                    await self._client.hdel(self._names_key, *owned)
        await self.transport.close()
        await self.membership.leave()
        if self._owns_client:
            with contextlib.suppress(Exception):
                await self._client.aclose()
        self.node.logger.info("node {node} left cluster {cluster}", node=self.node_id, cluster=self.name)

    # -- membership ----------------------------------------------------------------------

    @property
    def redis(self) -> RedisClient:
        """The redis-py asyncio client the cluster uses (for the cluster's own modules, such
        as the singleton's lease; its keys come from ``garrison/cluster/_keys.py``)."""
        return self._client

    @property
    def lease_ttl(self) -> float:
        """Seconds a lease lives without a refresh."""
        return self.membership.lease_ttl

    @property
    def refresh_interval(self) -> float:
        """Seconds of the node's clock between two lease refreshes."""
        return self.membership.refresh_interval

    def members(self) -> list[Member]:
        """The members up as of the last lease refresh, by node id (empty once this node is out)."""
        return sorted(self.membership.view.values())

    def is_up(self, node_id: str) -> bool:
        """Whether ``node_id`` is a member now (as of the last refresh)."""
        return node_id in self.membership.view

    def on_self_down(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(why)`` once, on the loop, when this node considers itself out of the
        cluster (before ``MemberDown`` for itself is published). Returns a function that removes
        it. A callback that raises is logged."""
        self._self_down_callbacks.append(callback)

        def remove() -> None:
            if callback in self._self_down_callbacks:
                self._self_down_callbacks.remove(callback)

        return remove

    def _member_up(self, member: Member) -> None:
        self.node.bus.publish(MemberUp(self.name, member))

    def _member_down(self, member: Member, why: str) -> None:
        self.transport.member_down(member.node_id, why)
        self.node.bus.publish(MemberDown(self.name, member, why))

    def _went_out(self, why: str) -> None:
        self.self_down.set()
        for callback in tuple(self._self_down_callbacks):
            try:
                callback(why)
            except Exception:
                self.node.logger.opt(exception=True).error("cluster on_self_down callback raised")
        self.node.bus.publish(MemberDown(self.name, self.member, f"this node is out: {why}"))

    # -- remote refs ---------------------------------------------------------------------

    def message_types(self, *types: type) -> None:
        """Register message types (each under ``module.QualifiedName``; see MessageTypes)."""
        for each in types:
            self.types.register(each)

    def ref(self, node_id: str, path: str) -> RemoteRef:
        """The ref of the actor at ``path`` on node ``node_id`` (no round trip: whether it exists
        shows when it is used). Raises InvalidConfig for a path that does not start with '/'."""
        check_cluster_name("node_id", node_id)
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidConfig("path", path, "must be an actor path starting with '/' (/user/router)")
        return self.transport.ref(node_id, path)

    async def register(self, name: str, ref: ActorRef) -> None:
        """Register this node's actor ``ref`` under ``name`` in the whole cluster, until the actor
        stops for good or this node leaves. Awaits Redis.

        Raises NameTaken if a node that is up holds ``name`` for another actor,
        InvalidConfig for an empty name or a ``ref`` that is not a local ActorRef,
        ActorStopped for a dead ref.
        """
        if not isinstance(name, str) or not name:
            raise InvalidConfig("name", name, "must be a non-empty str")
        if not isinstance(ref, ActorRef):
            raise InvalidConfig("ref", ref, "must be an ActorRef of this node (a local actor)")
        if not ref.is_alive:
            raise ActorStopped(ref.path, "a stopped actor cannot be registered")
        holder = (await self._read_names()).get(name)
        if holder is not None and holder != (self.node_id, ref.path) and self.is_up(holder[0]):
            raise NameTaken(name, f"{holder[0]}:{holder[1]}", f"{self.node_id}:{ref.path}")
        await self._client.hset(self._names_key, name, encode([self.node_id, ref.path]))
        previous = self._name_tasks.pop(name, None)
        if previous is not None:
            previous.cancel()
        self._name_tasks[name] = asyncio.get_running_loop().create_task(self._free_when_dead(name, ref))

    async def _free_when_dead(self, name: str, ref: ActorRef) -> None:
        await ref.wait_terminated()
        with contextlib.suppress(Exception):
            holder = (await self._read_names()).get(name)
            if holder == (self.node_id, ref.path):
                await self._client.hdel(self._names_key, name)
        self._name_tasks.pop(name, None)

    async def unregister(self, name: str) -> None:
        """Free ``name`` if this node holds it (the actor lives on). Awaits Redis."""
        holder = (await self._read_names()).get(name)
        if holder is not None and holder[0] == self.node_id:
            await self._client.hdel(self._names_key, name)
        task = self._name_tasks.pop(name, None)
        if task is not None:
            task.cancel()

    async def whereis(self, name: str) -> ActorRef | RemoteRef | None:
        """The actor registered under ``name`` in the cluster: a local ActorRef when it lives on
        this node, a RemoteRef on another node that is up, None otherwise. Awaits Redis."""
        holder = (await self._read_names()).get(name)
        if holder is None or not self.is_up(holder[0]):
            return None
        node_id, path = holder
        if node_id == self.node_id:
            try:
                return self.node.lookup(path)
            except ActorNotFound:
                return None
        return self.transport.ref(node_id, path)

    async def registered(self) -> dict[str, str]:
        """Every name registered in the cluster and its actor's ``node-id:/path``. Awaits Redis."""
        return {name: f"{node_id}:{path}" for name, (node_id, path) in (await self._read_names()).items()}

    async def _read_names(self) -> dict[str, tuple[str, str]]:
        raw: dict[Any, Any] = await self._client.hgetall(self._names_key)
        names: dict[str, tuple[str, str]] = {}
        for key, value in raw.items():
            with contextlib.suppress(msgspec.DecodeError, ValueError):
                node_id, path = msgspec.msgpack.decode(value, type=tuple[str, str])
                names[key.decode()] = (node_id, path)
        return names

    # -- counters ------------------------------------------------------------------------

    @property
    def expired_asks(self) -> int:
        """Asks from other nodes read after their deadline and dropped unanswered."""
        return self.transport.expired_asks

    def stats(self) -> dict[str, int]:
        """Counters: frames ``sent`` and ``received``, ``expired_asks``, ``send_failures``
        (frames lost with a failed pipeline), ``lease_refresh_failures``."""
        transport = self.transport
        return {
            "sent": transport.sent,
            "received": transport.received,
            "expired_asks": transport.expired_asks,
            "send_failures": transport.send_failures,
            "lease_refresh_failures": self.membership.refresh_failures,
        }

    def __repr__(self) -> str:
        return f"<Cluster {self.name} node={self.node_id} members={len(self.membership.view)}>"
