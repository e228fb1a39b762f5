"""How the command reports a failure: one line on stderr and an exit code of ``ExitCode``."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from garrison._exitcodes import ExitCode
from garrison.observe import USAGE_EXIT_CODE

__all__ = ["USAGE_EXIT_CODE", "Parser", "UsageError"]


class UsageError(Exception):
    """A bad argument, module path, URL or file: ``main`` prints ``garrison: <message>`` and exits
    with ``code`` (64, ``ExitCode.USAGE``, unless the failure has a code of its own: a damaged
    journal 65, an unreachable service 69, a configuration error 78)."""

    def __init__(self, message: str, code: int = USAGE_EXIT_CODE) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse, with a bad command line ending in ``ExitCode.USAGE`` (64) rather than argparse's 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")
