"""A plain node on virtual time for the supervision tests.

These shadow the garrison plugin's ``clock`` and ``node`` on purpose: every
test here provokes crashes and dead letters, and pins the bare runtime's
supervision behaviour without the test kit's guard around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from garrison import ManualClock, Node

from ._support import drive


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
