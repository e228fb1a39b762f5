"""Durable streams: append, consumer groups, redelivery, the effect and its ack in one commit, lag.

Every test runs on a real SQLite file; crashes are SIGKILLs of real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from garrison import InvalidConfig, ManualClock
from garrison._errors import SequenceConflict
from garrison.persistence import ConsumerGroup, Delivery, DurableStream, SqliteJournal
from garrison.testing import ChildProcess

from ._model import read_all

WORKER = str(Path(__file__).with_name("_intent_worker.py"))
POLL = 1000.0  # virtual seconds: a subscriber woken before this was woken by an append


# -- append, read, ack -----------------------------------------------------------------------


async def test_appended_entries_are_read_in_order_and_acks_are_durable(journal: SqliteJournal) -> None:
    stream = DurableStream(journal, "orders")
    assert await stream.append(b"a") == 1
    assert await stream.append(b"b", b"c", b"d") == 4
    group = stream.group("executor", batch=3)

    assert await group.read() == [
        Delivery("orders", 1, b"a"),
        Delivery("orders", 2, b"b"),
        Delivery("orders", 3, b"c"),
    ]
    assert await group.read() == [Delivery("orders", 4, b"d")]
    assert await group.read() == []
    await group.ack(3)

    assert await journal.acked_seq("orders", "executor") == 3
    assert group.acked_seq == 3
    assert await journal.acked_seq("orders", "other-group") == 0


async def test_acks_are_cumulative_and_never_move_backwards(journal: SqliteJournal) -> None:
    stream = DurableStream(journal, "orders")
    await stream.append(*(b"x" for _ in range(8)))
    group = stream.group("executor")
    await group.read()
    await group.ack(6)
    await group.ack(2)
    assert await journal.acked_seq("orders", "executor") == 6
    assert [delivery.seq for delivery in await stream.group("executor").read()] == [7, 8]


async def test_invalid_arguments_raise_invalid_config_naming_the_field(journal: SqliteJournal) -> None:
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: DurableStream(journal, ""), "stream"),
        (lambda: DurableStream(journal, "s").group(""), "group"),
        (lambda: DurableStream(journal, "s").group("g", batch=0), "batch"),
        (lambda: DurableStream(journal, "s").group("g", batch=True), "batch"),
        (lambda: DurableStream(journal, "s").group("g").ack_marker(-1), "seq"),
    ]
    for make, field in cases:
        with pytest.raises(InvalidConfig) as raised:
            make()
        assert raised.value.field == field
    stream = DurableStream(journal, "s")
    with pytest.raises(InvalidConfig) as raised:
        await stream.append()
    assert raised.value.field == "payloads"
    with pytest.raises(InvalidConfig):
        await stream.append("text")  # type: ignore[arg-type]
    assert await journal.highest_seq("s") == 0


# -- redelivery ------------------------------------------------------------------------------------


async def test_a_new_group_after_a_restart_redelivers_exactly_the_unacked_entries(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    async with SqliteJournal(path) as journal:
        stream = DurableStream(journal, "orders")
        for index in range(1, 11):
            await stream.append(f"order-{index}".encode())
        group = stream.group("executor")
        assert len(await group.read()) == 10
        await group.ack(4)
        # "crash": the group and its in-memory cursor are dropped unacknowledged

    async with SqliteJournal(path) as journal:
        stream = DurableStream(journal, "orders")
        redelivered = await stream.group("executor").read()
        assert [(delivery.seq, delivery.payload) for delivery in redelivered] == [
            (index, f"order-{index}".encode()) for index in range(5, 11)
        ]
        assert [delivery.seq for delivery in await stream.group("auditor").read()] == list(range(1, 11))


async def test_rewind_redelivers_from_the_last_ack(journal: SqliteJournal) -> None:
    stream = DurableStream(journal, "orders")
    await stream.append(*(f"{index}".encode() for index in range(1, 6)))
    group = stream.group("executor")
    await group.read()
    await group.ack(2)
    group.rewind()
    assert [delivery.seq for delivery in await group.read()] == [3, 4, 5]


async def test_rewind_before_the_first_read_keeps_the_durable_offset(journal: SqliteJournal) -> None:
    stream = DurableStream(journal, "orders")
    await stream.append(b"1", b"2", b"3")
    await journal.ack("orders", "executor", 2)
    restarted = stream.group("executor")
    restarted.rewind()
    assert [delivery.seq for delivery in await restarted.read()] == [3]


# -- the effect and its ack in one transaction --------------------------------------------------------


async def test_the_effect_and_the_ack_commit_together(journal: SqliteJournal) -> None:
    stream = DurableStream(journal, "orders")
    await stream.append(b"buy", b"sell")
    group = stream.group("executor")
    first, second = await group.read()

    await journal.append("effects", [b"did " + first.payload], 0, acks=[group.ack_marker(first.seq)])
    group.acked(first.seq)
    assert await journal.acked_seq("orders", "executor") == 1

    # A failed effect (here: a stale expected_seq) takes its ack with it.
    with pytest.raises(SequenceConflict):
        await journal.append("effects", [b"did " + second.payload], 0, acks=[group.ack_marker(second.seq)])
    assert await read_all(journal, "effects") == [(1, b"did buy")]
    assert await journal.acked_seq("orders", "executor") == 1
    assert [delivery.seq for delivery in await stream.group("executor").read()] == [2]


async def test_a_killed_consumer_leaves_every_effect_exactly_once_and_the_offset_on_the_last(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "journal.db")
    count = 30
    async with SqliteJournal(path) as journal:
        await DurableStream(journal, "orders").append(
            *(f"order-{seq}".encode() for seq in range(1, count + 1))
        )
    rng = random.Random(0xC0FFEE)

    async def check() -> int:
        async with SqliteJournal(path) as journal:
            effects = [int(payload) for _, payload in await read_all(journal, "effects")]
            acked = await journal.acked_seq("orders", "executor")
            lag = await DurableStream(journal, "orders").group("executor").lag()
        assert effects == list(range(1, len(effects) + 1)), "an effect is missing or duplicated"
        assert acked == len(effects), "the offset does not match the effects"
        assert lag == count - acked
        return acked

    acked = 0
    kills = 0
    for _ in range(4):
        seq = rng.randint(acked + 1, acked + max(1, (count - acked) // 3))
        target = f"{rng.choice(['read', 'effect'])} {seq}"  # between reading and the effect, or just after it
        async with await ChildProcess.start(sys.executable, WORKER, "consume", path) as child:
            status = await child.kill(after_output=re.compile(rf"^{target}$"), timeout=20)
            kills += status == -9 and "done" not in child.output
        assert f"resumed {acked}" in child.output
        if acked < count:
            assert f"read {acked + 1}" in child.output  # the unacked entry came back first
        acked = await check()
    assert kills >= 2, f"only {kills} of 4 runs were killed before they finished"

    async with await ChildProcess.start(sys.executable, WORKER, "consume", path) as child:
        await child.wait_for_output(re.compile(r"^done$"), timeout=20)
        assert await child.wait(timeout=20) == 0
    assert await check() == count


# -- lag ---------------------------------------------------------------------------------------------


async def test_lag_is_last_appended_minus_last_acked(journal: SqliteJournal) -> None:
    stream = DurableStream(journal, "orders")
    group = stream.group("executor")
    assert await group.lag() == 0
    await stream.append(*(b"x" for _ in range(10)))
    assert await group.lag() == 10
    await group.read()
    assert await group.lag() == 10  # delivered is not acknowledged
    await group.ack(3)
    assert await group.lag() == 7

    # An ack committed with an effect counts before acked() is called.
    await journal.append("effects", [b"e"], 0, acks=[group.ack_marker(9)])
    assert await group.lag() == 1
    await stream.append(b"y")
    assert await group.lag() == 2


async def test_lag_counts_acks_made_by_other_consumers_of_the_group(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    async with SqliteJournal(path) as metrics_side, SqliteJournal(path) as consumer_side:
        watched = DurableStream(metrics_side, "orders").group("executor")
        await DurableStream(consumer_side, "orders").append(*(b"x" for _ in range(5)))
        assert await watched.lag() == 5
        consumer = DurableStream(consumer_side, "orders").group("executor")
        await consumer.read()
        await consumer.ack(4)
        assert await watched.lag() == 1


# -- several producers ---------------------------------------------------------------------------------


async def test_two_producers_in_one_process_make_one_gap_free_sequence(journal: SqliteJournal) -> None:
    first = DurableStream(journal, "orders")
    second = DurableStream(journal, "orders")

    async def produce(stream: DurableStream, tag: str) -> list[tuple[int, bytes]]:
        appended = []
        for index in range(40):
            payload = f"{tag}-{index}".encode()
            appended.append((await stream.append(payload), payload))
        return appended

    from_first, from_second = await asyncio.gather(produce(first, "a"), produce(second, "b"))

    stored = await read_all(journal, "orders")
    assert [seq for seq, _ in stored] == list(range(1, 81))
    assert sorted(stored) == sorted(from_first + from_second)  # each append's seq holds its payload


async def test_two_producer_processes_on_one_file_make_one_gap_free_sequence(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.db")
    async with SqliteJournal(path):
        pass  # create the file once, so the two processes do not race to create the schema
    count = 60
    async with contextlib.AsyncExitStack() as stack:
        children = [
            await stack.enter_async_context(
                await ChildProcess.start(sys.executable, WORKER, "produce", path, tag, str(count))
            )
            for tag in ("p", "q")
        ]
        for child in children:
            await child.wait_for_output(re.compile(r"^produced$"), timeout=30)
            assert await child.wait(timeout=20) == 0

    async with SqliteJournal(path) as journal:
        stored = await read_all(journal, "orders")
    assert [seq for seq, _ in stored] == list(range(1, 2 * count + 1))
    assert sorted(payload for _, payload in stored) == sorted(
        f"{tag}-{index}".encode() for tag in ("p", "q") for index in range(count)
    )


async def test_a_producer_catches_up_with_appends_made_through_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    async with SqliteJournal(path) as here, SqliteJournal(path) as elsewhere:
        await DurableStream(here, "orders").append(b"1")
        await DurableStream(elsewhere, "orders").append(b"2", b"3")
        # A producer that starts now reads seq 3, while `here` last saw 1.
        assert await DurableStream(here, "orders").append(b"4") == 4
        assert [seq for seq, _ in await read_all(here, "orders")] == [1, 2, 3, 4]


# -- subscribe ----------------------------------------------------------------------------------------


class Subscriber:
    """Runs ``group.subscribe`` on a ManualClock that is never advanced unless a test says so.

    ``progress`` is set whenever something observable happens: a delivery, or
    the subscriber arming its poll timer (it is caught up and waiting)."""

    def __init__(self, group: ConsumerGroup) -> None:
        self.progress = asyncio.Event()
        self.clock = WatchedClock(self.progress)
        self.received: list[Delivery] = []
        self._task = asyncio.ensure_future(self._run(group))

    async def _run(self, group: ConsumerGroup) -> None:
        async with aclosing(group.subscribe(clock=self.clock, poll_interval=POLL)) as deliveries:
            async for delivery in deliveries:
                self.received.append(delivery)
                self.progress.set()

    @property
    def waiting(self) -> bool:
        return self.clock.pending_timers == 1

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``condition()`` holds; fail after ``timeout`` real seconds."""
        async with asyncio.timeout(timeout):
            while not condition():
                self.progress.clear()
                await self.progress.wait()

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class WatchedClock(ManualClock):
    def __init__(self, armed: asyncio.Event) -> None:
        super().__init__()
        self.armed = armed

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any:
        handle = super().call_later(delay, callback, *args)
        self.armed.set()
        return handle


