"""Crash tests with real processes: an appender is SIGKILLed at random moments, again and again.

After every kill the journal is opened and checked: every acknowledged
append is there at the seq it was acknowledged with, every stream's seqs
run 1..N without gaps, every batch is whole (all its events, in order, or
none), no batch is stored twice, snapshots and consumer offsets never point
past the stream. The next appender continues on the same file.

The kill moments come from a seeded random (the seed is in every failure
message): after a random number of acknowledgements (sometimes none, so a
kill lands in the first commit), while up to eight producers keep appending.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from garrison._errors import JournalCorrupt
from garrison.persistence import SqliteJournal
from garrison.testing import send_signal

from ._appender import ACK_GROUP, SHARED, Marker
from ._model import read_all

APPENDER = Path(__file__).with_name("_appender.py")
STEP_TIMEOUT = 20.0  # bounds each wait on a child: its start, its ACKs, its exit


@dataclass(frozen=True)
class Acknowledged:
    stream: str
    highest: int
    batch: str


def parse(lines: bytes) -> list[Acknowledged]:
    acks = []
    for line in lines.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            continue  # a line cut off by the kill was never acknowledged
        word, stream, highest, batch = line.decode().split()
        assert word == "ACK", line
        acks.append(Acknowledged(stream, int(highest), batch))
    return acks


class Appender:
    """One child process; always reaped, whatever happens in the test."""

    def __init__(self, path: Path, run: str, seed: int, producers: int, synchronous: str) -> None:
        self.arguments = [str(path), run, str(seed), str(producers), synchronous]
        self.stderr_path = path.with_name(f"{run.replace('/', '_')}.stderr")
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.stderr_path.open("wb") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(APPENDER),
                *self.arguments,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    async def run_until_killed(self, acks_before_kill: int) -> list[Acknowledged]:
        """Wait for READY and ``acks_before_kill`` ACKs, SIGKILL, then collect the ACKs still in the pipe."""
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        acks: list[Acknowledged] = []
        async with asyncio.timeout(STEP_TIMEOUT):
            ready = await stdout.readline()
            assert ready == b"READY\n", f"appender did not start: {ready!r}\n{self.stderr()}"
            while len(acks) < acks_before_kill:
                line = await stdout.readline()
                assert line, f"appender exited on its own:\n{self.stderr()}"
                acks += parse(line)
        send_signal(self.process, signal.SIGKILL)
        async with asyncio.timeout(STEP_TIMEOUT):
            acks += parse(await stdout.read())
            returncode = await self.process.wait()
        assert returncode == -signal.SIGKILL, f"exit {returncode}:\n{self.stderr()}"
        return acks

    async def reap(self) -> None:
        if self.process is not None and send_signal(self.process, signal.SIGKILL):
            await asyncio.wait_for(self.process.wait(), STEP_TIMEOUT)


async def check_journal(path: Path, acknowledged: list[Acknowledged], context: str) -> int:
    """Open the journal after a crash and check it; returns the number of events stored."""
    streams = {ack.stream for ack in acknowledged} | {SHARED}
    stored = 0
    async with SqliteJournal(path) as journal:
        for stream in sorted(streams):
            rows = await read_all(journal, stream)
            stored += len(rows)
            where = f"{context}, stream {stream!r}"
            seqs = [seq for seq, _ in rows]
            assert seqs == list(range(1, len(rows) + 1)), f"{where}: seqs have gaps"
            assert await journal.highest_seq(stream) == len(rows), where
            markers = [msgspec.msgpack.decode(payload, type=Marker) for _, payload in rows]
            last_of_batch = check_whole_batches(markers, stream, where)
            for ack in (a for a in acknowledged if a.stream == stream):
                assert last_of_batch.get(ack.batch) == ack.highest, (
                    f"{where}: acknowledged batch {ack.batch} at seq {ack.highest} is not there "
                    f"(stored ends at {last_of_batch.get(ack.batch)}, stream has {len(rows)})"
                )
            snapshot = await journal.load_snapshot(stream)
            if snapshot is not None:
                seq, state = snapshot
                assert seq <= len(rows), f"{where}: snapshot at {seq} is past the end"
                assert msgspec.msgpack.decode(state) == [stream, seq], where
                assert seq == 0 or markers[seq - 1].index == markers[seq - 1].size - 1, where
            assert await journal.acked_seq(stream, ACK_GROUP) <= len(rows), where
    return stored


def check_whole_batches(markers: list[Marker], stream: str, where: str) -> dict[str, int]:
    """Every batch is its events 0..size-1 back to back; returns each batch's last seq."""
    last_of_batch: dict[str, int] = {}
    position = 0
    while position < len(markers):
        first = markers[position]
        assert first.index == 0, f"{where}: seq {position + 1} starts inside batch {first.batch}"
        batch = markers[position : position + first.size]
        expected = [Marker(stream, first.batch, index, first.size) for index in range(first.size)]
        assert batch == expected, f"{where}: batch {first.batch} at seq {position + 1} is torn"
        assert first.batch not in last_of_batch, f"{where}: batch {first.batch} is stored twice"
        position += first.size
        last_of_batch[first.batch] = position
    return last_of_batch


