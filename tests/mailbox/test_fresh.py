"""A mailbox that has never held a user message: every operation behaves as on one that has.

A mailbox makes its queue at its first user message (an idle actor carries none),
so each operation is checked here on a mailbox that has none yet.
"""

from __future__ import annotations

import asyncio

from garrison import Actor, Node
from tests.mailbox._support import build, take_all


async def test_a_fresh_mailbox_is_empty_and_reports_zero_metrics() -> None:
    mailbox, _ = build(capacity=3)
    assert len(mailbox) == 0
    assert not mailbox.pending
    assert mailbox.oldest_enqueued_at() is None
    metrics = mailbox.metrics()
    assert (metrics.depth, metrics.enqueued, metrics.wait_count) == (0, 0, 0)
    assert [count for _, count in metrics.wait_buckets] == [0] * len(metrics.wait_buckets)
    assert mailbox.wait().done() is False


async def test_the_first_message_is_queued_and_wakes_the_waiting_consumer() -> None:
    mailbox, _ = build(capacity=3)
    waiter = mailbox.wait()
    assert mailbox.try_put("first")
    assert waiter.done()
    assert mailbox.pending
    mailbox.put_nowait("second")
    assert take_all(mailbox) == ["first", "second"]
    assert (mailbox.enqueued, mailbox.processed) == (2, 2)


async def test_put_front_and_drain_on_a_fresh_mailbox() -> None:
    mailbox, drops = build(capacity=3)
    assert mailbox.drain("nothing queued") == 0
    assert drops.calls == []
    mailbox.put_front([("a", None), ("b", None)])
    assert len(mailbox) == 2
    mailbox.put_nowait("c")
    assert mailbox.drain("stopping") == 3
    assert drops.messages == ["a", "b", "c"]
    assert not mailbox.pending


class Recorder(Actor):
    def __init__(self, seen: list[object]) -> None:
        self.seen = seen

    async def on_receive(self, message: object) -> object:
        self.seen.append(message)
        return message


async def test_an_actor_idle_since_its_start_serves_its_first_messages_in_order() -> None:
    seen: list[object] = []
    async with Node("fresh", handle_signals=False) as node:
        ref = await node.spawn(Recorder, name="recorder", args=(seen,))
        await asyncio.sleep(0)  # the actor parks on its empty mailbox
        for index in range(5):
            await ref.tell(index)
        assert await asyncio.wait_for(ref.ask("last"), timeout=5) == "last"
    assert seen == [0, 1, 2, 3, 4, "last"]
