"""Where a node's log records go: loguru sinks for a process that runs a node.

The library never adds or removes a sink on import; the ``garrison`` command
(and an application's own ``main``) calls :func:`configure_logging` once:

- one sink, on stderr or in a file (``file=``): a concise text line naming
  the actor, or with ``json=True`` one flat JSON object per line (time,
  level, node, actor, message, error type and the record's own fields), about
  200 bytes for a restart record;
- records of the standard ``logging`` module (asyncio, aiosqlite, redis, a
  user's libraries) routed into loguru with their level and logger name;
- a limit on repeated identical records: a crash loop logs the same line at
  most ``repeat_limit`` times per ``repeat_window`` seconds, and the next one
  that passes says how many were suppressed;
- every text in ``secrets`` (a journal URL's password, a token) is masked as
  ``***`` in every line, tracebacks included, before it is written;
- :func:`reopen_log_files` closes and reopens the file sinks (the node calls
  it on SIGHUP, after logrotate moved the file).
"""

from __future__ import annotations

import json as jsonlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

from loguru import logger

from garrison._errors import InvalidConfig
from garrison._secret import mask_text

if TYPE_CHECKING:
    from loguru import Message, Record

LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
"""The level names ``configure_logging`` takes, in any case."""

LOG_LINE = (
    "{time:HH:mm:ss.SSS} <level>{level: <7}</level> <cyan>{extra[who]}</cyan> "
    "{message}{extra[suppressed_note]}\n{exception}"
)

_OWN_FIELDS = frozenset({"node", "actor", "who", "logger", "suppressed", "suppressed_note"})
"""Extras the JSON line shows under fixed keys (or not at all)."""
_MAX_FIELD = 80
"""Longest value of a record's own field in a JSON line; longer ones end in an ellipsis."""

_files: list[LogFile] = []
_files_lock = threading.Lock()


def parse_level(value: str) -> str:
    """``value`` as loguru's level name (case-insensitive: ``debug`` is ``DEBUG``); InvalidConfig
    naming the value and the levels there are otherwise."""
    name = value.strip().upper()
    if name not in LEVELS:
        raise InvalidConfig("log_level", value, f"use one of {', '.join(LEVELS)} (in any case)")
    return name


class LogFile:
    """A log file that can be closed and reopened under the same path (SIGHUP after logrotate).

    Appends, one line per write; safe to write from any thread.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[str] | None = self._open()

    def _open(self) -> IO[str]:
        try:
            return self.path.open("a", encoding="utf-8", buffering=1)
        except OSError as error:
            raise InvalidConfig(
                "log_file", str(self.path), f"cannot open it for appending ({error.strerror})"
            ) from error

    def write(self, text: str) -> None:
        with self._lock:
            if self._file is not None:
                self._file.write(text)

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def reopen(self) -> None:
        """Close the file and open the path again (a new file if it was moved away)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._file = self._open()

    def stop(self) -> None:
        """Close the file (loguru calls this when the sink is removed)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
        with _files_lock:
            if self in _files:
                _files.remove(self)


class RepeatLimit:
    """A loguru filter: at most ``limit`` identical records (level, logger, actor, message) per
    ``window`` seconds. The first record of a key that passes after some were dropped carries
    ``suppressed=N`` (and its line says so)."""

    def __init__(self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._seen: dict[tuple[Any, ...], list[float | int]] = {}
        self._lock = threading.Lock()

    def __call__(self, record: Record) -> bool:
        extra = record["extra"]
        key = (record["level"].no, extra.get("logger"), extra.get("actor"), record["message"])
        now = self._clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is None or now - entry[0] >= self.window:
                dropped = int(entry[2]) if entry is not None else 0
                if len(self._seen) >= 4096:  # many distinct lines: forget the oldest windows
                    for old in [k for k, v in self._seen.items() if now - v[0] >= self.window]:
                        del self._seen[old]
                    if len(self._seen) >= 4096:
                        self._seen.clear()
                self._seen[key] = [now, 1, 0]
            else:
                entry[1] = int(entry[1]) + 1
                if entry[1] > self.limit:
                    entry[2] = int(entry[2]) + 1
                    return False
                dropped = 0
        extra["suppressed"] = dropped
        extra["suppressed_note"] = (
            f" ({dropped} identical records suppressed in the last {self.window:g}s)" if dropped else ""
        )
        return True


def json_line(record: Record) -> str:
    """One record as a flat JSON object on one line (no trailing newline)."""
    extra = record["extra"]
    message = record["message"]
    line: dict[str, Any] = {
        "time": record["time"].astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record["level"].name,
    }
    if extra.get("node"):
        line["node"] = extra["node"]
    if extra.get("actor"):
        line["actor"] = extra["actor"]
    if extra.get("logger"):
        line["logger"] = extra["logger"]
    line["message"] = message
    exception = record["exception"]
    if exception is not None and exception.type is not None:
        line["error"] = exception.type.__name__
    for key, value in extra.items():
        if key in _OWN_FIELDS or key.startswith("_") or key in line:
            continue
        if not isinstance(value, bool | int | float) and value is not None:
            value = str(value)
            detail = value.partition(": ")[2]
            if value in message or (detail and detail in message):
                continue  # said already: the message was formatted with it (or with its detail)
            if len(value) > _MAX_FIELD:
                value = value[: _MAX_FIELD - 1] + "…"
        line[key] = value
    if extra.get("suppressed"):
        line["suppressed"] = extra["suppressed"]
    return jsonlib.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)


class _Masking:
    """A sink's stream (stderr or a LogFile) that masks the given secrets in every text written."""

    def __init__(self, target: TextIO | LogFile, secrets: Sequence[str]) -> None:
        self._target = target
        self._secrets = list(secrets)

    def write(self, text: str) -> None:
        self._target.write(mask_text(text, self._secrets))

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return not isinstance(self._target, LogFile) and self._target.isatty()

    def stop(self) -> None:
        if isinstance(self._target, LogFile):
            self._target.stop()


