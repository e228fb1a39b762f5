"""ActorRef.ask_future: the ask is in the mailbox when it returns, its outcome on the future."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from garrison import (
    Actor,
    ActorStopped,
    AskTimeout,
    InvalidConfig,
    MailboxConfig,
    MailboxFull,
    ManualClock,
    Node,
    Overflow,
)
from garrison._clock import settle
from tests.actors.helpers import Crash, Gated, Recorder


async def test_the_ask_is_queued_before_ask_future_returns_and_the_future_holds_the_answer(
    node: Node,
) -> None:
    seen: list[Any] = []
    ref = await node.spawn(Recorder, name="rec", args=(seen,))
    first = ref.ask_future("first", timeout=1.0)
    ref.tell_nowait("second")  # sent after: handled after, so the ask was queued first
    assert ref.mailbox_metrics().depth == 2
    assert await asyncio.wait_for(first, timeout=5.0) == "first"
    await settle()
    assert seen == ["first", "second"]


class Failing(Actor):
    async def on_receive(self, message: Any) -> Any:
        raise Crash(f"failed on {message}")


async def test_the_handler_error_completes_the_future(node: Node) -> None:
    ref = await node.spawn(Failing, name="f")
    with pytest.raises(Crash, match="failed on fail"):
        await asyncio.wait_for(ref.ask_future("fail", timeout=1.0), timeout=5.0)
    assert ref.is_alive


async def test_a_refusal_completes_the_future_rather_than_raising(node: Node) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(
        Gated, name="g", args=(gate, []), mailbox=MailboxConfig(capacity=1, overflow=Overflow.REJECT)
    )
    ref.tell_nowait("in flight")
    await settle()
    ref.tell_nowait("queued")
    refused = ref.ask_future("one too many", timeout=1.0)
    assert refused.done()
    with pytest.raises(MailboxFull) as raised:
        refused.result()
    assert raised.value.path == "/g"
    gate.set()


async def test_an_ask_to_a_stopped_actor_completes_with_actor_stopped(node: Node) -> None:
    ref = await node.spawn(Recorder, name="rec", args=([],))
    await node.stop(ref)
    future = ref.ask_future("late", timeout=1.0)
    with pytest.raises(ActorStopped):
        future.result()


async def test_a_full_backpressure_mailbox_makes_the_ask_wait_for_space_in_order(node: Node) -> None:
    gate = asyncio.Event()
    seen: list[str] = []
    ref = await node.spawn(Gated, name="g", args=(gate, seen), mailbox=MailboxConfig(capacity=1))
    ref.tell_nowait("in flight")
    await settle()
    ref.tell_nowait("queued")
    waiting = ref.ask_future("waits for space", timeout=None)
    await settle()
    assert not waiting.done()
    gate.set()
    assert await asyncio.wait_for(waiting, timeout=5.0) == "waits for space"
    assert seen == ["in flight", "queued", "waits for space"]


async def test_the_future_times_out_on_the_node_clock(node: Node, clock: ManualClock) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(Gated, name="g", args=(gate, []))
    future = ref.ask_future("slow", timeout=2.0)
    await clock.advance(1.9)
    assert not future.done()
    await clock.advance(0.1)
    with pytest.raises(AskTimeout) as raised:
        await asyncio.wait_for(future, timeout=5.0)
    assert raised.value.path == "/g"
    assert raised.value.timeout == 2.0
    gate.set()


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
async def test_a_bad_timeout_raises_naming_it_and_sends_nothing(node: Node, timeout: float) -> None:
    seen: list[Any] = []
    ref = await node.spawn(Recorder, name="rec", args=(seen,))
    with pytest.raises(InvalidConfig) as raised:
        ref.ask_future("x", timeout=timeout)
    assert raised.value.field == "timeout"
    await settle()
    assert seen == []
