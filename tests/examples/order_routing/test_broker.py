"""The broker simulator, over real TCP on 127.0.0.1: the protocol, each venue behaviour and fault,
bad input, and the durable store as ground truth (in-process servers, and the real process)."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from examples.order_routing.broker import (
    BrokerConfig,
    BrokerServer,
    DedupeMode,
    DuplicateOrder,
    duplicates,
    load_fills,
    load_orders,
)
from examples.order_routing.protocol import (
    MAX_FRAME,
    BrokerMessage,
    CancelOrder,
    CancelResult,
    Error,
    Fill,
    Hello,
    NewOrder,
    OrderAccepted,
    OrderRejected,
    OrderStatus,
    QueryOrder,
    Side,
    Welcome,
    broker_decoder,
    encode_frame,
    read_frame,
)

REPO = Path(__file__).resolve().parents[3]
WAIT = 3.0
"""Upper bound on any single wait for the broker (another task's or process's clock)."""

M = TypeVar("M", bound=msgspec.Struct)


class Client:
    """A bare protocol client: what it sends and every message it has received, in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received: list[BrokerMessage] = []

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    @classmethod
    async def hello(cls, port: int, client_id: str = "node-1", fills_after: int = 0) -> Client:
        client = await cls.connect(port)
        client.send(Hello(client_id, fills_after))
        await client.expect(Welcome)
        return client

    def send(self, *messages: msgspec.Struct) -> None:
        self.writer.write(b"".join(encode_frame(message) for message in messages))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def next(self, timeout: float = WAIT) -> BrokerMessage | None:
        """The next message, or None at the end of the stream."""
        async with asyncio.timeout(timeout):
            payload = await read_frame(self.reader)
        if payload is None:
            return None
        message = broker_decoder.decode(payload)
        self.received.append(message)
        return message

    async def expect(self, kind: type[M], where: Callable[[M], bool] = lambda _: True) -> M:
        """Read until a message of ``kind`` matching ``where`` arrives (others are kept in ``received``)."""
        async with asyncio.timeout(WAIT):
            while True:
                message = await self.next()
                assert message is not None, f"stream ended while waiting for {kind.__name__}: {self.received}"
                if isinstance(message, kind) and where(message):
                    return message

    async def expect_closed(self) -> None:
        async with asyncio.timeout(WAIT):
            while (message := await self.next()) is not None:
                pass
        del message

    async def gather(self, seconds: float) -> list[BrokerMessage]:
        """Everything that arrives within ``seconds``."""
        got: list[BrokerMessage] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await self.next(timeout=left)
            except (TimeoutError, ConnectionError):
                break
            if message is None:
                break
            got.append(message)
        return got

    def of(self, kind: type[M]) -> list[M]:
        return [message for message in self.received if isinstance(message, kind)]

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionError):
            await self.writer.wait_closed()


def order(client_order_id: str, qty: int = 10, price: float = 101.5, symbol: str = "ACME") -> NewOrder:
    return NewOrder(client_order_id, symbol, Side.BUY, qty, price)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "broker.db"


