"""A plain node on virtual time for the supervision tests.

These shadow the garrison plugin's ``clock`` and ``node`` on purpose: every
test here provokes crashes and dead letters, and pins the bare runtime's
supervision behaviour without the test kit's guard around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from garrison import ManualClock, Node

from ._support import drive

TEST_TIMEOUT = 15.0
"""Real seconds any one supervision test may take: a hang fails fast instead of at the global 120 s."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def node(clock: ManualClock) -> AsyncIterator[Node]:
    """A running node on the manual clock, without signal handlers; shut down after the test.

    The shutdown drives virtual time, so children stuck in a handler are cancelled at their
    shutdown timeout; one that waits forever fails the test instead of hanging it.
    """
    async with Node("t", clock=clock, handle_signals=False) as running:
        yield running
        await drive(clock, running.shutdown(), within=3600.0)
