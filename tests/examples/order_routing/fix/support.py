"""Frames as a peer would write them, and a reader of frames for assertions."""

from __future__ import annotations

from examples.order_routing.fix.codec import FIX44, encode, sending_time
from examples.order_routing.fix.messages import FixMessageBase

T0 = 1_765_000_000.0
"""2025-12-06 05:46:40 UTC: the tests' wall clock starts here."""


def frame(
    message: FixMessageBase,
    seq: int,
    *,
    sender: str = "VENUE",
    target: str = "NODE",
    at: float = T0,
    poss_dup: bool = False,
    orig_sending_time: str | None = None,
    begin_string: str = FIX44,
) -> bytes:
    return encode(
        message,
        begin_string=begin_string,
        sender_comp_id=sender,
        target_comp_id=target,
        msg_seq_num=seq,
        sending_time_text=sending_time(at),
        poss_dup=poss_dup,
        orig_sending_time=orig_sending_time,
    )


def wire(text: str) -> bytes:
    """A frame written with '|' for SOH, as FIX texts print them."""
    return text.replace("|", "\x01").encode()


def pairs(raw: bytes) -> list[tuple[int, str]]:
    return [
        (int(tag), value.decode()) for tag, _, value in (p.partition(b"=") for p in raw.split(b"\x01")[:-1])
    ]


def fields(raw: bytes) -> dict[int, str]:
    return dict(pairs(raw))


def msg_types(frames: list[bytes]) -> list[str]:
    return [fields(f)[35] for f in frames]
