"""The HTTP endpoint as a server: on the node's loop, with bounded connections and timeouts.

500 idle connections cost no thread and leave /healthz answering; a
connection that sends nothing, or too slowly, is closed; keep-alive, HEAD,
and the refusals (405, 400, 431) follow HTTP/1.1. /readyz follows the
node's life: not ready before the tree starts, ready while it runs, not
ready once shutdown is requested.

Clients are blocking sockets driven from ``asyncio.to_thread`` (the server
needs the loop to answer) or non-blocking sockets the test only connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from garrison import Actor, ChildSpec, InvalidConfig, Node, SupervisorSpec
from garrison.observe import MetricsServer

from .test_metrics_http import fetch, scrape, value

IDLE_CONNECTIONS = 500
BURST = 50


class Idle(Actor):
    async def on_receive(self, message: Any) -> Any:
        return message


def exchange(address: tuple[str, int], request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(address, timeout=timeout) as connection:
        connection.sendall(request)
        return read_to_end(connection)


def read_to_end(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def closed_by_server(connection: socket.socket) -> bool:
    """The server closed ``connection`` (EOF or reset) before the socket's timeout."""
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@contextlib.contextmanager
def enough_file_descriptors(needed: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
async def served() -> AsyncIterator[Node]:
    async with Node("served", guard=None, metrics_port=0, handle_signals=False) as node:
        yield node


def not_the_test_clients_threads() -> int:
    """Threads alive, but for the executor that runs this test's blocking HTTP clients
    (``asyncio.to_thread``: it may add a worker whenever one is not idle yet)."""
    return len([thread for thread in threading.enumerate() if not thread.name.startswith("asyncio_")])


def server_of(node: Node) -> MetricsServer:
    server = node._metrics_server
    assert server is not None
    return server


async def eventually(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not true within {timeout}s"
        await asyncio.sleep(0.01)


# -- bounded connections ---------------------------------------------------------------------


async def test_500_idle_connections_cost_no_thread_and_health_still_answers(served: Node) -> None:
    node = served
    server = server_of(node)
    address = node.metrics_address
    assert address is not None
    await node.start(SupervisorSpec(children=[ChildSpec("worker", Idle)]))
    await fetch(node, "/healthz")
    threads_before = not_the_test_clients_threads()
    all_threads_before = threading.active_count()
    sockets: list[socket.socket] = []
    with enough_file_descriptors(4 * IDLE_CONNECTIONS):
        try:
            # In bursts the listen backlog holds: each connection is accepted, and the oldest
            # idle ones are closed to make room.
            for _ in range(IDLE_CONNECTIONS // BURST):
                for _ in range(BURST):
                    client = socket.socket()
                    client.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        client.connect(address)
                    sockets.append(client)
                accepted = len(sockets)
                await eventually(
                    lambda accepted=accepted: server.evicted + server.open_connections >= accepted
                )
            assert server.evicted >= IDLE_CONNECTIONS - server.max_connections
            assert server.open_connections <= server.max_connections
            assert not_the_test_clients_threads() == threads_before
            started = time.monotonic()
            status, _, body = await fetch(node, "/healthz")
            assert (status, body) == (200, b"ok\n")
            assert time.monotonic() - started < 2.0
            assert (await fetch(node, "/readyz"))[0] == 200
            metrics = await scrape(node)
            assert not_the_test_clients_threads() == threads_before
            # threading.active_count(): at most a worker or two more for the test's own clients.
            assert threading.active_count() <= all_threads_before + 2
        finally:
            for client in sockets:
                client.close()
    open_now = value(metrics["garrison_http_connections"], "garrison_http_connections")
    assert 1 <= open_now <= server.max_connections
    evicted = value(metrics["garrison_http_connections_evicted"], "garrison_http_connections_evicted_total")
    assert evicted >= IDLE_CONNECTIONS - server.max_connections
    assert value(metrics["garrison_http_connections_refused"], "garrison_http_connections_refused_total") == 0


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() -> None:
    async with Node("idle", guard=None, metrics_port=0, handle_signals=False) as node:
        server = server_of(node)
        server.idle_timeout = 0.2
        assert node.metrics_address is not None
        address = node.metrics_address

        def wait_for_close() -> tuple[bool, float]:
            with socket.create_connection(address, timeout=5.0) as connection:
                started = time.monotonic()
                return closed_by_server(connection), time.monotonic() - started

        closed, after = await asyncio.to_thread(wait_for_close)
        assert closed
        assert 0.1 < after < 4.0
        await eventually(lambda: server.open_connections == 0)


async def test_a_request_head_sent_too_slowly_is_cut_off_after_the_read_timeout() -> None:
    async with Node("slow", guard=None, metrics_port=0, handle_signals=False) as node:
        server = server_of(node)
        server.read_timeout = 0.2
        assert node.metrics_address is not None
        address = node.metrics_address

        def dribble() -> bool:
            with socket.create_connection(address, timeout=5.0) as connection:
                connection.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the blank line
                return closed_by_server(connection)

        assert await asyncio.to_thread(dribble)


async def test_a_connection_keeps_alive_across_requests_until_it_asks_to_close(served: Node) -> None:
    address = served.metrics_address
    assert address is not None
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = await asyncio.to_thread(
        exchange, address, request + request + b"GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert answer.count(b"HTTP/1.1 503 Service Unavailable\r\n") == 1  # no tree started: not ready
    assert answer.endswith(b"no supervision tree started yet (node.start)\n")


async def test_head_answers_the_headers_without_the_body(served: Node) -> None:
    address = served.metrics_address
    assert address is not None
    answer = await asyncio.to_thread(exchange, address, b"HEAD /healthz HTTP/1.0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: 3" in head
    assert body == b""


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"405 Method Not Allowed"),
        (b"GET /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"400 Bad Request"),
        (b"hello\r\n\r\n", b"400 Bad Request"),
        (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n", b"431 Request Header Fields"),
    ],
    ids=["post", "body", "garbage", "huge-head"],
)
async def test_what_the_endpoint_does_not_serve_is_refused_with_a_status_and_closed(
    served: Node, request_bytes: bytes, status: bytes
) -> None:
    address = served.metrics_address
    assert address is not None
    answer = await asyncio.to_thread(exchange, address, request_bytes)
    assert answer.startswith(b"HTTP/1.1 " + status)
    assert b"Connection: close" in answer
    assert (await fetch(served, "/healthz"))[0] == 200


async def test_when_every_kept_connection_is_busy_a_new_one_is_answered_503(served: Node) -> None:
    server = server_of(served)
    server.max_connections = 1
    address = served.metrics_address
    assert address is not None
    # Hold the only connection busy: mark it busy as while it answers a slow /metrics.
    holder = await asyncio.to_thread(socket.create_connection, address, 5.0)
    try:
        await eventually(lambda: server.open_connections == 1)
        for task in list(server._connections):
            server._connections[task] = True
        # Answered at once, before it sends anything.
        answer = await asyncio.to_thread(exchange, address, b"")
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable")
        assert answer.endswith(b"too many connections\n")
        assert server.refused == 1
    finally:
        holder.close()


@pytest.mark.parametrize(
    ("field", "bad"),
    [("max_connections", 0), ("read_timeout", -1.0), ("idle_timeout", "5")],
)
async def test_server_limits_are_validated(field: str, bad: Any) -> None:
    async with Node("limits", guard=None, handle_signals=False) as node:
        with pytest.raises(InvalidConfig, match=field):
            MetricsServer(node, "127.0.0.1", 0, **{field: bad})


# -- /readyz ---------------------------------------------------------------------------------


async def test_readyz_follows_the_node_from_start_to_shutdown_request(served: Node) -> None:
    node = served
    status, _, body = await fetch(node, "/readyz")
    assert (status, body) == (503, b"no supervision tree started yet (node.start)\n")
    await node.start(SupervisorSpec(children=[ChildSpec("worker", Idle)]))
    assert await fetch(node, "/readyz") == (200, "text/plain; charset=utf-8", b"ok\n")
    node.request_shutdown()  # as SIGTERM does: not ready at once, before anything stops
    status, _, body = await fetch(node, "/readyz")
    assert (status, body) == (503, b"node served is shutting down\n")
    assert (await fetch(node, "/healthz"))[0] == 200  # alive until it has stopped


async def test_readyz_is_503_once_the_root_supervisor_gave_up(served: Node) -> None:
    class Crashing(Actor):
        async def on_receive(self, message: Any) -> Any:
            raise RuntimeError("crash")

    root = await served.start(SupervisorSpec(intensity=0, children=[ChildSpec("crashing", Crashing)]))
    served.lookup("/root/crashing").tell_nowait("go")
    await asyncio.wait_for(root.ref.wait_terminated(), 2.0)
    status, _, body = await fetch(served, "/readyz")
    assert status == 503
    assert body == b"node served is shutting down\n"
