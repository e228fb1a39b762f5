"""The ``garrison`` command: run a node (optionally under heart), look at one, read a journal.

``garrison run MODULE:SPEC``, ``garrison tree URL``, ``garrison top URL`` and
``garrison journal list|inspect|verify|quarantine|restore|migrate``, ``garrison config show``.
Every failure is one line on stderr (``garrison: ...``) and an exit code of
``garrison.ExitCode``: 64 for a usage error, 65 for a damaged journal, 69 for
a service that cannot be reached, 70 for an error garrison did not expect, 78
for a configuration error (an unknown key, a bad value). ``--debug`` adds the
traceback. ``python -m garrison`` and ``python -m garrison.cli`` are the same command.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from garrison._errors import ConfigError
from garrison._exitcodes import ExitCode
from garrison.cli._errors import USAGE_EXIT_CODE, Parser, UsageError

__all__ = ["USAGE_EXIT_CODE", "UsageError", "build_parser", "main", "version"]

_DEBUG_HELP = "on a failure, print the traceback too"


def version() -> str:
    """The installed garrison's version (the package metadata's, else ``garrison.__version__``)."""
    from importlib import metadata

    try:
        return metadata.version("garrison")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        from garrison import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    from garrison.cli import _config, _journal, _run, _view

    parser = Parser(
        prog="garrison", description="Run and watch garrison nodes (Erlang/OTP-style actors for asyncio)."
    )
    parser.add_argument("--version", action="version", version=f"garrison {version()}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser("run", help="run a node from a SupervisorSpec until SIGTERM/SIGINT")
    _run.add_arguments(run)
    run.set_defaults(handler=_run.run_command)
    tree = commands.add_parser("tree", help="print a running node's supervision tree")
    _view.add_tree_arguments(tree)
    tree.set_defaults(handler=_view.tree_command)
    top = commands.add_parser("top", help="a live view of a running node")
    _view.add_top_arguments(top)
    top.set_defaults(handler=_view.top_command)
    journal = commands.add_parser("journal", help="list, inspect, verify, repair or migrate a journal")
    _journal.add_commands(journal)
    config = commands.add_parser("config", help="show the effective settings (garrison run's)")
    _config.add_commands(config)
    for command in (run, tree, top):
        # Also after the command (`garrison run ... --debug`); SUPPRESS keeps an earlier --debug.
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]), run the command, return its exit status.

    Never raises for a failure: it prints one line on stderr (and the traceback with ``--debug``)
    and returns its ``ExitCode``. A bad command line exits (SystemExit) with ``ExitCode.USAGE``.
    """
    options = build_parser().parse_args(argv)
    debug: bool = options.debug
    try:
        status: int = options.handler(options)
    except UsageError as error:
        if debug:
            traceback.print_exc()
        print(f"garrison: {error}", file=sys.stderr)
        return error.code
    except ConfigError as error:
        if debug:
            traceback.print_exc()
        print(f"garrison: {error}", file=sys.stderr)
        return ExitCode.CONFIG
    except BrokenPipeError:  # `garrison journal inspect ... | head`
        return 0
    except Exception as error:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (run with --debug for the traceback)"
        print(f"garrison: internal error: {type(error).__name__}: {error}{hint}", file=sys.stderr)
        return ExitCode.INTERNAL
    return status
