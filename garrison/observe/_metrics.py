"""What ``/metrics`` shows: the runtime's series, the actors' own, and the process's.

Built on the node's loop at each scrape, from the state the runtime keeps
anyway (mailbox counters, restart counts, dead letters, loop lag, journal
stats) and the application metrics registered with ``ctx.metrics``. The
process and interpreter series (RSS, CPU seconds, open fds, GC) are
prometheus-client's own ``ProcessCollector`` and ``GCCollector``.

Every series the runtime knows of is present from the start, at zero until
something happens: each live actor's restarts, each supervisor's give-ups,
each dead-letter kind. The ``actor`` label is bounded (see ``_labels``);
actors that share a label add up (a mailbox's consumer lag takes the
largest).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from garrison.actors import ActorState
from garrison.actors._metrics import Counter, Gauge, Histogram, MetricRegistry
from garrison.observe._labels import OTHER

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from garrison.actors import DeadLetters
    from garrison.actors._kernel import Kernel
    from garrison.observe._labels import ActorLabels
    from garrison.observe._loop import LoopMonitor

DEAD_LETTER_KINDS = (
    "overflow",
    "stopped",
    "crashed",
    "killed",
    "unhandled",
    "late_reply",
    "watcher_stopped",
    "timer",
    "restarting",
    "supervisor",
    "unroutable",
    "refused",
    "stashed_on_stop",
    "unreachable",
    "unknown_type",
    "malformed",
    "expired",
    "other",
)
"""Every ``kind`` the runtime files dead letters under: each is shown from the start, at zero."""

MAILBOX_OUTCOMES = ("enqueued", "processed", "dropped", "conflated", "rejected", "deferred")


class LagSource(Protocol):
    """A durable-stream consumer group whose lag the metrics export."""

    async def lag(self) -> int:
        """Entries appended but not acked yet."""
        ...


class ObservedNode(Protocol):
    """What the HTTP endpoint reads of a node (``garrison.Node`` implements it); read on its loop."""

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

    @property
    def metrics(self) -> MetricRegistry:
        """The application metrics the actors registered with ``ctx.metrics``."""
        ...

    @property
    def actor_labels(self) -> ActorLabels:
        """The ``actor`` label of each path: bounded, with pool templates."""
        ...

    def health(self) -> tuple[bool, str]:
        """(healthy, why): the loop ticks and the root supervisor runs."""
        ...

    def readiness(self) -> tuple[bool, str]:
        """(ready, why): the tree has started and the node is not stopping."""
        ...

    def tree(self) -> list[dict[str, Any]]:
        """Every actor as a tree (``node.tree()``)."""
        ...


def cumulative(buckets: Iterable[tuple[float, int]]) -> list[tuple[str, float]]:
    """Per-bucket counts as Prometheus wants them: cumulative, the last bound ``+Inf``."""
    total = 0
    rows = []
    for bound, count in buckets:
        total += count
        rows.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
    return rows


class _Sums:
    """Values added up per label, in the order labels first appear."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, ...], float] = {}

    def add(self, labels: tuple[str, ...], value: float) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + value

    def most(self, labels: tuple[str, ...], value: float) -> None:
        self.values[labels] = max(self.values.get(labels, 0.0), value)


