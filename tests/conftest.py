"""Fixtures shared by every test directory.

The garrison pytest plugin (garrison.testing) provides ``garrison_node``,
``garrison_clock``, ``garrison_probe``, ...; the suite keeps the short names
it was written with (``node``, ``clock``, ``probe``, ...) by defining them
here on top of the plugin's, as any project may. tests/actors/ and
tests/supervision/ define their own plain ``clock`` and ``node``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger

from garrison import ManualClock, Node
from garrison.testing import EventRecorder, Faults, LogCapture, NodeGuard, TestProbe, TrackedJournal


@pytest.fixture
def log_records() -> Iterator[list[dict[str, Any]]]:
    """Every loguru record emitted during the test (the record dicts, with ``extra``)."""
    records: list[dict[str, Any]] = []
    sink_id = logger.add(lambda message: records.append(message.record), level="DEBUG")
    try:
        yield records
    finally:
        logger.remove(sink_id)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Any]:
    """A local 3-master Redis Cluster for the whole run (tests/persistence/redis/_cluster.py),
    started on first use and stopped at the end: tests keep apart by namespace or cluster name."""
    from tests.persistence.redis._cluster import local_cluster

    cluster = local_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


# -- the plugin's fixtures under the short names the suite uses -----------------------------


@pytest.fixture
def clock(garrison_clock: ManualClock) -> ManualClock:
    return garrison_clock


@pytest.fixture
def node(garrison_node: Node) -> Node:
    return garrison_node


@pytest.fixture
def probe(garrison_probe: TestProbe) -> TestProbe:
    return garrison_probe


@pytest.fixture
def events(garrison_events: EventRecorder) -> EventRecorder:
    return garrison_events


@pytest.fixture
def faults(garrison_faults: Faults) -> Faults:
    return garrison_faults


@pytest.fixture
def logs(garrison_logs: LogCapture) -> LogCapture:
    return garrison_logs


@pytest.fixture
def node_guard(garrison_node_guard: NodeGuard) -> NodeGuard:
    return garrison_node_guard


@pytest.fixture
def journal(garrison_journal: TrackedJournal) -> TrackedJournal:
    return garrison_journal
