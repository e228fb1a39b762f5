"""How the command reports a usage error: one line on stderr, exit status 2."""

from __future__ import annotations

from garrison.observe import USAGE_EXIT_CODE

__all__ = ["USAGE_EXIT_CODE", "UsageError"]


class UsageError(Exception):
    """A bad argument, module path, URL or file: ``main`` prints ``garrison: <message>`` and exits
    with ``code`` (2, ``ExitCode.USAGE``, unless the failure has a code of its own: a damaged
    journal 65, an unreachable Redis 69)."""

    def __init__(self, message: str, code: int = USAGE_EXIT_CODE) -> None:
        super().__init__(message)
        self.code = code
