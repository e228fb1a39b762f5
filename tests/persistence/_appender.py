"""Child process of the crash tests: appends to a SqliteJournal until it is killed.

Usage: ``python _appender.py PATH RUN SEED PRODUCERS SYNCHRONOUS``

Opens the journal at PATH and prints ``READY``. Then PRODUCERS tasks each
append batches of 1-20 events (now and then a batch over one INSERT's row
limit, or one carrying a consumer ack) to their own stream ``<RUN>/p<n>``,
and two more tasks race for the stream ``shared`` with optimistic
concurrency (on SequenceConflict they catch up and try again). Every event
is a ``Marker`` naming its stream, batch and place in the batch. Only after
an append has returned, the line ``ACK <stream> <highest> <batch>`` is
written to stdout, flushed. Some producers also save snapshots of
``(stream, seq)``. It never stops on its own: the parent SIGKILLs it.
"""

from __future__ import annotations

import asyncio
import random
import sys

import msgspec

from garrison._errors import SequenceConflict
from garrison.persistence import Ack, SqliteJournal

BIG_BATCH = 10_500  # over MAX_ROWS_PER_STATEMENT: several INSERTs in one transaction
SHARED = "shared"
ACK_GROUP = "crash-test"


class Marker(msgspec.Struct, frozen=True, array_like=True):
    stream: str
    batch: str
    index: int
    size: int


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def produce(journal: SqliteJournal, stream: str, name: str, rng: random.Random) -> None:
    seen = await journal.highest_seq(stream)
    for counter in range(1_000_000_000):
        size = BIG_BATCH if rng.random() < 0.005 else rng.randint(1, 20)
        batch = f"{name}-{counter}"
        payloads = [msgspec.msgpack.encode(Marker(stream, batch, i, size)) for i in range(size)]
        acks = [Ack(stream, ACK_GROUP, seen)] if rng.random() < 0.2 else []
        while True:
            try:
                seen = await journal.append(stream, payloads, seen, acks=acks)
                break
            except SequenceConflict:
                seen = await journal.highest_seq(stream)
                acks = [Ack(stream, ACK_GROUP, seen)] if acks else []
        say(f"ACK {stream} {seen} {batch}")
        if rng.random() < 0.1:
            await journal.save_snapshot(stream, seen, msgspec.msgpack.encode((stream, seen)))


async def main(path: str, run: str, seed: int, producers: int, synchronous: str) -> None:
    rng = random.Random(seed)
    async with SqliteJournal(path, synchronous=synchronous) as journal:
        say("READY")
        tasks = [
            produce(journal, f"{run}/p{n}", f"{run}/p{n}", random.Random(rng.random()))
            for n in range(producers)
        ]
        tasks += [produce(journal, SHARED, f"{run}/s{n}", random.Random(rng.random())) for n in range(2)]
        await asyncio.gather(*tasks)


if __name__ == "__main__":
    path, run, seed, producers, synchronous = sys.argv[1:6]
    asyncio.run(main(path, run, int(seed), int(producers), synchronous))
