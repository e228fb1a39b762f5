"""Properties of the mailbox under every overflow policy, checked against a reference model.

Each example runs its own event loop (a mailbox needs a running loop).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from typing import Any, NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from garrison import ActorStopped, MailboxFull, MessageDropped, Overflow
from garrison._clock import settle
from tests.mailbox._support import build, counts_add_up

PROPERTY = settings(max_examples=100, deadline=None)


class Msg(NamedTuple):
    sender: int
    seq: int
    key: int


def by_key(message: Msg) -> int:
    return message.key


policies = st.sampled_from(list(Overflow))
capacities = st.integers(min_value=1, max_value=5)
puts = st.tuples(st.just("put"), st.integers(0, 2), st.integers(0, 3))
operations = st.lists(
    st.one_of(puts, puts, st.just(("take",)), st.just(("system",)), st.just(("ask",))),
    max_size=60,
)


class Model:
    """What the mailbox should hold: a deque, or for CONFLATE an ordered map by key."""

    def __init__(self, overflow: Overflow, capacity: int) -> None:
        self.overflow = overflow
        self.capacity = capacity
        self.queue: deque[Msg] = deque()
        self.keyed: OrderedDict[int, Msg] = OrderedDict()
        self.dropped: list[Msg] = []

    def put(self, message: Msg) -> bool:
        """Returns False where the real mailbox must raise MailboxFull."""
        if self.overflow is Overflow.CONFLATE:
            if message.key in self.keyed:
                self.keyed[message.key] = message
                return True
            if len(self.keyed) >= self.capacity:
                return False
            self.keyed[message.key] = message
            return True
        if len(self.queue) < self.capacity:
            self.queue.append(message)
            return True
        if self.overflow is Overflow.DROP_NEWEST:
            self.dropped.append(message)
            return True
        if self.overflow is Overflow.DROP_OLDEST:
            self.dropped.append(self.queue.popleft())
            self.queue.append(message)
            return True
        return False

    def take(self) -> Msg | None:
        if self.overflow is Overflow.CONFLATE:
            return self.keyed.popitem(last=False)[1] if self.keyed else None
        return self.queue.popleft() if self.queue else None


@PROPERTY
@given(overflow=policies, capacity=capacities, ops=operations)
def test_mailbox_behaves_like_its_reference_model_and_counts_add_up_at_every_step(
    overflow: Overflow, capacity: int, ops: list[tuple[Any, ...]]
) -> None:
    async def scenario() -> None:
        key = by_key if overflow is Overflow.CONFLATE else None
        mailbox, drops = build(capacity=capacity, overflow=overflow, key=key)
        model = Model(overflow, capacity)
        seqs = [0, 0, 0]
        system_sent = system_taken = 0
        loop = asyncio.get_running_loop()
        replies: list[asyncio.Future[Any]] = []
        for op in ops:
            if op[0] in ("put", "ask"):
                sender, message_key = (op[1], op[2]) if op[0] == "put" else (2, 0)
                message = Msg(sender, seqs[sender], message_key)
                seqs[sender] += 1
                reply = loop.create_future() if op[0] == "ask" else None
                accepted = model.put(message)
                try:
                    mailbox.put_nowait(message, reply)
                except MailboxFull:
                    assert not accepted
                else:
                    assert accepted
                    if reply is not None:
                        replies.append(reply)
            elif op[0] == "take":
                expected = model.take()
                if expected is None:
                    assert not mailbox.pending
                else:
                    assert mailbox.take()[0] == expected
            else:
                mailbox.put_system(system_sent)
                system_sent += 1
                if system_sent % 2 == 0:
                    assert mailbox.take_system() == system_taken
                    system_taken += 1
            assert counts_add_up(mailbox)
            assert len(mailbox) <= capacity
            assert drops.messages == model.dropped
        assert len(mailbox) == len(model.keyed if overflow is Overflow.CONFLATE else model.queue)
        drained = mailbox.drain("stopped")
        assert counts_add_up(mailbox)
        assert mailbox.metrics().depth == 0
        assert drained == len(drops.messages) - len(model.dropped)
        # Every ask that was dropped, conflated away or drained has its caller told so.
        for reply in replies:
            if reply.done():
                assert isinstance(reply.exception(), MessageDropped | ActorStopped)

    asyncio.run(scenario())


@PROPERTY
@given(
    overflow=policies,
    capacity=capacities,
    sends=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), max_size=40),
    takes=st.lists(st.integers(0, 3), min_size=1, max_size=40),
)
def test_per_sender_fifo_holds_under_every_overflow_policy(
    overflow: Overflow, capacity: int, sends: list[tuple[int, int]], takes: list[int]
) -> None:
    """Senders are tasks awaiting ``put`` one message after another; the consumer
    takes bursts on a random schedule. Whatever is processed of one sender comes
    in the order sent (under CONFLATE: of one sender and one key).

    Every message sent is processed, dropped or refused (MailboxFull), never two of those.
    """

    async def scenario() -> None:
        key = by_key if overflow is Overflow.CONFLATE else None
        mailbox, drops = build(capacity=capacity, overflow=overflow, key=key)
        outboxes: list[list[Msg]] = [[], [], []]
        for sender, message_key in sends:
            outboxes[sender].append(Msg(sender, len(outboxes[sender]), message_key))
        refused: list[Msg] = []

        async def produce(messages: list[Msg]) -> None:
            for message in messages:
                try:
                    await mailbox.put(message)
                except MailboxFull:
                    refused.append(message)

        producers = [asyncio.create_task(produce(outbox)) for outbox in outboxes]
        processed: list[Msg] = []
        for burst in takes:
            await settle()
            for _ in range(burst):
                if not mailbox.pending:
                    break
                processed.append(mailbox.take()[0])
        while not all(producer.done() for producer in producers) or mailbox.pending:
            await settle()
            while mailbox.pending:
                processed.append(mailbox.take()[0])
        await asyncio.gather(*producers)

        for sender in range(3):
            mine = [message for message in processed if message.sender == sender]
            for message_key in range(4):
                seqs = [m.seq for m in mine if overflow is not Overflow.CONFLATE or m.key == message_key]
                assert seqs == sorted(seqs)

        sent = [message for outbox in outboxes for message in outbox]
        conflated = mailbox.metrics().conflated
        outcomes = processed + drops.messages + refused
        assert len(set(outcomes)) == len(outcomes)  # never two fates for one message
        assert len(outcomes) + conflated == len(sent)
        assert set(outcomes) <= set(sent)
        if overflow is Overflow.BACKPRESSURE:
            assert sorted(processed) == sorted(sent)  # nothing lost: every producer waited for space
        if overflow is not Overflow.CONFLATE:
            assert conflated == 0

    asyncio.run(scenario())


@PROPERTY
@given(
    capacity=capacities,
    messages=st.lists(st.integers(0, 6), max_size=50),
)
def test_conflate_keeps_exactly_the_latest_message_per_key_in_order_of_first_arrival(
    capacity: int, messages: list[int]
) -> None:
    async def scenario() -> None:
        mailbox, drops = build(capacity=capacity, overflow=Overflow.CONFLATE, key=by_key)
        latest: dict[int, Msg] = {}
        first_arrival: list[int] = []
        for seq, message_key in enumerate(messages):
            message = Msg(0, seq, message_key)
            try:
                mailbox.put_nowait(message)
            except MailboxFull:
                assert message_key not in latest and len(latest) == capacity
                continue
            if message_key not in latest:
                first_arrival.append(message_key)
            latest[message_key] = message
        taken = []
        while mailbox.pending:
            taken.append(mailbox.take()[0])
        assert taken == [latest[message_key] for message_key in first_arrival]
        assert drops.calls == []
        metrics = mailbox.metrics()
        assert metrics.conflated == metrics.enqueued - len(first_arrival)

    asyncio.run(scenario())