class _JsonSink:
    """A loguru sink writing ``json_line`` of each record to a stream or a LogFile."""

    def __init__(self, target: TextIO | LogFile | _Masking) -> None:
        self._target = target

    def write(self, message: Message) -> None:
        self._target.write(json_line(message.record) + "\n")

    def flush(self) -> None:
        self._target.flush()

    def stop(self) -> None:
        if isinstance(self._target, LogFile | _Masking):
            self._target.stop()


class _ToLoguru(logging.Handler):
    """Hands a standard ``logging`` record to loguru, with its level and logger name."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.bind(logger=record.name).opt(exception=record.exc_info or None).log(level, record.getMessage())


def intercept_standard_logging(level: str = "INFO") -> None:
    """Route every record of the standard ``logging`` module at ``level`` or above into loguru
    (replacing the root logger's handlers)."""
    logging.basicConfig(handlers=[_ToLoguru()], level=logger.level(parse_level(level)).no, force=True)


def configure_logging(
    level: str = "INFO",
    *,
    json: bool = False,
    file: str | Path | None = None,
    who: str = "",
    repeat_limit: int = 10,
    repeat_window: float = 10.0,
    intercept: bool = True,
    secrets: Sequence[str] = (),
) -> None:
    """Replace loguru's sinks with garrison's one: text lines (or JSON lines with ``json``) on
    stderr, or appended to ``file``; records of the standard ``logging`` module routed in
    (``intercept``). ``who`` names the process in lines that have no actor (e.g. ``heart``).
    Every text in ``secrets`` is written as ``***`` wherever it appears in a line (message,
    fields, traceback), in JSON lines too.

    Raises InvalidConfig for an unknown level, a file that cannot be opened for appending, or a
    repeat limit below 1. Call it once, from the program's entry point, never from a library.
    """
    name = parse_level(level)
    if isinstance(repeat_limit, bool) or not isinstance(repeat_limit, int) or repeat_limit < 1:
        raise InvalidConfig("repeat_limit", repeat_limit, "must be an int >= 1")
    if not repeat_window > 0:
        raise InvalidConfig("repeat_window", repeat_window, "must be > 0 seconds")
    target: TextIO | LogFile = sys.stderr if file is None else LogFile(file)

    def line_format(record: Record) -> str:
        extra = record["extra"]
        extra["who"] = extra.get("actor") or extra.get("logger") or extra.get("node") or who or "garrison"
        extra.setdefault("suppressed_note", "")
        return LOG_LINE

    logger.remove()
    with _files_lock:
        _files.clear()
        if isinstance(target, LogFile):
            _files.append(target)
    limit = RepeatLimit(repeat_limit, repeat_window)
    sink: TextIO | LogFile | _Masking = target
    if secrets:
        # A JSON line escapes quotes and backslashes: mask a secret's escaped form too.
        escaped = [jsonlib.dumps(text, ensure_ascii=False)[1:-1] for text in secrets] if json else []
        sink = _Masking(target, [*secrets, *escaped])
    if json:
        logger.add(_JsonSink(sink), level=name, format="{message}", filter=limit, catch=True)
    else:
        colorize = file is None and sys.stderr.isatty()
        logger.add(
            sink,
            level=name,
            format=line_format,
            filter=limit,
            colorize=colorize,
            backtrace=False,
            diagnose=False,
        )
    if intercept:
        intercept_standard_logging(name)


def reopen_log_files() -> int:
    """Reopen every file sink ``configure_logging`` opened; returns how many (0: logs go to
    stderr). Safe from any thread; the node calls it on SIGHUP."""
    with _files_lock:
        files = list(_files)
    for log_file in files:
        log_file.reopen()
    return len(files)
