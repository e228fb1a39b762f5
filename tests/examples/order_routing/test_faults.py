"""The fault helpers of the node: timeouts on the node's clock, and log lines whose repeats are
counted instead of written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from loguru import logger

from examples.order_routing.node.faults import RepeatLimiter, StepTimeout, within
from garrison import ManualClock


def warnings(log_records: list[dict[str, Any]]) -> list[str]:
    return [str(r["message"]) for r in log_records if r["level"].name == "WARNING"]


async def test_repeats_within_the_window_are_counted_into_the_next_line(
    log_records: list[dict[str, Any]],
) -> None:
    clock = ManualClock()
    faults = RepeatLimiter(logger, clock, window=10.0)

    assert faults.warning("reset", "broker {peer}: reset", peer="a:1")
    for _ in range(3):
        await clock.advance(1.0)
        assert not faults.warning("reset", "broker {peer}: reset", peer="a:1")
    assert faults.warning("silent", "broker {peer}: silent", peer="a:1")  # another kind: its own line
    await clock.advance(7.0)
    assert faults.warning("reset", "broker {peer}: reset", peer="a:1")

    assert warnings(log_records) == [
        "broker a:1: reset",
        "broker a:1: silent",
        "broker a:1: reset (… 3 more in the last 10 s)",
    ]


async def test_a_step_that_outlasts_its_limit_on_the_node_clock_is_a_named_timeout() -> None:
    clock = ManualClock()
    never = asyncio.get_running_loop().create_future()
    step = asyncio.ensure_future(within(clock, 5.0, "handshake", never))
    await asyncio.sleep(0)
    await clock.advance(4.9)
    assert not step.done()
    await clock.advance(0.2)
    with pytest.raises(StepTimeout, match=r"^handshake timed out after 5s$") as raised:
        await step
    assert (raised.value.step, raised.value.seconds) == ("handshake", 5.0)
    assert never.cancelled()


async def test_a_step_done_in_time_returns_its_result_and_leaves_no_timer() -> None:
    clock = ManualClock()

    async def quick() -> str:
        return "welcome"

    assert await within(clock, 5.0, "handshake", quick()) == "welcome"
    assert clock.pending_timers == 0
