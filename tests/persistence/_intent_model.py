"""What the intent-log tests share: a payload type, the log over a journal (conftest's
``journal`` fixture: a real SQLite file), and the stream as stored."""

from __future__ import annotations

from typing import Any

import msgspec

from garrison.persistence import IntentLog, SqliteJournal

STREAM = "intents"


class Order(msgspec.Struct, frozen=True):
    symbol: str
    quantity: int


async def open_log(journal: Any, stream: str = STREAM) -> IntentLog[Order]:
    return await IntentLog(journal, stream, Order).open()


async def stored_events(journal: SqliteJournal, stream: str = STREAM) -> list[dict[str, Any]]:
    """The stream as stored: each event as a plain dict with its type tag."""
    return [msgspec.msgpack.decode(payload) async for _, payload in journal.read(stream)]
