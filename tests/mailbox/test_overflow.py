"""What a full mailbox does with one more message, under each overflow policy."""

from __future__ import annotations

import asyncio

import pytest

from garrison import ActorStopped, MailboxFull, MessageDropped, Overflow
from garrison._clock import settle
from tests.mailbox._support import build, counts_add_up, take_all


async def test_mailbox_is_fifo_below_capacity() -> None:
    mailbox, _ = build(capacity=8)
    for message in range(5):
        assert mailbox.try_put(message)
    assert take_all(mailbox) == [0, 1, 2, 3, 4]


# -- BACKPRESSURE --------------------------------------------------------------


async def test_backpressure_put_nowait_raises_mailbox_full_and_leaves_the_queue_unchanged() -> None:
    mailbox, drops = build(capacity=2)
    mailbox.put_nowait("a")
    mailbox.put_nowait("b")
    with pytest.raises(MailboxFull) as raised:
        mailbox.put_nowait("c")
    assert raised.value.capacity == 2
    assert raised.value.policy == "BACKPRESSURE"
    assert "/m" in str(raised.value)
    assert take_all(mailbox) == ["a", "b"]
    assert drops.calls == []
    metrics = mailbox.metrics()
    assert metrics.rejected == 1
    assert metrics.enqueued == 2


async def test_backpressure_try_put_reports_full_without_raising() -> None:
    mailbox, _ = build(capacity=1)
    assert mailbox.try_put("a")
    assert not mailbox.try_put("b")
    assert len(mailbox) == 1


async def test_backpressure_put_waits_for_space_and_enqueues_when_the_consumer_takes() -> None:
    mailbox, _ = build(capacity=1)
    mailbox.put_nowait("a")
    producer = asyncio.create_task(mailbox.put("b"))
    await settle()
    assert not producer.done()
    assert len(mailbox) == 1
    assert mailbox.take()[0] == "a"
    await asyncio.wait_for(producer, timeout=5.0)
    assert take_all(mailbox) == ["b"]


async def test_backpressure_waiting_producers_are_served_in_arrival_order() -> None:
    mailbox, _ = build(capacity=1)
    mailbox.put_nowait("first")
    producers = [asyncio.create_task(mailbox.put(name)) for name in ("p1", "p2", "p3")]
    await settle()
    taken = []
    for _ in range(4):
        taken.append(mailbox.take()[0])
        await settle()
    assert taken == ["first", "p1", "p2", "p3"]
    await asyncio.wait_for(asyncio.gather(*producers), timeout=5.0)


async def test_backpressure_cancelled_producer_leaves_its_message_unsent_and_passes_on_space() -> None:
    mailbox, _ = build(capacity=1)
    mailbox.put_nowait("first")
    cancelled = asyncio.create_task(mailbox.put("cancelled"))
    await settle()
    kept = asyncio.create_task(mailbox.put("kept"))
    await settle()
    cancelled.cancel()
    await settle()
    assert mailbox.take()[0] == "first"
    await asyncio.wait_for(kept, timeout=5.0)
    assert take_all(mailbox) == ["kept"]
    assert cancelled.cancelled()


async def test_backpressure_producer_cancelled_after_being_woken_passes_the_space_on() -> None:
    mailbox, _ = build(capacity=1)
    mailbox.put_nowait("first")
    woken = asyncio.create_task(mailbox.put("woken"))
    await settle()
    waiting = asyncio.create_task(mailbox.put("waiting"))
    await settle()
    mailbox.take()  # wakes `woken`; it is cancelled before it can run
    woken.cancel()
    await settle()
    await asyncio.wait_for(waiting, timeout=5.0)
    assert take_all(mailbox) == ["waiting"]


async def test_backpressure_producer_waiting_when_the_mailbox_closes_gets_actor_stopped() -> None:
    mailbox, _ = build(capacity=1)
    mailbox.put_nowait("a")
    producer = asyncio.create_task(mailbox.put("b"))
    await settle()
    mailbox.close("stopping")
    with pytest.raises(ActorStopped) as raised:
        await asyncio.wait_for(producer, timeout=5.0)
    assert raised.value.path == "/m"
    assert "stopping" in str(raised.value)


async def test_an_ask_that_gives_up_while_waiting_for_space_is_never_enqueued() -> None:
    mailbox, _ = build(capacity=1)
    mailbox.put_nowait("a")
    reply: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    producer = asyncio.create_task(mailbox.put("ask", reply))
    await settle()
    reply.set_exception(TimeoutError("the ask timed out"))
    await asyncio.wait_for(producer, timeout=5.0)
    assert take_all(mailbox) == ["a"]
    assert counts_add_up(mailbox)
    reply.exception()  # retrieved: the asker would have seen it


