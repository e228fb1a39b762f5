"""Compaction of an intent log: its snapshot format and the window of settled intents it keeps.

A compaction stores, as the stream's snapshot at seq S, what the log holds at S
that is still needed: every open intent, and the most recent settled ones
(``retain_settled`` of them at least) so that their ids stay recognised as used;
then the events up to S are deleted. Opening the log reads that snapshot and the
events after it: O(open + retained), whatever the history.

Both lists are stored in chunks of at most ``CHUNK`` intents, each one msgpack
array: a chunk of settled intents is encoded once, when it is formed, and copied
as it is into every later snapshot until it leaves the window; chunks are encoded
between two yields to the loop. The snapshot is a durable format (tag
``garrison.intent.snapshot``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from garrison._errors import EventDecodeError
from garrison.persistence._codec import StateCodec
from garrison.persistence._intent_model import Intent, IntentState

P = TypeVar("P")

CHUNK = 1024
"""Intents per stored chunk (one msgpack array, encoded or decoded between two yields)."""


class StoredIntent(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An intent as a snapshot stores it: its payload msgpack-encoded, as its record held it."""

    id: str
    payload: bytes
    state: IntentState
    detail: str = ""
    attempts: int = 0


class IntentSnapshot(msgspec.Struct, frozen=True, tag="garrison.intent.snapshot"):
    """An intent log's snapshot: ``open`` intents in the order recorded, ``settled`` ones in
    the order they settled (oldest first), each as chunks of StoredIntent arrays."""

    open: list[msgspec.Raw]
    settled: list[msgspec.Raw]


_SNAPSHOT_CODEC = StateCodec(IntentSnapshot)
_chunk_decoder = msgspec.msgpack.Decoder(list[StoredIntent])
_chunk_encoder = msgspec.msgpack.Encoder()


def decode_snapshot(payload: bytes, stream: str, seq: int) -> tuple[list[msgspec.Raw], list[msgspec.Raw]]:
    """The open and settled chunks of a stored snapshot, not decoded yet.
    Raises EventDecodeError naming the stream and the snapshot's seq."""
    snapshot: IntentSnapshot = _SNAPSHOT_CODEC.decode(payload, stream, seq)
    return snapshot.open, snapshot.settled


def decode_chunk(chunk: msgspec.Raw, stream: str, seq: int) -> list[StoredIntent]:
    """One stored chunk's intents; raises EventDecodeError naming the stream and the snapshot's seq."""
    try:
        return _chunk_decoder.decode(chunk)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise EventDecodeError(stream, seq, error, "schema") from error


def encode_snapshot(open_chunks: Iterable[bytes], settled_chunks: Iterable[bytes]) -> bytes:
    """The stored form of a snapshot made of already encoded chunks (copied, not re-encoded)."""
    return _SNAPSHOT_CODEC.encode(
        IntentSnapshot(
            [msgspec.Raw(chunk) for chunk in open_chunks], [msgspec.Raw(c) for c in settled_chunks]
        )
    )


async def encode_chunks(
    intents: Sequence[Intent[Any]], encode_payload: Callable[[Any], bytes]
) -> list[bytes]:
    """``intents`` as stored chunks, yielding to the loop between two."""
    chunks: list[bytes] = []
    for start in range(0, len(intents), CHUNK):
        if start:
            await asyncio.sleep(0)
        chunks.append(
            _chunk_encoder.encode(
                [
                    StoredIntent(
                        intent.id,
                        encode_payload(intent.payload),
                        intent.state,
                        intent.detail,
                        intent.attempts,
                    )
                    for intent in intents[start : start + CHUNK]
                ]
            )
        )
    return chunks


Settled = Intent[Any] | StoredIntent
"""A settled intent the window holds: as the live log knew it, or as a snapshot stored it."""


@dataclass(slots=True)
class _Chunk:
    encoded: bytes
    entries: Sequence[Settled]


@dataclass(slots=True)
class SettledWindow(Generic[P]):
    """The settled intents an intent log still recognises by id, newest last.

    ``index`` maps an id to its settled intent (every one of ``chunks``', and
    those captured by a compaction whose chunks are not encoded yet). A chunk
    leaves once the newer ones hold ``keep`` intents or more without it.
    """

    keep: int
    index: dict[str, Settled] = field(default_factory=dict)
    chunks: deque[_Chunk] = field(default_factory=deque)
    count: int = 0
    """Intents in ``chunks``."""

    def capture(self, settled: Sequence[Intent[P]]) -> Sequence[Intent[P]]:
        """Index intents that just settled (at most the newest ``keep``); returns those kept,
        for ``add_chunk`` once they are encoded."""
        kept = settled[len(settled) - self.keep :] if len(settled) > self.keep else settled
        index = self.index
        for intent in kept:
            index[intent.id] = intent
        return kept

    def add_chunk(self, encoded: bytes, entries: Sequence[Settled]) -> None:
        """Append an encoded chunk whose entries are indexed already, then let the oldest go."""
        self.chunks.append(_Chunk(encoded, entries))
        self.count += len(entries)
        self.expire()

    def load_chunk(self, encoded: bytes, entries: list[StoredIntent]) -> None:
        """Append a chunk read from a snapshot (oldest first)."""
        index = self.index
        for entry in entries:
            index[entry.id] = entry
        self.chunks.append(_Chunk(encoded, entries))
        self.count += len(entries)

    def expire(self) -> None:
        chunks, index = self.chunks, self.index
        while chunks and self.count - len(chunks[0].entries) >= self.keep:
            oldest = chunks.popleft()
            self.count -= len(oldest.entries)
            for entry in oldest.entries:
                if index.get(entry.id) is entry:
                    del index[entry.id]

    def encoded(self) -> list[bytes]:
        return [chunk.encoded for chunk in self.chunks]

    def get(self, intent_id: str, decode: Callable[[bytes], P]) -> Intent[P] | None:
        entry = self.index.get(intent_id)
        if entry is None or type(entry) is not StoredIntent:
            return entry  # type: ignore[return-value]  # an Intent[P] captured by this log
        return Intent(entry.id, decode(entry.payload), entry.state, entry.detail, entry.attempts)

    def state_of(self, intent_id: str) -> IntentState | None:
        entry = self.index.get(intent_id)
        return None if entry is None else entry.state
