"""``garrison journal inspect PATH STREAM``: list a stream's events, decoded."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import msgspec

from garrison._errors import EventDecodeError, GarrisonError, JournalCorrupt
from garrison.cli._errors import UsageError
from garrison.cli._run import import_attribute


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="a SQLite journal file")
    parser.add_argument(
        "stream", metavar="STREAM", help="the stream (an event-sourced actor's persistence id)"
    )
    parser.add_argument(
        "--types",
        metavar="MODULE:NAME,...",
        help="event classes to decode with (tagged msgspec Structs); default: the raw structure",
    )
    parser.add_argument("--after", type=int, default=0, metavar="SEQ", help="only events after SEQ")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N events")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def probe(path: Path) -> None:
    """Raise JournalCorrupt unless ``path`` is a garrison journal; reads only (never creates or migrates)."""
    from garrison.persistence import SqliteJournal

    SqliteJournal.check_file(path)


def _event_types(spec: str) -> list[type[msgspec.Struct]]:
    types = []
    for target in filter(None, (part.strip() for part in spec.split(","))):
        value = import_attribute(target, "--types")
        if not (isinstance(value, type) and issubclass(value, msgspec.Struct)):
            raise UsageError(f"--types {target}: a {type(value).__name__}, not a msgspec.Struct class")
        types.append(value)
    if not types:
        raise UsageError("--types: name at least one event class as MODULE:NAME")
    return types


def inspect_command(options: argparse.Namespace) -> int:
    path = Path(options.path)
    if not path.exists():
        raise UsageError(f"no journal at {path}")
    if not path.is_file():
        raise UsageError(f"{path} is not a journal file")
    if options.after < 0:
        raise UsageError(f"--after {options.after}: must be >= 0")
    if options.limit is not None and options.limit < 0:
        raise UsageError(f"--limit {options.limit}: must be >= 0")
    codec = None
    if options.types:
        from garrison.persistence import EventCodec

        try:
            codec = EventCodec(_event_types(options.types))
        except GarrisonError as error:
            raise UsageError(f"--types: {error}") from error
    try:
        probe(path)
        return asyncio.run(_list_events(path, options, codec))
    except (JournalCorrupt, EventDecodeError) as error:
        raise UsageError(str(error)) from error


async def _list_events(path: Path, options: argparse.Namespace, codec: Any) -> int:
    from garrison.persistence import SqliteJournal

    shown = 0
    limit = options.limit
    async with SqliteJournal(path) as journal:
        if limit == 0:
            return 0
        async for seq, payload in journal.read(options.stream, options.after):
            if codec is not None:
                event = codec.decode(payload, options.stream, seq)
                tag = type(event).__struct_config__.tag
                body = msgspec.to_builtins(event) if options.json else repr(event)
            else:
                event = _raw(payload, options.stream, seq)
                tag = _raw_tag(event)
                body = event if options.json else _as_json(event)
            if options.json:
                print(_as_json({"seq": seq, "tag": tag, "event": body}))
            else:
                print(f"{seq:>6}  {tag!s:<20}  {body}")
            shown += 1
            if limit is not None and shown >= limit:
                break
    if not shown:
        print(f"no events in stream {options.stream!r} after seq {options.after}", file=sys.stderr)
    return 0


def _raw(payload: bytes, stream: str, seq: int) -> Any:
    try:
        return msgspec.msgpack.decode(payload)
    except msgspec.DecodeError as error:
        raise EventDecodeError(stream, seq, error) from error


def _raw_tag(event: Any) -> str:
    if isinstance(event, dict):
        return str(event.get("type", "-"))
    if isinstance(event, list) and event and isinstance(event[0], str | int):
        return str(event[0])  # an array_like struct: the tag comes first
    return "-"


def _as_json(value: Any) -> str:
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        return repr(value)
