"""``LogCapture``: loguru records emitted during a test, with expectations."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loguru import logger

from garrison._clock import Clock, MonotonicClock
from garrison.testing._awaited import expectation
from garrison.testing._waiting import Notifier, check_within, clock_kind, wait_until

if TYPE_CHECKING:
    from loguru import Message


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One captured loguru record."""

    level: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)
    """What the record was bound with: ``node``, ``actor`` (the actor's path), ..."""
    exception: BaseException | None = None
    name: str = ""
    """The module that logged it."""


class LogCapture:
    """Captures loguru records at ``level`` and above while active.

    Adds one loguru sink on :meth:`start` (or entering a ``with`` block) and
    removes it on :meth:`close`; the library itself never configures sinks,
    so this is the only thing the capture adds. ``expect`` waits like a
    probe: node-clock time, advanced while waiting on the manual clock.
    """

    __slots__ = ("_clock", "_cursor", "_level", "_notifier", "_sink_id", "records")

    def __init__(self, level: str | int = "DEBUG", *, clock: Clock | None = None) -> None:
        self._level = level
        self._clock = clock if clock is not None else MonotonicClock()
        self.records: list[LogRecord] = []
        """Every record captured, oldest first."""
        self._cursor = 0
        self._notifier = Notifier()
        self._sink_id: int | None = None

    def start(self) -> LogCapture:
        if self._sink_id is None:
            self._sink_id = logger.add(self._sink, level=self._level, format="{message}")
        return self

    def close(self) -> None:
        """Remove the sink (idempotent); what was captured stays readable."""
        sink_id, self._sink_id = self._sink_id, None
        if sink_id is not None:
            logger.remove(sink_id)

    def __enter__(self) -> LogCapture:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _sink(self, message: Message) -> None:
        record = message.record
        exception = record["exception"]
        self.records.append(
            LogRecord(
                level=record["level"].name,
                message=record["message"],
                extra=dict(record["extra"]),
                exception=exception.value if exception is not None else None,
                name=record["name"] or "",
            )
        )
        self._notifier.notify()

    def find(
        self, message: str | re.Pattern[str] | None = None, *, level: str | None = None, **extra: Any
    ) -> list[LogRecord]:
        """Records whose text contains ``message`` (or matches the regex), at exactly
        ``level`` (e.g. ``"ERROR"``), bound with every ``extra`` given (``actor="/root/feed"``)."""
        return [record for record in self.records if _matches(record, message, level, extra)]

    @expectation
    async def expect(
        self,
        /,
        message: str | re.Pattern[str] | None = None,
        *,
        level: str | None = None,
        within: float = 3.0,
        **extra: Any,
    ) -> LogRecord:
        """Return the first matching record after the last one expected; wait for it if needed.

        Raises AssertionError listing the records seen if none matches within
        ``within`` seconds of the clock's time.
        """
        within = check_within("within", within)

        def first() -> int | None:
            for index in range(self._cursor, len(self.records)):
                if _matches(self.records[index], message, level, extra):
                    return index
            return None

        await wait_until(self._clock, lambda: first() is not None, within, self._notifier.changed)
        index = first()
        if index is None:
            wanted = _describe(message, level, extra)
            seen = "\n".join(
                f"  {record.level}: {record.message}" for record in self.records[self._cursor :][-20:]
            )
            raise AssertionError(
                f"expected a log record {wanted} within {within}s of {clock_kind(self._clock)} time; "
                f"records since the last expectation:\n{seen or '  (none)'}"
            )
        self._cursor = index + 1
        return self.records[index]

    def assert_none(
        self, message: str | re.Pattern[str] | None = None, *, level: str | None = None, **extra: Any
    ) -> None:
        """Raise AssertionError if any record captured so far matches."""
        found = self.find(message, level=level, **extra)
        if found:
            raise AssertionError(
                f"expected no log record {_describe(message, level, extra)}, but got "
                f"{len(found)}, the first: {found[0].level}: {found[0].message}"
            )


def _matches(
    record: LogRecord, message: str | re.Pattern[str] | None, level: str | None, extra: dict[str, Any]
) -> bool:
    if level is not None and record.level != level.upper():
        return False
    if message is not None:
        if isinstance(message, re.Pattern):
            if message.search(record.message) is None:
                return False
        elif message not in record.message:
            return False
    return all(key in record.extra and record.extra[key] == value for key, value in extra.items())


def _describe(message: str | re.Pattern[str] | None, level: str | None, extra: dict[str, Any]) -> str:
    parts = []
    if level is not None:
        parts.append(f"at level {level.upper()}")
    if message is not None:
        parts.append(
            f"matching {message.pattern!r}" if isinstance(message, re.Pattern) else f"containing {message!r}"
        )
    parts.extend(f"with {key}={value!r}" for key, value in extra.items())
    return " ".join(parts) or "(any)"
