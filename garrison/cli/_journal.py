"""``garrison journal``: the operator's tools for a journal, SQLite file or Redis namespace.

``list`` (its streams), ``inspect`` (a stream's events, decoded), ``verify``
(every checksum, seq and, with ``--types``, event), ``quarantine`` and
``restore`` (set a damaged event aside so its actor can start, and put it
back), ``migrate`` (bring a journal written by an older garrison to this
schema). Exit codes (docs/operations.md): 0 done; 2 a usage error (bad
argument, missing file, unknown stream); 65 the journal is damaged (a problem
found, or it refuses to open as corrupt); 69 a Redis journal that cannot be
reached. Every failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from garrison._errors import EventDecodeError, GarrisonError, InvalidConfig, JournalCorrupt
from garrison._exitcodes import ExitCode
from garrison._secret import redact_url
from garrison.cli._errors import UsageError
from garrison.cli._run import import_attribute

T = TypeVar("T")

_INTENT_TAGS = ("garrison.intent.recorded", "garrison.intent.moved")
_INTENT_SNAPSHOT_TAG = "garrison.intent.snapshot"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


# -- arguments ---------------------------------------------------------------------------------


def add_commands(journal: argparse.ArgumentParser) -> None:
    """The ``journal`` subcommands, on the ``journal`` parser."""
    commands = journal.add_subparsers(dest="journal_command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="the journal's streams: events, seqs, snapshot, intents")
    _add_journal(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per stream")
    listing.set_defaults(handler=list_command)

    inspect = commands.add_parser("inspect", help="a stream's events, decoded")
    add_arguments(inspect)
    inspect.set_defaults(handler=inspect_command)

    verify = commands.add_parser("verify", help="check every checksum, seq and event; exit 65 on a problem")
    _add_journal(verify)
    _add_types(verify)
    verify.set_defaults(handler=verify_command)

    quarantine = commands.add_parser("quarantine", help="set an event aside so that its actor can start")
    _add_event(quarantine)
    quarantine.add_argument("--reason", required=True, help="why (kept with the event, shown by list)")
    quarantine.set_defaults(handler=quarantine_command)

    restore = commands.add_parser("restore", help="put a quarantined event back into its stream")
    _add_event(restore)
    restore.set_defaults(handler=restore_command)

    migrate = commands.add_parser("migrate", help="bring a journal of an older garrison to this schema")
    _add_journal(migrate)
    migrate.set_defaults(handler=migrate_command)


def _add_journal(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "journal",
        metavar="JOURNAL",
        help="a SQLite journal file, a Redis URL (redis://host:port/db), or '-': the node's journal.url "
        "setting (GARRISON_JOURNAL_URL or GARRISON_JOURNAL_URL_FILE, or --config), which keeps a "
        "Redis password out of argv",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="with JOURNAL '-': the node's config file to take journal.url from"
    )
    parser.add_argument(
        "--namespace", default="garrison", help="the Redis journal's key prefix (default garrison)"
    )


def _add_types(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--types",
        metavar="MODULE:NAME,...",
        help="event classes to decode with (tagged msgspec Structs); intent streams decode without them",
    )


def _add_event(parser: argparse.ArgumentParser) -> None:
    _add_journal(parser)
    parser.add_argument("stream", metavar="STREAM", help="the stream")
    parser.add_argument("seq", metavar="SEQ", type=int, help="the event's seq")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``journal inspect``'s arguments."""
    _add_journal(parser)
    parser.add_argument(
        "stream", metavar="STREAM", help="the stream (an event-sourced actor's persistence id)"
    )
    _add_types(parser)
    parser.add_argument("--after", type=int, default=0, metavar="SEQ", help="only events after SEQ")
    parser.add_argument("--from", dest="first", type=int, metavar="SEQ", help="only events from SEQ on")
    parser.add_argument("--to", dest="last", type=int, metavar="SEQ", help="only events up to SEQ")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N events")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


# -- opening a journal ---------------------------------------------------------------------------


def probe(path: Path) -> None:
    """Raise JournalCorrupt unless ``path`` is a garrison journal; reads only (never creates or migrates)."""
    from garrison.persistence import SqliteJournal

    SqliteJournal.check_file(path)


def _journal(options: argparse.Namespace, *, migrate: bool = False) -> Any:
    """The journal named on the command line, not yet open. A file is checked first (read
    only: a missing file is never created, a file of another program never touched)."""
    from garrison.persistence import RedisJournal, SqliteJournal

    target: str = options.journal
    connection: Any = target
    if target == SETTINGS_JOURNAL:
        target = _journal_of_settings(options)
    if target.startswith(_REDIS_SCHEMES):
        try:
            if options.journal == SETTINGS_JOURNAL:
                # The node's password, TLS and cluster settings with its URL.
                from garrison._settings import Settings
                from garrison.persistence import RedisConnection

                connection = RedisConnection.from_settings(Settings.load(options.config).journal, target)
            return RedisJournal(connection, namespace=options.namespace, migrate=migrate)
        except InvalidConfig as error:
            raise UsageError(str(error)) from error
    path = Path(target)
    if not path.exists():
        raise UsageError(f"no journal at {path}")
    if not path.is_file():
        raise UsageError(f"{path} is not a journal file")
    if not migrate:
        probe(path)
    return SqliteJournal(path, migrate=migrate)


