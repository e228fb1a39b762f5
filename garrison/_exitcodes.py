"""What a garrison process's exit code means: every code any garrison path exits with.

One table (docs/operations.md, "Exit codes") and one place in code, so that
a process supervisor (heart, systemd, Kubernetes) and the CLI agree on which
codes mean "restart me" and which mean "fix the command". The numbers follow
BSD's sysexits.h (64 usage, 65 data, 69 unavailable, 70 software, 75 tempfail,
78 config), which systemd and most init scripts already know.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The exit codes of a garrison node and of the ``garrison`` command."""

    OK = 0
    """Orderly shutdown (SIGTERM/SIGINT, ``request_shutdown()``, auto_shutdown). Not restarted."""
    FAILED = 1
    """The root supervisor gave up, the tree failed to start, or heart went away. Restart."""
    USAGE = 64
    """A usage error (sysexits EX_USAGE): bad command, option or MODULE:SPEC. Fix the command;
    no restart."""
    DAMAGED = 65
    """A journal is damaged (EX_DATAERR): ``garrison journal verify`` found a problem, or a
    journal met a file or namespace that refuses to open as corrupt. Verify, quarantine or
    restore from a backup; restarting does not help."""
    UNAVAILABLE = 69
    """A service the command needs cannot be reached (EX_UNAVAILABLE): a Redis journal at
    start, a node that ``garrison tree``/``top`` asks. Retry later; a restart may help."""
    INTERNAL = 70
    """An internal error (EX_SOFTWARE): an exception garrison did not expect. One line on
    stderr (the traceback with ``--debug``); please report it. Restart."""
    STALLED = 75
    """A temporary failure (EX_TEMPFAIL): the stall watchdog ended the process
    (``exit_on_stall``), or a port the node binds is still in use. Restart."""
    ABANDONED_THREADS = 76
    """Too many hung ThreadedActor threads were abandoned. Restart."""
    CONFIG = 78
    """A configuration error (sysexits' EX_CONFIG): an unknown key or a bad value in the config
    file, the environment or a flag, an unreadable config or secret file, a journal path that
    cannot be opened (a missing folder). Fix the configuration; restarting does not help."""
    FORCED_STOP = 143
    """A second SIGTERM (or SIGINT) arrived while the node was stopping: it logged what was
    still stopping and exited at once, without finishing the stop (128 + SIGTERM, the code a
    shell reports for a process SIGTERM ended). Not restarted by heart or ``systemctl stop``."""


NO_RESTART_EXIT_CODES: frozenset[ExitCode] = frozenset({ExitCode.USAGE, ExitCode.DAMAGED, ExitCode.CONFIG})
"""Codes a restart cannot fix: heart gives up on them at once, and the shipped systemd unit
lists them in ``RestartPreventExitStatus=``."""
