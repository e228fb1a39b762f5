"""tell, tell_nowait and ask: delivery, backpressure, replies, errors and timeouts."""

from __future__ import annotations

import asyncio
import time
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
    MessageDropped,
    Node,
    Overflow,
    UnhandledMessage,
)
from garrison._clock import settle
from tests.actors.helpers import Crash, Gated, Recorder, dead_letters_to


async def test_tell_delivers_messages_in_the_order_sent(node: Node) -> None:
    seen: list[int] = []
    ref = await node.spawn(Recorder, name="rec", args=(seen,))
    for index in range(100):
        await ref.tell(index)
    await settle()
    assert seen == list(range(100))


async def test_tell_nowait_delivers_without_awaiting(node: Node) -> None:
    seen: list[str] = []
    ref = await node.spawn(Recorder, name="rec", args=(seen,))
    ref.tell_nowait("a")
    ref.tell_nowait("b")
    assert seen == []  # handled on the actor's own task, not inline
    await settle()
    assert seen == ["a", "b"]


async def test_tell_awaits_space_under_backpressure(node: Node) -> None:
    gate = asyncio.Event()
    seen: list[int] = []
    ref = await node.spawn(Gated, name="g", args=(gate, seen), mailbox=MailboxConfig(capacity=2))
    await ref.tell(0)  # in flight
    await settle()
    await ref.tell(1)
    await ref.tell(2)  # mailbox now full
    blocked = asyncio.create_task(ref.tell(3))
    await settle()
    assert not blocked.done()
    gate.set()
    await asyncio.wait_for(blocked, timeout=5.0)
    await settle()
    assert seen == [0, 1, 2, 3]


async def test_tell_nowait_raises_mailbox_full_under_backpressure_naming_the_actor(node: Node) -> None:
    gate = asyncio.Event()
    seen: list[int] = []
    ref = await node.spawn(Gated, name="g", args=(gate, seen), mailbox=MailboxConfig(capacity=1))
    ref.tell_nowait(0)
    await settle()
    ref.tell_nowait(1)
    with pytest.raises(MailboxFull) as raised:
        ref.tell_nowait(2)
    assert raised.value.path == "/g"
    assert "capacity=1" in str(raised.value)
    gate.set()
    await settle()
    assert seen == [0, 1]  # the refused message was not enqueued


async def test_tell_raises_mailbox_full_at_once_under_reject(node: Node) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(
        Gated, name="g", args=(gate, []), mailbox=MailboxConfig(capacity=1, overflow=Overflow.REJECT)
    )
    ref.tell_nowait(0)
    await settle()
    await ref.tell(1)
    with pytest.raises(MailboxFull):
        await asyncio.wait_for(ref.tell(2), timeout=5.0)
    gate.set()


async def test_drop_newest_sends_the_new_message_to_dead_letters(node: Node) -> None:
    gate = asyncio.Event()
    seen: list[int] = []
    ref = await node.spawn(
        Gated, name="g", args=(gate, seen), mailbox=MailboxConfig(capacity=1, overflow=Overflow.DROP_NEWEST)
    )
    ref.tell_nowait(0)
    await settle()
    ref.tell_nowait(1)
    await ref.tell(2)
    gate.set()
    await settle()
    assert seen == [0, 1]
    letters = dead_letters_to(node, "/g")
    assert [letter.message for letter in letters] == [2]
    assert "DROP_NEWEST" in letters[0].reason


async def test_drop_oldest_sends_the_oldest_message_to_dead_letters(node: Node) -> None:
    gate = asyncio.Event()
    seen: list[int] = []
    ref = await node.spawn(
        Gated, name="g", args=(gate, seen), mailbox=MailboxConfig(capacity=2, overflow=Overflow.DROP_OLDEST)
    )
    ref.tell_nowait(0)
    await settle()
    for index in (1, 2, 3, 4):
        ref.tell_nowait(index)
    gate.set()
    await settle()
    assert seen == [0, 3, 4]
    letters = dead_letters_to(node, "/g")
    assert [letter.message for letter in letters] == [1, 2]
    assert all("DROP_OLDEST" in letter.reason for letter in letters)


