"""Properties of delivery through real actors, each example on its own event loop and node."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from garrison import Actor, ActorStopped, MailboxConfig, MailboxFull, ManualClock, Node, Overflow
from garrison._clock import settle

PROPERTY = settings(max_examples=60, deadline=None)


class Msg(NamedTuple):
    sender: int
    seq: int
    key: int


def by_key(message: Msg) -> int:
    return message.key


class Throttled(Actor):
    """Handles one message per permit the test releases; records what it handled."""

    def __init__(self, permits: asyncio.Semaphore, processed: list[Msg]) -> None:
        self.permits = permits
        self.processed = processed

    async def on_receive(self, message: Any) -> Any:
        await self.permits.acquire()
        self.processed.append(message)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("tell_nowait"), st.integers(0, 2), st.integers(0, 3)),
        st.tuples(st.just("tell"), st.integers(0, 2), st.integers(0, 3)),
        st.tuples(st.just("release"), st.integers(1, 4), st.just(0)),
    ),
    max_size=50,
)


@PROPERTY
@given(overflow=st.sampled_from(list(Overflow)), capacity=st.integers(1, 4), ops=operations)
def test_across_a_stop_every_message_sent_is_processed_or_dead_lettered_exactly_once_in_sender_order(
    overflow: Overflow, capacity: int, ops: list[tuple[str, int, int]]
) -> None:
    """Senders send with tell_nowait or an awaited tell (one task per sender, in order) while
    the actor handles messages at a random pace; then it is stopped with work queued and in
    flight. Every message the mailbox accepted was either processed or dead-lettered, never
    both and never neither (under CONFLATE, or else replaced by a newer one of its key), the
    mailbox counts add up at every step, and each sender's messages were processed in order.
    """

    async def scenario() -> None:
        clock = ManualClock()
        async with Node("p", clock=clock, handle_signals=False) as node:
            permits = asyncio.Semaphore(0)
            processed: list[Msg] = []
            key = by_key if overflow is Overflow.CONFLATE else None
            ref = await node.spawn(
                Throttled,
                name="throttled",
                args=(permits, processed),
                mailbox=MailboxConfig(capacity=capacity, overflow=overflow, key=key),
                shutdown=1.0,
            )
            mailbox = ref._context.mailbox
            seqs = [0, 0, 0]
            sent: list[Msg] = []
            refused: list[Msg] = []
            # One outbox per sender, drained in order by one task: a sender's awaited
            # tells never overtake each other or its tell_nowaits.
            outboxes: list[asyncio.Queue[tuple[str, Msg]]] = [asyncio.Queue() for _ in range(3)]

            async def sender_task(outbox: asyncio.Queue[tuple[str, Msg]]) -> None:
                while True:
                    how, message = await outbox.get()
                    try:
                        if how == "tell":
                            await ref.tell(message)
                        else:
                            ref.tell_nowait(message)
                    except (MailboxFull, ActorStopped):
                        refused.append(message)
                    else:
                        sent.append(message)
                    outbox.task_done()

            senders = [asyncio.create_task(sender_task(outbox)) for outbox in outboxes]
            for how, argument, message_key in ops:
                if how == "release":
                    for _ in range(argument):
                        permits.release()
                else:
                    message = Msg(argument, seqs[argument], message_key)
                    seqs[argument] += 1
                    outboxes[argument].put_nowait((how, message))
                await settle()
                metrics = mailbox.metrics()
                assert metrics.enqueued == metrics.processed + metrics.dropped + metrics.depth
            stopping = asyncio.create_task(node.stop(ref))
            await clock.advance(1.0)  # the message in flight, if any, is cut off
            await asyncio.wait_for(stopping, timeout=5.0)
            for outbox in outboxes:
                await asyncio.wait_for(outbox.join(), timeout=5.0)
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)

            letters = node.dead_letters.recent()
            dead = [letter.message for letter in letters if isinstance(letter.message, Msg)]
            conflated = mailbox.metrics().conflated
            assert not set(processed) & set(dead), "a message was both processed and dead-lettered"
            assert len(set(processed)) == len(processed)
            assert len(set(dead)) == len(dead)
            assert set(processed) | set(dead) <= set(sent)
            assert len(processed) + len(dead) + conflated == len(sent), "a message vanished"
            if overflow is not Overflow.CONFLATE:
                assert set(processed) | set(dead) == set(sent)
            metrics = mailbox.metrics()
            assert metrics.depth == 0
            assert metrics.enqueued == metrics.processed + metrics.dropped
            for sender in range(3):
                for message_key in range(4):
                    seqs_done = [
                        m.seq
                        for m in processed
                        if m.sender == sender and (overflow is not Overflow.CONFLATE or m.key == message_key)
                    ]
                    assert seqs_done == sorted(seqs_done)

    asyncio.run(scenario())
