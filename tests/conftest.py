"""Shared fixtures: a node on virtual time, and a capture of garrison's log records."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from loguru import logger

from garrison import ManualClock, Node


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def node(clock: ManualClock) -> AsyncIterator[Node]:
    """A running node on the manual clock, without signal handlers; shut down after the test."""
    async with Node("t", clock=clock, handle_signals=False) as running:
        yield running


@pytest.fixture
def log_records() -> Iterator[list[dict[str, Any]]]:
    """Every loguru record emitted during the test (the record dicts, with ``extra``)."""
    records: list[dict[str, Any]] = []
    sink_id = logger.add(lambda message: records.append(message.record), level="DEBUG")
    try:
        yield records
    finally:
        logger.remove(sink_id)
