"""Metrics and health over HTTP: /metrics parses with prometheus-client's own parser and holds
every family the runtime promises, /tree is node.tree() as JSON, /healthz is 200 only while
the loop ticks and the root supervisor runs (503 while the loop is blocked: probed from
another process), and the endpoint binds 127.0.0.1 by default.

HTTP requests never run on the node's loop thread (/metrics needs that loop):
they go through ``asyncio.to_thread`` or come from another process.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import garrison.observe._http as http_module
from garrison import (
    Actor,
    ChildSpec,
    InvalidConfig,
    MailboxConfig,
    ManualClock,
    Node,
    Overflow,
    SupervisorSpec,
)
from garrison.observe import LoopGuard
from garrison.persistence import DurableStream, SqliteJournal

from ._blocking_node import SERVE_BLOCK_SECONDS

SCRIPT = Path(__file__).with_name("_blocking_node.py")
REPO = Path(__file__).resolve().parents[2]
FAST_GUARD = LoopGuard(interval=0.02, warn_after=1.0, stall_timeout=None)


# -- helpers -----------------------------------------------------------------------------


def http_get(address: tuple[str, int], path: str, timeout: float = 5.0) -> tuple[int, str, bytes]:
    """(status, content type, body) of GET ``path``: blocking, so never call it on the loop thread."""
    url = f"http://{address[0]}:{address[1]}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read()


async def fetch(node: Node, path: str) -> tuple[int, str, bytes]:
    assert node.metrics_address is not None
    return await asyncio.to_thread(http_get, node.metrics_address, path)


async def scrape(node: Node) -> dict[str, list[Sample]]:
    """/metrics parsed by prometheus-client: every sample, by family name."""
    status, content_type, body = await fetch(node, "/metrics")
    assert status == 200, body
    assert content_type.startswith("text/plain; version=")
    families: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(body.decode()):
        assert family.name not in families, f"family {family.name} exposed twice"
        families[family.name] = list(family.samples)
    return families


def types_of(body: bytes) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(body.decode())}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matching = [sample.value for sample in samples if sample.name == name and sample.labels == labels]
    assert len(matching) == 1, f"{name}{labels}: {matching} in {samples}"
    return matching[0]


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not true within {timeout}s"
        await asyncio.sleep(0.01)


async def restarted(node: Node, path: str, times: int) -> None:
    await eventually(lambda: node.restart_counts[path] == times)


class Gate(Actor):
    """Holds its first message until ``opened`` is set: what arrives meanwhile queues."""

    def __init__(self, entered: asyncio.Event, opened: asyncio.Event) -> None:
        self.entered = entered
        self.opened = opened

    async def on_receive(self, message: Any) -> Any:
        self.entered.set()
        await self.opened.wait()


class TickingGate(Gate):
    """A Gate that sets itself a timer on start: a tick due while the gate is held finds its mailbox full."""

    async def on_start(self) -> None:
        self.ctx.send_later(1.0, "tick")


class Flaky(Actor):
    async def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("told to crash")
        return message


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """A node on real time with metrics on a free port and a SQLite journal."""
    journal = SqliteJournal(tmp_path / "journal.db")
    async with Node(
        "observed", guard=FAST_GUARD, metrics_port=0, journal=journal, handle_signals=False
    ) as running:
        yield running


@pytest.fixture
async def virtual_node(clock: ManualClock) -> AsyncIterator[Node]:
    """A node on the test kit's manual clock with metrics on a free port: timers fire on ``clock.advance``."""
    async with Node("observed", clock=clock, guard=None, metrics_port=0, handle_signals=False) as running:
        yield running


# -- /metrics ----------------------------------------------------------------------------


