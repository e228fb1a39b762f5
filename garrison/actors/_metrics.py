"""Application metrics: the counters, gauges and histograms an actor registers with ``ctx.metrics``.

Each metric is registered under a name, per actor: the node's ``/metrics``
shows it with an ``actor`` label. The label is not always the actor's own
path: the node bounds how many distinct actor labels it shows (the rest
fold into ``other``) and shows a pool's routees under one path template
(``/root/pool/routee-*``). Actors that share a label share the metric, so a
pool's routees add up into one counter. A restarted actor registers again
and gets the same metric back: counts carry on across restarts.

The values are plain numbers updated in place, without locks: update a
metric from its actor's handlers (the node's loop, or a ThreadedActor's own
thread). Exposition (the Prometheus text) is the metrics endpoint's job,
in ``garrison.observe``; recording needs no extra package.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from garrison._errors import InvalidConfig

DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram bucket bounds when none are given: seconds, from 5 ms to 10 s (Prometheus's defaults)."""

RESERVED_PREFIXES = ("garrison_", "process_", "python_")
"""Name prefixes of the runtime's own series: an application metric may not use them."""

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")


class Counter:
    """A value that only goes up (requests served, orders filled). Shown as ``<name>_total``."""

    __slots__ = ("value",)

    kind = "counter"

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (default 1). Raises InvalidConfig for a negative amount."""
        if amount < 0:
            raise InvalidConfig("amount", amount, "must be >= 0: a counter never goes down (use a gauge)")
        self.value += amount


class Gauge:
    """A value that goes up and down (open positions, connected clients)."""

    __slots__ = ("value",)

    kind = "gauge"

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


class Histogram:
    """Observations counted into buckets (latencies, sizes): ``<name>_bucket``, ``_sum``, ``_count``."""

    __slots__ = ("bounds", "counts", "sum")

    kind = "histogram"

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        """Upper bounds of the buckets, ascending; +Inf is implied after the last."""
        self.counts = [0] * (len(bounds) + 1)
        """Observations per bucket (not cumulative); the last is the +Inf bucket."""
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` into the first bucket whose bound is >= it."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)


Metric = Counter | Gauge | Histogram


@dataclass(slots=True)
class MetricFamily:
    """One registered name: its kind, help text and the metric of each actor label."""

    name: str
    help: str
    kind: str
    bounds: tuple[float, ...] | None
    by_label: dict[str, Metric] = field(default_factory=dict)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _METRIC_NAME.match(name):
        raise InvalidConfig(
            "name",
            name,
            "must be a Prometheus metric name: letters, digits, '_' and ':', not starting with a digit",
        )
    if name.startswith(RESERVED_PREFIXES):
        raise InvalidConfig(
            "name", name, f"must not start with {', '.join(RESERVED_PREFIXES)} (the runtime's own)"
        )
    return name


def _check_bounds(buckets: object) -> tuple[float, ...]:
    problem = "must be a non-empty ascending sequence of finite numbers (+Inf is added)"
    if isinstance(buckets, str | bytes) or not isinstance(buckets, Sequence) or not buckets:
        raise InvalidConfig("buckets", buckets, problem)
    bounds: list[float] = []
    for bound in buckets:
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
            raise InvalidConfig("buckets", buckets, problem)
        bounds.append(float(bound))
    if any(later <= earlier for earlier, later in itertools.pairwise(bounds)):
        raise InvalidConfig("buckets", buckets, problem)
    return tuple(bounds)


class MetricRegistry:
    """Every application metric of one node (``node.metrics``), by name and actor label.

    ``label_of`` maps an actor path to its ``actor`` label (the node's bound
    and pool templates); by default the path itself.
    """

    def __init__(self, label_of: Callable[[str], str] | None = None) -> None:
        self._label_of = label_of if label_of is not None else _own_path
        self._families: dict[str, MetricFamily] = {}
        # Registration may come from a ThreadedActor's thread while the loop reads the families.
        self._lock = threading.Lock()

    def for_actor(self, path: str) -> ActorMetrics:
        """The registration handle of the actor at ``path`` (what ``ctx.metrics`` returns)."""
        return ActorMetrics(self, path)

    def families(self) -> list[MetricFamily]:
        """Every registered name, in registration order, with a copy of its metrics by label."""
        with self._lock:
            return [
                MetricFamily(family.name, family.help, family.kind, family.bounds, dict(family.by_label))
                for family in self._families.values()
            ]

    def register(
        self, kind: str, name: object, help: object, path: str, bounds: tuple[float, ...] | None
    ) -> Metric:
        """The metric ``name`` of the actor at ``path``, created on first use.

        Raises InvalidConfig for a bad name or help, a name registered before
        as another kind, or a histogram registered before with other buckets.
        """
        checked = _check_name(name)
        if checked.endswith("_total"):
            problem = (
                f"must not end in _total: the exposition adds it (register {checked[:-6]!r})"
                if kind == "counter"
                else f"must not end in _total, the suffix of counters (this is a {kind})"
            )
            raise InvalidConfig("name", name, problem)
        if not isinstance(help, str) or not help.strip():
            raise InvalidConfig("help", help, "must be a non-empty string saying what the metric counts")
        label = self._label_of(path)
        with self._lock:
            family = self._families.get(checked)
            if family is None:
                family = MetricFamily(checked, help, kind, bounds)
                self._families[checked] = family
            elif family.kind != kind:
                raise InvalidConfig(
                    "name",
                    name,
                    f"is registered as a {family.kind} already: pick another name for this {kind}",
                )
            elif family.bounds != bounds:
                raise InvalidConfig(
                    "buckets", bounds, f"differ from those {checked!r} was registered with: {family.bounds}"
                )
            metric = family.by_label.get(label)
            if metric is None:
                metric = (
                    Histogram(bounds) if bounds is not None else Counter() if kind == "counter" else Gauge()
                )
                family.by_label[label] = metric
            return metric


class ActorMetrics:
    """``ctx.metrics``: register this actor's own metrics, shown on the node's ``/metrics``.

    Register in ``on_start`` (or ``__init__``) and keep the metric::

        async def on_start(self) -> None:
            self.filled = self.ctx.metrics.counter("orders_filled", "Orders filled")

        async def on_receive(self, message: Fill) -> None:
            self.filled.inc()

    Registering a name again (a restarted incarnation does) returns the
    same metric. Each method raises InvalidConfig naming the bad field.
    """

    __slots__ = ("_path", "_registry")

    def __init__(self, registry: MetricRegistry, path: str) -> None:
        self._registry = registry
        self._path = path

    def counter(self, name: str, help: str) -> Counter:
        """A counter, shown as ``<name>_total{actor="..."}`` (give ``name`` without ``_total``)."""
        metric = self._registry.register("counter", name, help, self._path, None)
        assert isinstance(metric, Counter)
        return metric

    def gauge(self, name: str, help: str) -> Gauge:
        """A gauge, shown as ``<name>{actor="..."}``."""
        metric = self._registry.register("gauge", name, help, self._path, None)
        assert isinstance(metric, Gauge)
        return metric

    def histogram(self, name: str, help: str, *, buckets: Sequence[float] = DEFAULT_BUCKETS) -> Histogram:
        """A histogram with ``buckets`` (ascending upper bounds; default: 5 ms to 10 s)."""
        metric = self._registry.register("histogram", name, help, self._path, _check_bounds(buckets))
        assert isinstance(metric, Histogram)
        return metric

    def __repr__(self) -> str:
        return f"<ActorMetrics {self._path}>"


def _own_path(path: str) -> str:
    return path