SETTINGS_JOURNAL = "-"
"""JOURNAL given as this: the node's ``journal.url`` setting (environment or config file)."""


def _journal_of_settings(options: argparse.Namespace) -> str:
    """The journal ``journal.url`` names (``--config``, then GARRISON_JOURNAL_URL[_FILE]); a
    UsageError when it is not set. A bad config raises ConfigError (exit 78)."""
    from garrison._settings import Settings

    url = Settings.load(options.config).journal.url
    if url is None:
        raise UsageError(
            "JOURNAL '-' takes the node's journal.url setting, and none is set: "
            "set GARRISON_JOURNAL_URL or GARRISON_JOURNAL_URL_FILE, or give --config"
        )
    return url.reveal().removeprefix("file://")


def _run(options: argparse.Namespace, work: Callable[[Any], Awaitable[int]], *, migrate: bool = False) -> int:
    """Open the journal, run ``work`` with it, close it; garrison's errors become one line and
    their exit code."""

    async def body() -> int:
        async with _journal(options, migrate=migrate) as journal:
            return await work(journal)

    try:
        return asyncio.run(body())
    except JournalCorrupt as error:
        raise UsageError(str(error), ExitCode.DAMAGED) from error
    except ConnectionError as error:
        raise UsageError(str(error), ExitCode.UNAVAILABLE) from error
    except EventDecodeError as error:
        raise UsageError(str(error), ExitCode.DAMAGED) from error
    except InvalidConfig as error:
        raise UsageError(str(error)) from error


async def _stream_names(journal: Any) -> set[str]:
    return {summary.stream for summary in await journal.streams()}


async def _known_stream(journal: Any, stream: str) -> None:
    if stream not in await _stream_names(journal):
        raise UsageError(f"no stream {stream!r} in this journal ('garrison journal list' shows its streams)")


async def _is_intent_stream(journal: Any, stream: str) -> bool:
    """Whether ``stream`` holds an intent log (its first event is an intent event, or, all
    of them compacted, its snapshot is an intent log's)."""
    async with aclosing(journal.read_batches(stream)) as batches:
        async for rows in batches:
            try:
                return _raw_tag(_raw(rows[0][1], stream, rows[0][0])) in _INTENT_TAGS
            except EventDecodeError:
                return False  # not msgpack at all: not an intent log (verify --types says more)
    snapshot = await journal.load_snapshot(stream)
    if snapshot is None:
        return False
    try:
        return _raw_tag(_raw(snapshot[1], stream, snapshot[0])) == _INTENT_SNAPSHOT_TAG
    except EventDecodeError:
        return False


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


def _codec(options: argparse.Namespace) -> Any:
    if not options.types:
        return None
    from garrison.persistence import EventCodec

    try:
        return EventCodec(_event_types(options.types))
    except GarrisonError as error:
        raise UsageError(f"--types: {error}") from error


# -- list ----------------------------------------------------------------------------------------


def list_command(options: argparse.Namespace) -> int:
    async def work(journal: Any) -> int:
        summaries = await journal.streams()
        rows = []
        for summary in summaries:
            row: dict[str, Any] = {
                "stream": summary.stream,
                "events": summary.events,
                "first_seq": summary.first_seq,
                "highest_seq": summary.highest_seq,
                "snapshot_seq": summary.snapshot_seq,
                "quarantined": summary.quarantined,
            }
            has_state = summary.events or summary.snapshot_seq is not None
            if has_state and await _is_intent_stream(journal, summary.stream):
                counts = await _intent_counts(journal, summary.stream)
                row["intents_open"], row["intents_settled"], row["intents_expired"] = counts
            rows.append(row)
        if options.json:
            for row in rows:
                print(_as_json(row))
        elif not rows:
            print("no streams", file=sys.stderr)
        else:
            header = ("STREAM", "EVENTS", "FIRST", "HIGHEST", "SNAPSHOT", "QUAR")
            print("{:<28} {:>8} {:>8} {:>8} {:>8} {:>5}  INTENTS".format(*header))
            for row in rows:
                intents = (
                    f"{row['intents_open']} open / {row['intents_settled']} settled"
                    + (f" ({row['intents_expired']} expired)" if row["intents_expired"] else "")
                    if "intents_open" in row
                    else ""
                )
                snapshot = "-" if row["snapshot_seq"] is None else row["snapshot_seq"]
                print(
                    f"{row['stream']:<28} {row['events']:>8} {row['first_seq']:>8} {row['highest_seq']:>8} "
                    f"{snapshot!s:>8} {row['quarantined']:>5}  {intents}".rstrip()
                )
        return 0

    return _run(options, work)