class _Buckets:
    """Histograms added up per label: counts per bound, and the sum."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[float, int]] = {}
        self.sums: dict[str, float] = {}

    def add(self, label: str, buckets: Iterable[tuple[float, int]], total: float) -> None:
        counts = self.counts.setdefault(label, defaultdict(int))
        for bound, count in buckets:
            counts[bound] += count
        self.sums[label] = self.sums.get(label, 0.0) + total


def _actor_families(node: ObservedNode) -> list[Metric]:
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    label_of = node.actor_labels.label
    depth, capacity, lag, running = _Sums(), _Sums(), _Sums(), _Sums()
    messages, restarts, gave_up = _Sums(), _Sums(), _Sums()
    waited = _Buckets()
    folded = 0
    for actor in node.kernel.actors():
        label = label_of(actor.path)
        key = (label,)
        snapshot = actor.mailbox
        depth.add(key, snapshot.depth)
        capacity.add(key, snapshot.capacity)
        lag.most(key, snapshot.oldest_age_seconds)
        for outcome in MAILBOX_OUTCOMES:
            messages.add((label, outcome), getattr(snapshot, outcome))
        waited.add(label, snapshot.wait_buckets, snapshot.wait_sum_seconds)
        running.add(key, 1.0 if actor.state is ActorState.RUNNING else 0.0)
        folded += label == OTHER
        restarts.add(key, 0)
        if actor.kind == "supervisor":
            gave_up.add(key, 0)
    # Counted by path for the node's life: paths no longer live keep their counts.
    for path, count in node.restart_counts.items():
        restarts.add((label_of(path),), count)
    for path, count in node.gave_up_counts.items():
        gave_up.add((label_of(path),), count)

    def family(kind: type[Any], name: str, text: str, sums: _Sums, labels: Sequence[str]) -> Metric:
        metric = kind(name, text, labels=list(labels))
        for key, value in sums.values.items():
            metric.add_metric(list(key), value)
        return metric  # type: ignore[no-any-return]

    by_actor = ["actor"]
    wait = HistogramMetricFamily(
        "garrison_mailbox_wait_seconds", "Time messages waited in the mailbox (sampled)", labels=by_actor
    )
    for label, counts in waited.counts.items():
        wait.add_metric([label], cumulative(sorted(counts.items())), waited.sums[label])
    return [
        family(GaugeMetricFamily, "garrison_mailbox_depth_messages", "User messages queued", depth, by_actor),
        family(
            GaugeMetricFamily, "garrison_mailbox_capacity_messages", "Mailbox capacity", capacity, by_actor
        ),
        family(
            GaugeMetricFamily,
            "garrison_mailbox_consumer_lag_seconds",
            "Age of the oldest queued message (the largest of the actors sharing a label)",
            lag,
            by_actor,
        ),
        family(
            CounterMetricFamily,
            "garrison_mailbox_messages",
            "Messages by outcome; deferred counts the actor's own timer messages that found its"
            " mailbox full and were moved to the system lane",
            messages,
            ["actor", "outcome"],
        ),
        wait,
        family(CounterMetricFamily, "garrison_actor_restarts", "Supervised restarts", restarts, by_actor),
        family(
            CounterMetricFamily,
            "garrison_supervisor_gave_up",
            "Supervisors that exceeded their restart intensity",
            gave_up,
            by_actor,
        ),
        family(
            GaugeMetricFamily,
            "garrison_actor_running",
            "Actors running (1 per running actor)",
            running,
            by_actor,
        ),
        GaugeMetricFamily(
            "garrison_metrics_folded_actors",
            f'Actors shown as actor="other": beyond the node\'s {node.actor_labels.limit} actor labels',
            value=folded,
        ),
    ]


def _application_families(registry: MetricRegistry) -> list[Metric]:
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    families: list[Metric] = []
    for family in registry.families():
        if family.kind == "histogram":
            histogram = HistogramMetricFamily(family.name, family.help, labels=["actor"])
            for label, metric in family.by_label.items():
                assert isinstance(metric, Histogram)
                bounds = (*metric.bounds, float("inf"))
                histogram.add_metric([label], cumulative(zip(bounds, metric.counts, strict=True)), metric.sum)
            families.append(histogram)
            continue
        kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
        exposed = kind(family.name, family.help, labels=["actor"])
        for label, metric in family.by_label.items():
            assert isinstance(metric, Counter | Gauge)
            exposed.add_metric([label], metric.value)
        families.append(exposed)
    return families


def _loop_families(monitor: LoopMonitor) -> list[Metric]:
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    stats = monitor.stats()
    return [
        HistogramMetricFamily(
            "garrison_loop_lag_seconds",
            "How late the loop-lag monitor woke",
            buckets=cumulative(stats.buckets),
            sum_value=stats.sum,
        ),
        GaugeMetricFamily(
            "garrison_loop_lag_p99_seconds", "Loop lag p99 over the recent window", value=stats.p99
        ),
        GaugeMetricFamily(
            "garrison_loop_lag_max_seconds", "Loop lag max over the recent window", value=stats.max
        ),
        CounterMetricFamily("garrison_loop_stalls", "Stalls the watchdog saw", value=monitor.stalls),
    ]


def _journal_families(stats: dict[str, Any]) -> list[Metric]:
    from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily

    return [
        CounterMetricFamily("garrison_journal_appends", "Appends", value=stats["appends"]),
        CounterMetricFamily("garrison_journal_commits", "Commits", value=stats["commits"]),
        HistogramMetricFamily(
            "garrison_journal_append_latency_seconds",
            "From append() to durable",
            buckets=cumulative(stats["latency_buckets"]),
            sum_value=stats["latency_sum"],
        ),
        HistogramMetricFamily(
            "garrison_journal_batch_appends",
            "Appends folded into one commit",
            buckets=cumulative(stats["batch_buckets"]),
            sum_value=float(stats["appends"]),
        ),
    ]


async def collect_metrics(node: ObservedNode) -> list[Metric]:
    """Every garrison and application metric family of the node (runs on the node's loop).

    Awaits only the consumer groups' lag (a Redis group asks its server).
    """
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

    families = _actor_families(node)
    dead = CounterMetricFamily("garrison_dead_letters", "Dead letters by kind", labels=["kind"])
    by_kind = node.dead_letters.by_kind
    for kind in (*DEAD_LETTER_KINDS, *(kind for kind in by_kind if kind not in DEAD_LETTER_KINDS)):
        dead.add_metric([kind], by_kind.get(kind, 0))
    families.append(dead)
    monitor = node.loop_monitor
    if monitor is not None:
        families.extend(_loop_families(monitor))
    journal_stats = getattr(node.journal, "stats", None)
    if callable(journal_stats):
        families.extend(_journal_families(journal_stats()))
    stream_lag = GaugeMetricFamily(
        "garrison_stream_consumer_lag_entries", "Entries appended but not acked", labels=["stream", "group"]
    )
    for (stream, name), group in list(node.consumer_groups.items()):
        stream_lag.add_metric([stream, name], await group.lag())
    families.append(stream_lag)
    families.extend(_application_families(node.metrics))
    return families


class Exposition:
    """Renders families in the Prometheus text format, with the process and GC collectors.

    Needs prometheus-client (the ``garrison[metrics]`` extra).
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.gc_collector import GCCollector
        from prometheus_client.process_collector import ProcessCollector

        # Each registers with the registry it is given: a private one, never the global.
        private = CollectorRegistry(auto_describe=False)
        self._process = ProcessCollector(registry=private)
        self._gc = GCCollector(registry=private)

    def render(self, families: Sequence[Metric], extra: Sequence[Metric] = ()) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot([*families, *extra, *self._process.collect(), *self._gc.collect()]))
        return generate_latest(registry)


class _Snapshot:
    """A prometheus-client collector that yields families already built."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families