async def test_conflate_delivers_the_latest_message_per_key(node: Node) -> None:
    gate = asyncio.Event()
    seen: list[tuple[str, int]] = []
    config = MailboxConfig(capacity=8, overflow=Overflow.CONFLATE, key=lambda tick: tick[0])
    ref = await node.spawn(Gated, name="g", args=(gate, seen), mailbox=config)
    ref.tell_nowait(("warmup", 0))
    await settle()
    for tick in (("AAPL", 1), ("MSFT", 1), ("AAPL", 2), ("AAPL", 3), ("MSFT", 2)):
        ref.tell_nowait(tick)
    gate.set()
    await settle()
    assert seen == [("warmup", 0), ("AAPL", 3), ("MSFT", 2)]
    assert dead_letters_to(node, "/g") == []


async def test_ask_returns_the_handler_result(node: Node) -> None:
    ref = await node.spawn(Recorder, name="rec", args=([],))
    assert await ref.ask("hello", timeout=1.0) == "hello"


class Failing(Actor):
    def __init__(self) -> None:
        self.handled = 0

    async def on_receive(self, message: Any) -> Any:
        self.handled += 1
        if message == "fail":
            raise Crash(f"failed on message {self.handled}")
        return self.handled


async def test_ask_raises_the_handler_exception_in_the_caller_and_the_actor_carries_on(node: Node) -> None:
    ref = await node.spawn(Failing, name="f")
    with pytest.raises(Crash, match="failed on message 1"):
        await ref.ask("fail", timeout=1.0)
    assert ref.is_alive
    assert await ref.ask("ok", timeout=1.0) == 2  # same instance: state survived
    assert dead_letters_to(node, "/f") == []


async def test_ask_times_out_on_the_node_clock(node: Node, clock: ManualClock) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(Gated, name="g", args=(gate, []))
    ask = asyncio.create_task(ref.ask("slow", timeout=2.0))
    await clock.advance(1.9)
    assert not ask.done()
    await clock.advance(0.1)
    with pytest.raises(AskTimeout) as raised:
        await asyncio.wait_for(ask, timeout=5.0)
    assert raised.value.path == "/g"
    assert raised.value.timeout == 2.0
    assert raised.value.message_type == "str"
    gate.set()


async def test_a_reply_after_the_ask_timed_out_goes_to_dead_letters(node: Node, clock: ManualClock) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(Gated, name="g", args=(gate, []))
    ask = asyncio.create_task(ref.ask("slow", timeout=1.0))
    await clock.advance(1.0)
    with pytest.raises(AskTimeout):
        await asyncio.wait_for(ask, timeout=5.0)
    gate.set()
    await settle()
    letters = dead_letters_to(node, "/g")
    assert [letter.message for letter in letters] == ["slow"]
    assert "after the ask timed out" in letters[0].reason


async def test_an_ask_that_times_out_waiting_for_space_is_never_delivered(
    node: Node, clock: ManualClock
) -> None:
    gate = asyncio.Event()
    seen: list[str] = []
    ref = await node.spawn(Gated, name="g", args=(gate, seen), mailbox=MailboxConfig(capacity=1))
    ref.tell_nowait("in flight")
    await settle()
    ref.tell_nowait("queued")
    ask = asyncio.create_task(ref.ask("waiting for space", timeout=1.0))
    await clock.advance(1.0)
    with pytest.raises(AskTimeout):
        await asyncio.wait_for(ask, timeout=5.0)
    gate.set()
    await settle()
    assert seen == ["in flight", "queued"]