@pytest.fixture
def broker(store: Path) -> Callable[..., Any]:
    """``async with broker(**config) as server``: an in-process broker on ``store``."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[BrokerServer]:
        settings: dict[str, Any] = {"latency_ms": 1, "fill_delay_ms": 5, "lookup_lag": 0.0, "seed": 7}
        settings.update(overrides)
        async with BrokerServer(BrokerConfig(store_path=store, **settings)) as server:
            yield server

    return start


# -- hello and fill replay ------------------------------------------------------------------


async def test_hello_is_welcomed_with_the_broker_id_lookup_lag_and_dedupe_mode(broker: Any) -> None:
    async with broker(broker_id="venue-x", lookup_lag=0.25, dedupe=DedupeMode.WHILE_OPEN) as server:
        client = await Client.connect(server.port)
        client.send(Hello("node-1"))
        assert await client.next() == Welcome("venue-x", 0.25, "while-open")
        await client.close()


async def test_the_first_frame_must_be_hello(broker: Any) -> None:
    async with broker() as server:
        client = await Client.connect(server.port)
        client.send(order("c-1"))
        error = await client.expect(Error)
        assert error.reason == "the first frame must be hello, got new_order"
        await client.expect_closed()
        assert load_orders(server.config.store_path) == []


async def test_a_second_hello_is_an_error_and_the_connection_carries_on(broker: Any) -> None:
    async with broker() as server:
        client = await Client.hello(server.port, "node-1")
        client.send(Hello("node-2"))
        assert (await client.expect(Error)).reason == "already said hello as client_id 'node-1'"
        client.send(order("c-1"))
        await client.expect(OrderAccepted)
        await client.close()


async def test_reconnect_replays_the_fills_after_fills_after_and_fills_that_waited(broker: Any) -> None:
    async with broker(fill_delay_ms=20) as server:
        client = await Client.hello(server.port)
        client.send(order("c-1"), order("c-2"), order("c-3"))
        while len(client.of(Fill)) < 3:
            await client.expect(Fill)
        live = client.of(Fill)
        assert sorted(fill.client_order_id for fill in live) == ["c-1", "c-2", "c-3"]
        # The fourth order fills while nobody is connected: it waits in the store for the next Hello.
        client.send(order("c-4"))
        await client.expect(OrderAccepted, lambda accepted: accepted.client_order_id == "c-4")
        await client.close()
        # Reconnect only once its fill is in the store, made while nobody was connected.
        deadline = time.monotonic() + WAIT
        while "c-4" not in {fill.client_order_id for fill in load_fills(server.config.store_path)}:
            assert time.monotonic() < deadline, "the fourth order's fill never reached the store"
            await asyncio.sleep(0.01)

        again = await Client.hello(server.port, fills_after=live[0].fill_seq)
        replayed = [await again.expect(Fill) for _ in range(3)]
        assert replayed[:2] == live[1:]
        assert replayed[2].client_order_id == "c-4"
        assert [fill.fill_seq for fill in replayed] == sorted({fill.fill_seq for fill in replayed})
        assert await again.gather(0.05) == []
        await again.close()

        everything = await Client.hello(server.port, fills_after=0)
        assert [(await everything.expect(Fill)).client_order_id for _ in range(4)] == [
            "c-1",
            "c-2",
            "c-3",
            "c-4",
        ]
        await everything.close()

        other = await Client.hello(server.port, "node-2")
        assert await other.gather(0.05) == [], "fills belong to the client that placed the orders"
        await other.close()


# -- dedupe modes ---------------------------------------------------------------------------


async def test_dedupe_always_rejects_a_reused_id_even_after_the_order_filled(broker: Any) -> None:
    async with broker(dedupe=DedupeMode.ALWAYS) as server:
        client = await Client.hello(server.port)
        client.send(order("c-1"))
        accepted = await client.expect(OrderAccepted)
        await client.expect(Fill)
        client.send(order("c-1"))
        rejected = await client.expect(OrderRejected)
        assert rejected.duplicate
        assert f"duplicate client_order_id 'c-1': order {accepted.order_id} is filled" in rejected.reason
        await client.close()
    assert [stored.order_id for stored in load_orders(server.config.store_path)] == [accepted.order_id]
    assert duplicates(server.config.store_path) == []


async def test_dedupe_while_open_rejects_only_while_the_first_order_is_open(broker: Any) -> None:
    async with broker(dedupe=DedupeMode.WHILE_OPEN, fill_delay_ms=50) as server:
        client = await Client.hello(server.port)
        client.send(order("c-1"), order("c-1"))
        first = await client.expect(OrderAccepted)
        rejected = await client.expect(OrderRejected)
        assert rejected.duplicate and "is accepted (dedupe while-open)" in rejected.reason

        await client.expect(Fill, lambda fill: fill.leaves_qty == 0)
        client.send(order("c-1"))  # the first order is filled: the venue takes the id again
        second = await client.expect(OrderAccepted)
        assert second.order_id != first.order_id
        await client.expect(Fill, lambda fill: fill.order_id == second.order_id)
        await client.close()

    assert duplicates(server.config.store_path) == [DuplicateOrder("node-1", "c-1", 2)]


async def test_dedupe_while_open_takes_the_id_again_after_a_cancel(broker: Any) -> None:
    async with broker(dedupe=DedupeMode.WHILE_OPEN, fill_delay_ms=10_000) as server:
        client = await Client.hello(server.port)
        client.send(order("c-1"))
        await client.expect(OrderAccepted)
        client.send(CancelOrder("c-1"), order("c-1"))
        assert (await client.expect(CancelResult)).cancelled
        await client.expect(OrderAccepted)
        await client.close()
    assert [stored.state for stored in load_orders(server.config.store_path)] == ["cancelled", "accepted"]


async def test_dedupe_none_accepts_every_reuse_as_a_new_order(broker: Any) -> None:
    async with broker(dedupe=DedupeMode.NONE) as server:
        client = await Client.hello(server.port)
        client.send(order("c-1"), order("c-1"), order("c-1"))
        accepted = [await client.expect(OrderAccepted) for _ in range(3)]
        assert len({accepted.order_id for accepted in accepted}) == 3
        assert client.of(OrderRejected) == []
        client.send(QueryOrder("c-1", request_id=9))
        status = await client.expect(OrderStatus)
        assert status.found and status.order_id == accepted[-1].order_id, "the most recent order with the id"
        await client.close()
    assert duplicates(server.config.store_path) == [DuplicateOrder("node-1", "c-1", 3)]


async def test_dedupe_is_per_client(broker: Any) -> None:
    async with broker(dedupe=DedupeMode.ALWAYS) as server:
        one, two = await Client.hello(server.port, "node-1"), await Client.hello(server.port, "node-2")
        one.send(order("c-1"))
        two.send(order("c-1"))
        await one.expect(OrderAccepted)
        await two.expect(OrderAccepted)
        await one.close()
        await two.close()
    assert duplicates(server.config.store_path) == []


# -- faults ---------------------------------------------------------------------------------


async def test_reject_rate_one_rejects_every_order_and_records_none(broker: Any) -> None:
    async with broker(reject_rate=1.0) as server:
        client = await Client.hello(server.port)
        client.send(order("c-1"), order("c-2"))
        rejections = [await client.expect(OrderRejected) for _ in range(2)]
        assert [(r.client_order_id, r.reason, r.duplicate) for r in rejections] == [
            ("c-1", "simulated venue reject", False),
            ("c-2", "simulated venue reject", False),
        ]
        await client.close()
    assert load_orders(server.config.store_path) == []


async def test_drop_reply_records_the_order_sends_no_accept_and_the_lookup_finds_it_after_the_lag(
    broker: Any,
) -> None:
    async with broker(drop_reply_rate=1.0, lookup_lag=0.3, fill_delay_ms=10_000) as server:
        client = await Client.hello(server.port)
        client.send(order("c-1"), QueryOrder("c-1", request_id=1))
        assert await client.expect(OrderStatus) == OrderStatus(1, "c-1", found=False)
        assert [stored.client_order_id for stored in load_orders(server.config.store_path)] == ["c-1"]

        await asyncio.sleep(0.35)
        client.send(QueryOrder("c-1", request_id=2))
        status = await client.expect(OrderStatus)
        assert (status.found, status.state, status.qty, status.filled_qty) == (True, "accepted", 10, 0)
        assert client.of(OrderAccepted) == [], "the dead zone: accepted, but the reply never came"
        await client.close()
    assert server.stats.replies_dropped == 1


async def test_a_dropped_reply_still_gets_its_fill(broker: Any) -> None:
    async with broker(drop_reply_rate=1.0) as server:
        client = await Client.hello(server.port)
        client.send(order("c-1"))
        fill = await client.expect(Fill)
        assert (fill.client_order_id, fill.qty, fill.leaves_qty) == ("c-1", 10, 0)
        assert client.of(OrderAccepted) == []
        await client.close()


async def test_lookups_lag_acceptance(broker: Any) -> None:
    async with broker(lookup_lag=0.3, fill_delay_ms=10_000) as server:
        client = await Client.hello(server.port)
        client.send(order("c-1"))
        accepted = await client.expect(OrderAccepted)
        client.send(QueryOrder("c-1", request_id=1))
        assert await client.expect(OrderStatus) == OrderStatus(1, "c-1", found=False)
        await asyncio.sleep(0.35)
        client.send(QueryOrder("c-1", request_id=2))
        assert await client.expect(OrderStatus) == OrderStatus(
            2, "c-1", True, "accepted", accepted.order_id, 0, 10
        )
        client.send(QueryOrder("never-sent", request_id=3))
        assert await client.expect(OrderStatus) == OrderStatus(3, "never-sent", found=False)
        await client.close()


async def test_connection_resets_fall_on_both_sides_of_recording_the_order(broker: Any) -> None:
    async with broker(reset_rate=1.0, seed=3) as server:
        for attempt in range(12):
            client = await Client.hello(server.port)
            client.send(order(f"c-{attempt}"))
            with pytest.raises(ConnectionResetError):
                await client.expect(OrderAccepted)
            assert client.of(OrderAccepted) == []
            client.writer.close()
        stored = {stored.client_order_id for stored in load_orders(server.config.store_path)}
        assert 0 < len(stored) < 12, "some resets came before recording the order, some after"
        assert server.stats.connections_reset == 12

    async with broker() as server:  # the same store, without faults: it still serves
        client = await Client.hello(server.port)
        client.send(order("fresh"))
        await client.expect(OrderAccepted)
        await client.close()


# -- fills and cancels ----------------------------------------------------------------------


async def test_partial_fills_sum_to_qty_with_leaves_reaching_zero_and_fill_seq_increasing(
    broker: Any,
) -> None:
    async with broker(partial_fills=True, fill_delay_ms=2) as server:
        client = await Client.hello(server.port)
        client.send(*(order(f"c-{i}", qty=100) for i in range(10)))
        while len([fill for fill in client.of(Fill) if fill.leaves_qty == 0]) < 10:
            await client.expect(Fill)
        await client.close()

    fills = client.of(Fill)
    seqs = [fill.fill_seq for fill in fills]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "fill_seq strictly increases"
    by_order: dict[str, list[Fill]] = {}
    for fill in fills:
        by_order.setdefault(fill.client_order_id, []).append(fill)
    for client_order_id, its_fills in by_order.items():
        assert sum(fill.qty for fill in its_fills) == 100, client_order_id
        leaves = [fill.leaves_qty for fill in its_fills]
        assert leaves == sorted(leaves, reverse=True) and leaves[-1] == 0
        assert [100 - sum(f.qty for f in its_fills[: n + 1]) for n in range(len(its_fills))] == leaves
        assert 1 <= len(its_fills) <= 3
    assert any(len(its_fills) > 1 for its_fills in by_order.values())
    assert [stored.fill_seq for stored in load_fills(server.config.store_path)] == seqs
    assert {stored.state for stored in load_orders(server.config.store_path)} == {"filled"}


async def test_cancel_an_open_order(broker: Any) -> None:
    async with broker(fill_delay_ms=300) as server:
        client = await Client.hello(server.port)
        client.send(order("c-1"))
        await client.expect(OrderAccepted)
        client.send(CancelOrder("c-1"))
        assert await client.expect(CancelResult) == CancelResult("c-1", cancelled=True)
        client.send(CancelOrder("c-1"), CancelOrder("nope"), QueryOrder("c-1", 1))
        again, unknown = await client.expect(CancelResult), await client.expect(CancelResult)
        assert not again.cancelled and again.reason.endswith("is already cancelled")
        assert unknown == CancelResult("nope", False, "unknown client_order_id 'nope'")
        assert (await client.expect(OrderStatus)).state == "cancelled"
        assert [m for m in await client.gather(0.4) if isinstance(m, Fill)] == [], (
            "a cancelled order never fills"
        )
        await client.close()
    assert [(o.state, o.filled_qty) for o in load_orders(server.config.store_path)] == [("cancelled", 0)]


# -- bad input ------------------------------------------------------------------------------

HEADER = struct.Struct(">I")


def framed(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


KEPT_OPEN = {
    "truncated message": (framed(encode_frame(order("c-1"))[4:-6]), "frame is not a valid msgpack message"),
    "unknown message type": (
        framed(msgspec.msgpack.encode(["launch_rocket", 1])),
        "unknown message type 'launch_rocket' (expected one of hello, new_order, cancel_order, query_order)",
    ),
    "wrong field type": (
        framed(msgspec.msgpack.encode(["new_order", "c-1", "ACME", "buy", "ten", 1.0])),
        "invalid new_order.qty: 'ten' is not a valid int",
    ),
    "not msgpack": (framed(b"\xc1\xc1\xc1"), "frame is not a valid msgpack message"),
    "empty frame": (framed(b""), "frame is not a valid msgpack message"),
    "not a tagged message": (framed(msgspec.msgpack.encode({"qty": 1})), "frame is not a tagged message"),
    "deeply nested": (framed(b"\x91" * 60_000 + b"\x01"), "frame is not a valid msgpack message"),
}


@pytest.mark.parametrize("case", list(KEPT_OPEN))
async def test_a_frame_that_does_not_decode_gets_an_error_and_the_connection_carries_on(
    broker: Any, case: str
) -> None:
    data, reason = KEPT_OPEN[case]
    async with broker() as server:
        client = await Client.hello(server.port)
        client.send_raw(data)
        assert (await client.expect(Error)).reason.startswith(reason)
        client.send(order("after"))
        await client.expect(OrderAccepted)
        await client.close()


CUT_FRAME = encode_frame(order("c-1"))
CLOSED = {
    "oversized frame": (HEADER.pack(MAX_FRAME + 1) + b"x" * 100, f"exceeds MAX_FRAME={MAX_FRAME}"),
    "garbage bytes": (b"GET / HTTP/1.1\r\nHost: broker\r\n\r\n", f"exceeds MAX_FRAME={MAX_FRAME}"),
    "stream cut inside a frame": (
        CUT_FRAME[:-5],
        f"stream ended inside a frame ({len(CUT_FRAME) - 9} of {len(CUT_FRAME) - 4} bytes)",
    ),
    "stream cut inside a header": (b"\x00\x00", "stream ended inside a frame header (2 of 4 bytes)"),
}


@pytest.mark.parametrize("case", list(CLOSED))
async def test_a_frame_that_loses_the_frame_boundary_gets_an_error_and_a_close(
    broker: Any, case: str
) -> None:
    data, reason = CLOSED[case]
    async with broker() as server:
        client = await Client.hello(server.port)
        client.send_raw(data)
        client.writer.write_eof()
        assert reason in (await client.expect(Error)).reason
        await client.expect_closed()
        assert load_orders(server.config.store_path) == []

        fresh = await Client.hello(server.port)
        fresh.send(order("after"))
        await fresh.expect(OrderAccepted)
        await fresh.close()
        await client.close()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (order("c-1", qty=0), "qty must be > 0, got 0"),
        (order("c-1", qty=-5), "qty must be > 0, got -5"),
        (order("c-1", price=math.nan), "price must be a finite number > 0, got nan"),
        (order("c-1", price=math.inf), "price must be a finite number > 0, got inf"),
        (order("c-1", price=0.0), "price must be a finite number > 0, got 0.0"),
        (order("c-1", symbol=""), "symbol must not be empty, got ''"),
        (order(""), "client_order_id must not be empty"),
        (order("c-1", qty=10**15), "qty must be <= 1000000000, got 1000000000000000"),
    ],
)
async def test_an_invalid_order_is_rejected_with_the_field_and_value(
    broker: Any, bad: NewOrder, reason: str
) -> None:
    async with broker() as server:
        client = await Client.hello(server.port)
        client.send(bad, order("good"))
        rejected = await client.expect(OrderRejected)
        assert (rejected.reason, rejected.duplicate) == (reason, False)
        await client.expect(OrderAccepted, lambda accepted: accepted.client_order_id == "good")
        await client.close()
    assert [stored.client_order_id for stored in load_orders(server.config.store_path)] == ["good"]


async def test_a_bad_hello_is_an_error_and_a_close(broker: Any) -> None:
    async with broker() as server:
        client = await Client.connect(server.port)
        client.send(Hello("node-1", fills_after=-1))
        assert (await client.expect(Error)).reason == "hello.fills_after must be >= 0, got -1"
        await client.expect_closed()
        await client.close()


# -- the store across restarts --------------------------------------------------------------


async def test_a_restarted_broker_keeps_its_dedupe_memory_fill_sequence_and_open_orders(broker: Any) -> None:
    async with broker(fill_delay_ms=10_000) as server:
        client = await Client.hello(server.port)
        client.send(order("open-1"))
        await client.expect(OrderAccepted)
        await client.close()

    async with broker(fill_delay_ms=5) as server:
        client = await Client.hello(server.port)
        fill = await client.expect(Fill)  # the open order fills under the restarted broker
        assert (fill.client_order_id, fill.leaves_qty, fill.fill_seq) == ("open-1", 0, 1)
        client.send(order("open-1"), order("new-1"))
        assert (await client.expect(OrderRejected)).duplicate
        await client.expect(Fill, lambda fill: fill.client_order_id == "new-1" and fill.fill_seq == 2)
        await client.close()


# -- the real process -----------------------------------------------------------------------


@contextmanager
def broker_process(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``python -m examples.order_routing.broker``; yields it and its port; always reaped."""
    stderr = tmp_path / "broker.stderr"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "examples.order_routing.broker",
                "--port",
                "0",
                "--store",
                str(tmp_path / "broker.db"),
                *args,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        deadline, line = time.monotonic() + 10, ""
        while not line.endswith("\n"):
            assert process.poll() is None, f"the broker exited early:\n{stderr.read_text()}"
            assert time.monotonic() < deadline, f"no LISTENING line:\n{stderr.read_text()}"
            line += process.stdout.readline() or ""
            time.sleep(0.02)
        assert line.startswith("BROKER LISTENING 127.0.0.1:"), line
        yield process, int(line.rsplit(":", 1)[1])
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


