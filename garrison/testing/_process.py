"""Child processes for crash tests: start one, SIGKILL it at a chosen moment, always reap it.

A process dies in real time, so every timeout here is real seconds (the node
clock does not reach into another process). Output is read continuously (so
the child never blocks on a full pipe) and kept line by line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from typing import TypeAlias

Output: TypeAlias = "str | re.Pattern[str]"
"""A line to wait for: a substring, or a compiled regular expression (``search``)."""

REAP_TIMEOUT = 10.0
"""Real seconds to wait for the kernel to report a SIGKILLed child's exit."""


def send_signal(process: asyncio.subprocess.Process, signum: int) -> bool:
    """Send ``signum`` to an asyncio subprocess that has not been reaped; True if it was sent.

    Unlike ``process.send_signal``/``kill``/``terminate``, this never reaps
    the child: those poll it first, and a poll that wins the race against
    asyncio's child watcher takes the exit status from it, so ``wait()``
    reports 255 instead of the real status. A process that has exited but
    not been reaped yet gets the signal harmlessly; one already reaped is not
    signalled (returns False).
    """
    if process.returncode is not None:
        return False
    try:
        os.kill(process.pid, signum)
    except ProcessLookupError:
        return False
    return True


def _line_matches(pattern: Output, line: str) -> bool:
    if isinstance(pattern, re.Pattern):
        return pattern.search(line) is not None
    return pattern in line


class ChildProcess:
    """A subprocess whose output a test reads and which it can SIGKILL.

    Start with ``await ChildProcess.start(sys.executable, "-m", "my.node")``
    (stdout and stderr merged, ``PYTHONUNBUFFERED=1`` set). Use it as an async
    context manager or call :meth:`aclose`: the process is killed if still
    running, and always reaped.
    """

    def __init__(self, process: asyncio.subprocess.Process, argv: tuple[str, ...]) -> None:
        self._process = process
        self.argv = argv
        self.output: list[str] = []
        """Every line printed so far (without the newline)."""
        self._cursor = 0
        self._kill_on: Output | None = None
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read(), name=f"garrison:read:{argv[0]}")

    @classmethod
    async def start(
        cls, *argv: str, env: dict[str, str] | None = None, cwd: str | None = None
    ) -> ChildProcess:
        """Start ``argv``; ``env`` entries are added to this process's environment."""
        if not argv:
            raise ValueError("argv is empty: pass the program and its arguments")
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=environment,
            cwd=cwd,
        )
        return cls(process, tuple(argv))

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """None while running; the exit status once reaped (``-9`` after SIGKILL)."""
        return self._process.returncode

    async def _read(self) -> None:
        stream = self._process.stdout
        assert stream is not None
        while True:
            raw = await stream.readline()
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip("\r\n")
            self.output.append(line)
            trigger = self._kill_on
            if trigger is not None and _line_matches(trigger, line):
                self._kill_on = None
                self._send_kill()
            self._changed.set()
        self._changed.set()

    def _send_kill(self) -> None:
        send_signal(self._process, signal.SIGKILL)

    def _find(self, pattern: Output) -> str | None:
        for index in range(self._cursor, len(self.output)):
            if _line_matches(pattern, self.output[index]):
                self._cursor = index + 1
                return self.output[index]
        return None

    async def wait_for_output(self, pattern: Output, timeout: float = 30.0) -> str:
        """Return the next line (after the last one matched here) that matches ``pattern``.

        Raises AssertionError if the process ends its output, or ``timeout``
        real seconds pass, without such a line.
        """
        async with asyncio.timeout(timeout) as scope:
            with contextlib.suppress(TimeoutError):
                while True:
                    found = self._find(pattern)
                    if found is not None:
                        return found
                    if self._reader.done():
                        break
                    self._changed.clear()
                    await self._changed.wait()
        ending = "timed out" if scope.expired() else f"ended its output (exit status {self.returncode})"
        tail = "\n".join(self.output[-10:])
        raise AssertionError(
            f"expected a line matching {pattern!r} from {self.argv[0]} (pid {self.pid}), "
            f"but it {ending} after {timeout}s at most; last output:\n{tail}"
        )

    async def kill(self, *, after_output: Output | None = None, timeout: float = 30.0) -> int:
        """SIGKILL the process and reap it; return its exit status (``-9``).

        With ``after_output``, the kill is sent the moment a line matching it
        is read (lines already read after the last match count), so the
        process dies right after printing it; AssertionError if no such
        line comes within ``timeout`` real seconds (the process is then
        killed anyway).
        """
        try:
            if after_output is not None and self._find(after_output) is None:
                self._kill_on = after_output
                await self.wait_for_output(after_output, timeout)
        finally:
            self._kill_on = None
            self._send_kill()
            status = await self._reap()
        return status

    async def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit on its own; AssertionError after ``timeout`` real seconds."""
        try:
            async with asyncio.timeout(timeout):
                return await self._reap()
        except TimeoutError:
            raise AssertionError(f"{self.argv[0]} (pid {self.pid}) did not exit within {timeout}s") from None

    async def _reap(self) -> int:
        async with asyncio.timeout(REAP_TIMEOUT):
            status = await self._process.wait()
        # The output ends when the pipe closes; a grandchild that inherited it may hold it open.
        await asyncio.wait({self._reader}, timeout=REAP_TIMEOUT)
        return status

    async def aclose(self) -> None:
        """Kill the process if it is still running, reap it and stop reading. Idempotent."""
        self._send_kill()
        try:
            await self._reap()
        finally:
            if not self._reader.done():
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader

    async def __aenter__(self) -> ChildProcess:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<ChildProcess pid={self.pid} {' '.join(self.argv)} {state}>"


async def kill_process(
    process: ChildProcess, *, after_output: Output | None = None, timeout: float = 30.0
) -> int:
    """SIGKILL ``process`` — at once, or the moment it prints a line matching
    ``after_output`` — and reap it; return its exit status (``-9``)."""
    return await process.kill(after_output=after_output, timeout=timeout)
