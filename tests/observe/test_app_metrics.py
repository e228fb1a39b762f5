"""What /metrics shows beyond the mailboxes: the actors' own metrics (``ctx.metrics``), the
bounded ``actor`` label with pool templates, series present at zero from the start, and the
process and interpreter series of prometheus-client's collectors."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from garrison import (
    Actor,
    ChildSpec,
    InvalidConfig,
    Node,
    PoolRef,
    PoolSpec,
    SupervisorSpec,
)
from garrison.actors import Counter, Gauge, Histogram
from garrison.observe._metrics import DEAD_LETTER_KINDS

from .test_metrics_http import restarted, scrape, value

GARRISON = Path(__file__).resolve().parents[2] / "garrison"


class Filler(Actor):
    """Counts its messages, tracks open positions, times each fill; crashes on "crash"."""

    async def on_start(self) -> None:
        metrics = self.ctx.metrics
        self.filled = metrics.counter("orders_filled", "Orders filled")
        self.open = metrics.gauge("positions_open", "Positions held now")
        self.latency = metrics.histogram("fill_latency_seconds", "From order to fill", buckets=(0.1, 1.0))

    async def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("told to crash")
        self.filled.inc()
        self.open.set(3)
        self.latency.observe(float(message))
        return self.filled.value


class Quiet(Actor):
    async def on_receive(self, message: Any) -> Any:
        return message


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with Node("app", guard=None, metrics_port=0, handle_signals=False) as running:
        yield running


async def test_an_actors_own_metrics_show_with_its_actor_label_from_registration(node: Node) -> None:
    await node.start(SupervisorSpec(children=[ChildSpec("filler", Filler)]))
    metrics = await scrape(node)
    # Registered in on_start: present at zero before the first message.
    assert value(metrics["orders_filled"], "orders_filled_total", actor="/root/filler") == 0
    assert value(metrics["fill_latency_seconds"], "fill_latency_seconds_count", actor="/root/filler") == 0
    filler = node.lookup("/root/filler")
    for seconds in (0.05, 0.5, 5.0):
        await filler.ask(seconds, timeout=2.0)
    metrics = await scrape(node)
    assert value(metrics["orders_filled"], "orders_filled_total", actor="/root/filler") == 3
    assert value(metrics["positions_open"], "positions_open", actor="/root/filler") == 3
    latency = metrics["fill_latency_seconds"]
    assert value(latency, "fill_latency_seconds_bucket", actor="/root/filler", le="0.1") == 1
    assert value(latency, "fill_latency_seconds_bucket", actor="/root/filler", le="1.0") == 2
    assert value(latency, "fill_latency_seconds_bucket", actor="/root/filler", le="+Inf") == 3
    assert value(latency, "fill_latency_seconds_sum", actor="/root/filler") == pytest.approx(5.55)


async def test_a_restarted_actor_gets_its_metrics_back_and_counts_on(node: Node) -> None:
    await node.start(SupervisorSpec(children=[ChildSpec("filler", Filler)]))
    filler = node.lookup("/root/filler")
    assert await filler.ask(0.1, timeout=2.0) == 1
    filler.tell_nowait("crash")
    await restarted(node, "/root/filler", 1)
    assert await filler.ask(0.1, timeout=2.0) == 2  # the new incarnation's counter is the old one
    metrics = await scrape(node)
    assert value(metrics["orders_filled"], "orders_filled_total", actor="/root/filler") == 2


async def test_a_pools_routees_share_one_templated_label(node: Node) -> None:
    await node.start(SupervisorSpec(children=[ChildSpec("pool", PoolSpec(Filler, size=3))]))
    pool = PoolRef(node.lookup("/root/pool"))
    for _ in range(6):
        await pool.ask(0.5, timeout=2.0)
    metrics = await scrape(node)
    template = "/root/pool/routee-*"
    assert value(metrics["orders_filled"], "orders_filled_total", actor=template) == 6
    assert value(metrics["garrison_actor_running"], "garrison_actor_running", actor=template) == 3
    processed = value(
        metrics["garrison_mailbox_messages"],
        "garrison_mailbox_messages_total",
        actor=template,
        outcome="processed",
    )
    assert processed == 6
    shown = {sample.labels["actor"] for sample in metrics["garrison_actor_running"]}
    assert shown == {"/root", "/root/pool", template}


async def test_actors_beyond_the_nodes_label_limit_fold_into_other() -> None:
    async with Node(
        "capped", guard=None, metrics_port=0, handle_signals=False, metrics_actor_limit=2
    ) as node:
        for index in range(5):
            await node.spawn(Quiet, name=f"session-{index}")
        filler = await node.spawn(Filler, name="late")
        await filler.ask(0.5, timeout=2.0)
        metrics = await scrape(node)
        # Labels stick: a scrape after another spawn shows the same two.
        later = await node.spawn(Filler, name="later")
        await later.ask(0.5, timeout=2.0)
        again = await scrape(node)
    # Labels go to the first actors that need one: /late at its registration in on_start,
    # then the others in the first scrape's order, until the limit.
    running = metrics["garrison_actor_running"]
    assert {sample.labels["actor"] for sample in running} == {"/late", "/session-0", "other"}
    assert value(running, "garrison_actor_running", actor="other") == 4
    assert value(metrics["orders_filled"], "orders_filled_total", actor="/late") == 1
    assert value(metrics["garrison_metrics_folded_actors"], "garrison_metrics_folded_actors") == 4
    assert {sample.labels["actor"] for sample in again["garrison_actor_running"]} == {
        "/late",
        "/session-0",
        "other",
    }
    assert value(again["garrison_actor_running"], "garrison_actor_running", actor="other") == 5
    assert value(again["orders_filled"], "orders_filled_total", actor="other") == 1  # /later's
    assert value(again["garrison_metrics_folded_actors"], "garrison_metrics_folded_actors") == 5


@pytest.mark.parametrize("limit", [-1, 1.5, "200", True])
def test_node_rejects_a_bad_actor_label_limit(limit: Any) -> None:
    with pytest.raises(InvalidConfig, match="metrics_actor_limit"):
        Node(metrics_actor_limit=limit)


async def test_every_dead_letter_kind_is_present_at_zero_from_the_start(node: Node) -> None:
    metrics = await scrape(node)
    dead = metrics["garrison_dead_letters"]
    for kind in DEAD_LETTER_KINDS:
        assert value(dead, "garrison_dead_letters_total", kind=kind) == 0


def test_the_known_dead_letter_kinds_cover_every_kind_the_runtime_files() -> None:
    filed = set()
    for source in GARRISON.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        filed.update(re.findall(r'kind="([a-z_]+)"', text))  # publish(..., kind="crashed")
        # kind = "stopped" if ... else "overflow" on the line before publish(..., kind=kind)
        for first, second in re.findall(
            r'kind = "([a-z_]+)" if [^\n]* else "([a-z_]+)"\n[^\n]*dead_letters\.publish\(', text
        ):
            filed.update((first, second))
    assert filed, "found no dead-letter kinds: the pattern is stale"
    assert filed <= set(DEAD_LETTER_KINDS)


async def test_process_and_interpreter_series_come_from_prometheus_clients_collectors(node: Node) -> None:
    metrics = await scrape(node)
    assert value(metrics["process_resident_memory_bytes"], "process_resident_memory_bytes") > 1_000_000
    assert value(metrics["process_cpu_seconds"], "process_cpu_seconds_total") > 0
    assert value(metrics["process_open_fds"], "process_open_fds") >= 3
    collections = metrics["python_gc_collections"]
    assert {sample.labels["generation"] for sample in collections} >= {"0", "1", "2"}


# -- registration refusals -----------------------------------------------------------------


class Registers(Actor):
    """Registers what it is told to in a handler and answers the error, if any."""

    async def on_receive(self, message: Any) -> Any:
        kind, args, kwargs = message
        try:
            return getattr(self.ctx.metrics, kind)(*args, **kwargs)
        except InvalidConfig as error:
            return error


@pytest.mark.parametrize(
    ("kind", "args", "kwargs", "field", "words"),
    [
        ("counter", ("9lives", "x"), {}, "name", "Prometheus metric name"),
        ("counter", ("garrison_mine", "x"), {}, "name", "runtime's own"),
        ("counter", ("orders_total", "x"), {}, "name", "register 'orders'"),
        ("gauge", ("open_total", "x"), {}, "name", "the suffix of counters"),
        ("gauge", ("queue", ""), {}, "help", "non-empty"),
        ("histogram", ("wait", "x"), {"buckets": (1.0, 0.5)}, "buckets", "ascending"),
        ("histogram", ("wait", "x"), {"buckets": ()}, "buckets", "non-empty"),
        ("gauge", ("taken", "x"), {}, "name", "registered as a counter already"),
    ],
    ids=["bad-name", "reserved", "total-suffix", "gauge-total", "no-help", "unsorted", "empty", "kind-clash"],
)
async def test_a_bad_registration_is_an_invalid_config_naming_the_field(
    node: Node, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any], field: str, words: str
) -> None:
    actor = await node.spawn(Registers, name="registers")
    taken = await actor.ask(("counter", ("taken", "x"), {}), timeout=2.0)
    assert isinstance(taken, Counter)
    error = await actor.ask((kind, args, kwargs), timeout=2.0)
    assert isinstance(error, InvalidConfig)
    assert error.field == field
    assert words in str(error)


async def test_registering_again_returns_the_same_metric_and_other_buckets_are_refused(node: Node) -> None:
    actor = await node.spawn(Registers, name="registers")
    first = await actor.ask(("histogram", ("wait", "x"), {"buckets": (1.0, 2.0)}), timeout=2.0)
    again = await actor.ask(("histogram", ("wait", "x"), {"buckets": (1.0, 2.0)}), timeout=2.0)
    assert isinstance(first, Histogram) and again is first
    other = await actor.ask(("histogram", ("wait", "x"), {"buckets": (5.0,)}), timeout=2.0)
    assert isinstance(other, InvalidConfig) and other.field == "buckets"
    gauge = await actor.ask(("gauge", ("level", "x"), {}), timeout=2.0)
    assert isinstance(gauge, Gauge)


def test_a_histogram_counts_a_value_on_a_bound_into_that_bucket() -> None:
    histogram = Histogram((1.0, 2.0))
    for observed in (1.0, 1.5, 2.0, 2.5):
        histogram.observe(observed)
    assert histogram.counts == [1, 2, 1]
    assert (histogram.count, histogram.sum) == (4, 7.0)


def test_a_counter_refuses_to_go_down() -> None:
    counter = Counter()
    counter.inc(2)
    with pytest.raises(InvalidConfig, match="amount"):
        counter.inc(-1)
    assert counter.value == 2


async def test_metrics_are_recorded_without_an_http_endpoint() -> None:
    async with Node("plain", guard=None, handle_signals=False) as node:
        filler = await node.spawn(Filler, name="filler")
        await filler.ask(0.5, timeout=2.0)
        [family] = [family for family in node.metrics.families() if family.name == "orders_filled"]
    assert family.kind == "counter"
    assert {label: metric.value for label, metric in family.by_label.items()} == {"/filler": 1.0}  # type: ignore[union-attr]
    await asyncio.sleep(0)
