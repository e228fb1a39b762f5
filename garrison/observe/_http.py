"""Metrics and health over HTTP: ``/metrics`` (Prometheus), ``/healthz``, ``/tree``.

Opt-in with ``Node(metrics_port=...)`` (the ``garrison[metrics]`` extra
brings prometheus-client). The server runs on its own thread, bound to
127.0.0.1 by default. ``/metrics`` and ``/tree`` take a snapshot on the
node's loop (bounded wait), so they never read state the loop is changing;
``/healthz`` reads only what the loop publishes for other threads, so it
answers even while the loop is blocked: 503 then.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

from garrison._errors import InvalidConfig
from garrison.actors import ActorState

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from garrison.actors import DeadLetters
    from garrison.actors._kernel import Kernel
    from garrison.observe._loop import LoopMonitor

SNAPSHOT_TIMEOUT = 2.0
"""Seconds /metrics and /tree wait for the loop before answering 503."""
SHUTDOWN_POLL_INTERVAL = 0.05
"""Seconds between the server thread's checks for a stop request."""


class LagSource(Protocol):
    """A durable-stream consumer group whose lag the metrics export."""

    async def lag(self) -> int:
        """Entries appended but not acked yet."""
        ...


class ObservedNode(Protocol):
    """What the HTTP endpoint reads of a node (``garrison.Node`` implements it).

    Everything but ``health()`` is read on the node's loop.
    """

    @property
    def name(self) -> str: ...

    @property
    def kernel(self) -> Kernel:
        """The node's actors (read through its introspection methods only)."""
        ...

    @property
    def restart_counts(self) -> Mapping[str, int]: ...

    @property
    def gave_up_counts(self) -> Mapping[str, int]: ...

    @property
    def dead_letters(self) -> DeadLetters: ...

    @property
    def loop_monitor(self) -> LoopMonitor | None: ...

    @property
    def journal(self) -> object:
        """The node's journal; its ``stats()``, if it has one, feeds the journal metrics."""
        ...

    @property
    def consumer_groups(self) -> Mapping[tuple[str, str], LagSource]: ...

    def health(self) -> tuple[bool, str]:
        """(healthy, why); safe to call from any thread."""
        ...

    def tree(self) -> list[dict[str, Any]]:
        """Every actor as a tree (``node.tree()``)."""
        ...


def _cumulative(buckets: Iterable[tuple[float, int]]) -> list[tuple[str, float]]:
    total = 0
    rows = []
    for bound, count in buckets:
        total += count
        rows.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
    return rows


async def collect_metrics(node: ObservedNode) -> list[Metric]:
    """Build every metric family from the node's state (runs on the node's loop)."""
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    depth = GaugeMetricFamily("garrison_mailbox_depth", "User messages queued", labels=["actor"])
    capacity = GaugeMetricFamily("garrison_mailbox_capacity", "Mailbox capacity", labels=["actor"])
    lag = GaugeMetricFamily(
        "garrison_mailbox_consumer_lag_seconds", "Age of the oldest queued message", labels=["actor"]
    )
    messages = CounterMetricFamily(
        "garrison_mailbox_messages",
        "Messages by outcome; deferred counts the actor's own timer messages that found its"
        " mailbox full and were moved to the system lane",
        labels=["actor", "outcome"],
    )
    waited = HistogramMetricFamily(
        "garrison_mailbox_wait_seconds", "Time messages waited in the mailbox (sampled)", labels=["actor"]
    )
    restarts = CounterMetricFamily("garrison_actor_restarts", "Supervised restarts", labels=["actor"])
    gave_up = CounterMetricFamily(
        "garrison_supervisor_gave_up", "Supervisors that exceeded their restart intensity", labels=["actor"]
    )
    state = GaugeMetricFamily("garrison_actor_running", "1 while the actor runs", labels=["actor"])
    for actor in node.kernel.actors():
        path = actor.path
        snapshot = actor.mailbox
        depth.add_metric([path], snapshot.depth)
        capacity.add_metric([path], snapshot.capacity)
        lag.add_metric([path], snapshot.oldest_age_seconds)
        for outcome in ("enqueued", "processed", "dropped", "conflated", "rejected", "deferred"):
            messages.add_metric([path, outcome], getattr(snapshot, outcome))
        waited.add_metric([path], _cumulative(snapshot.wait_buckets), snapshot.wait_sum_seconds)
        state.add_metric([path], 1.0 if actor.state is ActorState.RUNNING else 0.0)
    for path, count in node.restart_counts.items():
        restarts.add_metric([path], count)
    for path, count in node.gave_up_counts.items():
        gave_up.add_metric([path], count)
    dead = CounterMetricFamily("garrison_dead_letters", "Dead letters by kind", labels=["kind"])
    for kind, count in node.dead_letters.by_kind.items():
        dead.add_metric([kind], count)
    families: list[Metric] = [depth, capacity, lag, messages, waited, restarts, gave_up, state, dead]
    monitor = node.loop_monitor
    if monitor is not None:
        stats = monitor.stats()
        families.append(
            HistogramMetricFamily(
                "garrison_loop_lag_seconds",
                "How late the loop-lag monitor woke",
                buckets=_cumulative(stats.buckets),
                sum_value=stats.sum,
            )
        )
        for name, value, text in (
            ("garrison_loop_lag_p99_seconds", stats.p99, "Loop lag p99 over the recent window"),
            ("garrison_loop_lag_max_seconds", stats.max, "Loop lag max over the recent window"),
        ):
            families.append(GaugeMetricFamily(name, text, value=value))
        families.append(
            CounterMetricFamily("garrison_loop_stalls", "Stalls the watchdog saw", value=monitor.stalls)
        )
    journal = node.journal
    journal_stats = getattr(journal, "stats", None)
    if callable(journal_stats):
        stats_map: dict[str, Any] = journal_stats()
        families.append(
            CounterMetricFamily("garrison_journal_appends", "Appends", value=stats_map["appends"])
        )
        families.append(
            CounterMetricFamily("garrison_journal_commits", "Commits", value=stats_map["commits"])
        )
        families.append(
            HistogramMetricFamily(
                "garrison_journal_append_latency_seconds",
                "From append() to durable",
                buckets=_cumulative(stats_map["latency_buckets"]),
                sum_value=stats_map["latency_sum"],
            )
        )
        families.append(
            HistogramMetricFamily(
                "garrison_journal_batch_size",
                "Appends folded into one commit",
                buckets=_cumulative(stats_map["batch_buckets"]),
                sum_value=float(stats_map["appends"]),
            )
        )
    stream_lag = GaugeMetricFamily(
        "garrison_stream_consumer_lag", "Entries appended but not acked", labels=["stream", "group"]
    )
    for (stream, name), group in list(node.consumer_groups.items()):
        stream_lag.add_metric([stream, name], await group.lag())
    families.append(stream_lag)
    return families


