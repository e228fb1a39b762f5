"""The system lane: unbounded, never blocked by a full user queue, served in order."""

from __future__ import annotations

import asyncio

from garrison import Overflow
from garrison._clock import settle
from tests.mailbox._support import build


async def test_system_messages_are_accepted_when_the_user_queue_is_full() -> None:
    mailbox, drops = build(capacity=1, overflow=Overflow.REJECT)
    mailbox.put_nowait("user")
    for index in range(100):
        mailbox.put_system(("control", index))
    assert mailbox.has_system()
    assert [mailbox.take_system() for _ in range(100)] == [("control", index) for index in range(100)]
    assert mailbox.take_system() is None
    assert drops.calls == []
    assert len(mailbox) == 1


async def test_system_messages_are_not_counted_as_user_messages() -> None:
    mailbox, _ = build(capacity=2)
    mailbox.put_system("stop")
    metrics = mailbox.metrics()
    assert (metrics.depth, metrics.enqueued) == (0, 0)


async def test_system_messages_are_accepted_after_close() -> None:
    mailbox, _ = build(capacity=2)
    mailbox.close("stopping")
    mailbox.put_system("terminated")
    assert mailbox.take_system() == "terminated"


async def test_a_system_message_wakes_an_idle_consumer() -> None:
    mailbox, _ = build(capacity=2)
    idle = mailbox.wait()
    await settle()
    assert not idle.done()
    mailbox.put_system("stop")
    await asyncio.wait_for(idle, timeout=5.0)


async def test_a_user_message_wakes_an_idle_consumer() -> None:
    for overflow, key in ((Overflow.BACKPRESSURE, None), (Overflow.CONFLATE, str)):
        mailbox, _ = build(capacity=2, overflow=overflow, key=key)
        idle = mailbox.wait()
        await settle()
        assert not idle.done()
        mailbox.put_nowait("tick")
        await asyncio.wait_for(idle, timeout=5.0)


async def test_wait_is_ready_at_once_when_anything_is_queued() -> None:
    mailbox, _ = build(capacity=2)
    mailbox.put_nowait("queued")
    assert mailbox.wait().done()
    mailbox.take()
    mailbox.put_system("stop")
    assert mailbox.wait().done()


async def test_draining_system_messages_returns_them_in_order_and_empties_the_lane() -> None:
    mailbox, _ = build()
    mailbox.put_system("a")
    mailbox.put_system("b")
    assert mailbox.drain_system() == ["a", "b"]
    assert not mailbox.has_system()
