"""``garrison config show``: the effective settings, each with where its value came from.

Reads what ``garrison run`` would read (defaults, ``--config``, the
``GARRISON_*`` environment, the flags given) and prints it as TOML, a comment
after each key naming its source; secrets masked. Given ``MODULE:SPEC``, it
calls the spec factory too (which builds the tree's spec but starts nothing),
so the application's sections it reads are shown and checked as well.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from garrison._settings import Setting
from garrison.cli._run import add_setting_arguments, cluster_settings, load_settings, resolve_spec

__all__ = ["add_commands", "render"]


def add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    show = commands.add_parser(
        "show", help="print the effective settings with the source of each, secrets masked"
    )
    show.add_argument(
        "target",
        nargs="?",
        metavar="MODULE:SPEC",
        help="also read the sections this spec factory reads (it is called; nothing is started)",
    )
    show.add_argument("--json", action="store_true", help="one JSON object: key to value and source")
    add_setting_arguments(show)
    show.set_defaults(handler=show_command)


def show_command(options: argparse.Namespace) -> int:
    settings = load_settings(options)
    cluster_settings(settings)  # shown, secrets masked, like the core sections
    if options.target is not None:
        resolve_spec(options.target, settings)
        settings.check_sections_read()
    entries = settings.entries()
    if options.json:
        print(
            json.dumps(
                {entry.key: {"value": entry.shown(), "source": entry.source} for entry in entries}, indent=2
            )
        )
    else:
        print(render(entries, settings.unread_sections()), end="")
    return 0


def _toml_value(value: Any) -> str:
    if value is None:
        return "# none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value))


def render(entries: list[Setting], unread: Sequence[str] = ()) -> str:
    """``entries`` as TOML: a ``[section]`` header per section, ``key = value  # source``,
    secrets masked; an unset optional key is a comment. ``unread``: the file's tables no
    spec factory read (shown as a note)."""
    lines: list[str] = []
    section = ""
    rows = [(entry.key.partition(".")[0], entry) for entry in entries]
    width = max((len(entry.key.partition(".")[2]) for entry in entries), default=0)
    for name, entry in rows:
        if name != section:
            lines.append(f"{'' if not lines else chr(10)}[{name}]")
            section = name
        key = entry.key.partition(".")[2]
        value = entry.shown()
        text = f"# {key} = (none)" if value is None else f"{key.ljust(width)} = {_toml_value(value)}"
        lines.append(f"{text.ljust(width + 34)}  # {entry.source}")
    for name in unread:
        lines.append(f"\n# [{name}] in the file: not read (give MODULE:SPEC to read and check it)")
    return "\n".join(lines) + "\n"