class _Snapshot:
    """A prometheus-client collector that yields families built on the loop."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


class MetricsServer:
    """The node's HTTP endpoint on a thread of its own."""

    def __init__(self, node: ObservedNode, host: str, port: int) -> None:
        try:
            import prometheus_client  # noqa: F401
        except ImportError as error:
            raise InvalidConfig(
                "metrics_port", port, "needs prometheus-client: pip install 'garrison[metrics]'"
            ) from error
        self._node = node
        self._loop = asyncio.get_running_loop()
        server = ThreadingHTTPServer((host, port), _handler(self))
        server.daemon_threads = True
        self._server = server
        self.address: tuple[str, int] = (host, server.server_address[1])
        # serve_forever notices shutdown() only between polls: the default half
        # second would be added to every node's shutdown.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_INTERVAL},
            name=f"garrison-http-{node.name}",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self._server.shutdown)
        self._server.server_close()

    def _on_loop(self, coroutine: Any) -> Any:
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError:  # the loop is closed: the coroutine will never run
            coroutine.close()
            raise
        try:
            return future.result(timeout=SNAPSHOT_TIMEOUT)
        except TimeoutError:
            future.cancel()
            raise

    def metrics(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        families = self._on_loop(collect_metrics(self._node))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(families))
        return generate_latest(registry)

    def health(self) -> tuple[bool, str]:
        """The node's health, read from this server's threads (see ``Node.health``)."""
        return self._node.health()

    def tree(self) -> bytes:
        async def snapshot() -> Any:
            return self._node.tree()

        return json.dumps(self._on_loop(snapshot()), indent=2).encode()


def _handler(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                healthy, reason = server.health()
                self._reply(200 if healthy else 503, "text/plain; charset=utf-8", reason.encode() + b"\n")
                return
            if path not in ("/metrics", "/tree"):
                self._reply(404, "text/plain; charset=utf-8", b"try /metrics, /healthz or /tree\n")
                return
            try:
                if path == "/metrics":
                    from prometheus_client import CONTENT_TYPE_LATEST

                    content_type, body = CONTENT_TYPE_LATEST, server.metrics()
                else:
                    content_type, body = "application/json", server.tree()
            except TimeoutError:
                self._reply(503, "text/plain; charset=utf-8", b"event loop not responding\n")
            except RuntimeError as error:  # the loop is closed: the node is gone
                self._reply(503, "text/plain; charset=utf-8", f"node not running: {error}\n".encode())
            except Exception as error:  # a source failed (a closed journal): say so, do not hang up
                text = f"collecting {path} failed: {type(error).__name__}: {error}\n"
                self._reply(500, "text/plain; charset=utf-8", text.encode())
            else:
                self._reply(200, content_type, body)

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except ConnectionError:
                self.close_connection = True  # the client hung up: nobody left to answer

        def log_message(self, format: str, *args: Any) -> None:
            return  # requests are not worth a log line each

    return Handler
