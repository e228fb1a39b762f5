"""The ``Journal`` protocol: append-only event streams with optimistic concurrency."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from garrison._errors import InvalidConfig


@dataclass(frozen=True, slots=True)
class Ack:
    """A consumer group's offset moved to ``seq`` on ``stream``: committed with an append."""

    stream: str
    group: str
    seq: int


@runtime_checkable
class Journal(Protocol):
    """Durable, ordered event streams.

    Contracts every implementation keeps:

    - ``append`` is atomic for its batch: all events are stored or none.
      It succeeds only once the events are durable. ``expected_seq`` is the
      stream's highest sequence number the writer has seen; if the stream is
      elsewhere, ``SequenceConflict`` and nothing is written. Sequence
      numbers start at 1 and have no gaps. ``acks`` commit in the same
      transaction as the events (the effect and the consumer offset together).
    - ``read`` yields ``(seq, payload)`` in order, streaming in bounded batches.
    - Deleting events never lowers ``highest_seq``.
    """

    async def append(
        self, stream: str, events: Sequence[bytes], expected_seq: int, *, acks: Sequence[Ack] = ()
    ) -> int:
        """Append ``events`` after ``expected_seq``; returns the new highest seq."""
        ...

    def read(self, stream: str, after_seq: int = 0) -> AsyncGenerator[tuple[int, bytes], None]:
        """Events with seq > ``after_seq``, in order."""
        ...

    def read_batches(self, stream: str, after_seq: int = 0) -> AsyncGenerator[list[tuple[int, bytes]], None]:
        """The same events as ``read``, as lists of bounded size (for fast replay)."""
        ...

    async def highest_seq(self, stream: str) -> int:
        """The highest seq ever appended to ``stream`` (0 for a new stream)."""
        ...

    async def save_snapshot(self, stream: str, seq: int, state: bytes) -> None:
        """Store ``state`` as of ``seq``, replacing an older snapshot."""
        ...

    async def load_snapshot(self, stream: str) -> tuple[int, bytes] | None:
        """The latest snapshot ``(seq, state)``, or None."""
        ...

    async def delete_events(self, stream: str, up_to_seq: int) -> None:
        """Delete events with seq <= ``up_to_seq`` (keep a snapshot at or after it first)."""
        ...

    async def ack(self, stream: str, group: str, seq: int) -> None:
        """Move consumer ``group``'s offset on ``stream`` to ``seq`` (never backwards)."""
        ...

    async def acked_seq(self, stream: str, group: str) -> int:
        """The highest seq ``group`` has acknowledged on ``stream`` (0 if none)."""
        ...

    async def open(self) -> Journal:
        """Open (idempotent); the node opens its journal on entry."""
        ...

    async def close(self) -> None:
        """Finish queued writes and close; the node closes its journal at shutdown."""
        ...


def check_append(stream: str, events: object, expected_seq: object) -> None:
    """Validate an append's arguments, naming the field and value that is wrong."""
    check_stream(stream)
    check_events(stream, events)
    check_seq("expected_seq", expected_seq)


class ReadsInBatches:
    """``read`` one event at a time, for journals that implement ``read_batches``."""

    def read_batches(self, stream: str, after_seq: int = 0) -> AsyncGenerator[list[tuple[int, bytes]], None]:
        raise NotImplementedError

    async def read(self, stream: str, after_seq: int = 0) -> AsyncGenerator[tuple[int, bytes], None]:
        """Events after ``after_seq``, one ``(seq, payload)`` at a time, in order."""
        async for rows in self.read_batches(stream, after_seq):
            for row in rows:
                yield row


def check_stream(stream: object) -> str:
    if not isinstance(stream, str) or not stream:
        raise InvalidConfig("stream", stream, "a stream name is a non-empty string")
    return stream


def check_seq(field: str, seq: object) -> int:
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise InvalidConfig(field, seq, "a sequence number is an int >= 0")
    return seq


def check_events(stream: str, events: object) -> Sequence[bytes]:
    if not isinstance(events, Sequence) or isinstance(events, bytes | str):
        raise InvalidConfig("events", events, f"append to {stream!r} takes a sequence of bytes payloads")
    for index, payload in enumerate(events):
        if not isinstance(payload, bytes):
            raise InvalidConfig(
                f"events[{index}]", type(payload).__name__, f"append to {stream!r}: payloads must be bytes"
            )
    return events