@contextlib.asynccontextmanager
async def subscribed(group: ConsumerGroup) -> AsyncIterator[Subscriber]:
    subscriber = Subscriber(group)
    try:
        yield subscriber
    finally:
        await subscriber.aclose()


async def test_subscribe_wakes_on_an_append_in_this_process(journal: SqliteJournal) -> None:
    stream = DurableStream(journal, "orders")
    await stream.append(b"early")
    async with subscribed(stream.group("executor")) as subscriber:
        await subscriber.until(lambda: len(subscriber.received) == 1 and subscriber.waiting)
        await stream.append(b"late")
        await subscriber.until(lambda: len(subscriber.received) == 2)
    assert subscriber.clock.now() == 0.0  # woken by the append: the poll never fired
    assert [delivery.payload for delivery in subscriber.received] == [b"early", b"late"]


async def test_subscribe_polls_for_appends_made_elsewhere(journal: SqliteJournal) -> None:
    async with subscribed(DurableStream(journal, "orders").group("executor")) as subscriber:
        await subscriber.until(lambda: subscriber.waiting)
        await DurableStream(journal, "orders").append(b"from elsewhere")
        await subscriber.clock.advance(POLL)
        await subscriber.until(lambda: len(subscriber.received) == 1)
    assert subscriber.received == [Delivery("orders", 1, b"from elsewhere")]


class GatedReads:
    """A real journal whose next empty read holds its (empty) answer until released."""

    def __init__(self, inner: SqliteJournal) -> None:
        self.inner = inner
        self.armed = False
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def read(self, stream: str, after_seq: int = 0) -> AsyncGenerator[tuple[int, bytes], None]:
        rows = [row async for row in self.inner.read(stream, after_seq)]
        if self.armed and not rows:
            self.armed = False
            self.holding.set()
            await self.release.wait()
        for row in rows:
            yield row

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_subscribe_does_not_miss_an_append_that_lands_while_it_reads(journal: SqliteJournal) -> None:
    gated = GatedReads(journal)
    stream = DurableStream(gated, "orders")  # type: ignore[arg-type]
    gated.armed = True
    async with subscribed(stream.group("executor")) as subscriber:
        async with asyncio.timeout(5):
            await gated.holding.wait()  # the subscriber has read "nothing yet"
        await stream.append(b"during the read")
        gated.release.set()
        await subscriber.until(lambda: len(subscriber.received) == 1)
    assert subscriber.clock.now() == 0.0
