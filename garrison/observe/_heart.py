"""Heart: restart the node's process when it dies or its loop stops (Erlang's ``heart``).

Two halves, one in each process:

- :class:`Heart` is the parent: a small supervisor (a plain loop over
  ``subprocess`` and ``select``, no asyncio) that runs the node as a child
  with the write end of a pipe, and restarts it when it exits abnormally or
  sends no beat for ``timeout`` seconds (it SIGKILLs a silent child first).
  Restarts back off exponentially and have an intensity limit of their own:
  more than ``intensity`` restarts within ``period`` seconds and heart gives
  up. SIGTERM and SIGINT are forwarded to the child for an orderly stop;
  heart then exits with the child's code.
- :class:`HeartBeat` is the child's side: a task on the node's loop writes
  one byte to that pipe every ``timeout / 4`` seconds, so a frozen or
  blocked loop stops the beats. If the parent is gone the node shuts down
  (exit code 1), as an Erlang node does when its heart port closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from garrison._errors import InvalidConfig
from garrison._exitcodes import NO_RESTART_EXIT_CODES, ExitCode
from garrison._validate import check_count, check_seconds

if TYPE_CHECKING:
    from loguru import Logger

HEART_FD_ENV = "GARRISON_HEART_FD"
"""Set by heart in the child: the file descriptor to beat on."""
HEART_INTERVAL_ENV = "GARRISON_HEART_INTERVAL"
"""Set by heart in the child: seconds between beats."""
USAGE_EXIT_CODE = ExitCode.USAGE
"""A child exiting with this code reported a usage error: restarting cannot help."""
HEART_LOST_EXIT_CODE = ExitCode.FAILED
"""Exit code of a node whose heart (the parent process) went away."""

_FORWARDED = (signal.SIGTERM, signal.SIGINT)
_NOT_RESTARTED = {
    ExitCode.USAGE: "a usage error",
    ExitCode.DAMAGED: "a damaged journal",
    ExitCode.CONFIG: "a configuration error",
}
"""Why heart does not restart a child that exited with one of NO_RESTART_EXIT_CODES."""


def exit_status(returncode: int) -> int:
    """A Popen return code as a shell exit status: a signal N becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


# -- the child's side ----------------------------------------------------------------


class HeartBeat:
    """Beats on heart's pipe from a task on the node's loop.

    Build it with :meth:`from_environ` (None when not run under heart).
    ``on_lost`` is called once, on the loop, if the pipe breaks (heart died).
    """

    def __init__(self, fd: int, interval: float, logger: Logger, on_lost: Callable[[], None]) -> None:
        self.fd = fd
        self.interval = interval
        self.beats = 0
        self._logger = logger
        self._on_lost = on_lost
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_environ(
        cls, logger: Logger, on_lost: Callable[[], None], environ: Mapping[str, str] | None = None
    ) -> HeartBeat | None:
        """A HeartBeat if GARRISON_HEART_FD is set; InvalidConfig if it or the interval is bad."""
        env = os.environ if environ is None else environ
        raw_fd = env.get(HEART_FD_ENV)
        if not raw_fd:
            return None
        try:
            fd = int(raw_fd)
            os.fstat(fd)
        except (ValueError, OSError) as error:
            raise InvalidConfig(
                HEART_FD_ENV, raw_fd, f"must name an open pipe from heart ({error})"
            ) from error
        raw_interval = env.get(HEART_INTERVAL_ENV, "1.0")
        try:
            interval = float(raw_interval)
        except ValueError:
            interval = -1.0
        if not interval > 0:
            raise InvalidConfig(HEART_INTERVAL_ENV, raw_interval, "must be a number of seconds > 0")
        return cls(fd, interval, logger, on_lost)

    def start(self) -> None:
        """Beat now and then every ``interval`` from a task on the running loop."""
        os.set_blocking(self.fd, False)
        os.set_inheritable(self.fd, False)  # processes the node starts must not keep heart's pipe open
        self._task = asyncio.get_running_loop().create_task(self._run(), name="garrison-heartbeat")

    async def _run(self) -> None:
        while True:
            try:
                os.write(self.fd, b".")
                self.beats += 1
            except BlockingIOError:
                pass  # heart is not reading (stopped?) and the pipe is full: the beats queued there count
            except OSError as error:
                self._logger.error(
                    "heart is gone ({error}); stopping the node, which nothing would restart",
                    error=error,
                )
                self._on_lost()
                return
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stop beating and close the pipe (heart then sees end of file). Awaits the task's end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        with contextlib.suppress(OSError):
            os.close(self.fd)


