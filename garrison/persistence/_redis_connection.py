"""``RedisConnection``: where and how garrison connects to Redis (URL, password, TLS, cluster).

One small frozen dataclass, built once from the node config (``[journal]``:
``url``, ``password``, ``tls``, ``tls_ca``, ``tls_cert``, ``tls_key``,
``cluster``) or in code, and given to ``RedisJournal``; ``RedisConsumer``
uses its journal's connections. It checks its values when made (a bad one is
an InvalidConfig naming the setting) and builds the redis-py clients: a
``redis.asyncio.Redis`` or, with ``cluster=True``, a
``redis.asyncio.cluster.RedisCluster``. The password is a ``Secret``: no
``repr``, message or log shows it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from garrison._errors import InvalidConfig
from garrison._secret import MASK, Secret, redact_url, secret_texts
from garrison._settings import JournalSettings

__all__ = ["RedisConnection"]

_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RedisConnection:
    """How to reach a Redis server or Redis Cluster.

    ``url`` as redis-py takes it (``redis://127.0.0.1:6379/0``; ``rediss://``
    is TLS; for a cluster, any one node). ``password`` (a ``Secret``, or a
    ``str`` which is wrapped in one) is sent with AUTH; it overrides one in the
    URL. ``tls=True`` (or a ``rediss://`` URL) encrypts the connection and checks
    the server's certificate against ``tls_ca`` (a CA file; the system's CAs
    without it); ``tls_cert`` and ``tls_key`` (both or neither) are the
    client's certificate for a server that asks for one. ``cluster=True``
    talks to a Redis Cluster (every key of one journal stream lives in one
    slot: see docs/persistence.md).

    >>> connection = RedisConnection(url="redis://db:6379/0", password="hunter2", cluster=True)
    >>> connection.password, connection.cluster, connection.uses_tls
    (Secret('***'), True, False)

    Raises:
        InvalidConfig: naming the field, for a URL of another scheme, a TLS file that does
            not exist, a certificate without its key, TLS files without TLS, or a cluster
            over a unix socket.
    """

    url: str
    password: Secret | None = None
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    cluster: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(_SCHEMES):
            shown = redact_url(self.url) if isinstance(self.url, str) else self.url
            raise InvalidConfig("url", shown, "a Redis URL such as redis://127.0.0.1:6379/0")
        if isinstance(self.password, str):
            object.__setattr__(self, "password", Secret(self.password))
        elif self.password is not None and not isinstance(self.password, Secret):
            raise InvalidConfig(
                "password", type(self.password).__name__, "a password is a string or a Secret"
            )
        for field in ("tls", "cluster"):
            if not isinstance(getattr(self, field), bool):
                raise InvalidConfig(field, getattr(self, field), "true or false")
        for field in ("tls_ca", "tls_cert", "tls_key"):
            path = getattr(self, field)
            if path is None:
                continue
            if not isinstance(path, str) or not Path(path).is_file():
                raise InvalidConfig(field, path, "the path of a PEM file that exists and can be read")
            if not self.uses_tls:
                raise InvalidConfig(
                    field, path, "TLS files without TLS: set tls = true (or use a rediss:// URL), or drop it"
                )
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("tls_cert", "tls_key") if self.tls_key is None else ("tls_key", "tls_cert")
            raise InvalidConfig(missing, None, f"{given} is given: a client certificate needs both files")
        if self.cluster and self.url.startswith("unix://"):
            raise InvalidConfig("cluster", True, "a Redis Cluster is reached over TCP: give a redis:// URL")

    @classmethod
    def from_settings(cls, settings: JournalSettings, url: str | None = None) -> RedisConnection:
        """The connection the node config's ``[journal]`` section describes (``url``,
        ``password``, ``tls``, ``tls_ca``, ``tls_cert``, ``tls_key``, ``cluster``); ``url``
        instead of ``journal.url`` if given. Raises InvalidConfig naming the field (``url``
        when neither is set)."""
        if url is None:
            if settings.url is None:
                raise InvalidConfig("url", None, "set journal.url to a redis:// URL")
            url = settings.url.reveal()
        return cls(
            url=url,
            password=settings.password,
            tls=settings.tls,
            tls_ca=settings.tls_ca,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
            cluster=settings.cluster,
        )

    @property
    def uses_tls(self) -> bool:
        """Whether connections are encrypted: ``tls=True`` or a ``rediss://`` URL."""
        return self.tls or self.url.startswith("rediss://")

    def redacted_url(self) -> str:
        """``url`` without its password, for messages and logs."""
        return redact_url(self.url)

    def secret_texts(self) -> list[str]:
        """The texts no message may show: the URL's password and ``password``."""
        texts = secret_texts(self.url)
        if self.password is not None and self.password.reveal():
            texts.append(self.password.reveal())
        return texts

    def client(self, *, socket_timeout: float | None, socket_connect_timeout: float | None) -> Any:
        """A new redis-py asyncio client (``Redis``, or ``RedisCluster`` with ``cluster``) that never
        retries on its own: a re-sent write whose reply was lost must be settled by its caller."""
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        if self.password is not None:
            options["password"] = self.password.reveal()
        url = self.url
        if self.uses_tls:
            url = "rediss://" + url.partition("://")[2]
            if self.tls_ca is not None:
                options["ssl_ca_certs"] = self.tls_ca
            if self.tls_cert is not None:
                options["ssl_certfile"] = self.tls_cert
                options["ssl_keyfile"] = self.tls_key
        if self.cluster:
            from redis.asyncio.cluster import RedisCluster

            # A moved slot is followed (MOVED/ASK); a dead node is the caller's to settle.
            return RedisCluster.from_url(url, **options)
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(url, **options)

    def __repr__(self) -> str:
        password = None if self.password is None else Secret(MASK)
        return (
            f"RedisConnection(url={self.redacted_url()!r}, password={password!r}, tls={self.tls!r}, "
            f"tls_ca={self.tls_ca!r}, tls_cert={self.tls_cert!r}, tls_key={self.tls_key!r}, "
            f"cluster={self.cluster!r})"
        )
