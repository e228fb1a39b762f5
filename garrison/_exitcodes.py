"""What a garrison process's exit code means: every code any garrison path exits with.

One table (docs/operations.md, "Exit codes") and one place in code, so that
a process supervisor (heart, systemd, Kubernetes) and the CLI agree on which
codes mean "restart me" and which mean "fix the command".
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The exit codes of a garrison node and of the ``garrison`` command."""

    OK = 0
    """Orderly shutdown (SIGTERM/SIGINT, ``request_shutdown()``, auto_shutdown). Not restarted."""
    FAILED = 1
    """The root supervisor gave up, the tree failed to start, or heart went away. Restart."""
    USAGE = 2
    """A usage error: bad command, option, spec or journal file. Fix the command; no restart."""
    DAMAGED = 65
    """A journal is damaged: ``garrison journal verify`` found a problem, or a journal tool met a
    file or namespace that refuses to open as corrupt. Verify, quarantine or restore from a
    backup; restarting does not help."""
    UNAVAILABLE = 69
    """A service the command needs (a Redis journal) cannot be reached. Retry later."""
    STALLED = 75
    """The stall watchdog ended the process (``exit_on_stall``). Restart."""
    ABANDONED_THREADS = 76
    """Too many hung ThreadedActor threads were abandoned. Restart."""
    CONFIG = 78
    """A configuration error (sysexits' EX_CONFIG): an unknown key or a bad value in the config
    file, the environment or a flag, an unreadable config or secret file. Fix the configuration;
    restarting does not help."""
