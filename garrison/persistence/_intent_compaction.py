"""Compaction of an intent log: its snapshot format and the window of settled intents it keeps.

A compaction stores, as the stream's snapshot at seq S, what the log holds at S
that is still needed, then deletes the events up to S. Open intents go into the
snapshot itself. Settled ones that the log keeps known (the window: the
``retain_settled`` most recent at least) go, once, to a second stream, the
settled stream (``<stream>.settled``), one event per chunk of at most ``CHUNK``
intents; the snapshot names the seqs of that stream the window spans, and the
chunks before it are deleted (or kept, as an archive). So every settled intent
is written once more, never again per compaction, and opening the log reads the
snapshot, the window's chunks and the events after S: O(open + window).

Both are durable formats: the snapshot is tagged ``garrison.intent.snapshot``,
a chunk ``garrison.intent.settled``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from garrison._errors import EventDecodeError
from garrison.persistence._codec import EventCodec, StateCodec
from garrison.persistence._intent_model import Intent, IntentState

P = TypeVar("P")

CHUNK = 1024
"""Intents per stored chunk (one msgpack array, encoded or decoded between two yields)."""


class StoredIntent(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An intent as a snapshot or a chunk stores it: its payload msgpack-encoded, as its record held it."""

    id: str
    payload: bytes
    state: IntentState
    detail: str = ""
    attempts: int = 0


class SettledChunk(msgspec.Struct, frozen=True, gc=False, tag="garrison.intent.settled"):
    """One event of a settled stream: intents in the order they settled."""

    intents: list[StoredIntent]


class IntentSnapshot(msgspec.Struct, frozen=True, tag="garrison.intent.snapshot"):
    """An intent log's snapshot: its ``open`` intents in the order recorded, as chunks of
    StoredIntent arrays, and the seqs of its settled stream that hold the window
    (``settled_from`` to ``settled_through``; none when ``settled_from > settled_through``)."""

    open: list[msgspec.Raw]
    settled_from: int = 1
    settled_through: int = 0


SETTLED_CODEC = EventCodec([SettledChunk])
_SNAPSHOT_CODEC = StateCodec(IntentSnapshot)
_chunk_decoder = msgspec.msgpack.Decoder(list[StoredIntent])
_chunk_encoder = msgspec.msgpack.Encoder()


def settled_stream(stream: str) -> str:
    """The settled stream of the intent log on ``stream``."""
    return f"{stream}.settled"


def decode_snapshot(payload: bytes, stream: str, seq: int) -> IntentSnapshot:
    """A stored snapshot, its open chunks not decoded yet. Raises EventDecodeError naming
    the stream and the snapshot's seq."""
    snapshot: IntentSnapshot = _SNAPSHOT_CODEC.decode(payload, stream, seq)
    return snapshot


def decode_chunk(chunk: msgspec.Raw, stream: str, seq: int) -> list[StoredIntent]:
    """One open chunk's intents; raises EventDecodeError naming the stream and the snapshot's seq."""
    try:
        return _chunk_decoder.decode(chunk)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise EventDecodeError(stream, seq, error, "schema") from error


def encode_snapshot(open_chunks: Iterable[bytes], settled_from: int, settled_through: int) -> bytes:
    """The stored form of a snapshot whose open intents are already encoded in chunks."""
    return _SNAPSHOT_CODEC.encode(
        IntentSnapshot([msgspec.Raw(chunk) for chunk in open_chunks], settled_from, settled_through)
    )


def _stored(intent: Intent[Any] | StoredIntent, encode_payload: Callable[[Any], bytes]) -> StoredIntent:
    if type(intent) is StoredIntent:
        return intent
    return StoredIntent(
        intent.id, encode_payload(intent.payload), intent.state, intent.detail, intent.attempts
    )


