"""How the command reports a usage error: one line on stderr, exit status 2."""

from __future__ import annotations

USAGE_EXIT_CODE = 2


class UsageError(Exception):
    """A bad argument, module path, URL or file: ``main`` prints ``garrison: <message>`` and exits 2."""
