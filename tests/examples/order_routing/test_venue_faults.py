"""The node against a broken or hostile venue: resets, silence, handshakes that never end, ghost
fills, frames that do not decode. Each is a reconnect or a quarantine, never a restart of the
intent log, the executor or positions, never a fill applied that no intent accounts for.

Real TCP on 127.0.0.1 and real time (the broker and the fake venues below run on the loop's
clock); every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest

from examples.order_routing.harness.verdict import ghost_fills
from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.gateway import BrokerIncompatible, BrokerUnreachable
from examples.order_routing.node.messages import Snapshot
from examples.order_routing.node.positions import GhostFillQuarantined
from examples.order_routing.node.tree import build_spec
from examples.order_routing.protocol import (
    Fill,
    FrameSplitter,
    Hello,
    NewOrder,
    OrderAccepted,
    Welcome,
    client_decoder,
    encode_frame,
)
from garrison import LifecycleEvent, Node
from garrison.persistence import IntentState, Journal
from garrison.testing import NodeGuard, TestProbe
from tests.examples.order_routing.support import durable_intents, make_intent
from tests.examples.order_routing.test_broker_boundaries import (
    StartBroker,
    assert_exactly_once,
    node_config,
    record,
    settled,
)
from tests.examples.order_routing.test_broker_boundaries import garrison_clock as real_clock
from tests.examples.order_routing.test_broker_boundaries import start_broker as broker_starter

garrison_clock = real_clock
start_broker = broker_starter

WAIT = 15.0
"""Real seconds a test waits for the node to get somewhere."""
EXECUTION = (paths.GATEWAY, paths.INTENTS, paths.EXECUTOR, paths.POSITIONS)

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FakeVenue:
    """A venue that misbehaves on purpose: connection N is served by ``scripts[N]`` (the last
    one for every later connection). What clients send is decoded into ``received``."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = scripts
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.add(writer)
        try:
            await script(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.tasks.discard(task)
            self.writers.discard(writer)
            writer.close()


@pytest.fixture
async def venue() -> AsyncIterator[Callable[..., Awaitable[FakeVenue]]]:
    venues: list[FakeVenue] = []

    async def start(*scripts: Script) -> FakeVenue:
        fake = FakeVenue(*scripts)
        fake.server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
        venues.append(fake)
        return fake

    yield start
    for fake in venues:
        assert fake.server is not None
        fake.server.close()
        for writer in list(fake.writers):
            writer.transport.abort()  # its script reads EOF (or a reset) and ends
        if fake.tasks:
            await asyncio.wait(list(fake.tasks), timeout=5.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(fake.server.wait_closed(), 5.0)


async def requests(reader: asyncio.StreamReader) -> AsyncIterator[Any]:
    """What the node sends, message by message, until it hangs up."""
    frames = FrameSplitter()
    while chunk := await reader.read(65536):
        for payload in frames.split(chunk):
            yield client_decoder.decode(payload)


async def welcome(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lag: float = 0.05) -> None:
    async for message in requests(reader):
        assert isinstance(message, Hello)
        writer.write(encode_frame(Welcome("fake", lag, "none")))
        return


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    async for _ in requests(reader):
        pass


def config_for(port: int, **settings: Any) -> NodeConfig:
    return NodeConfig(
        broker_port=port,
        feed=False,
        ack_timeout=0.3,
        lookup_margin=0.1,
        lookup_retry=0.05,
        reconnect_initial=0.01,
        reconnect_max=0.05,
        **settings,
    )


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(int(WAIT / 0.02)):
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {WAIT}s: {what}")


async def gateway_counts(node: Node) -> dict[str, Any]:
    counts: dict[str, Any] = await node.lookup(paths.GATEWAY).ask(Snapshot())
    return counts


def restarts_of_execution(node: Node) -> dict[str, int]:
    return {path: node.restart_counts.get(path, 0) for path in EXECUTION}


def gateway_lines(log_records: list[dict[str, Any]], level: str) -> list[str]:
    return [
        str(record["message"])
        for record in log_records
        if record["level"].name == level and record["extra"].get("actor") == paths.GATEWAY
    ]


# -- connection faults are a reconnect, not a restart ------------------------------------


async def test_fifty_connection_resets_restart_nothing_and_place_each_order_once(
    node: Node,
    probe: TestProbe,
    journal: Journal,
    start_broker: StartBroker,
    log_records: list[dict[str, Any]],
) -> None:
    """The broker resets the connection after every NewOrder (half before recording it): at
    least 50 resets, each a reconnect of the gateway alone, and every order placed once."""
    broker = await start_broker(reset_rate=1.0)
    # Short timeouts: each connection carries about one order before its reset, so the run is
    # as long as 50 rounds of (reconnect, ack timeout, look-up, resend).
    fast = msgspec.structs.replace(
        node_config(broker), ack_timeout=0.1, lookup_margin=0.05, lookup_retry=0.02, reconnect_initial=0.005
    )
    await node.start(build_spec(fast))
    intents = []
    for wave in range(6):
        batch = [make_intent(seq=seq) for seq in range(wave * 15 + 1, wave * 15 + 16)]
        await record(node, probe, batch)
        await settled(journal, batch)
        intents += batch
        if broker.stats.connections_reset >= 50:
            break
    await assert_exactly_once(node, journal, broker, intents)

    assert broker.stats.connections_reset >= 50
    assert restarts_of_execution(node) == dict.fromkeys(EXECUTION, 0)
    counts = await gateway_counts(node)
    assert counts["disconnects"] >= 50 and counts["connects"] >= 51
    lost = node.metrics.for_actor(paths.GATEWAY).counter("broker_connections_lost", "read back")
    assert lost.value == counts["disconnects"]
    # One WARNING line per kind of fault per 10 s, the repeats counted into the next; no
    # traceback and no ERROR for a fault the gateway handles by design.
    warnings = gateway_lines(log_records, "WARNING")
    assert 1 <= len(warnings) < counts["disconnects"] / 2, warnings
    assert all("reconnecting in" in line for line in warnings if "connection failed" in line)
    assert not [r for r in log_records if r["level"].name in ("ERROR", "CRITICAL")]
    assert not [r for r in log_records if r["exception"] is not None and r["level"].no >= 20]


async def test_frames_that_do_not_decode_are_reconnects_and_every_order_is_placed_once(
    node: Node, probe: TestProbe, journal: Journal, start_broker: StartBroker
) -> None:
    """A third of the broker's replies come after a frame that does not decode (not msgpack, an
    unknown tag, a fill with fields of the wrong types): each costs a reconnect and the reply."""
    broker = await start_broker(garbage_rate=0.3)
    await node.start(build_spec(node_config(broker)))
    intents = [make_intent(seq=seq) for seq in range(1, 21)]

    await record(node, probe, intents)
    await assert_exactly_once(node, journal, broker, intents)

    counts = await gateway_counts(node)
    # Garbage written to a connection the node already dropped is never read: fewer bad frames.
    assert broker.stats.garbage_sent >= 1
    assert counts["bad_frames"] >= 1 and counts["lost_bad_frame"] == counts["bad_frames"]
    assert restarts_of_execution(node) == dict.fromkeys(EXECUTION, 0)


async def test_a_peer_that_never_sends_welcome_is_a_handshake_timeout_and_a_reconnect(
    node: Node,
    journal: Journal,
    venue: Callable[..., Awaitable[FakeVenue]],
    log_records: list[dict[str, Any]],
) -> None:
    fake = await venue(never_answers)
    await node.start(build_spec(config_for(fake.port, handshake_timeout=0.1)))

    async def timed_out_thrice() -> bool:
        return bool((await gateway_counts(node))["handshake_timeouts"] >= 3)

    await until(timed_out_thrice, "three handshake timeouts")
    assert fake.connections >= 3
    assert restarts_of_execution(node) == dict.fromkeys(EXECUTION, 0)
    warnings = gateway_lines(log_records, "WARNING")
    assert warnings and "handshake (no Welcome) timed out after 0.1s" in warnings[0]
    assert "reconnecting in" in warnings[0]


async def test_a_peer_silent_after_welcome_is_dropped_and_the_order_looked_up_on_the_next_connection(
    node: Node, probe: TestProbe, journal: Journal, venue: Callable[..., Awaitable[FakeVenue]]
) -> None:
    """The first connection welcomes, then answers nothing: after silence_timeout with the
    order unanswered the gateway reconnects; the next connection behaves."""
    intent = make_intent(seq=1)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await welcome(reader, writer)
        await never_answers(reader, writer)

    async def behaves(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await welcome(reader, writer)
        async for message in requests(reader):
            cid = getattr(message, "client_order_id", "")
            if isinstance(message, NewOrder):
                writer.write(encode_frame(OrderAccepted(cid, "B-1")))
            else:  # a look-up of the order the silent connection swallowed: never seen
                from examples.order_routing.protocol import OrderStatus

                writer.write(encode_frame(OrderStatus(message.request_id, cid, found=False)))

    fake = await venue(silent, behaves)
    await node.start(build_spec(config_for(fake.port, silence_timeout=0.3)))
    await record(node, probe, [intent])

    async def acked() -> bool:
        intents = await durable_intents(journal)
        return intents[intent.client_order_id].state is IntentState.ACKED

    await until(acked, "the order acked on the second connection")
    assert (await gateway_counts(node))["silences"] == 1
    assert restarts_of_execution(node) == dict.fromkeys(EXECUTION, 0)


async def test_repeated_handshake_failures_escalate_to_a_restart_of_execution(
    node: Node, journal: Journal, node_guard: NodeGuard, venue: Callable[..., Awaitable[FakeVenue]]
) -> None:
    """A broker that never completes a handshake is an outage, not a blip: after
    max_handshake_failures attempts in a row the gateway crashes with BrokerUnreachable."""
    node_guard.allow_crashes(paths.GATEWAY, BrokerUnreachable)
    fake = await venue(never_answers)
    await node.start(build_spec(config_for(fake.port, handshake_timeout=0.05, max_handshake_failures=3)))

    async def restarted() -> bool:
        return node.restart_counts.get(paths.GATEWAY, 0) >= 1

    await until(restarted, "the gateway's restart")
    assert fake.connections >= 3


async def test_a_welcome_the_node_cannot_trust_escalates(
    node: Node, journal: Journal, node_guard: NodeGuard, venue: Callable[..., Awaitable[FakeVenue]]
) -> None:
    """A negative look-up lag would make every 'not found' look reliable: nothing is sent."""
    node_guard.allow_crashes(paths.GATEWAY, BrokerIncompatible)

    async def lies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await welcome(reader, writer, lag=-1.0)
        await never_answers(reader, writer)

    fake = await venue(lies)
    await node.start(build_spec(config_for(fake.port)))

    async def restarted() -> bool:
        return node.restart_counts.get(paths.GATEWAY, 0) >= 1

    await until(restarted, "the gateway's restart")


# -- ghost fills ----------------------------------------------------------------------


async def test_fills_no_intent_accounts_for_are_quarantined_journaled_and_never_applied(
    node: Node,
    probe: TestProbe,
    journal: Journal,
    venue: Callable[..., Awaitable[FakeVenue]],
    log_records: list[dict[str, Any]],
) -> None:
    """The venue fills the node's order (10 ACME), then sends three ghosts in the same write: a
    fill for an id the node never sent, one with the wrong symbol, and an overfill."""
    intent = make_intent(seq=1, qty=10)
    cid = intent.client_order_id
    ghosts = [
        Fill(2, "never-sent-by-this-node", "B-9", "ACME", intent.side, 5, 100.0, 0),
        Fill(3, cid, "B-1", "GLOBEX", intent.side, 1, 100.0, 9),
        Fill(4, cid, "B-1", "ACME", intent.side, 5, 100.0, 0),
    ]

    async def fills_with_ghosts(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await welcome(reader, writer)
        async for message in requests(reader):
            if isinstance(message, NewOrder):
                real = Fill(1, cid, "B-1", "ACME", intent.side, 10, 100.0, 0)
                frames = [OrderAccepted(cid, "B-1"), real, *ghosts]
                writer.write(b"".join(encode_frame(frame) for frame in frames))

    alerts: list[LifecycleEvent] = []
    node.events.subscribe(
        lambda event: alerts.append(event) if isinstance(event, GhostFillQuarantined) else None
    )
    fake = await venue(fills_with_ghosts)
    await node.start(build_spec(config_for(fake.port)))
    await record(node, probe, [intent])
    positions = node.lookup(paths.POSITIONS)

    async def all_taken() -> bool:
        snapshot = await positions.ask(Snapshot())
        return bool(snapshot["fills"] + snapshot["quarantined"] >= 4)

    await until(all_taken, "the fill and the three ghosts taken")
    snapshot = await positions.ask(Snapshot())
    assert (snapshot["fills"], snapshot["quarantined"]) == (1, 3)
    assert snapshot["positions"] == {"ACME": (10, 100.0)}
    # Journaled, with the reason, and the verdict's reading finds none applied.
    quarantined, applied = await ghost_fills(journal, await durable_intents(journal))
    assert applied == []
    assert [line.split(": ")[0] for line in quarantined] == [
        "fill 2 of 'never-sent-by-this-node'",
        f"fill 3 of {cid!r}",
        f"fill 4 of {cid!r}",
    ]
    assert "unknown client order id" in quarantined[0]
    assert "symbol 'GLOBEX' contradicts" in quarantined[1]
    assert "overfill" in quarantined[2]
    assert [(event.fill_seq, event.client_order_id) for event in alerts] == [  # type: ignore[attr-defined]
        (2, "never-sent-by-this-node"),
        (3, cid),
        (4, cid),
    ]
    lines = [
        str(r["message"])
        for r in log_records
        if r["level"].name == "WARNING" and r["extra"].get("actor") == paths.POSITIONS
    ]
    assert len(lines) == 1 and "3 ghost fill(s) quarantined" in lines[0], [
        (r["level"].name, r["extra"], r["message"]) for r in log_records if "ghost" in str(r["message"])
    ]
    assert "never-sent-by-this-node" in lines[0] and cid in lines[0]
    # Counted on the node's /metrics too (registering the name again returns the same counter).
    counter = node.metrics.for_actor(paths.POSITIONS).counter("ghost_fills_quarantined", "read back")
    assert counter.value == 3
    await until(
        lambda: _state_is(journal, cid, IntentState.DONE), "the real order DONE through its real fill"
    )


async def _state_is(journal: Journal, cid: str, state: IntentState) -> bool:
    return (await durable_intents(journal))[cid].state is state