async def test_ask_timeout_none_waits_without_a_timer(node: Node, clock: ManualClock) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(Gated, name="g", args=(gate, []))
    ask = asyncio.create_task(ref.ask("x", timeout=None))
    await clock.advance(3600.0)
    assert not ask.done()
    gate.set()
    assert await asyncio.wait_for(ask, timeout=5.0) == "x"


@pytest.mark.parametrize("timeout", [0, -1, 0.0, -0.5, float("nan")])
async def test_ask_with_a_timeout_that_is_not_positive_is_rejected_naming_it(
    node: Node, timeout: float
) -> None:
    seen: list[Any] = []
    ref = await node.spawn(Recorder, name="rec", args=(seen,))
    with pytest.raises(InvalidConfig) as raised:
        await ref.ask("x", timeout=timeout)
    assert raised.value.field == "timeout"
    assert f"timeout={timeout!r}" in str(raised.value)
    await settle()
    assert seen == []  # nothing was sent


async def test_ask_raises_actor_stopped_if_the_actor_stops_before_answering(node: Node) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(Gated, name="g", args=(gate, []))
    ref.tell_nowait("in flight")
    await settle()
    ask = asyncio.create_task(ref.ask("queued", timeout=10.0))
    await settle()
    stopping = asyncio.create_task(node.stop(ref))
    with pytest.raises(ActorStopped) as raised:
        await asyncio.wait_for(ask, timeout=5.0)
    assert raised.value.path == "/g"
    gate.set()
    await asyncio.wait_for(stopping, timeout=5.0)


async def test_ask_of_a_dropped_message_raises_message_dropped(node: Node) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(
        Gated, name="g", args=(gate, []), mailbox=MailboxConfig(capacity=1, overflow=Overflow.DROP_OLDEST)
    )
    ref.tell_nowait("in flight")
    await settle()
    ask = asyncio.create_task(ref.ask("queued", timeout=10.0))
    await settle()
    ref.tell_nowait("newer")
    with pytest.raises(MessageDropped) as raised:
        await asyncio.wait_for(ask, timeout=5.0)
    assert raised.value.path == "/g"
    gate.set()


async def test_tell_and_ask_to_a_stopped_actor_raise_actor_stopped(node: Node) -> None:
    ref = await node.spawn(Recorder, name="rec", args=([],))
    await node.stop(ref)
    with pytest.raises(ActorStopped) as raised:
        ref.tell_nowait("x")
    assert raised.value.path == "/rec"
    assert "/rec" in str(raised.value)
    with pytest.raises(ActorStopped):
        await ref.tell("x")
    with pytest.raises(ActorStopped):
        await ref.ask("x", timeout=1.0)


async def test_a_cancelled_backpressured_tell_leaves_the_message_unsent(node: Node) -> None:
    gate = asyncio.Event()
    seen: list[str] = []
    ref = await node.spawn(Gated, name="g", args=(gate, seen), mailbox=MailboxConfig(capacity=1))
    ref.tell_nowait("in flight")
    await settle()
    ref.tell_nowait("queued")
    blocked = asyncio.create_task(ref.tell("cancelled"))
    await settle()
    blocked.cancel()
    await settle()
    gate.set()
    await settle()
    assert seen == ["in flight", "queued"]


class Counter(Actor):
    mailbox = MailboxConfig(capacity=4, throughput=2)

    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name

    async def on_receive(self, message: Any) -> Any:
        self.log.append(f"{self.name}{message}")


async def test_class_level_mailbox_config_bounds_the_actor(node: Node) -> None:
    gate = asyncio.Event()

    class Small(Gated):
        mailbox = MailboxConfig(capacity=1, overflow=Overflow.REJECT)

    ref = await node.spawn(Small, name="s", args=(gate, []))
    ref.tell_nowait(0)
    await settle()
    ref.tell_nowait(1)
    with pytest.raises(MailboxFull) as raised:
        ref.tell_nowait(2)
    assert raised.value.policy == "REJECT"
    gate.set()


