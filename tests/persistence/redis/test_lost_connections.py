"""A connection lost mid-append is ambiguous: RedisJournal settles it by running the same
conditional append again and reading back, never by appending blindly.

A proxy between the journal and a real server loses a reply (the append
ran) or a request (it did not) at a chosen moment; private servers are
stopped and killed under producers that keep appending.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from garrison._errors import JournalWriteError, SequenceConflict
from garrison.persistence import Ack, DurableStream, RedisJournal
from tests.persistence._model import read_all

from ._proxy import FaultyProxy
from ._server import RedisServer
from .conftest import StartRedis

APPEND = b"EVALSHA"


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[FaultyProxy]:
    async with FaultyProxy(port_of(redis_url)) as opened:
        yield opened


@pytest.fixture
async def journal(proxy: FaultyProxy, namespace: str) -> AsyncIterator[RedisJournal]:
    """A journal whose connections all go through the proxy."""
    async with RedisJournal(proxy.url, namespace=namespace, ambiguity_timeout=5.0) as opened:
        yield opened


@pytest.fixture
async def direct(redis_url: str, namespace: str) -> AsyncIterator[RedisJournal]:
    """Another writer on the same keys, straight to the server."""
    async with RedisJournal(redis_url, namespace=namespace) as opened:
        yield opened


async def test_a_lost_reply_of_an_append_that_ran_is_read_back_not_appended_again(
    journal: RedisJournal, proxy: FaultyProxy, direct: RedisJournal
) -> None:
    await journal.append("s", [b"a"], 0)
    proxy.lose_reply(APPEND)

    assert await journal.append("s", [b"b", b"c"], 1) == 3

    assert proxy.cuts == 1 and journal.resolved_ambiguous == 1
    assert await read_all(direct, "s") == [(1, b"a"), (2, b"b"), (3, b"c")]


async def test_a_lost_request_of_an_append_that_never_ran_is_appended_once(
    journal: RedisJournal, proxy: FaultyProxy, direct: RedisJournal
) -> None:
    await journal.append("s", [b"a"], 0)
    proxy.lose_request(APPEND)

    assert await journal.append("s", [b"b"], 1) == 2

    assert proxy.cuts == 1 and journal.resolved_ambiguous == 1
    assert await read_all(direct, "s") == [(1, b"a"), (2, b"b")]


async def test_every_append_of_a_pipeline_whose_reply_was_lost_is_settled_once(
    journal: RedisJournal, proxy: FaultyProxy, direct: RedisJournal
) -> None:
    proxy.lose_reply(APPEND)

    results = await asyncio.gather(
        *(journal.append(f"s{i}", [f"{i}-1".encode()], 0) for i in range(10)),
        journal.append("s0", [b"0-2"], 1),  # chained behind another append of the same batch
    )

    assert results == [1] * 10 + [2]
    assert proxy.cuts == 1 and journal.resolved_ambiguous == 11
    assert await read_all(direct, "s0") == [(1, b"0-1"), (2, b"0-2")]
    for i in range(1, 10):
        assert await read_all(direct, f"s{i}") == [(1, f"{i}-1".encode())]


async def test_an_append_that_ran_is_recognised_even_after_another_writer_appended_behind_it(
    journal: RedisJournal, proxy: FaultyProxy, direct: RedisJournal
) -> None:
    await journal.append("s", [b"a"], 0)
    proxy.lose_reply(APPEND, then_refuse=True)  # no way back in while the other writer goes on
    append = asyncio.ensure_future(journal.append("s", [b"mine"], 1))
    await asyncio.wait_for(proxy.cut.wait(), 5)

    assert await direct.append("s", [b"theirs"], 2) == 3
    proxy.accept()

    assert await append == 2
    assert await read_all(direct, "s") == [(1, b"a"), (2, b"mine"), (3, b"theirs")]


async def test_an_append_that_never_ran_and_lost_its_place_is_a_sequence_conflict(
    journal: RedisJournal, proxy: FaultyProxy, direct: RedisJournal
) -> None:
    await journal.append("s", [b"a"], 0)
    proxy.lose_request(APPEND, then_refuse=True)
    append = asyncio.ensure_future(journal.append("s", [b"mine"], 1))
    await asyncio.wait_for(proxy.cut.wait(), 5)

    assert await direct.append("s", [b"theirs"], 1) == 2
    proxy.accept()

    with pytest.raises(SequenceConflict) as caught:
        await append
    assert caught.value.actual_seq == 2
    assert await read_all(direct, "s") == [(1, b"a"), (2, b"theirs")]


async def test_acks_alone_whose_reply_was_lost_are_settled_by_reading_the_offsets(
    journal: RedisJournal, proxy: FaultyProxy, direct: RedisJournal
) -> None:
    await journal.append("out", [b"x"], 0)
    proxy.lose_reply(APPEND, then_refuse=True)
    append = asyncio.ensure_future(journal.append("out", [], 1, acks=[Ack("in", "g", 5)]))
    await asyncio.wait_for(proxy.cut.wait(), 5)
    await direct.append("out", [b"y"], 1)
    proxy.accept()

    assert await append == 1
    assert await direct.acked_seq("in", "g") == 5


async def test_an_append_that_cannot_be_settled_in_time_is_a_journal_write_error(
    proxy: FaultyProxy, namespace: str, direct: RedisJournal
) -> None:
    async with RedisJournal(proxy.url, namespace=namespace, ambiguity_timeout=0.3) as journal:
        await journal.append("s", [b"a"], 0)
        proxy.lose_request(APPEND, then_refuse=True)

        with pytest.raises(JournalWriteError, match="'s'"):
            await journal.append("s", [b"b"], 1)

        proxy.accept()
        # The outcome was unknown; reading back says: never written. The journal goes on.
        assert await read_all(direct, "s") == [(1, b"a")]
        assert await journal.append("s", [b"b"], 1) == 2


async def test_a_durable_stream_producer_never_duplicates_an_entry_over_a_lost_reply(
    journal: RedisJournal, proxy: FaultyProxy, direct: RedisJournal
) -> None:
    """DurableStream retries on SequenceConflict: a lost reply must not look like one."""
    stream = DurableStream(journal, "orders")
    await stream.append(b"first")
    proxy.lose_reply(APPEND)

    assert await stream.append(b"second") == 2

    assert await read_all(direct, "orders") == [(1, b"first"), (2, b"second")]


# -- a real server stopped or killed under load -----------------------------------------------


class Producer:
    """Appends to its own stream one event at a time, remembering what was acknowledged."""

    def __init__(self, journal: RedisJournal, stream: str) -> None:
        self.journal = journal
        self.stream = stream
        self.acknowledged: list[bytes] = []
        self.unknown: list[bytes] = []
        self.conflicts = 0

    async def run(self, stop: asyncio.Event) -> None:
        seq = 0
        attempt = 0
        while not stop.is_set():
            attempt += 1
            payload = f"{self.stream}-{attempt}".encode()
            try:
                seq = await self.journal.append(self.stream, [payload], seq)
                self.acknowledged.append(payload)
            except SequenceConflict:
                self.conflicts += 1
                return
            except JournalWriteError:
                self.unknown.append(payload)
                with contextlib.suppress(Exception):
                    seq = await self.journal.highest_seq(self.stream)


async def run_producers_through(
    server: RedisServer, outage: object, *, producers: int = 4
) -> tuple[RedisJournal, list[Producer]]:
    journal = await RedisJournal(server.url, namespace="load", ambiguity_timeout=10.0).open()
    crew = [Producer(journal, f"p{i}") for i in range(producers)]
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(producer.run(stop)) for producer in crew]
    try:
        await asyncio.sleep(0.3 + random.random() * 0.2)
        assert callable(outage)
        await outage()
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
    return journal, crew


async def check_every_acknowledged_append_is_stored_once(server: RedisServer, crew: list[Producer]) -> None:
    async with RedisJournal(server.url, namespace="load") as reader:
        for producer in crew:
            stored = [payload for _, payload in await read_all(reader, producer.stream)]
            assert producer.conflicts == 0, "a lost connection was reported as a conflict"
            assert len(stored) == len(set(stored)), f"{producer.stream}: an entry was stored twice"
            assert [p for p in stored if p in set(producer.acknowledged)] == producer.acknowledged
            assert set(stored) - set(producer.acknowledged) <= set(producer.unknown)
            assert [seq for seq, _ in await read_all(reader, producer.stream)] == list(
                range(1, len(stored) + 1)
            )


@pytest.mark.parametrize("how", ["shutdown", "sigkill"])
async def test_appends_in_flight_when_the_server_stops_are_settled_and_acknowledged_ones_survive(
    start_redis: StartRedis, how: str
) -> None:
    server = await start_redis()

    async def outage() -> None:
        await (server.shutdown() if how == "shutdown" else server.kill())
        await asyncio.sleep(0.2)
        await server.start()

    journal, crew = await run_producers_through(server, outage)
    try:
        assert journal.resolved_ambiguous >= 1, "no append was in flight when the server went away"
        assert all(not producer.unknown for producer in crew), "every append settled within 10 s"
        assert sum(len(producer.acknowledged) for producer in crew) > 20
    finally:
        await journal.close()
    await check_every_acknowledged_append_is_stored_once(server, crew)


async def test_the_journal_keeps_appending_after_the_server_restarts(start_redis: StartRedis) -> None:
    server = await start_redis()
    async with RedisJournal(server.url, namespace="t") as journal:
        await journal.append("s", [b"1"], 0)
        await server.shutdown()
        await server.start()

        assert await journal.append("s", [b"2"], 1) == 2
        assert await journal.append("s", [b"3"], 2) == 3
        raw = aioredis.Redis.from_url(server.url)
        try:
            assert await raw.xlen(journal.events_key("s")) == 3
        finally:
            await raw.aclose()
