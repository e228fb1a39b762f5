"""ctx.run_in_thread and ctx.run_in_process keep blocking and CPU work off the loop."""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from garrison import Actor, ManualClock, Node
from tests.actors import helpers


class Offloader(Actor):
    async def on_receive(self, message: Any) -> Any:
        where, fn, args = message
        if where == "thread":
            return await self.ctx.run_in_thread(fn, *args)
        return await self.ctx.run_in_process(fn, *args)


@pytest.fixture
async def pooled_node() -> AsyncIterator[Node]:
    async with Node("pools", clock=ManualClock(), handle_signals=False, process_workers=1) as node:
        yield node


async def test_run_in_thread_runs_on_another_thread_and_returns_the_result(pooled_node: Node) -> None:
    ref = await pooled_node.spawn(Offloader, name="off")
    thread_id = await asyncio.wait_for(
        ref.ask(("thread", helpers.current_thread_id, ()), timeout=None), timeout=10.0
    )
    assert thread_id != threading.get_ident()


async def test_run_in_thread_raises_the_function_exception_in_the_handler(pooled_node: Node) -> None:
    ref = await pooled_node.spawn(Offloader, name="off")
    with pytest.raises(ValueError, match="from the thread"):
        await asyncio.wait_for(
            ref.ask(("thread", helpers.fail_in_worker, ("from the thread",)), timeout=None), timeout=10.0
        )


async def test_run_in_thread_does_not_block_the_loop(pooled_node: Node) -> None:
    release = threading.Event()
    ref = await pooled_node.spawn(Offloader, name="off")
    echo = await pooled_node.spawn(helpers.Recorder, name="echo", args=([],))
    blocked = asyncio.create_task(ref.ask(("thread", release.wait, (10.0,)), timeout=None))
    try:
        # The loop still serves other actors while the thread blocks.
        assert await asyncio.wait_for(echo.ask("alive", timeout=None), timeout=10.0) == "alive"
        assert not blocked.done()
    finally:
        release.set()
    assert await asyncio.wait_for(blocked, timeout=10.0) is True


async def test_run_in_process_runs_in_another_process_and_returns_the_result(pooled_node: Node) -> None:
    ref = await pooled_node.spawn(Offloader, name="off")
    result = await asyncio.wait_for(ref.ask(("process", math.factorial, (20,)), timeout=None), timeout=60.0)
    assert result == math.factorial(20)
    pid = await asyncio.wait_for(ref.ask(("process", helpers.current_pid, ()), timeout=None), timeout=60.0)
    assert pid != os.getpid()


async def test_run_in_process_raises_the_function_exception_in_the_handler(pooled_node: Node) -> None:
    ref = await pooled_node.spawn(Offloader, name="off")
    with pytest.raises(ValueError, match="from the process"):
        await asyncio.wait_for(
            ref.ask(("process", helpers.fail_in_worker, ("from the process",)), timeout=None), timeout=60.0
        )
