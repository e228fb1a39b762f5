"""Where log records go: no sink on import, standard logging routed into loguru, case-insensitive
levels, flat JSON lines of at most 300 bytes for a restart record, repeated records limited."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from garrison import Actor, ChildSpec, InvalidConfig, ManualClock, Node, SupervisorSpec
from garrison.observe import RepeatLimit, configure_logging, reopen_log_files
from tests.observe._nodes import REPO


@pytest.fixture
def own_sinks() -> Iterator[None]:
    """configure_logging replaces every loguru sink and the root logger's handlers: put back
    a stderr sink like loguru's default and the root logger as pytest had it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        logger.remove()
        logger.add(sys.__stderr__ or sys.stderr, level="DEBUG")
        root.handlers[:] = handlers
        root.setLevel(level)


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_importing_garrison_adds_and_removes_no_sink_and_leaves_standard_logging_alone() -> None:
    script = (
        "import logging; from loguru import logger\n"
        "before = dict(logger._core.handlers); root = list(logging.getLogger().handlers)\n"
        "import garrison, garrison.cli, garrison.observe, garrison.persistence, garrison.testing\n"
        "assert dict(logger._core.handlers) == before, (before, logger._core.handlers)\n"
        "assert logging.getLogger().handlers == root\n"
        "print('unchanged')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "unchanged"


@pytest.mark.parametrize("level", ["debug", "Debug", "DEBUG", " debug "])
def test_levels_are_case_insensitive(level: str, tmp_path: Path, own_sinks: None) -> None:
    log = tmp_path / "node.log"
    configure_logging(level, file=log)
    logger.debug("shown at {level}", level=level)
    assert f"shown at {level}" in log.read_text()


def test_an_unknown_level_is_refused_naming_it_and_the_levels_there_are(own_sinks: None) -> None:
    with pytest.raises(InvalidConfig) as raised:
        configure_logging("loud")
    assert raised.value.field == "log_level"
    assert raised.value.value == "loud"
    assert "use one of TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR, CRITICAL" in str(raised.value)


def test_standard_logging_records_arrive_with_their_level_and_logger_name(
    tmp_path: Path, own_sinks: None
) -> None:
    log = tmp_path / "node.log"
    configure_logging("info", json=True, file=log)
    logging.getLogger("aiosqlite").warning("slow query: %d ms", 250)
    logging.getLogger("redis.connection").error("connection reset")
    logging.getLogger("asyncio").debug("below the level: not shown")

    records = json_lines(log)
    assert [(r["level"], r["logger"], r["message"]) for r in records] == [
        ("WARNING", "aiosqlite", "slow query: 250 ms"),
        ("ERROR", "redis.connection", "connection reset"),
    ]


class Crashes(Actor):
    async def on_receive(self, message: Any) -> Any:
        raise ValueError(f"price {message} is below the floor")


async def test_a_restart_record_is_one_flat_json_line_of_at_most_300_bytes(
    tmp_path: Path, own_sinks: None
) -> None:
    log = tmp_path / "node.log"
    configure_logging("INFO", json=True, file=log)
    async with Node("router-1", clock=ManualClock(), handle_signals=False) as node:
        await node.start(SupervisorSpec(children=[ChildSpec("pricer", Crashes)]))
        await node.lookup("/root/pricer").tell(12.5)
        await node.settle()

    lines = log.read_bytes().splitlines()
    [restart] = [line for line in lines if b"restarts it" in line]
    assert len(restart) <= 300, restart
    record = json.loads(restart)
    assert record["level"] == "ERROR"
    assert record["node"] == "router-1"
    assert record["actor"] == "/root/pricer"
    assert record["error"] == "ValueError"
    assert "price 12.5 is below the floor" in record["message"]
    assert record["time"].endswith("Z")
    assert all(not isinstance(value, dict | list) for value in record.values())  # flat
    stopped = json.loads(lines[-1])
    assert (stopped["message"], stopped["code"], stopped["dead"]) == (
        "node router-1 stopped (exit code 0, 1 dead letters)",
        0,
        1,
    )


def test_identical_records_beyond_the_limit_are_dropped_and_the_next_window_says_how_many() -> None:
    now = [100.0]
    passed: list[dict[str, Any]] = []
    sink = logger.add(
        lambda message: passed.append(message.record),
        filter=RepeatLimit(3, 10.0, clock=lambda: now[0]),
        format="{message}",
    )
    try:
        for _ in range(10):
            logger.error("journal write failed")
        logger.error("a different line")
        now[0] += 10.0
        logger.error("journal write failed")
    finally:
        logger.remove(sink)

    messages = [record["message"] for record in passed]
    assert messages == ["journal write failed"] * 3 + ["a different line", "journal write failed"]
    assert [record["extra"]["suppressed"] for record in passed] == [0, 0, 0, 0, 7]


def test_a_crash_loop_writes_a_bounded_log(tmp_path: Path, own_sinks: None) -> None:
    log = tmp_path / "node.log"
    configure_logging("INFO", file=log, repeat_limit=5, repeat_window=60.0)
    for _ in range(10_000):
        logger.bind(actor="/root/feed").error("feed lost its connection; supervisor /root restarts it")
    lines = log.read_text().splitlines()
    assert len(lines) == 5


def test_reopen_log_files_reopens_the_file_under_its_path(tmp_path: Path, own_sinks: None) -> None:
    log = tmp_path / "node.log"
    configure_logging("INFO", file=log)
    logger.info("before the rotation")
    log.rename(tmp_path / "node.log.1")
    assert reopen_log_files() == 1
    logger.info("after the rotation")
    assert "after the rotation" in log.read_text()
    assert "before the rotation" not in log.read_text()


def test_a_log_file_that_cannot_be_opened_is_refused_naming_it(tmp_path: Path, own_sinks: None) -> None:
    missing = tmp_path / "no-such-folder" / "node.log"
    with pytest.raises(InvalidConfig) as raised:
        configure_logging("INFO", file=missing)
    assert raised.value.field == "log_file"
    assert raised.value.value == str(missing)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_secrets_are_masked_in_every_line_of_a_log_file_tracebacks_and_standard_records_included(
    as_json: bool, tmp_path: Path, own_sinks: None
) -> None:
    log = tmp_path / "node.log"
    secret = 'hun"ter2\\'  # a quote and a backslash: JSON escapes them, the mask still applies
    configure_logging("DEBUG", json=as_json, file=log, secrets=[secret])
    logger.info("connecting to redis://:" + secret + "@db:6379/0")
    logger.bind(actor="/root/feed", url=f"redis://:{secret}@db").warning("feed lost its connection")
    try:
        raise ConnectionError(f"refused for redis://:{secret}@db")
    except ConnectionError:
        logger.opt(exception=True).error("journal write failed")
    logging.getLogger("redis.client").error("auth failed with %s", secret)
    text = log.read_text(encoding="utf-8")
    assert secret not in text and "hun" not in text, text
    assert text.count("***") == 3, text
    if as_json:
        lines = json_lines(log)
        assert lines[0]["message"] == "connecting to redis://:***@db:6379/0"
        assert lines[1]["url"] == "redis://:***@db"
        assert lines[-1]["logger"] == "redis.client" and lines[-1]["message"] == "auth failed with ***"
    else:
        assert "Traceback" in text and "ConnectionError: refused for redis://:***@db" in text