async def test_the_broker_process_prints_listening_and_exits_zero_on_sigterm(tmp_path: Path) -> None:
    with broker_process(tmp_path, "--dedupe", "while-open") as (process, port):
        client = await Client.connect(port)
        client.send(Hello("node-1"))
        assert await client.next() == Welcome("sim-broker", 0.2, "while-open")
        client.send(order("c-1"))
        await client.expect(OrderAccepted)
        process.send_signal(signal.SIGTERM)
        await client.expect_closed()
        await client.close()
        assert await asyncio.to_thread(process.wait, 10) == 0
    assert "broker stopped (exit 0)" in (tmp_path / "broker.stderr").read_text()


async def test_every_accepted_order_is_in_the_store_after_a_sigkill(tmp_path: Path) -> None:
    with broker_process(tmp_path, "--latency-ms", "0") as (process, port):
        client = await Client.hello(port)

        async def keep_sending() -> None:
            for start in range(0, 20_000, 100):
                client.send(*(order(f"c-{i}") for i in range(start, start + 100)))
                await asyncio.sleep(0.002)

        sender = asyncio.create_task(keep_sending())
        try:
            while len(client.of(OrderAccepted)) < 1000:
                await client.expect(OrderAccepted)
            process.send_signal(signal.SIGKILL)  # in the middle of the stream of orders
            await client.gather(1.0)  # whatever was already on its way
        finally:
            sender.cancel()
            with suppress(asyncio.CancelledError, ConnectionError):
                await sender
        await client.close()
        assert await asyncio.to_thread(process.wait, 10) == -signal.SIGKILL

    acknowledged = {accepted.client_order_id for accepted in client.of(OrderAccepted)}
    stored = {stored.client_order_id for stored in load_orders(tmp_path / "broker.db")}
    assert acknowledged <= stored, f"acknowledged but lost: {sorted(acknowledged - stored)[:5]}"
    assert len(stored) < 20_000, "the kill came before every order was sent"
    filled = {fill.client_order_id for fill in client.of(Fill)}
    assert filled <= {fill.client_order_id for fill in load_fills(tmp_path / "broker.db")}