async def test_metrics_export_mailbox_depth_capacity_consumer_lag_outcomes_and_wait(
    virtual_node: Node, clock: ManualClock
) -> None:
    node = virtual_node
    entered, opened = asyncio.Event(), asyncio.Event()
    mailbox = MailboxConfig(capacity=3, overflow=Overflow.DROP_NEWEST)
    gate = await node.spawn(Gate, name="gate", args=(entered, opened), mailbox=mailbox)
    gate.tell_nowait("first")
    await asyncio.wait_for(entered.wait(), 2.0)
    for index in range(5):  # three queue behind "first", two are dropped
        gate.tell_nowait(index)
    ticking_entered = asyncio.Event()
    ticking = await node.spawn(
        TickingGate, name="ticking", args=(ticking_entered, opened), mailbox=MailboxConfig(capacity=1)
    )
    ticking.tell_nowait("first")
    await asyncio.wait_for(ticking_entered.wait(), 2.0)
    ticking.tell_nowait("queued")  # full when its own timer fires
    echo = await node.spawn(Flaky, name="echo")
    for index in range(16):  # the mailbox samples every 16th message's wait
        assert await echo.ask(index, timeout=2.0) == index
    await clock.advance(1.0)  # the oldest queued message ages; the tick is deferred
    metrics = await scrape(node)
    opened.set()

    assert (
        value(metrics["garrison_mailbox_depth_messages"], "garrison_mailbox_depth_messages", actor="/gate")
        == 3
    )
    assert (
        value(
            metrics["garrison_mailbox_capacity_messages"], "garrison_mailbox_capacity_messages", actor="/gate"
        )
        == 3
    )
    lag = value(
        metrics["garrison_mailbox_consumer_lag_seconds"],
        "garrison_mailbox_consumer_lag_seconds",
        actor="/gate",
    )
    assert lag == 1.0
    messages = metrics["garrison_mailbox_messages"]

    def by_outcome(actor: str) -> dict[str, float]:
        return {
            outcome: value(messages, "garrison_mailbox_messages_total", actor=actor, outcome=outcome)
            for outcome in ("enqueued", "processed", "dropped", "conflated", "rejected", "deferred")
        }

    gate_outcomes = by_outcome("/gate")
    # Every message offered is counted in: one processed, two dropped, three queued.
    assert (gate_outcomes["processed"], gate_outcomes["dropped"]) == (1, 2)
    assert gate_outcomes["enqueued"] == 6
    assert (gate_outcomes["conflated"], gate_outcomes["rejected"], gate_outcomes["deferred"]) == (0, 0, 0)
    # The tick found the mailbox full: moved to the system lane, neither refused nor enqueued.
    ticking_outcomes = by_outcome("/ticking")
    assert (ticking_outcomes["deferred"], ticking_outcomes["rejected"]) == (1, 0)
    assert (ticking_outcomes["enqueued"], ticking_outcomes["processed"]) == (2, 1)
    wait = metrics["garrison_mailbox_wait_seconds"]
    assert value(wait, "garrison_mailbox_wait_seconds_count", actor="/echo") == 1
    assert value(wait, "garrison_mailbox_wait_seconds_bucket", actor="/echo", le="+Inf") == 1
    assert 0 <= value(wait, "garrison_mailbox_wait_seconds_sum", actor="/echo") < 1.0
    assert value(wait, "garrison_mailbox_wait_seconds_count", actor="/gate") == 0
    assert value(metrics["garrison_actor_running"], "garrison_actor_running", actor="/gate") == 1


async def test_metrics_export_dead_letters_by_kind(node: Node) -> None:
    entered, opened = asyncio.Event(), asyncio.Event()
    mailbox = MailboxConfig(capacity=1, overflow=Overflow.DROP_NEWEST)
    gate = await node.spawn(Gate, name="gate", args=(entered, opened), mailbox=mailbox)
    gate.tell_nowait("first")
    await asyncio.wait_for(entered.wait(), 2.0)
    for index in range(4):  # one queues, three overflow
        gate.tell_nowait(index)
    flaky = await node.spawn(Flaky, name="flaky")
    flaky.tell_nowait("crash")  # unsupervised: the message it died on is a dead letter
    await asyncio.wait_for(flaky.wait_terminated(), 2.0)
    metrics = await scrape(node)
    opened.set()
    dead = metrics["garrison_dead_letters"]
    assert value(dead, "garrison_dead_letters_total", kind="overflow") == 3
    assert value(dead, "garrison_dead_letters_total", kind="crashed") == 1
    assert node.dead_letters.count == 4


async def test_metrics_export_restarts_and_gave_up_per_actor_path(node: Node) -> None:
    inner = SupervisorSpec(intensity=0, children=[ChildSpec("fragile", Flaky)])
    spec = SupervisorSpec(intensity=10, children=[ChildSpec("flaky", Flaky), ChildSpec("inner", inner)])
    await node.start(spec)
    for times in (1, 2):
        node.lookup("/root/flaky").tell_nowait("crash")
        await restarted(node, "/root/flaky", times)
    # /root/inner may restart nothing (intensity 0): it gives up, and /root restarts it.
    node.lookup("/root/inner/fragile").tell_nowait("crash")
    await restarted(node, "/root/inner", 1)
    metrics = await scrape(node)
    restarts = metrics["garrison_actor_restarts"]
    assert value(restarts, "garrison_actor_restarts_total", actor="/root/flaky") == 2
    assert value(restarts, "garrison_actor_restarts_total", actor="/root/inner") == 1
    # Present from the start, at zero: an alert on rate() sees the first restart.
    assert value(restarts, "garrison_actor_restarts_total", actor="/root/inner/fragile") == 0
    assert value(restarts, "garrison_actor_restarts_total", actor="/root") == 0
    gave_up = metrics["garrison_supervisor_gave_up"]
    assert value(gave_up, "garrison_supervisor_gave_up_total", actor="/root/inner") == 1
    assert value(gave_up, "garrison_supervisor_gave_up_total", actor="/root") == 0
    # Only supervisors give up: workers have no such series.
    assert {sample.labels["actor"] for sample in gave_up if sample.name.endswith("_total")} == {
        "/root",
        "/root/inner",
    }
    assert (await fetch(node, "/healthz"))[0] == 200  # the root itself still runs