async def test_an_ask_that_gives_up_just_as_space_frees_is_not_enqueued_and_wakes_the_next_producer() -> None:
    mailbox, _ = build(capacity=1)
    mailbox.put_nowait("a")
    reply: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    ask = asyncio.create_task(mailbox.put("ask", reply))
    await settle()
    tell = asyncio.create_task(mailbox.put("tell"))
    await settle()
    # In one step: the consumer frees space (waking the ask) and the ask times out.
    mailbox.take()
    reply.set_exception(TimeoutError("the ask timed out"))
    await asyncio.wait_for(asyncio.gather(ask, tell), timeout=5.0)
    assert take_all(mailbox) == ["tell"]
    reply.exception()


async def test_put_to_a_closed_mailbox_raises_actor_stopped() -> None:
    mailbox, _ = build(capacity=2)
    mailbox.close("gone")
    with pytest.raises(ActorStopped):
        mailbox.try_put("a")
    with pytest.raises(ActorStopped):
        mailbox.put_nowait("a")
    with pytest.raises(ActorStopped):
        await mailbox.put("a")
    assert mailbox.metrics().enqueued == 0


# -- REJECT ---------------------------------------------------------------------


async def test_reject_raises_mailbox_full_at_once_from_every_put() -> None:
    mailbox, drops = build(capacity=1, overflow=Overflow.REJECT)
    mailbox.put_nowait("a")
    with pytest.raises(MailboxFull) as raised:
        mailbox.try_put("b")
    assert raised.value.policy == "REJECT"
    with pytest.raises(MailboxFull):
        mailbox.put_nowait("c")
    with pytest.raises(MailboxFull):
        await asyncio.wait_for(mailbox.put("d"), timeout=5.0)
    assert take_all(mailbox) == ["a"]
    assert drops.calls == []
    assert mailbox.metrics().rejected == 3


# -- DROP_NEWEST / DROP_OLDEST -------------------------------------------------------


async def test_drop_newest_hands_the_new_message_to_the_drop_hook_and_keeps_the_queue() -> None:
    mailbox, drops = build(capacity=2, overflow=Overflow.DROP_NEWEST)
    for message in ("a", "b", "c", "d"):
        assert mailbox.try_put(message)
    assert drops.messages == ["c", "d"]
    assert all("DROP_NEWEST" in reason for _, _, reason in drops.calls)
    assert take_all(mailbox) == ["a", "b"]
    metrics = mailbox.metrics()
    assert (metrics.enqueued, metrics.processed, metrics.dropped) == (4, 2, 2)


async def test_drop_oldest_hands_the_oldest_message_to_the_drop_hook_and_queues_the_new_one() -> None:
    mailbox, drops = build(capacity=2, overflow=Overflow.DROP_OLDEST)
    for message in ("a", "b", "c", "d"):
        mailbox.put_nowait(message)
    assert drops.messages == ["a", "b"]
    assert all("DROP_OLDEST" in reason for _, _, reason in drops.calls)
    assert take_all(mailbox) == ["c", "d"]
    metrics = mailbox.metrics()
    assert (metrics.enqueued, metrics.processed, metrics.dropped) == (4, 2, 2)


@pytest.mark.parametrize("overflow", [Overflow.DROP_NEWEST, Overflow.DROP_OLDEST])
async def test_drop_policies_never_wait_for_space(overflow: Overflow) -> None:
    mailbox, _ = build(capacity=1, overflow=overflow)
    for message in range(10):
        await asyncio.wait_for(mailbox.put(message), timeout=5.0)
    assert len(mailbox) == 1


async def test_drop_oldest_hands_the_reply_future_of_a_dropped_ask_to_the_drop_hook() -> None:
    mailbox, drops = build(capacity=1, overflow=Overflow.DROP_OLDEST)
    reply: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    mailbox.put_nowait("ask", reply)
    mailbox.put_nowait("tell")
    assert drops.calls[0][0] == "ask"
    assert drops.calls[0][1] is reply


# -- CONFLATE -------------------------------------------------------------------


def symbol(message: tuple[str, int]) -> str:
    return message[0]


async def test_conflate_replaces_the_queued_message_with_the_same_key_in_its_place() -> None:
    mailbox, drops = build(capacity=10, overflow=Overflow.CONFLATE, key=symbol)
    for message in (("AAPL", 1), ("MSFT", 1), ("AAPL", 2), ("GOOG", 1), ("AAPL", 3), ("MSFT", 2)):
        mailbox.put_nowait(message)
    assert take_all(mailbox) == [("AAPL", 3), ("MSFT", 2), ("GOOG", 1)]
    assert drops.calls == []  # conflated messages are counted, not dead-lettered
    metrics = mailbox.metrics()
    assert (metrics.enqueued, metrics.processed, metrics.dropped, metrics.conflated) == (6, 3, 3, 3)


