"""A plain node on virtual time for the foundation's own tests.

These shadow the garrison plugin's ``clock`` and ``node`` on purpose: the tests
here provoke crashes and dead letters, and pin the bare Node's behaviour
without the test kit around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from garrison import ManualClock, Node


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def node(clock: ManualClock) -> AsyncIterator[Node]:
    """A running node on the manual clock, without signal handlers; shut down after the test."""
    async with Node("t", clock=clock, handle_signals=False) as running:
        yield running