async def encode_chunks(
    intents: Sequence[Intent[Any] | StoredIntent], encode_payload: Callable[[Any], bytes], *, settled: bool
) -> list[bytes]:
    """``intents`` as stored chunks (SettledChunk events when ``settled``, else snapshot
    chunks), yielding to the loop between two."""
    chunks: list[bytes] = []
    for start in range(0, len(intents), CHUNK):
        if start:
            await asyncio.sleep(0)
        stored = [_stored(intent, encode_payload) for intent in intents[start : start + CHUNK]]
        chunks.append(_chunk_encoder.encode(SettledChunk(stored) if settled else stored))
    return chunks


Settled = Intent[Any] | StoredIntent
"""A settled intent the window holds: as the live log knew it, or as a snapshot stored it."""


@dataclass(slots=True)
class _Chunk:
    seq: int
    """Its seq in the settled stream."""
    entries: Sequence[Settled]


@dataclass(slots=True)
class SettledWindow(Generic[P]):
    """The settled intents an intent log still recognises by id, newest last.

    ``index`` maps an id to its settled intent: those of ``chunks`` (stored in
    the settled stream), then ``unsaved`` (captured by a compaction, not stored
    yet). A chunk leaves once the newer ones hold ``keep`` intents or more
    without it.
    """

    keep: int
    archive: bool = False
    """Every settled intent is stored (the settled stream is an archive), not only the newest ``keep``."""
    index: dict[str, Settled] = field(default_factory=dict)
    chunks: deque[_Chunk] = field(default_factory=deque)
    count: int = 0
    """Intents in ``chunks``."""
    unsaved: list[Settled] = field(default_factory=list)
    through: int = 0
    """The seq of the settled stream's last chunk this window has seen."""

    def capture(self, settled: Sequence[Intent[P]]) -> None:
        """Index intents that just settled; the newest ``keep`` of the unsaved ones are kept
        (all of them for an archive)."""
        index, unsaved = self.index, self.unsaved
        for intent in settled:
            index[intent.id] = intent
        unsaved.extend(settled)
        if len(unsaved) > self.keep and not self.archive:
            dropped = len(unsaved) - self.keep
            for entry in unsaved[:dropped]:
                if index.get(entry.id) is entry:
                    del index[entry.id]
            del unsaved[:dropped]

    def saved(self, entries: Sequence[Settled], last_seq: int) -> None:
        """``entries`` (the first of ``unsaved``) are stored, in chunks of CHUNK, the last at ``last_seq``."""
        first_seq = last_seq - (len(entries) + CHUNK - 1) // CHUNK + 1
        for offset, start in enumerate(range(0, len(entries), CHUNK)):
            self._append(first_seq + offset, entries[start : start + CHUNK])
        del self.unsaved[: len(entries)]
        self.through = max(self.through, last_seq)
        self.expire()

    def load_chunk(self, seq: int, entries: list[StoredIntent]) -> None:
        """Append a chunk read from the settled stream (oldest first)."""
        index = self.index
        for entry in entries:
            index[entry.id] = entry
        self._append(seq, entries)
        self.through = seq

    def _append(self, seq: int, entries: Sequence[Settled]) -> None:
        self.chunks.append(_Chunk(seq, entries))
        self.count += len(entries)

    def expire(self) -> None:
        chunks, index = self.chunks, self.index
        while chunks and self.count - len(chunks[0].entries) >= self.keep:
            oldest = chunks.popleft()
            self.count -= len(oldest.entries)
            for entry in oldest.entries:
                if index.get(entry.id) is entry:
                    del index[entry.id]

    @property
    def settled_from(self) -> int:
        """The seq of the settled stream's oldest chunk kept (``through + 1`` when none is)."""
        return self.chunks[0].seq if self.chunks else self.through + 1

    def get(self, intent_id: str, decode: Callable[[bytes], P]) -> Intent[P] | None:
        entry = self.index.get(intent_id)
        if entry is None or type(entry) is not StoredIntent:
            return entry  # type: ignore[return-value]  # an Intent[P] captured by this log
        return Intent(entry.id, decode(entry.payload), entry.state, entry.detail, entry.attempts)

    def state_of(self, intent_id: str) -> IntentState | None:
        entry = self.index.get(intent_id)
        return None if entry is None else entry.state
