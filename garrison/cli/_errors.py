"""How the command reports a usage error: one line on stderr, exit status 2."""

from __future__ import annotations

from garrison.observe import USAGE_EXIT_CODE

__all__ = ["USAGE_EXIT_CODE", "UsageError"]


class UsageError(Exception):
    """A bad argument, module path, URL or file: ``main`` prints ``garrison: <message>`` and exits 2."""
