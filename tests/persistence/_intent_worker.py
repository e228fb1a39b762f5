"""Subprocess helper for the intent-log and durable-stream tests.

Run as ``python _intent_worker.py MODE ARGS...``. Every line it prints
states something that was durable *before* the print (an acknowledgement),
so a test that SIGKILLs it at any moment knows what must survive.

Modes:

- ``ids JSON``: print, as JSON, ``deterministic_id(*parts, length=, prefix=)``
  for each ``[parts, length, prefix]`` in JSON.
- ``intents DB COUNT``: record intents ``client_order_id("strat-1", i)`` for
  i < COUNT (in concurrent groups) and move each RECORDED one to SENDING,
  printing ``recorded ID`` / ``sending ID`` after each durable write.
- ``consume DB``: drain the ``orders`` stream as group ``executor``; for each
  entry print ``read SEQ``, then append its effect to ``effects`` with the ack
  in the same transaction and print ``effect SEQ``.
- ``produce DB TAG COUNT``: append ``TAG-i`` for i < COUNT to ``orders``, one
  append per payload, then print ``produced``.
"""

from __future__ import annotations

import asyncio
import json
import sys

import msgspec

from garrison.persistence import (
    DurableStream,
    IntentLog,
    IntentState,
    SqliteJournal,
    client_order_id,
    deterministic_id,
)


class Order(msgspec.Struct, frozen=True):
    symbol: str
    quantity: int


def say(line: str) -> None:
    print(line, flush=True)


async def record_intents(path: str, count: int) -> None:
    async with SqliteJournal(path) as journal:
        log = await IntentLog(journal, "intents", Order).open()
        say(f"opened {len(log)}")

        async def one(index: int) -> None:
            intent_id = client_order_id("strat-1", index)
            intent = await log.record(intent_id, Order("ACME", index))
            say(f"recorded {intent_id}")
            if intent.state is IntentState.RECORDED:
                await log.move(intent_id, IntentState.SENDING)
            say(f"sending {intent_id}")

        # Groups of varying size: some records share a commit, some do not.
        index = 0
        size = 1
        while index < count:
            await asyncio.gather(*(one(i) for i in range(index, min(count, index + size))))
            index += size
            size = size % 5 + 1
        say("done")


async def consume(path: str) -> None:
    async with SqliteJournal(path) as journal:
        group = DurableStream(journal, "orders").group("executor", batch=7)
        effects = await journal.highest_seq("effects")
        say(f"resumed {await journal.acked_seq('orders', 'executor')}")
        while deliveries := await group.read():
            for delivery in deliveries:
                say(f"read {delivery.seq}")
                effects = await journal.append(
                    "effects", [str(delivery.seq).encode()], effects, acks=[group.ack_marker(delivery.seq)]
                )
                group.acked(delivery.seq)
                say(f"effect {delivery.seq}")
        say("done")


async def produce(path: str, tag: str, count: int) -> None:
    async with SqliteJournal(path) as journal:
        stream = DurableStream(journal, "orders")
        for index in range(count):
            await stream.append(f"{tag}-{index}".encode())
        say("produced")


def main(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "ids":
        specs = json.loads(args[0])
        say(
            json.dumps(
                [deterministic_id(*parts, length=length, prefix=prefix) for parts, length, prefix in specs]
            )
        )
    elif mode == "intents":
        asyncio.run(record_intents(args[0], int(args[1])))
    elif mode == "consume":
        asyncio.run(consume(args[0]))
    elif mode == "produce":
        asyncio.run(produce(args[0], args[1], int(args[2])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
