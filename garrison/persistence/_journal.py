"""The ``Journal`` protocol: append-only event streams with optimistic concurrency."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from garrison._errors import InvalidConfig
from garrison._validate import check_count


@dataclass(frozen=True, slots=True)
class Ack:
    """A consumer group's offset moved to ``seq`` on ``stream``: committed with an append."""

    stream: str
    group: str
    seq: int


@dataclass(frozen=True, slots=True)
class PackedEvents:
    """A run of consecutive events of one stream, read for replay (``Journal.read_packed``).

    Its events have seqs ``first_seq`` .. ``last_seq`` (``count`` >= 1, no
    gaps). At least one of two forms is set:

    - ``payloads``: the ``count`` stored payloads concatenated in seq order,
      with nothing in between (a stored value that is not bytes adds its
      text), for a codec to decode in one call (``EventCodec.decode_packed``);
    - ``rows``: the same events as ``read_batches`` yields them, ``(seq,
      payload)`` in seq order, when the journal has them at hand (a payload
      is then whatever the store holds, bytes or not).

    When ``payloads`` does not decode as exactly ``count`` events, ``rows``
    (or ``read_batches`` over the same seqs) is the authority on which event
    is bad: only row by row can a bad event be named.
    """

    first_seq: int
    count: int
    payloads: bytes | None
    rows: Sequence[tuple[int, bytes]] | None = None

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.count - 1


@dataclass(frozen=True, slots=True)
class QuarantinedEvent:
    """An event set aside by ``quarantine``: out of its stream's replay, kept as it was stored."""

    stream: str
    seq: int
    payload: bytes
    reason: str
    at: float
    """When it was set aside (wall-clock seconds since the epoch)."""


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """One stream of a journal, as ``garrison journal list`` shows it."""

    stream: str
    events: int
    """Events stored (deleted and quarantined ones not counted)."""
    first_seq: int
    """The first stored event's seq (0 if none is stored)."""
    highest_seq: int
    snapshot_seq: int | None
    quarantined: int


ProblemKind = Literal["file", "checksum", "missing", "snapshot", "not-bytes", "undecodable", "key-type"]


@dataclass(frozen=True, slots=True)
class JournalProblem:
    """One thing ``verify`` found wrong in a journal's storage.

    ``kind``: ``file`` (the store itself is damaged), ``checksum`` (an event's bytes
    are not what was written), ``missing`` (events gone from the middle of a stream,
    neither deleted nor quarantined), ``snapshot`` (a snapshot's checksum or seq),
    ``not-bytes`` (a stored value that a journal never writes), ``undecodable`` (an
    event that does not decode as a registered type: ``garrison journal verify
    --types``), ``key-type`` (a Redis key of the wrong type)."""

    kind: ProblemKind
    stream: str | None
    seq: int | None
    detail: str

    def __str__(self) -> str:
        where = (
            ""
            if self.stream is None
            else f"stream {self.stream!r}" + ("" if self.seq is None else f" seq {self.seq}")
        )
        return f"{self.kind}: {where}{': ' if where else ''}{self.detail}"


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
        """The same events as ``read``, as lists of bounded size."""
        ...

    def read_packed(self, stream: str, after_seq: int = 0) -> AsyncGenerator[PackedEvents, None]:
        """The same events as ``read``, as runs of consecutive events for replay.

        Runs come in seq order, each of at most the journal's read batch size;
        events appended or deleted while the read goes on are seen or not as
        ``read_batches`` would see them. Used through ``replay_events``.
        """
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

    async def replace_snapshot(self, stream: str, expected_seq: int | None, seq: int, state: bytes) -> bool:
        """Store ``state`` as of ``seq`` only if the stored snapshot is still the one at
        ``expected_seq`` (None: there is none), in one atomic step; True if it was stored.

        For writers that share a stream: a snapshot built on a state another writer has
        since replaced is refused rather than saved over theirs."""
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

    async def quarantined(self, stream: str) -> list[QuarantinedEvent]:
        """The events of ``stream`` set aside by ``quarantine``, in seq order ([] if none).

        Replay skips their seqs; ``highest_seq`` still counts them."""
        ...

    async def open(self) -> Journal:
        """Open (idempotent); the node opens its journal on entry."""
        ...

    async def close(self) -> None:
        """Finish queued writes and close; the node closes its journal at shutdown."""
        ...


def check_append(stream: str, events: object, expected_seq: object) -> None:
    """Validate an append's arguments, naming the field and value that is wrong."""
    # Every append pays this: the usual shapes are checked by exact type first
    # (an ABC isinstance per call was a sixth of a group commit's loop time).
    if (
        type(stream) is str
        and stream
        and type(expected_seq) is int
        and expected_seq >= 0
        and (type(events) is list or type(events) is tuple)
    ):
        for payload in events:
            if type(payload) is not bytes:
                break
        else:
            return
    check_stream(stream)
    check_events(stream, events)
    check_seq("expected_seq", expected_seq)


class ReadsInBatches:
    """``read`` one event at a time and ``read_packed`` in runs, for journals that implement
    ``read_batches``."""

    def read_batches(self, stream: str, after_seq: int = 0) -> AsyncGenerator[list[tuple[int, bytes]], None]:
        raise NotImplementedError

    async def read(self, stream: str, after_seq: int = 0) -> AsyncGenerator[tuple[int, bytes], None]:
        """Events after ``after_seq``, one ``(seq, payload)`` at a time, in order."""
        async for rows in self.read_batches(stream, after_seq):
            for row in rows:
                yield row

    async def read_packed(self, stream: str, after_seq: int = 0) -> AsyncGenerator[PackedEvents, None]:
        """Each batch of ``read_batches`` as runs of consecutive events, rows kept."""
        async for rows in self.read_batches(stream, after_seq):
            for run in pack_rows(rows):
                yield run


def pack_rows(rows: Sequence[tuple[int, bytes]]) -> Iterator[PackedEvents]:
    """``(seq, payload)`` rows in seq order as PackedEvents, one per run of consecutive seqs.

    Every run keeps its rows; its payloads are concatenated only if they are
    all bytes (anything else can only be decoded, and rejected, row by row).
    """
    for run in consecutive_runs(rows):
        try:
            packed: bytes | None = b"".join([payload for _, payload in run])
        except TypeError:
            packed = None
        yield PackedEvents(run[0][0], len(run), packed, run)


def consecutive_runs(rows: Sequence[tuple[int, bytes]]) -> list[Sequence[tuple[int, bytes]]]:
    """Rows in seq order (as every journal reads them), split where a seq is skipped."""
    if not rows:
        return []
    if rows[-1][0] - rows[0][0] == len(rows) - 1:
        return [rows]
    runs: list[Sequence[tuple[int, bytes]]] = []
    start = 0
    for index in range(1, len(rows)):
        if rows[index][0] != rows[index - 1][0] + 1:
            runs.append(rows[start:index])
            start = index
    runs.append(rows[start:])
    return runs


def check_stream(stream: object) -> str:
    if not isinstance(stream, str) or not stream:
        raise InvalidConfig("stream", stream, "a stream name is a non-empty string")
    return stream


def check_positive_int(field: str, value: object) -> int:
    check_count(field, value)
    return value  # type: ignore[return-value]  # an int >= 1: checked above


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