async def test_conflate_a_key_taken_and_sent_again_queues_behind_the_others() -> None:
    mailbox, _ = build(capacity=10, overflow=Overflow.CONFLATE, key=symbol)
    mailbox.put_nowait(("AAPL", 1))
    mailbox.put_nowait(("MSFT", 1))
    assert mailbox.take()[0] == ("AAPL", 1)
    mailbox.put_nowait(("AAPL", 2))
    assert take_all(mailbox) == [("MSFT", 1), ("AAPL", 2)]


async def test_conflate_replaces_a_queued_key_even_when_full() -> None:
    mailbox, _ = build(capacity=2, overflow=Overflow.CONFLATE, key=symbol)
    mailbox.put_nowait(("AAPL", 1))
    mailbox.put_nowait(("MSFT", 1))
    assert mailbox.try_put(("AAPL", 2))
    mailbox.put_nowait(("MSFT", 2))
    assert take_all(mailbox) == [("AAPL", 2), ("MSFT", 2)]


async def test_conflate_a_new_key_when_full_is_backpressure() -> None:
    mailbox, _ = build(capacity=2, overflow=Overflow.CONFLATE, key=symbol)
    mailbox.put_nowait(("AAPL", 1))
    mailbox.put_nowait(("MSFT", 1))
    assert not mailbox.try_put(("GOOG", 1))
    with pytest.raises(MailboxFull) as raised:
        mailbox.put_nowait(("GOOG", 1))
    assert raised.value.policy == "CONFLATE"
    producer = asyncio.create_task(mailbox.put(("GOOG", 1)))
    await settle()
    assert not producer.done()
    assert mailbox.take()[0] == ("AAPL", 1)
    await asyncio.wait_for(producer, timeout=5.0)
    assert take_all(mailbox) == [("MSFT", 1), ("GOOG", 1)]


async def test_conflate_fails_the_replaced_ask_with_message_dropped() -> None:
    mailbox, _ = build(capacity=4, overflow=Overflow.CONFLATE, key=symbol)
    reply: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    mailbox.put_nowait(("AAPL", 1), reply)
    mailbox.put_nowait(("AAPL", 2))
    assert reply.done()
    assert isinstance(reply.exception(), MessageDropped)
    assert "conflated" in str(reply.exception())


async def test_conflating_mailbox_drains_its_queued_messages_to_the_drop_hook() -> None:
    mailbox, drops = build(capacity=4, overflow=Overflow.CONFLATE, key=symbol)
    mailbox.put_nowait(("AAPL", 1))
    mailbox.put_nowait(("MSFT", 1))
    mailbox.put_nowait(("AAPL", 2))
    assert mailbox.drain("stopped") == 2
    assert drops.messages == [("AAPL", 2), ("MSFT", 1)]
    assert len(mailbox) == 0
    assert counts_add_up(mailbox)


async def test_conflate_enqueue_and_dequeue_take_constant_time_in_the_number_of_keys() -> None:
    """A structural check, not a timing one: the queue is an ordered map keyed by the key."""
    mailbox, _ = build(capacity=100_000, overflow=Overflow.CONFLATE, key=symbol)
    calls = 0

    def counting_key(message: tuple[str, int]) -> str:
        nonlocal calls
        calls += 1
        return message[0]

    mailbox._key = counting_key  # type: ignore[attr-defined]
    for index in range(1000):
        mailbox.put_nowait((f"S{index}", 0))
    for index in range(1000):
        mailbox.put_nowait((f"S{index}", 1))
    # One key computation per message, never a scan of the queue.
    assert calls == 2000
    assert len(mailbox) == 1000


async def test_backpressure_woken_producer_keeps_its_place_when_a_newcomer_takes_the_space() -> None:
    mailbox, _ = build(capacity=1)
    mailbox.put_nowait("first")
    p1 = asyncio.create_task(mailbox.put("p1"))
    await settle()
    p2 = asyncio.create_task(mailbox.put("p2"))
    await settle()
    mailbox.take()  # wakes p1 ...
    mailbox.put_nowait("newcomer")  # ... but a producer that never waited takes the space first
    await settle()
    taken = []
    for _ in range(3):
        taken.append(mailbox.take()[0])
        await settle()
    assert taken.index("p1") < taken.index("p2")
    await asyncio.wait_for(asyncio.gather(p1, p2), timeout=5.0)
