"""Properties of the stash and of fixed-rate timers, checked against simple models.

Each example runs its own node on its own event loop and virtual clock.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from garrison import Actor, MailboxConfig, ManualClock, Node

PROPERTY = settings(max_examples=60, deadline=None)


class Switch(Actor):
    """Closed: stashes numbers. "open" unstashes all; "close" closes again."""

    mailbox = MailboxConfig(capacity=1000, stash_capacity=1000)

    def __init__(self, handled: list[Any]) -> None:
        self.handled = handled
        self.open = False

    async def on_receive(self, message: Any) -> Any:
        if message == "open":
            self.open = True
            self.ctx.unstash_all()
        elif message == "close":
            self.open = False
        elif self.open:
            self.handled.append(message)
        else:
            self.ctx.stash()


def model(messages: list[Any]) -> tuple[list[int], list[int]]:
    """What Switch handles, in order, and what it still has stashed at the end."""
    queue: deque[Any] = deque(messages)
    stash: list[Any] = []
    handled: list[int] = []
    is_open = False
    while queue:
        message = queue.popleft()
        if message == "open":
            is_open = True
            queue.extendleft(reversed(stash))
            stash = []
        elif message == "close":
            is_open = False
        elif is_open:
            handled.append(message)
        else:
            stash.append(message)
    return handled, stash


commands = st.lists(
    st.one_of(st.integers(0, 99), st.just("open"), st.just("close")), min_size=1, max_size=40
)


@PROPERTY
@given(first=commands, second=commands)
def test_the_stash_hands_messages_back_in_the_order_the_model_says(
    first: list[Any], second: list[Any]
) -> None:
    async def run() -> tuple[list[Any], list[Any]]:
        clock = ManualClock()
        handled: list[Any] = []
        async with Node("p", clock=clock, handle_signals=False) as node:
            ref = await node.spawn(Switch, args=(handled,), name="switch")
            # Two bursts: the second arrives while the first is being served.
            for message in first:
                ref.tell_nowait(message)
            await asyncio.sleep(0)
            for message in second:
                ref.tell_nowait(message)
            await clock.advance(0.0)
            await node.stop(ref)
            left = [
                letter.message for letter in node.dead_letters.recent() if letter.kind == "stashed_on_stop"
            ]
        return handled, left

    handled, left = asyncio.run(run())
    assert (handled, left) == model(first + second)


@PROPERTY
@given(
    interval=st.floats(min_value=0.01, max_value=2.0),
    steps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=25),
)
def test_fixed_rate_ticks_fall_on_the_grid_whatever_the_clock_steps(
    interval: float, steps: list[float]
) -> None:
    class Ticker(Actor):
        def __init__(self, seen: list[float]) -> None:
            self.seen = seen

        async def on_start(self) -> None:
            self.ctx.timers.start_at_fixed_rate("t", "tick", interval)

        async def on_receive(self, message: Any) -> Any:
            self.seen.append(self.ctx.node.clock.now())

    async def run() -> list[float]:
        clock = ManualClock()
        seen: list[float] = []
        async with Node("p", clock=clock, handle_signals=False) as node:
            await node.spawn(Ticker, args=(seen,))
            for step in steps:
                await clock.advance(step)
        return seen

    seen = asyncio.run(run())
    total = sum(steps)
    grid = [interval * n for n in range(1, len(seen) + 1)]
    assert all(math.isclose(at, due, rel_tol=1e-9, abs_tol=1e-9) for at, due in zip(seen, grid, strict=True))
    # Every due time up to the end of the run fired (allowing a due time that rounds onto the end).
    assert math.floor(total / interval - 1e-9) <= len(seen) <= math.floor(total / interval + 1e-9)