# -- the parent's side -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeartConfig:
    """How heart watches and restarts its child.

    ``timeout``: seconds without a beat before the child is killed and
    restarted. ``startup``: seconds the child has to send its first beat
    (imports and journal open come first). More than ``intensity`` restarts
    within ``period`` seconds and heart gives up. The n-th restart in the
    window waits ``min(max_backoff, backoff * 2**(n - 1))`` seconds.
    """

    timeout: float = 10.0
    startup: float = 30.0
    intensity: int = 5
    period: float = 60.0
    backoff: float = 0.5
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        for name in ("timeout", "startup", "period", "max_backoff"):
            check_seconds(f"HeartConfig.{name}", getattr(self, name))
        check_seconds("HeartConfig.backoff", self.backoff, allow_minimum=True)
        check_count("HeartConfig.intensity", self.intensity, minimum=0)

    def delay(self, restarts_in_window: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2 ** max(0, restarts_in_window - 1)))


class Heart:
    """Runs ``argv`` as a child and keeps it alive; :meth:`run` returns heart's exit status.

    The child gets ``GARRISON_HEART_FD`` and ``GARRISON_HEART_INTERVAL`` in
    its environment (and the pipe through ``pass_fds``). ``WATCHDOG_PID`` is
    removed from it, so that under systemd the node (not heart) answers the
    unit's watchdog. Must run in the main thread (it handles signals).
    """

    def __init__(
        self,
        argv: Sequence[str],
        config: HeartConfig,
        logger: Logger,
        *,
        environ: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.config = config
        self.restarts = 0
        """Restarts so far (over heart's whole life)."""
        self._logger = logger
        self._environ = dict(os.environ if environ is None else environ)
        self._cwd = cwd
        self._recent: deque[float] = deque()
        self._signals: list[int] = []
        self._stop_signal: int | None = None
        self._wake_r = -1
        self._wake_w = -1

    # -- the loop ------------------------------------------------------------------

    def run(self) -> int:
        """Start the child, restart it as needed; return when heart is done. Blocks."""
        previous = self._install_signals()
        try:
            return self._supervise()
        finally:
            self._restore_signals(previous)

    def _supervise(self) -> int:
        log = self._logger
        while True:
            returncode, reason = self._run_child()
            status = exit_status(returncode)
            if self._stop_signal is not None:
                log.info("node stopped ({reason}); heart exits with {status}", reason=reason, status=status)
                return status
            if returncode == 0:
                log.info("node exited with code 0 (an orderly stop); heart exits")
                return 0
            if returncode in NO_RESTART_EXIT_CODES:
                what = _NOT_RESTARTED[ExitCode(returncode)]
                log.error(
                    "node {reason}: {what}, which a restart cannot fix; heart exits", reason=reason, what=what
                )
                return returncode
            now = time.monotonic()
            self._recent.append(now)
            while self._recent and now - self._recent[0] > self.config.period:
                self._recent.popleft()
            if len(self._recent) > self.config.intensity:
                log.error(
                    "node {reason}: {count} restarts within {period:g}s exceed heart's limit of "
                    "{intensity}; giving up (exit status {status})",
                    reason=reason,
                    count=len(self._recent),
                    period=self.config.period,
                    intensity=self.config.intensity,
                    status=status or 1,
                )
                return status or 1
            delay = self.config.delay(len(self._recent))
            self.restarts += 1
            log.warning(
                "node {reason}; restarting it in {delay:.2f}s (restart {count} of at most {intensity} "
                "within {period:g}s)",
                reason=reason,
                delay=delay,
                count=len(self._recent),
                intensity=self.config.intensity,
                period=self.config.period,
            )
            restart_at = time.monotonic() + delay
            while self._stop_signal is None and (left := restart_at - time.monotonic()) > 0:
                self._wait(left, None, None)
            if self._stop_signal is not None:
                log.info("stop requested while waiting to restart the node; heart exits")
                return 0

    def _run_child(self) -> tuple[int, str]:
        """Start one incarnation and watch it until it exits (or is killed): (returncode, why)."""
        beat_r, beat_w = os.pipe()
        env = {
            **self._environ,
            HEART_FD_ENV: str(beat_w),
            HEART_INTERVAL_ENV: repr(self.config.timeout / 4),
        }
        env.pop("WATCHDOG_PID", None)
        try:
            child = subprocess.Popen(self.argv, env=env, cwd=self._cwd, pass_fds=(beat_w,))
        except BaseException:
            os.close(beat_r)
            raise
        finally:
            os.close(beat_w)
        self._logger.info("started node pid {pid}: {argv}", pid=child.pid, argv=" ".join(self.argv))
        try:
            return self._watch(child, beat_r)
        finally:
            os.close(beat_r)
            if child.poll() is None:  # heart itself is failing: leave no orphan behind
                child.kill()
                child.wait()

    def _watch(self, child: subprocess.Popen[bytes], beat_r: int) -> tuple[int, str]:
        deadline = time.monotonic() + self.config.startup
        last_beat: float | None = None
        beat_open = True
        while True:
            returncode = child.poll()
            if returncode is not None:
                return returncode, f"pid {child.pid} {describe_exit(returncode)}"
            now = time.monotonic()
            if now >= deadline:
                silent = (
                    "sent no heartbeat"
                    if last_beat is None
                    else f"sent no heartbeat for {now - last_beat:.1f}s"
                )
                self._logger.error(
                    "node pid {pid} {silent} (timeout {timeout:g}s): killing it with SIGKILL",
                    pid=child.pid,
                    silent=silent,
                    timeout=self.config.startup if last_beat is None else self.config.timeout,
                )
                child.kill()
                returncode = child.wait()
                return returncode, f"pid {child.pid} {silent} (killed)"
            if not self._wait(min(deadline - now, 0.1), beat_r if beat_open else None, child):
                continue
            try:
                data = os.read(beat_r, 4096)
            except BlockingIOError:
                continue
            if data:
                last_beat = time.monotonic()
                deadline = last_beat + self.config.timeout
            else:
                beat_open = False  # the child closed its end: it is exiting (the deadline still holds)

    def _wait(self, seconds: float, beat_r: int | None, child: subprocess.Popen[bytes] | None) -> bool:
        """Wait up to ``seconds`` for a beat or a signal (forwarded to ``child``); True if a beat is there."""
        readable = [self._wake_r] + ([beat_r] if beat_r is not None else [])
        ready, _, _ = select.select(readable, [], [], max(0.0, seconds))
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 512)
        self._forward_signals(child)
        return beat_r is not None and beat_r in ready

    # -- signals -----------------------------------------------------------------------

    def _install_signals(self) -> dict[int, Any]:
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        previous: dict[int, Any] = {signum: signal.getsignal(signum) for signum in _FORWARDED}
        previous[-1] = signal.set_wakeup_fd(self._wake_w)
        for signum in _FORWARDED:
            signal.signal(signum, self._on_signal)
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            if signum != -1:
                signal.signal(signum, handler)
        signal.set_wakeup_fd(previous[-1])
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)  # acted on in the loop: no logging inside a signal handler

    def _forward_signals(self, child: subprocess.Popen[bytes] | None) -> None:
        """Forward pending SIGTERM/SIGINT to the child: heart stops once it has exited."""
        while self._signals:
            signum = self._signals.pop(0)
            self._stop_signal = signum
            name = signal.Signals(signum).name
            if child is not None and child.poll() is None:
                self._logger.info(
                    "got {signal}: forwarding it to node pid {pid} for an orderly stop",
                    signal=name,
                    pid=child.pid,
                )
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)
            else:
                self._logger.info("got {signal}: stopping", signal=name)