async def _intent_counts(journal: Any, stream: str) -> tuple[int, int, int]:
    """Open, settled, and of those settled, expired (EXPIRED is terminal: it counts as settled)."""
    from garrison.persistence import IntentLog, IntentState

    # compact_every=None: a log opened to be counted must never compact (the tools only read).
    log = await IntentLog(journal, stream, msgspec.Raw, compact_every=None).open()
    intents = log.intents()
    settled = sum(1 for intent in intents if intent.terminal)
    expired = sum(1 for intent in intents if intent.state is IntentState.EXPIRED)
    return len(intents) - settled, settled, expired


# -- inspect -------------------------------------------------------------------------------------


def inspect_command(options: argparse.Namespace) -> int:
    for name, value in (("--after", options.after), ("--from", options.first), ("--to", options.last)):
        if value is not None and value < 0:
            raise UsageError(f"{name} {value}: must be >= 0")
    if options.limit is not None and options.limit < 0:
        raise UsageError(f"--limit {options.limit}: must be >= 0")
    after = max(options.after, (options.first or 1) - 1)
    codec = _codec(options)

    async def work(journal: Any) -> int:
        await _known_stream(journal, options.stream)
        intents = await _is_intent_stream(journal, options.stream)
        shown = 0
        if options.limit == 0:
            return 0
        async with aclosing(journal.read(options.stream, after)) as events:
            async for seq, payload in events:
                if options.last is not None and seq > options.last:
                    break
                _show(options, seq, payload, codec, intents)
                shown += 1
                if options.limit is not None and shown >= options.limit:
                    break
        if not shown:
            print(f"no events in stream {options.stream!r} after seq {after}", file=sys.stderr)
        return 0

    return _run(options, work)


def _show(options: argparse.Namespace, seq: int, payload: bytes, codec: Any, intents: bool) -> None:
    stream = options.stream
    if intents:
        event = _intent_codec().decode(payload, stream, seq)
        tag = type(event).__struct_config__.tag
        body = msgspec.to_builtins(event)
        if "payload" in body:
            body["payload"] = _raw(event.payload, stream, seq)  # the intent's payload, not base64
        text = body if options.json else _as_json(body)
    elif codec is not None:
        event = codec.decode(payload, stream, seq)
        tag = type(event).__struct_config__.tag
        text = msgspec.to_builtins(event) if options.json else repr(event)
    else:
        raw = _raw(payload, stream, seq)
        tag = _raw_tag(raw)
        text = raw if options.json else _as_json(raw)
    if options.json:
        print(_as_json({"seq": seq, "tag": tag, "event": text}))
    else:
        print(f"{seq:>6}  {tag!s:<24}  {text}")


def _intent_codec() -> Any:
    from garrison.persistence import EventCodec, IntentMoved, IntentRecorded

    return EventCodec([IntentRecorded, IntentMoved])


# -- verify --------------------------------------------------------------------------------------


def verify_command(options: argparse.Namespace) -> int:
    codec = _codec(options)

    async def work(journal: Any) -> int:
        from garrison.persistence import JournalProblem, replay_events

        problems = [problem async for problem in journal.verify()]
        checked = 0
        summaries = await journal.streams()
        damaged = {problem.stream for problem in problems}
        for summary in summaries:
            if summary.stream in damaged or not summary.events:
                continue
            stream_codec = _intent_codec() if await _is_intent_stream(journal, summary.stream) else codec
            if stream_codec is None:
                continue
            try:
                async with aclosing(replay_events(journal, summary.stream, stream_codec)) as replay:
                    async for _, events in replay:
                        checked += len(events)
            except EventDecodeError as error:
                problems.append(JournalProblem("undecodable", error.stream, error.seq, str(error)))
        for problem in problems:
            print(problem)
        events = sum(summary.events for summary in summaries)
        if problems:
            print(f"{len(problems)} problem(s) in {redact_url(options.journal)}", file=sys.stderr)
            return int(ExitCode.DAMAGED)
        decoded = f", {checked} decoded" if checked else ""
        print(
            f"journal sound: {len(summaries)} stream(s), {events} event(s) verified{decoded}", file=sys.stderr
        )
        return 0

    return _run(options, work)


# -- quarantine, restore, migrate -------------------------------------------------------------------


def quarantine_command(options: argparse.Namespace) -> int:
    async def work(journal: Any) -> int:
        await _known_stream(journal, options.stream)
        await journal.quarantine(options.stream, options.seq, options.reason)
        print(
            f"set aside stream {options.stream!r} seq {options.seq} ({options.reason}); its actor skips it "
            f"on recovery; 'garrison journal restore' puts it back"
        )
        return 0

    return _run(options, work)


def restore_command(options: argparse.Namespace) -> int:
    async def work(journal: Any) -> int:
        await journal.restore(options.stream, options.seq)
        print(f"restored stream {options.stream!r} seq {options.seq}")
        return 0

    return _run(options, work)


def migrate_command(options: argparse.Namespace) -> int:
    async def work(journal: Any) -> int:
        print(f"{redact_url(options.journal)}: at this garrison's schema")
        return 0

    return _run(options, work, migrate=True)


# -- raw values ------------------------------------------------------------------------------------


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
