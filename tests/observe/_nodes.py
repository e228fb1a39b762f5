"""Node specs the observe tests run as real processes (``garrison run tests.observe._nodes:NAME``),
and the helpers that run ``garrison`` as a process group and always kill every member."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
from loguru import logger

from garrison import Actor, ChildSpec, Settings, SupervisorSpec


class Idle(Actor):
    """Does nothing until told; the calm node's worker."""

    async def on_receive(self, message: Any) -> Any:
        return message


class RefusesToStart(Actor):
    """Fails every start, so the tree never comes up and the node exits 1."""

    async def on_start(self) -> None:
        raise RuntimeError("this node cannot start (on purpose)")


calm = SupervisorSpec(
    children=[
        ChildSpec("worker", Idle),
        ChildSpec("desk", SupervisorSpec(children=[ChildSpec("pricer", Idle)])),
    ]
)
"""A healthy tree: /root/worker and /root/desk/pricer."""


def make_calm() -> SupervisorSpec:
    """A zero-argument function returning a spec (``garrison run`` calls it)."""
    return calm


class TalksAboutItsJournal(Actor):
    """Logs the node's journal as careless code would: its repr, and its raw URL (password and
    all). ``garrison run`` masks secrets in every line it logs; the secrets test checks."""

    async def on_start(self) -> None:
        journal = self.ctx.node.journal
        self.ctx.logger.info("my journal is {journal!r}", journal=journal)
        self.ctx.logger.info("my journal's raw url is " + str(getattr(journal, "url", "")))


def with_journal_talk(settings: Settings) -> SupervisorSpec:
    """A factory that takes the settings: a calm tree and an actor that logs its journal."""
    assert settings.journal.url is not None, "this node needs a journal"
    return SupervisorSpec(children=[*calm.children, ChildSpec("talker", TalksAboutItsJournal)])


class DeskConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The ``[desk]`` section of the ``desk`` node's settings."""

    workers: int = 1
    symbols: tuple[str, ...] = ("ACME",)


def desk(settings: Settings) -> SupervisorSpec:
    """A factory that reads its own section: ``workers`` idle actors, /root/worker-N."""
    config = settings.section("desk", DeskConfig)
    return SupervisorSpec(children=[ChildSpec(f"worker-{n}", Idle) for n in range(1, config.workers + 1)])


class SlowToStop(Actor):
    """Takes a minute to stop (its on_stop waits), so that a stop can be caught half-way."""

    async def on_stop(self) -> None:
        logger.info("slow: on_stop begins")
        await asyncio.sleep(60)


slow_to_stop = SupervisorSpec(
    children=[ChildSpec("worker", Idle), ChildSpec("slow", SlowToStop, shutdown=120)]
)
"""A node whose orderly stop hangs in /root/slow's on_stop: the forced-stop test."""

never_starts = SupervisorSpec(children=[ChildSpec("broken", RefusesToStart)])
"""A node that exits 1 right away: heart's crash-loop test."""


class CrashesThreeTimes(Actor):
    """Its first three incarnations in the process crash on the message they send themselves at
    start; the fourth runs: a short crash loop."""

    incarnations = 0

    async def on_start(self) -> None:
        CrashesThreeTimes.incarnations += 1
        self.ctx.self_ref.tell_nowait("go")

    async def on_receive(self, message: Any) -> Any:
        if CrashesThreeTimes.incarnations <= 3:
            raise RuntimeError(f"incarnation {CrashesThreeTimes.incarnations} fails (on purpose)")
        return None


crashes_three_times = SupervisorSpec(children=[ChildSpec("flaky", CrashesThreeTimes)], intensity=10)
"""/root/flaky fails three starts, then runs: the crash-record tests."""

not_a_spec = 42


class Deposited(msgspec.Struct, frozen=True, tag=True):
    amount: int


class Withdrawn(msgspec.Struct, frozen=True, tag=True):
    amount: int
    reason: str = ""


# -- running garrison as a process group ----------------------------------------------

REPO = Path(__file__).resolve().parents[2]
RUNNING = re.compile(r"node \S+ running \S+ \(pid (\d+)\)")
"""Logged by ``garrison run`` once the tree has started."""


class Garrison:
    """A ``garrison`` command in a session of its own; output (stdout and stderr) goes to a file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def text(self) -> str:
        """The output so far ("" while the file does not exist yet)."""
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 15.0, count: int = 1) -> list[str]:
        """Wait until the output holds ``count`` matches of ``pattern``; returns them (first groups)."""
        regex = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            found = [
                match.group(1) if match.groups() else match.group(0) for match in regex.finditer(self.text())
            ]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, (
                f"no {count} x {regex.pattern!r} within {timeout}s:\n{self.text()}"
            )
            time.sleep(0.05)

    def node_pids(self, count: int = 1, timeout: float = 15.0) -> list[int]:
        """Pids of the nodes that reached 'running', oldest first (waits for ``count`` of them)."""
        return [int(pid) for pid in self.wait_for(RUNNING, timeout, count)]

    def wait(self, timeout: float = 15.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"garrison did not exit within {timeout}s:\n{self.text()}") from None


@contextlib.contextmanager
def garrison(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, name: str = "garrison"
) -> Iterator[Garrison]:
    """``python -m garrison.cli *args`` in a new session; its whole process group is SIGKILLed at the end."""
    log = tmp_path / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "garrison.cli", *args],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,
        )
    try:
        yield Garrison(process, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # heart's children share its group
        process.wait(timeout=10)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still alive after {timeout}s"
        time.sleep(0.05)
