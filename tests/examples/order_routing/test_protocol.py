"""Framing: whole frames out of a byte stream however it is cut into reads."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.order_routing.protocol import (
    MAX_FRAME,
    FrameError,
    FrameSplitter,
    OrderAccepted,
    broker_decoder,
    encode_frame,
)


@given(
    ids=st.lists(st.text(max_size=40), min_size=1, max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=2_000), max_size=10),
)
def test_frames_come_out_whole_and_in_order_wherever_the_reads_cut_the_stream(
    ids: list[str], cuts: list[int]
) -> None:
    messages = [OrderAccepted(cid, f"B-{index}") for index, cid in enumerate(ids)]
    stream = b"".join(encode_frame(message) for message in messages)
    bounds = sorted({0, len(stream), *(cut for cut in cuts if cut < len(stream))})
    splitter = FrameSplitter()
    payloads = []
    for start, end in itertools.pairwise(bounds):
        payloads.extend(splitter.split(stream[start:end]))
    splitter.end()  # nothing left over
    assert [broker_decoder.decode(payload) for payload in payloads] == messages


def test_an_oversized_frame_is_refused() -> None:
    with pytest.raises(FrameError, match="exceeds MAX_FRAME"):
        FrameSplitter().split((MAX_FRAME + 1).to_bytes(4, "big") + b"x")


@pytest.mark.parametrize(
    ("tail", "where"), [(b"\x00\x00", "frame header"), (b"\x00\x00\x00\x05ab", "inside a frame (2 of 5")]
)
def test_a_stream_that_ends_inside_a_frame_is_an_error(tail: bytes, where: str) -> None:
    splitter = FrameSplitter()
    frame = encode_frame(OrderAccepted("c-1", "B-1"))
    assert len(splitter.split(frame + tail)) == 1
    with pytest.raises(FrameError, match=re.escape(where)):
        splitter.end()
