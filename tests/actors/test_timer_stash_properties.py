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


class Keyed(Actor):
    """Applies timer commands; records (key's message, time) for every tick it gets."""

    def __init__(self, seen: list[tuple[str, float]]) -> None:
        self.seen = seen

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple):
            command, key, *args = message
            timers = self.ctx.timers
            if command == "single":
                timers.start_single(key, f"{key}:{args[1]}", args[0])
            elif command == "periodic":
                timers.start_periodic(key, f"{key}:{args[1]}", args[0])
            else:
                timers.cancel(key)
            return None
        self.seen.append((message, round(self.ctx.node.clock.now(), 6)))
        return None


timer_commands = st.lists(
    st.tuples(
        st.integers(0, 20),  # when, in half seconds
        st.sampled_from(["single", "periodic", "cancel"]),
        st.sampled_from(["a", "b"]),
        st.integers(1, 6),  # delay or interval, in half seconds
    ),
    max_size=12,
)


def expected_ticks(commands: list[tuple[int, str, str, int]], end: int) -> list[tuple[str, float]]:
    """What a model of keyed timers delivers: each start's ticks up to its replacement, its
    cancel or the end (a tick due at the very moment of a command is delivered first)."""
    ticks: list[tuple[str, float]] = []
    ordered = sorted(enumerate(commands), key=lambda item: (item[1][0], item[0]))
    for index, (when, command, key, span) in ordered:
        if command == "cancel":
            continue
        later = [at for i, (at, _, other, _) in ordered if other == key and (at, i) > (when, index)]
        until = min(later, default=end)
        due = when + span
        while due <= until:
            ticks.append((f"{key}:{index}", round(due * 0.5, 6)))
            if command == "single":
                break
            due += span
    return sorted(ticks)


@PROPERTY
@given(commands=timer_commands)
def test_keyed_timers_deliver_exactly_what_a_model_of_replace_and_cancel_says(
    commands: list[tuple[int, str, str, int]],
) -> None:
    end = 30

    async def run() -> list[tuple[str, float]]:
        clock = ManualClock()
        seen: list[tuple[str, float]] = []
        async with Node("p", clock=clock, handle_signals=False) as node:
            ref = await node.spawn(Keyed, args=(seen,))
            ordered = sorted(enumerate(commands), key=lambda item: (item[1][0], item[0]))
            for index, (when, command, key, span) in ordered:
                await clock.advance(when * 0.5 - clock.now())
                await ref.ask((command, key, span * 0.5, index))
            await clock.advance(end * 0.5 - clock.now())
        return sorted(seen)

    assert asyncio.run(run()) == expected_ticks(commands, end)