async def test_a_failure_handling_one_request_costs_only_that_connection(
    broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from examples.order_routing.broker import venue

    def broken(*args: Any) -> None:
        raise KeyError("a bug")

    async with broker() as server:
        client = await Client.hello(server.port)
        with monkeypatch.context() as patch:
            patch.setattr(venue.Venue, "query_order", broken)
            client.send(QueryOrder("c-1", request_id=1))
            assert (await client.expect(Error)).reason == "internal error: KeyError('a bug')"
            await client.expect_closed()
        fresh = await Client.hello(server.port)
        fresh.send(QueryOrder("c-1", request_id=2))
        assert await fresh.expect(OrderStatus) == OrderStatus(2, "c-1", found=False)
        await fresh.close()
        await client.close()


async def test_a_store_that_cannot_commit_acknowledges_nothing_and_cuts_every_client_off(
    broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from examples.order_routing.broker import store

    def disk_error(*args: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    async with broker() as server:
        client = await Client.hello(server.port)
        monkeypatch.setattr(store.BrokerStore, "write", disk_error)
        client.send(order("c-1"))
        with pytest.raises(ConnectionResetError):
            await client.expect(OrderAccepted)
        assert client.of(OrderAccepted) == []
        async with asyncio.timeout(WAIT):
            failure = await server.wait_failed()
        assert isinstance(failure, sqlite3.OperationalError)
        with pytest.raises(OSError):
            await Client.hello(server.port)  # no longer listening
        client.writer.close()
    assert load_orders(server.config.store_path) == []
