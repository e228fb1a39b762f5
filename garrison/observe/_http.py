"""The node's HTTP endpoint: ``/metrics`` (Prometheus), ``/healthz``, ``/readyz``, ``/tree``.

Opt-in with ``Node(metrics_port=...)`` (``/metrics`` needs prometheus-client:
the ``garrison[metrics]`` extra). A small HTTP/1.1 server on the node's own
loop (``asyncio.start_server``): no thread per connection and no thread at
all, and every answer reads the node's state where it lives. Bound to
127.0.0.1 by default. Not aiohttp: four GET paths need no framework, and a
dependency of every node for them would cost more than these few lines.

It is built to be scraped and probed, not to face the internet, and it
keeps itself cheap either way: a connection must send a request within
``idle_timeout`` seconds and its head within ``read_timeout``; a head is at
most ``MAX_HEAD_BYTES``; at most ``max_connections`` connections are kept,
and a new one beyond that closes the connection idle the longest (or, if
every one is busy answering, is itself answered 503). GET and HEAD only;
keep-alive as HTTP/1.1 says.

A blocked loop answers nothing until it is free again: a probe with a
timeout (Kubernetes' ``timeoutSeconds``) sees the failure it should.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING

from garrison._validate import check_count, check_seconds
from garrison.observe._metrics import Exposition, ObservedNode, collect_metrics

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

SNAPSHOT_TIMEOUT = 2.0
"""Seconds /metrics waits for its slow sources (a Redis consumer group's lag) before answering 503."""
DEFAULT_MAX_CONNECTIONS = 64
"""Connections the endpoint keeps open at most."""
DEFAULT_READ_TIMEOUT = 5.0
"""Seconds from a request's first byte to the end of its head."""
DEFAULT_IDLE_TIMEOUT = 30.0
"""Seconds a connection may wait before sending its (next) request."""
MAX_HEAD_BYTES = 8192
"""The longest request line plus headers accepted (431 beyond)."""

PATHS = ("/metrics", "/healthz", "/readyz", "/tree")
_TEXT = "text/plain; charset=utf-8"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _Request:
    __slots__ = ("keep_alive", "method", "path")

    def __init__(self, method: str, path: str, keep_alive: bool) -> None:
        self.method = method
        self.path = path
        self.keep_alive = keep_alive


class _BadRequest(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class MetricsServer:
    """The node's HTTP endpoint, served by its own loop.

    ``await open()`` binds and listens (raises OSError if the port is taken);
    ``await stop()`` closes the listener and every connection.
    """

    def __init__(
        self,
        node: ObservedNode,
        host: str,
        port: int,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        check_count("max_connections", max_connections)
        check_seconds("read_timeout", read_timeout)
        check_seconds("idle_timeout", idle_timeout)
        self.read_timeout = float(read_timeout)
        self.idle_timeout = float(idle_timeout)
        try:
            self._exposition: Exposition | None = Exposition()
        except ImportError:
            self._exposition = None  # /metrics says what to install; the rest works without it
        self._node = node
        self._host = host
        self._port = port
        self.max_connections = max_connections
        self.address: tuple[str, int] = (host, port)
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], bool] = {}
        """The task serving each open connection, oldest first, and whether it is busy answering."""
        self.evicted = 0
        """Idle connections closed to make room for a new one."""
        self.refused = 0
        """Connections answered 503 because every kept one was busy."""

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def open(self) -> None:
        """Bind and listen. Raises OSError (the port is taken, the host is not local)."""
        server = await asyncio.start_server(self._serve, self._host, self._port, limit=MAX_HEAD_BYTES)
        self._server = server
        self.address = (self._host, server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close every connection; awaits their tasks."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    # -- one connection ------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            if not self._admit():
                self.refused += 1
                await self._reply(writer, 503, _TEXT, b"too many connections\n", head_only=False, close=True)
                return
            self._connections[task] = False
            await self._requests(reader, writer, task)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client hung up, or the connection was evicted or the node stops
        finally:
            self._connections.pop(task, None)
            writer.close()

    def _admit(self) -> bool:
        """Room for one more connection, made by closing the longest-idle one if needed."""
        if len(self._connections) < self.max_connections:
            return True
        for task, busy in self._connections.items():
            if not busy:
                del self._connections[task]
                task.cancel()
                self.evicted += 1
                return True
        return False

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, task: asyncio.Task[None]
    ) -> None:
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    first = await reader.read(1)
                if not first:
                    return
                async with asyncio.timeout(self.read_timeout):
                    head = first + await reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                return  # an idle or slow client: close without a word (nothing was asked)
            except asyncio.IncompleteReadError:
                return
            except asyncio.LimitOverrunError:
                await self._refuse(reader, writer, 431, "request head too large")
                return
            try:
                request = _parse(head)
            except _BadRequest as error:
                await self._refuse(reader, writer, error.status, error.text)
                return
            self._connections[task] = True
            status, content_type, body = await self._answer(request.path)
            close = not request.keep_alive
            await self._reply(
                writer, status, content_type, body, head_only=request.method == "HEAD", close=close
            )
            if close:
                return
            self._connections[task] = False

    async def _refuse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, text: str
    ) -> None:
        """Answer ``status`` and close, reading what the client still sends meanwhile (bounded):
        closing with unread input would reset the connection before the client reads the answer."""
        await self._reply(writer, status, _TEXT, f"{text}\n".encode(), head_only=False, close=True)
        if writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(self.read_timeout):
                for _ in range(16):
                    if not await reader.read(MAX_HEAD_BYTES):
                        break

    async def _answer(self, path: str) -> tuple[int, str, bytes]:
        node = self._node
        if path in ("/healthz", "/readyz"):
            ok, why = node.health() if path == "/healthz" else node.readiness()
            return (200 if ok else 503), _TEXT, why.encode() + b"\n"
        if path == "/tree":
            return 200, "application/json", json.dumps(node.tree(), indent=2).encode()
        if path != "/metrics":
            return 404, _TEXT, f"try {', '.join(PATHS)}\n".encode()
        exposition = self._exposition
        if exposition is None:
            return 500, _TEXT, b"/metrics needs prometheus-client: pip install 'garrison[metrics]'\n"
        try:
            async with asyncio.timeout(SNAPSHOT_TIMEOUT):
                families = await collect_metrics(node)
        except TimeoutError:
            return 503, _TEXT, f"collecting /metrics took over {SNAPSHOT_TIMEOUT}s\n".encode()
        except Exception as error:  # a source failed (a closed journal): say so, do not hang up
            return 500, _TEXT, f"collecting /metrics failed: {type(error).__name__}: {error}\n".encode()
        from prometheus_client import CONTENT_TYPE_LATEST

        return 200, CONTENT_TYPE_LATEST, exposition.render(families, self._own_families())

    def _own_families(self) -> list[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

        return [
            GaugeMetricFamily(
                "garrison_http_connections", "Connections open to this endpoint", value=len(self._connections)
            ),
            CounterMetricFamily(
                "garrison_http_connections_evicted",
                "Idle connections closed to make room for a new one",
                value=self.evicted,
            ),
            CounterMetricFamily(
                "garrison_http_connections_refused",
                "Connections answered 503: every connection kept was busy",
                value=self.refused,
            ),
        ]

    async def _reply(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        content_type: str,
        body: bytes,
        *,
        head_only: bool,
        close: bool,
    ) -> None:
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            + ("Allow: GET, HEAD\r\n" if status == 405 else "")
            + ("Connection: close\r\n" if close else "")
            + "\r\n"
        )
        writer.write(head.encode("latin-1") if head_only else head.encode("latin-1") + body)
        try:
            async with asyncio.timeout(self.read_timeout):
                await writer.drain()  # a client that does not read is not waited for
        except TimeoutError:
            writer.transport.abort()
            raise ConnectionResetError("the client does not read its answer") from None


def _parse(head: bytes) -> _Request:
    """The method, path and keep-alive of a request head; raises _BadRequest."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, "expected 'GET /path HTTP/1.1'")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, colon, value = line.partition(":")
            if not colon:
                raise _BadRequest(400, f"malformed header line {line[:40]!r}")
            headers[name.strip().lower()] = value.strip().lower()
    if method not in ("GET", "HEAD"):
        raise _BadRequest(405, f"method {method[:20]} not allowed: GET or HEAD")
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        raise _BadRequest(400, "a request body is not accepted")
    connection = headers.get("connection", "")
    keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    return _Request(method, target.split("?", 1)[0], keep_alive)