async def kill_repeatedly(
    tmp_path: Path,
    *,
    seed: int,
    rounds: int,
    processes: int,
    producers: int,
    synchronous: str = "FULL",
) -> tuple[int, int]:
    """``rounds`` times: start ``processes`` appenders on one file, SIGKILL each at a random
    moment, check the journal. Returns (kills, events stored at the end)."""
    rng = random.Random(seed)
    path = tmp_path / "crash.db"
    acknowledged: list[Acknowledged] = []
    kills = 0
    stored = 0
    for round_index in range(rounds):
        appenders = [
            Appender(path, f"r{round_index}.{n}", rng.randrange(2**32), producers, synchronous)
            for n in range(processes)
        ]
        targets = [0 if rng.random() < 0.15 else rng.randint(1, 40) for _ in appenders]
        context = f"seed {seed}, round {round_index}, kill after ACKs {targets}"
        try:
            for appender in appenders:
                await appender.start()
            results = await asyncio.gather(
                *(
                    appender.run_until_killed(target)
                    for appender, target in zip(appenders, targets, strict=True)
                )
            )
        finally:
            for appender in appenders:
                await appender.reap()
        kills += len(appenders)
        for acks in results:
            acknowledged += acks
        stored = await check_journal(path, acknowledged, context)
    assert len(acknowledged) > 0
    return kills, stored


SEED = int(os.environ.get("GARRISON_CRASH_SEED", "20261128"))


async def test_an_appender_killed_at_random_moments_loses_no_acknowledged_append_and_tears_no_batch(
    tmp_path: Path,
) -> None:
    kills, stored = await kill_repeatedly(tmp_path, seed=SEED, rounds=20, processes=1, producers=6)

    assert kills == 20
    assert stored > 0


async def test_with_synchronous_normal_a_process_crash_still_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    """NORMAL may lose the last commits on power loss, never on a process crash."""
    kills, _ = await kill_repeatedly(
        tmp_path, seed=SEED + 1, rounds=8, processes=1, producers=4, synchronous="NORMAL"
    )

    assert kills == 8


async def test_two_appender_processes_on_one_file_killed_at_random_never_interleave_a_stream(
    tmp_path: Path,
) -> None:
    """Both processes also race for one stream through separate connections."""
    kills, _ = await kill_repeatedly(tmp_path, seed=SEED + 2, rounds=12, processes=2, producers=3)

    assert kills == 24


@pytest.mark.parametrize("where", ["the header", "the events index"])
async def test_a_journal_damaged_after_a_crash_is_reported_not_silently_read(
    tmp_path: Path, where: str
) -> None:
    """Not a crash SQLite survives, but the check that follows one: a page overwritten on disk."""
    path = tmp_path / "crash.db"
    await kill_repeatedly(tmp_path, seed=SEED + 3, rounds=1, processes=1, producers=2)
    damage(path, where)

    with pytest.raises(JournalCorrupt, match="not a SQLite database, or damaged"):
        async with SqliteJournal(path) as journal:
            await read_all(journal, SHARED)


def damage(path: Path, where: str) -> None:
    """Overwrite one page with 0xFF (no valid page type, so SQLite always notices)."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        (index_root,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'events_by_stream'"
        ).fetchone()
    finally:
        db.close()
    page = 1 if where == "the header" else index_root
    with path.open("r+b") as file:
        file.seek((page - 1) * page_size)
        file.write(b"\xff" * page_size)