async def test_metrics_export_the_loop_lag_histogram_and_window_gauges(node: Node) -> None:
    monitor = node.loop_monitor
    assert monitor is not None
    await eventually(lambda: monitor.stats().count >= 5)
    status, _, body = await fetch(node, "/metrics")
    assert status == 200
    types = types_of(body)
    assert types["garrison_loop_lag_seconds"] == "histogram"
    assert types["garrison_loop_lag_p99_seconds"] == "gauge"
    assert types["garrison_loop_lag_max_seconds"] == "gauge"
    assert types["garrison_loop_stalls"] == "counter"
    metrics = await scrape(node)
    lag = metrics["garrison_loop_lag_seconds"]
    count = value(lag, "garrison_loop_lag_seconds_count")
    assert count >= 5
    buckets = [sample for sample in lag if sample.name == "garrison_loop_lag_seconds_bucket"]
    # Cumulative, as Prometheus wants: never decreasing, ending at the count.
    assert [sample.value for sample in buckets] == sorted(sample.value for sample in buckets)
    assert buckets[-1].labels == {"le": "+Inf"} and buckets[-1].value == count
    assert value(lag, "garrison_loop_lag_seconds_sum") >= 0
    p99 = value(metrics["garrison_loop_lag_p99_seconds"], "garrison_loop_lag_p99_seconds")
    worst = value(metrics["garrison_loop_lag_max_seconds"], "garrison_loop_lag_max_seconds")
    assert 0 <= p99 <= worst < 1.0
    assert value(metrics["garrison_loop_stalls"], "garrison_loop_stalls_total") == 0


async def test_metrics_export_journal_appends_commits_latency_and_batch_size(node: Node) -> None:
    assert node.journal is not None
    stream = DurableStream(node.journal, "orders")
    for payload in (b"a", b"b", b"c"):
        await stream.append(payload)
    await stream.append(b"d", b"e")
    metrics = await scrape(node)
    assert value(metrics["garrison_journal_appends"], "garrison_journal_appends_total") == 4
    assert value(metrics["garrison_journal_commits"], "garrison_journal_commits_total") >= 4
    latency = metrics["garrison_journal_append_latency_seconds"]
    assert value(latency, "garrison_journal_append_latency_seconds_count") == 4
    assert value(latency, "garrison_journal_append_latency_seconds_bucket", le="+Inf") == 4
    assert value(latency, "garrison_journal_append_latency_seconds_sum") > 0
    batches = metrics["garrison_journal_batch_appends"]
    # One producer awaiting each append: every commit holds one append.
    assert value(batches, "garrison_journal_batch_appends_count") == 4
    assert value(batches, "garrison_journal_batch_appends_bucket", le="1") == 4
    assert value(batches, "garrison_journal_batch_appends_sum") == 4


async def test_metrics_export_durable_stream_consumer_lag_per_group(node: Node) -> None:
    assert node.journal is not None
    stream = DurableStream(node.journal, "orders")
    await stream.append(b"a", b"b", b"c", b"d")
    billing, audit = stream.group("billing"), stream.group("audit")
    await billing.ack(1)
    await audit.ack(4)
    node.track_consumer_lag(billing)
    node.track_consumer_lag(audit)
    metrics = await scrape(node)
    stream_lag = metrics["garrison_stream_consumer_lag_entries"]
    assert value(stream_lag, "garrison_stream_consumer_lag_entries", stream="orders", group="billing") == 3
    assert value(stream_lag, "garrison_stream_consumer_lag_entries", stream="orders", group="audit") == 0
    await billing.ack(3)
    metrics = await scrape(node)
    stream_lag = metrics["garrison_stream_consumer_lag_entries"]
    assert value(stream_lag, "garrison_stream_consumer_lag_entries", stream="orders", group="billing") == 1


