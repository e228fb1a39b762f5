"""Speaking systemd's notify protocol (``sd_notify``) without libsystemd.

Under a unit with ``Type=notify`` systemd sets ``NOTIFY_SOCKET``: the node
says ``READY=1`` once its tree has started, ``STOPPING=1`` when an orderly
shutdown begins, and, when the unit has ``WatchdogSec=`` (systemd then sets
``WATCHDOG_USEC``), ``WATCHDOG=1`` every half of that period. The watchdog
pings come from a task on the node's loop, so a blocked or frozen loop stops
them and systemd kills and restarts the service.

A notification is one datagram on a unix socket; a name starting with ``@``
is an abstract socket (Linux). Sending never blocks and never raises: a
notification that cannot be delivered is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loguru import Logger

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"


def _address(name: str) -> str | bytes:
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None without a watchdog.

    Like ``sd_watchdog_enabled``: a WATCHDOG_PID naming another process
    means the watchdog is that process's business, not ours.
    """
    raw = environ.get(WATCHDOG_USEC_ENV)
    if not raw:
        return None
    owner = environ.get(WATCHDOG_PID_ENV)
    if owner and owner.strip() != str(os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


class SystemdNotifier:
    """Notifications to the service manager named by ``NOTIFY_SOCKET``.

    Build one with :meth:`from_environ` (None when not under systemd).
    ``start_watchdog()`` needs a running loop; ``await stop()`` ends the
    pings and closes the socket.
    """

    def __init__(self, socket_name: str, logger: Logger, watchdog_every: float | None = None) -> None:
        self.socket_name = socket_name
        self.watchdog_every = watchdog_every
        """Seconds between WATCHDOG=1 pings; None: the unit has no watchdog."""
        self.sent = 0
        """Notifications delivered so far."""
        self._address = _address(socket_name)
        self._logger = logger
        self._socket: socket.socket | None = None
        self._failed = False
        self._watchdog: asyncio.Task[None] | None = None

    @classmethod
    def from_environ(cls, logger: Logger, environ: Mapping[str, str] | None = None) -> SystemdNotifier | None:
        """A notifier if NOTIFY_SOCKET is set (watchdog from WATCHDOG_USEC/WATCHDOG_PID), else None."""
        env = os.environ if environ is None else environ
        name = env.get(NOTIFY_SOCKET_ENV)
        if not name:
            return None
        return cls(name, logger, watchdog_interval(env))

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields as one datagram; True if delivered. Never blocks or raises."""
        payload = "\n".join(fields).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.setblocking(False)
            self._socket.sendto(payload, self._address)
        except OSError as error:
            if not self._failed:
                self._failed = True
                self._logger.warning(
                    "cannot notify systemd at {socket} ({error}); notifications are dropped",
                    socket=self.socket_name,
                    error=error,
                )
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        """``READY=1``: the service is up (for Type=notify, systemd starts its dependants now)."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self, status: str = "") -> bool:
        """``STOPPING=1``: an orderly shutdown has begun."""
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def start_watchdog(self) -> None:
        """Ping ``WATCHDOG=1`` from a task on the running loop (no-op without a watchdog)."""
        if self.watchdog_every is None or self._watchdog is not None:
            return
        self._watchdog = asyncio.get_running_loop().create_task(
            self._ping(self.watchdog_every), name="garrison-systemd-watchdog"
        )

    async def _ping(self, every: float) -> None:
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(every)

    async def stop(self) -> None:
        """End the watchdog pings and close the socket. Awaits the task's end."""
        task, self._watchdog = self._watchdog, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None
