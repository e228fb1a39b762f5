"""Frame fuzzing: whatever bytes a venue sends, the gateway's decoder fails only as a reconnect
(BrokerDisconnected), and a running node never crashes its execution group, never applies a
fill no intent accounts for, and keeps its buffers bounded.

Generated streams: random bytes, truncated streams, oversized length headers, and well-framed
messages of unknown tags, known tags with fields of the wrong types or numbers, and well-formed
broker messages out of place (fills for ids the node never sent, a second Welcome)."""

from __future__ import annotations

import asyncio
import itertools
import struct
import tempfile
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.gateway import BrokerDisconnected, decode_frame, split_frames
from examples.order_routing.node.messages import Snapshot
from examples.order_routing.node.tree import build_spec
from examples.order_routing.protocol import (
    MAX_FRAME,
    Fill,
    FrameSplitter,
    OrderAccepted,
    OrderStatus,
    Side,
    Welcome,
    encode_frame,
)
from garrison import Node
from garrison.persistence import SqliteJournal
from tests.examples.order_routing.test_venue_faults import FakeVenue, requests

TAGS = ["welcome", "order_accepted", "order_rejected", "fill", "order_status", "cancel_result", "error"]
"""The broker's message tags; the fuzzer also makes up others."""

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


tagged_frames = st.builds(
    lambda tag, fields: frame(msgspec.msgpack.encode([tag, *fields])),
    st.sampled_from(TAGS) | st.text(max_size=12),
    st.lists(msgpack_values, max_size=9),
)
ghost_fills = st.builds(
    lambda seq, cid, qty, side: encode_frame(Fill(seq, cid, "B-x", "ACME", side, qty, 100.0, 0)),
    st.integers(1, 2**62),
    st.text(min_size=1, max_size=40),
    st.integers(-5, 10**9),
    st.sampled_from(list(Side)),
)
well_formed = st.sampled_from(
    [
        encode_frame(OrderAccepted("never-sent", "B-1")),
        encode_frame(OrderStatus(99, "never-sent", True, None)),
        encode_frame(Welcome("again", 0.0, "none")),
    ]
)
oversized = st.integers(MAX_FRAME + 1, 2**32 - 1).map(lambda size: struct.pack(">I", size) + b"\x00" * 8)
pieces = st.one_of(
    st.binary(max_size=64),
    tagged_frames,
    ghost_fills,
    well_formed,
    oversized,
    st.binary(min_size=1, max_size=3),
)
streams = st.lists(pieces, min_size=1, max_size=8).map(b"".join)
"""A byte stream of a misbehaving venue: pieces that are frames, or not, in any order."""


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams, cuts=st.lists(st.integers(0, 4_000), max_size=6))
def test_the_decoder_fails_only_as_a_reconnect_and_holds_at_most_one_frame(
    stream: bytes, cuts: list[int]
) -> None:
    splitter = FrameSplitter()
    bounds = sorted({0, len(stream), *(cut for cut in cuts if cut < len(stream))})
    try:
        for start, end in itertools.pairwise(bounds):
            for payload in split_frames(splitter, stream[start:end]):
                decode_frame(payload)
            assert len(splitter._buffer) < 4 + MAX_FRAME
    except BrokerDisconnected as fault:
        assert fault.kind == "bad_frame"


# -- a running node fed by a venue that sends the fuzzed streams -----------------------------


def serving(stream: bytes) -> Any:
    """A connection that welcomes, then sends ``stream`` and hangs up."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async for _ in requests(reader):
            writer.write(encode_frame(Welcome("fuzz", 0.05, "none")) + stream)
            await writer.drain()
            return

    return script


async def quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    async for _ in requests(reader):
        writer.write(encode_frame(Welcome("fuzz", 0.05, "none")))
        async for _ in requests(reader):
            pass


async def run_node_against(stream_list: list[bytes], folder: Path) -> dict[str, Any]:
    """Run a node against a venue whose connections send ``stream_list`` in turn; the positions
    snapshot once it has reconnected after the last one."""
    fake = FakeVenue(*(serving(stream) for stream in stream_list), quiet)
    fake.server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    config = NodeConfig(
        broker_port=fake.port, feed=False, reconnect_initial=0.005, reconnect_max=0.01, handshake_timeout=1.0
    )
    try:
        async with Node("fuzz", journal=SqliteJournal(folder / "node.db"), handle_signals=False) as node:
            await node.start(build_spec(config))
            for _ in range(500):
                if fake.connections > len(stream_list):
                    break
                await asyncio.sleep(0.01)
            assert fake.connections > len(stream_list), "the node stopped reconnecting"
            positions = await node.lookup(paths.POSITIONS).ask(Snapshot())
            # No intent was recorded: every fill is a ghost, and none may be applied.
            assert positions["fills"] == 0 and positions["positions"] == {}
            restarted = {path: count for path, count in node.restart_counts.items() if count}
            assert restarted == {}, restarted
            for path in (paths.GATEWAY, paths.EXECUTOR, paths.POSITIONS):
                assert node.lookup(path).mailbox_metrics().depth < 100
            return positions
    finally:
        fake.server.close()
        for writer in list(fake.writers):
            writer.transport.abort()
        if fake.tasks:
            await asyncio.wait(list(fake.tasks), timeout=5.0)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream_list=st.lists(streams, min_size=1, max_size=4))
def test_a_node_fed_any_bytes_reconnects_and_never_applies_a_ghost_fill(stream_list: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run_node_against(stream_list, Path(folder)))


def test_the_fuzz_harness_sees_a_ghost_fill_and_a_garbled_frame(tmp_path: Path) -> None:
    """The property above can fail: a ghost fill in the stream reaches positions (and is
    quarantined), and the garbage after it ends that connection."""
    ghost = encode_frame(Fill(7, "never-sent", "B-7", "ACME", Side.BUY, 5, 100.0, 0))
    positions = asyncio.run(run_node_against([ghost + b"\x00\x00\x00\x02\xc1\xc1"], tmp_path))
    assert (positions["fills"], positions["quarantined"]) == (0, 1)