async def test_spawn_mailbox_argument_overrides_the_class_config(node: Node) -> None:
    gate = asyncio.Event()

    class Small(Gated):
        mailbox = MailboxConfig(capacity=1, overflow=Overflow.REJECT)

    ref = await node.spawn(Small, name="s", args=(gate, []), mailbox=MailboxConfig(capacity=3))
    ref.tell_nowait(0)
    await settle()
    for index in (1, 2, 3):
        ref.tell_nowait(index)
    gate.set()


async def race(node: Node, actor: type[Counter], mailbox: MailboxConfig, messages: int) -> list[str]:
    """Two actors ``a`` and ``b`` with ``mailbox``, ``messages`` each queued before either runs:
    the order in which they were handled."""
    log: list[str] = []
    a = await node.spawn(actor, name="a", args=(log, "a"), mailbox=mailbox)
    b = await node.spawn(actor, name="b", args=(log, "b"), mailbox=mailbox)
    for index in range(messages):
        a.tell_nowait(index)
        b.tell_nowait(index)
    await settle()
    return log


async def test_an_actor_yields_to_others_after_its_throughput(node: Node) -> None:
    log = await race(node, Counter, MailboxConfig(throughput=2, throughput_deadline=0.0), 4)
    assert sorted(log) == sorted(f"{name}{i}" for name in "ab" for i in range(4))
    # Neither actor handled all four before the other started (throughput=2, no deadline).
    assert log.index("b0") < log.index("a3")
    assert log.index("a0") < log.index("b3")


async def test_a_far_deadline_does_not_stretch_a_slice_past_the_throughput(node: Node) -> None:
    """Akka's rule: a slice ends at ``throughput`` messages even when the deadline is far off."""
    log = await race(node, Counter, MailboxConfig(throughput=2, throughput_deadline=0.9), 4)
    assert log == ["a0", "a1", "b0", "b1", "a2", "a3", "b2", "b3"]


class Slow(Counter):
    """Holds the loop for 2 ms of real time per message (the CPU work of a heavy handler)."""

    async def on_receive(self, message: Any) -> Any:
        until = time.perf_counter() + 0.002
        while time.perf_counter() < until:
            pass
        self.log.append(f"{self.name}{message}")


async def test_a_slow_handler_yields_once_the_throughput_deadline_has_passed() -> None:
    """The deadline (real time, checked after every message) ends a slice long before the
    throughput would: each 2 ms message is past a 1 ms deadline, so the two take turns."""
    async with Node("real-time", handle_signals=False) as node:
        log = await race(node, Slow, MailboxConfig(throughput=100, throughput_deadline=0.001), 3)
    assert log == ["a0", "b0", "a1", "b1", "a2", "b2"]


class SlowAfterTheFirst(Counter):
    """Message 0 is instant; every later one holds the loop for 1 ms of real time."""

    async def on_receive(self, message: Any) -> Any:
        if message:
            until = time.perf_counter() + 0.001
            while time.perf_counter() < until:
                pass
        self.log.append(f"{self.name}{message}")


async def test_the_deadline_is_read_at_most_16_messages_apart_even_when_a_slice_starts_fast() -> None:
    """The documented granularity: the time is read after a slice's first message, then at
    most DEADLINE_CHECK_STRIDE (16) messages apart, so a slice that turns slow is cut within
    16 messages of its last read, far below ``throughput``."""
    async with Node("real-time", handle_signals=False) as node:
        log = await race(
            node, SlowAfterTheFirst, MailboxConfig(throughput=100, throughput_deadline=0.0005), 30
        )
    assert log[:2] == ["a0", "a1"]
    assert log.index("b0") <= 17  # a0 (read: fast, next read 16 later), a1..a16, then b's turn


