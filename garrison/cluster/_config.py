"""How a node reaches its cluster: the connection options and the ``[cluster]`` settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import Meta

from garrison._errors import InvalidConfig
from garrison._secret import Secret, redact_url
from garrison._validate import check_seconds

if TYPE_CHECKING:
    from typing import TypeAlias

    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from garrison.cluster._singleton import RedisSingletons

    RedisClient: TypeAlias = Redis | RedisCluster
    """A redis-py asyncio client: one server's, or a Redis Cluster's."""

_FORBIDDEN_IN_NAMES = "{}: \t\n"


def check_cluster_name(field: str, value: object) -> str:
    """A cluster or node name: a non-empty str without braces, colons or blanks (it goes into
    Redis keys and their hash tags). Raises InvalidConfig naming ``field``."""
    if not isinstance(value, str) or not value or any(char in value for char in _FORBIDDEN_IN_NAMES):
        raise InvalidConfig(field, value, "must be a non-empty str without '{', '}', ':' or blanks")
    return value


@dataclass(frozen=True, slots=True)
class ClusterConnection:
    """How the cluster connects to Redis: the URL, a password kept as a :class:`Secret` (never
    shown), how long connecting may take, and ``cluster=True`` for a Redis Cluster (the URL
    names any one of its nodes). One place for the cluster's connection options.

    >>> ClusterConnection("redis://127.0.0.1:6379/0").socket_connect_timeout
    5.0
    >>> ClusterConnection("redis://10.0.0.5:7000/0", cluster=True).cluster
    True
    """

    url: str
    password: Secret | None = None
    socket_connect_timeout: float = 5.0
    cluster: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("redis://", "rediss://", "unix://")):
            shown = redact_url(self.url) if isinstance(self.url, str) else self.url
            raise InvalidConfig("url", shown, "must be a redis://, rediss:// or unix:// URL")
        if self.password is not None and not isinstance(self.password, Secret):
            raise InvalidConfig("password", "***", "must be a garrison Secret (Secret('...')) or None")
        check_seconds("socket_connect_timeout", self.socket_connect_timeout)
        if not isinstance(self.cluster, bool):
            raise InvalidConfig("cluster", self.cluster, "must be true or false")
        if self.cluster and self.url.startswith("unix://"):
            raise InvalidConfig("cluster", True, "a Redis Cluster is reached over TCP: give a redis:// URL")

    def client(self) -> RedisClient:
        """A new redis-py asyncio client (not yet connected): a ``RedisCluster`` with ``cluster``.
        Raises InvalidConfig without redis-py."""
        try:
            import redis.asyncio as aioredis
        except ImportError as error:
            raise InvalidConfig(
                "url", redact_url(self.url), "the cluster needs redis-py: pip install 'garrison[redis]'"
            ) from error
        options: dict[str, Any] = {"socket_connect_timeout": self.socket_connect_timeout}
        if self.password is not None:
            options["password"] = self.password.reveal()
        if self.cluster:
            from redis.asyncio.cluster import RedisCluster

            return RedisCluster.from_url(self.url, **options)
        return aioredis.Redis.from_url(self.url, **options)

    def __repr__(self) -> str:
        password = "None" if self.password is None else "***"
        return f"ClusterConnection(url={redact_url(self.url)!r}, password={password}, cluster={self.cluster})"


def _meta(description: str) -> Meta:
    return Meta(description=description)


class ClusterSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[cluster]``: the cluster ``garrison run`` joins when the section is present (read with
    ``settings.section("cluster", ClusterSettings)``; variables ``GARRISON_CLUSTER_<KEY>``)."""

    url: Annotated[Secret, _meta("the cluster's Redis, redis://HOST:PORT/DB (a secret)")]
    name: Annotated[
        str, Meta(min_length=1), _meta("the cluster's name: nodes of one name see each other")
    ] = "garrison"
    node_id: Annotated[str | None, _meta("this node's id in the cluster (default: the node's name)")] = None
    lease_ttl: Annotated[
        float, Meta(gt=0), _meta("seconds a node's lease lives without a refresh before it is down")
    ] = 3.0
    refresh_interval: Annotated[
        float, Meta(gt=0), _meta("seconds between lease refreshes (less than lease_ttl)")
    ] = 1.0
    password: Annotated[Secret | None, _meta("the Redis password (a secret), if the URL has none")] = None
    redis_cluster: Annotated[
        bool, _meta("true when url names a node of a Redis Cluster (every key is hash-tagged)")
    ] = False

    def connection(self) -> ClusterConnection:
        """The connection options these settings name."""
        return ClusterConnection(self.url.reveal(), self.password, cluster=self.redis_cluster)

    def singletons(self, node_name: str) -> RedisSingletons:
        """The node's singleton coordinator on this cluster's Redis: same URL, password and
        Redis Cluster setting, this node's id (``node_id``, else ``node_name``), the lease's
        ttl and refresh from ``lease_ttl`` and ``refresh_interval``, and keys of the cluster's
        own (``garrison run`` gives it to the node). Raises InvalidConfig for timings the
        singleton refuses (``refresh_interval`` + ``lease_ttl / 5`` must stay below ``lease_ttl``).
        """
        from garrison.cluster._keys import singletons_namespace
        from garrison.cluster._singleton import RedisSingletons

        margin = self.lease_ttl / 5
        if self.refresh_interval + margin >= self.lease_ttl:
            raise InvalidConfig(
                "refresh_interval",
                self.refresh_interval,
                f"refresh_interval + lease_ttl / 5 ({self.refresh_interval} + {margin}) must be below "
                f"lease_ttl ({self.lease_ttl}) for the cluster's singletons: raise lease_ttl or lower it",
            )
        return RedisSingletons(
            self.url.reveal(),
            node_id=self.node_id or node_name,
            namespace=singletons_namespace(self.name),
            ttl=self.lease_ttl,
            refresh=self.refresh_interval,
            password=self.password,
            cluster=self.redis_cluster,
        )
