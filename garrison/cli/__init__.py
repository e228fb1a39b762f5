"""The ``garrison`` command: run a node (optionally under heart), look at one, read a journal.

``garrison run MODULE:SPEC``, ``garrison tree URL``, ``garrison top URL`` and
``garrison journal list|inspect|verify|quarantine|restore|migrate``, ``garrison config show``. A usage
error (a bad module path, an unreachable node, a missing journal) is one line
on stderr and exit status 2; the journal tools exit 65 for a damaged journal
and 69 for an unreachable Redis; a configuration error (an unknown key, a bad value) exits 78
(garrison.ExitCode). ``python -m garrison.cli`` is the same command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from garrison._errors import ConfigError
from garrison._exitcodes import ExitCode
from garrison.cli._errors import USAGE_EXIT_CODE, UsageError

__all__ = ["USAGE_EXIT_CODE", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from garrison.cli import _config, _journal, _run, _view

    parser = argparse.ArgumentParser(
        prog="garrison", description="Run and watch garrison nodes (Erlang/OTP-style actors for asyncio)."
    )
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]), run the command, return its exit status."""
    options = build_parser().parse_args(argv)
    try:
        status: int = options.handler(options)
    except UsageError as error:
        print(f"garrison: {error}", file=sys.stderr)
        return error.code
    except ConfigError as error:
        print(f"garrison: {error}", file=sys.stderr)
        return ExitCode.CONFIG
    except BrokenPipeError:  # `garrison journal inspect ... | head`
        return 0
    return status
