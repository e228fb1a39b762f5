"""send_later to self: a tick deferred to the system lane at a full mailbox is never lost silently."""

from __future__ import annotations

import asyncio
from typing import Any

from garrison import ManualClock, Node
from tests.actors._pollers import spawn_busy_poller
from tests.actors.helpers import dead_letters_to


async def _tick_deferred_behind(node: Node, clock: ManualClock, first: str) -> Any:
    """Spawn a poller busy with ``first``, its one queue slot taken, its t=1 tick on the system lane."""
    ref, seen, _ = await spawn_busy_poller(node, first, ["queued"], name="ticker")
    await clock.advance(1.0)
    assert ref.mailbox_metrics().deferred == 1
    return ref, seen


async def test_a_deferred_tick_goes_to_dead_letters_when_the_actor_is_killed(
    node: Node, clock: ManualClock
) -> None:
    ref, seen = await _tick_deferred_behind(node, clock, "block")
    await node.stop(ref, timeout=0)
    letters = dead_letters_to(node, "/ticker")
    assert sorted(letter.message for letter in letters) == ["block", "queued", "tick"]
    [tick] = [letter for letter in letters if letter.message == "tick"]
    assert "/ticker" in tick.reason and "stopped" in tick.reason
    assert seen == []


async def test_a_deferred_tick_queued_at_a_graceful_stop_goes_to_dead_letters_not_to_the_actor(
    node: Node, clock: ManualClock
) -> None:
    # Like the queued user message: stopping ends delivery; only the message in flight finishes.
    ref, seen = await _tick_deferred_behind(node, clock, "block")
    stopping = asyncio.ensure_future(node.stop(ref, timeout=10.0))
    await clock.advance(5.0)
    await stopping
    assert seen == ["block"]
    letters = dead_letters_to(node, "/ticker")
    assert sorted(letter.message for letter in letters) == ["queued", "tick"]


async def test_a_deferred_tick_goes_to_dead_letters_when_an_unsupervised_actor_crashes(
    node: Node, clock: ManualClock
) -> None:
    ref, seen = await _tick_deferred_behind(node, clock, "crash-later")
    await clock.advance(1.0)
    assert not ref.is_alive
    letters = dead_letters_to(node, "/ticker")
    assert sorted(letter.message for letter in letters) == ["crash-later", "queued", "tick"]
    [tick] = [letter for letter in letters if letter.message == "tick"]
    assert tick.reason
    assert seen == []
