"""Damage anywhere in a journal file is detected or harmless, never a wrong replay.

A journal file is written once; each example flips bytes in a copy of it, or
cuts it short, and opens the copy: either a garrison error says the journal is
damaged (JournalCorrupt, or EventDecodeError for an event that no longer
decodes), or every stream replays exactly the events and snapshot written. A
changed event, snapshot or seq must never come back as if it were the original.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import sqlite3
import tempfile
import zlib
from contextlib import aclosing
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison._errors import EventDecodeError, JournalCorrupt
from garrison.persistence import EventCodec, SqliteJournal, replay_events


class Priced(msgspec.Struct, frozen=True, tag=True):
    order: str
    price: int
    qty: float


class Noted(msgspec.Struct, frozen=True, tag=True):
    text: str


CODEC = EventCodec([Priced, Noted])
STREAMS = ("orders", "positions", "notes")
DETECTED = (JournalCorrupt, EventDecodeError)


def written_events(stream: str) -> list[Any]:
    if stream == "notes":
        return [Noted(f"note {n} " + "x" * (n % 17)) for n in range(40)]
    return [Priced(f"{stream}-{n}", 100 + n, n / 4) for n in range(120)]


async def write_journal(path: Path) -> dict[str, Any]:
    """The template journal: three streams, a snapshot, a deleted prefix; what must replay."""
    expected: dict[str, Any] = {}
    async with SqliteJournal(path, read_batch=32) as journal:
        for stream in STREAMS:
            events = written_events(stream)
            seq = 0
            for start in range(0, len(events), 7):
                payloads = [CODEC.encode(event) for event in events[start : start + 7]]
                seq = await journal.append(stream, payloads, seq)
        await journal.save_snapshot("orders", 50, b"orders-state@50")
        await journal.delete_events("positions", 30)
    for stream in STREAMS:
        first = 31 if stream == "positions" else 1
        expected[stream] = list(enumerate(written_events(stream), 1))[first - 1 :]
    expected["snapshot"] = (50, b"orders-state@50")
    return expected


@functools.cache
def template() -> tuple[bytes, dict[str, Any]]:
    """The template file's bytes and what it replays (built once; not a fixture, so that a
    failing example does not print it)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "journal.db"
        expected = asyncio.run(write_journal(path))
        return path.read_bytes(), expected


async def replay_all(path: Path) -> dict[str, Any]:
    got: dict[str, Any] = {}
    async with SqliteJournal(path, read_batch=32) as journal:
        for stream in STREAMS:
            events: list[tuple[int, Any]] = []
            async with aclosing(replay_events(journal, stream, CODEC)) as replay:
                async for first_seq, decoded in replay:
                    events.extend(enumerate(decoded, first_seq))
            got[stream] = events
        got["snapshot"] = await journal.load_snapshot("orders")
    return got


def check_damaged_copy(content: bytes, expected: dict[str, Any]) -> None:
    directory = tempfile.mkdtemp()
    try:
        path = Path(directory) / "journal.db"
        path.write_bytes(content)
        try:
            got = asyncio.run(replay_all(path))
        except DETECTED:
            return
        assert got == expected
    finally:
        shutil.rmtree(directory)


SIZE = 2**16  # above the template's size: offsets past its end wrap around


@settings(max_examples=150, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, SIZE), st.integers(1, 255)), min_size=1, max_size=4))
def test_flipped_bytes_anywhere_are_detected_or_harmless(flips: list[tuple[int, int]]) -> None:
    content, expected = template()
    damaged = bytearray(content)
    for offset, mask in flips:
        damaged[offset % len(content)] ^= mask
    check_damaged_copy(bytes(damaged), expected)


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(1, SIZE))
def test_a_file_cut_short_anywhere_is_detected(cut: int) -> None:
    content, expected = template()
    check_damaged_copy(content[: len(content) - 1 - (cut % len(content))], expected)


def test_a_changed_snapshot_seq_is_detected() -> None:
    """The snapshot's seq is under its checksum: a snapshot read as of seq 51 instead of 50 would
    replay from the wrong event. A seq changed to any of these values is found (hypothesis once
    flipped it from 50 to 51 undetected, when only the state was checksummed)."""
    content, _ = template()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "journal.db"
        for seq in (0, 1, 49, 51, 52, 60, 119, 120, 2**31):
            path.write_bytes(content)
            with sqlite3.connect(path) as db:
                db.execute("UPDATE snapshots SET seq = ? WHERE stream = 'orders'", (seq,))
            try:
                asyncio.run(replay_all(path))
            except JournalCorrupt as error:
                assert (error.stream, error.seq) == ("orders", seq)
            else:
                raise AssertionError(f"a snapshot moved from seq 50 to {seq} was read as intact")


def test_a_snapshot_checksummed_before_the_seq_was_covered_still_loads() -> None:
    """A snapshot written by an earlier version carries the CRC of its state alone: it loads, as
    it did then, until the next snapshot replaces it."""
    content, expected = template()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "journal.db"
        path.write_bytes(content)
        with sqlite3.connect(path) as db:
            db.execute(
                "UPDATE snapshots SET crc = ? WHERE stream = 'orders'", (zlib.crc32(b"orders-state@50"),)
            )
        assert asyncio.run(replay_all(path)) == expected