async def test_tracking_a_group_again_after_a_consumer_restart_keeps_one_series(node: Node) -> None:
    assert node.journal is not None
    stream = DurableStream(node.journal, "orders")
    await stream.append(b"a", b"b")
    node.track_consumer_lag(stream.group("billing"))
    fresh = stream.group("billing")  # what a restarted consumer builds
    await fresh.ack(1)
    node.track_consumer_lag(fresh)
    metrics = await scrape(node)
    assert (
        value(
            metrics["garrison_stream_consumer_lag_entries"],
            "garrison_stream_consumer_lag_entries",
            stream="orders",
            group="billing",
        )
        == 1
    )
    assert len(node.consumer_groups) == 1


async def test_metrics_answer_500_naming_the_error_when_a_source_fails(node: Node, tmp_path: Path) -> None:
    other = await SqliteJournal(tmp_path / "other.db").open()
    group = DurableStream(other, "orders").group("billing")
    node.track_consumer_lag(group)
    await other.close()  # lag() now raises JournalClosed
    status, content_type, body = await fetch(node, "/metrics")
    assert status == 500
    assert content_type == "text/plain; charset=utf-8"
    assert b"JournalClosed" in body
    assert (await fetch(node, "/healthz"))[0] == 200  # a broken metric source is not ill health


async def test_metrics_of_a_node_without_guard_or_journal_leave_those_families_out() -> None:
    async with Node("bare", guard=None, metrics_port=0, handle_signals=False) as node:
        await node.spawn(Flaky, name="flaky")
        metrics = await scrape(node)
    assert "garrison_mailbox_depth_messages" in metrics
    assert not [name for name in metrics if name.startswith(("garrison_loop_", "garrison_journal_"))]
    assert metrics["garrison_stream_consumer_lag_entries"] == []


class HangingLag:
    """A consumer group whose lag never comes (a Redis server that does not answer)."""

    async def lag(self) -> int:
        await asyncio.Event().wait()
        return 0


async def test_metrics_answer_503_instead_of_hanging_when_a_source_does_not_answer(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_module, "SNAPSHOT_TIMEOUT", 0.2)
    node.consumer_groups[("orders", "stuck")] = HangingLag()  # type: ignore[assignment]
    status, _, body = await fetch(node, "/metrics")
    assert status == 503
    assert b"collecting /metrics took over 0.2s" in body
    assert (await fetch(node, "/healthz"))[0] == 200
    del node.consumer_groups[("orders", "stuck")]
    assert (await fetch(node, "/metrics"))[0] == 200  # and all is well once it is gone


async def test_a_scraper_that_hangs_up_early_leaves_no_traceback(
    node: Node, capsys: pytest.CaptureFixture[str]
) -> None:
    assert node.metrics_address is not None
    server = node._metrics_server
    assert server is not None

    def hang_up() -> None:
        with socket.create_connection(node.metrics_address, timeout=5.0) as connection:
            connection.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            # Close with a reset before the answer is written: its write fails.
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    for _ in range(3):
        await asyncio.to_thread(hang_up)
        await eventually(lambda: server.open_connections == 0)
    assert (await fetch(node, "/healthz"))[0] == 200
    errors = capsys.readouterr().err
    assert "Traceback" not in errors and "exception was never retrieved" not in errors
    assert "BrokenPipeError" not in errors and "ConnectionResetError" not in errors


# -- /tree, /healthz, 404 ----------------------------------------------------------------


async def test_tree_returns_node_tree_as_json(node: Node) -> None:
    await node.start(SupervisorSpec(children=[ChildSpec("flaky", Flaky)]))
    await node.spawn(Flaky, name="loner")
    status, content_type, body = await fetch(node, "/tree")
    assert status == 200
    assert content_type == "application/json"
    tree = json.loads(body)
    assert tree == node.tree()
    assert [entry["path"] for entry in tree] == ["/root", "/loner"]
    assert [child["path"] for child in tree[0]["children"]] == ["/root/flaky"]


async def test_healthz_answers_200_while_the_loop_ticks_and_the_root_supervisor_runs(node: Node) -> None:
    assert await fetch(node, "/healthz") == (200, "text/plain; charset=utf-8", b"ok\n")
    await node.start(SupervisorSpec(children=[ChildSpec("flaky", Flaky)]))
    assert (await fetch(node, "/healthz"))[0] == 200


async def test_healthz_answers_503_once_the_root_supervisor_gave_up(node: Node) -> None:
    root = await node.start(SupervisorSpec(intensity=0, children=[ChildSpec("flaky", Flaky)]))
    node.lookup("/root/flaky").tell_nowait("crash")
    await asyncio.wait_for(node.wait_closed(), 2.0)
    await asyncio.wait_for(root.ref.wait_terminated(), 2.0)
    status, _, body = await fetch(node, "/healthz")
    assert status == 503
    assert b"root supervisor /root is stopped" in body
    assert node.exit_code == 1