async def test_on_a_manual_clock_slices_end_by_count_alone_whatever_the_machine_speed(node: Node) -> None:
    """A seeded test must replay the same interleaving on a slow machine: the real-time
    deadline does not apply on the manual clock, only ``throughput`` does."""
    log = await race(node, Slow, MailboxConfig(throughput=100, throughput_deadline=0.001), 3)
    assert log == ["a0", "a1", "a2", "b0", "b1", "b2"]


async def test_a_sender_waiting_for_space_gets_actor_stopped_when_the_actor_stops(node: Node) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(Gated, name="g", args=(gate, []), mailbox=MailboxConfig(capacity=1))
    ref.tell_nowait("in flight")
    await settle()
    ref.tell_nowait("queued")
    waiting = asyncio.create_task(ref.tell("waiting for space"))
    await settle()
    stopping = asyncio.create_task(node.stop(ref))
    with pytest.raises(ActorStopped):
        await asyncio.wait_for(waiting, timeout=5.0)
    gate.set()
    await asyncio.wait_for(stopping, timeout=5.0)
    assert [letter.message for letter in dead_letters_to(node, "/g")] == ["queued"]


async def test_answered_asks_leave_at_most_one_timer_per_timeout_gone_by_the_deadline(
    node: Node, clock: ManualClock
) -> None:
    ref = await node.spawn(Recorder, name="rec", args=([],))
    for index in range(10):
        await ref.ask(index, timeout=30.0)
    assert clock.pending_timers <= 1
    await clock.advance(30.0)
    assert clock.pending_timers == 0


async def test_an_ask_refused_under_reject_leaves_no_timer_behind(node: Node, clock: ManualClock) -> None:
    gate = asyncio.Event()
    ref = await node.spawn(
        Gated, name="g", args=(gate, []), mailbox=MailboxConfig(capacity=1, overflow=Overflow.REJECT)
    )
    ref.tell_nowait("in flight")
    await settle()
    ref.tell_nowait("queued")
    with pytest.raises(MailboxFull):
        await ref.ask("refused", timeout=30.0)
    gate.set()
    await clock.advance(30.0)
    assert clock.pending_timers == 0


async def test_the_reply_to_an_ask_the_caller_cancelled_goes_to_dead_letters(node: Node) -> None:
    gate = asyncio.Event()
    seen: list[str] = []
    ref = await node.spawn(Gated, name="g", args=(gate, seen))
    ask = asyncio.create_task(ref.ask("abandoned", timeout=10.0))
    await settle()
    ask.cancel()
    await settle()
    gate.set()
    await settle()
    assert seen == ["abandoned"]  # it was already on its way: it ran
    letters = dead_letters_to(node, "/g")
    assert [letter.message for letter in letters] == ["abandoned"]
    assert "cancelled" in letters[0].reason


class Picky(Actor):
    """Answers ints; everything else is unhandled."""

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, int):
            return message * 2
        self.ctx.unhandled(message)
        return "ignored: the asker gets UnhandledMessage instead"


async def test_an_ask_nobody_handles_raises_unhandled_message_and_the_actor_carries_on(node: Node) -> None:
    ref = await node.spawn(Picky, name="picky")

    with pytest.raises(UnhandledMessage) as raised:
        await ref.ask("what")

    error = raised.value
    assert (error.path, error.message_type, error.actor_class) == ("/picky", "str", "Picky")
    assert "/picky (Picky) does not handle str" in str(error)
    assert await ref.ask(21) == 42
    assert dead_letters_to(node, "/picky") == []  # the asker was told; nothing is left over


async def test_an_unhandled_tell_goes_to_dead_letters_with_kind_unhandled(node: Node) -> None:
    class Silent(Actor):
        pass

    ref = await node.spawn(Silent, name="silent")
    await ref.tell(b"bytes")
    with pytest.raises(UnhandledMessage):
        await ref.ask(b"more")  # the default on_receive handles nothing

    [letter] = dead_letters_to(node, "/silent")
    assert (letter.message, letter.kind) == (b"bytes", "unhandled")
    assert ref.is_alive
