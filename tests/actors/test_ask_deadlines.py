"""Ask timeouts: asks sharing a timeout share a timer, yet each expires at its own deadline."""

from __future__ import annotations

import asyncio

from garrison import AskTimeout, ManualClock, Node
from garrison._clock import settle
from tests.actors.helpers import Gated


async def test_asks_with_different_timeouts_each_time_out_at_their_own_deadline(
    node: Node, clock: ManualClock
) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(Gated, name="g", args=(gate, []))
    slow = asyncio.create_task(ref.ask("slow", timeout=3.0))
    fast = asyncio.create_task(ref.ask("fast", timeout=1.0))
    await clock.advance(0.5)
    later_fast = asyncio.create_task(ref.ask("later fast", timeout=1.0))
    await settle()
    await clock.advance(0.5)  # t=1.0
    assert fast.done() and not later_fast.done() and not slow.done()
    await clock.advance(0.5)  # t=1.5
    assert later_fast.done() and not slow.done()
    await clock.advance(1.5)  # t=3.0
    assert slow.done()
    for ask in (slow, fast, later_fast):
        assert isinstance(ask.exception(), AskTimeout)
    gate.set()