async def test_an_unknown_path_answers_404_naming_the_endpoints(node: Node) -> None:
    status, _, body = await fetch(node, "/nope")
    assert status == 404
    assert b"/metrics" in body and b"/healthz" in body and b"/tree" in body


# -- binding and lifecycle ---------------------------------------------------------------


async def test_the_endpoint_binds_127_0_0_1_by_default_on_the_loop_and_releases_its_port() -> None:
    threads_before = {thread.name for thread in threading.enumerate()}
    async with Node("bound", guard=None, metrics_port=0, handle_signals=False) as node:
        assert node.metrics_address is not None
        host, port = node.metrics_address
        assert host == "127.0.0.1"
        assert port > 0
        server = node._metrics_server
        assert server is not None
        assert server._server is not None
        assert server._server.sockets[0].getsockname() == ("127.0.0.1", port)
        # Served by the node's own loop: no thread of its own.
        assert {thread.name for thread in threading.enumerate()} <= threads_before
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # free again
    with pytest.raises(OSError):
        await asyncio.to_thread(http_get, ("127.0.0.1", port), "/healthz", 1.0)


async def test_a_node_that_cannot_listen_on_its_metrics_port_leaves_nothing_running(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "journal.db")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        node = Node("clash", metrics_port=port, journal=journal, handle_signals=False)
        with pytest.raises(OSError):
            await node.__aenter__()
    assert "garrison-watchdog-clash" not in {thread.name for thread in threading.enumerate()}
    assert "garrison-loop-monitor" not in {task.get_name() for task in asyncio.all_tasks()}
    assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("garrison:journal-writer")]
    assert not node.running


@pytest.mark.parametrize("port", [-1, 65536, True, "9100"])
def test_node_rejects_a_bad_metrics_port(port: Any) -> None:
    with pytest.raises(InvalidConfig, match="metrics_port"):
        Node(metrics_port=port)


# -- /healthz from another process while the node's loop is blocked ----------------------


def read_line_starting(process: subprocess.Popen[bytes], prefix: bytes, timeout: float) -> bytes:
    """The first stdout line of the child that starts with ``prefix`` ("" on EOF or timeout)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    buffered = b""
    deadline = time.monotonic() + timeout
    while True:
        for line in buffered.split(b"\n")[:-1]:
            if line.startswith(prefix):
                return line
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return b""
        chunk = os.read(fd, 4096)
        if not chunk:
            return b""
        buffered += chunk


NO_ANSWER = 0
"""What ``poll_health`` records for a probe that got no answer within its timeout."""


def poll_health(port: int, wanted: set[int], timeout: float) -> list[tuple[int, bytes]]:
    """Probe /healthz (each probe waiting 0.5 s, as a kubelet's timeoutSeconds) every 50 ms
    until its status is one of ``wanted``; every (status, body), in order."""
    seen: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _, body = http_get(("127.0.0.1", port), "/healthz", timeout=0.5)
        except (TimeoutError, urllib.error.URLError):
            status, body = NO_ANSWER, b""
        seen.append((status, body))
        if status in wanted:
            break
        time.sleep(0.05)
    return seen


def test_healthz_fails_while_the_loop_is_blocked_and_answers_200_after() -> None:
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "serve"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = read_line_starting(process, b"port ", timeout=30.0)
        assert line, "the child printed no port"
        port = int(line.split()[1])
        assert http_get(("127.0.0.1", port), "/healthz") == (200, "text/plain; charset=utf-8", b"ok\n")
        process.send_signal(signal.SIGUSR1)
        assert read_line_starting(process, b"blocking", timeout=10.0)
        # Served by the blocked loop: a probe gets no answer in time (a failed probe), or a 503
        # naming the silence once the loop is back before its lag monitor has ticked.
        seen = poll_health(port, {NO_ANSWER, 503}, timeout=SERVE_BLOCK_SECONDS)
        assert seen[-1][0] in (NO_ANSWER, 503), seen
        if seen[-1][0] == 503:
            assert seen[-1][1].startswith(b"event loop has not ticked for")
        seen = poll_health(port, {200}, timeout=SERVE_BLOCK_SECONDS + 3.0)
        assert seen[-1] == (200, b"ok\n"), seen
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=10.0)
        assert process.returncode == 0, errors.decode()
        assert b"running: /sleeper" in errors  # the lag monitor named the blocking actor
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10.0)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
