"""Which event loop ``garrison run`` runs the node on: uvloop when it is installed, else asyncio's.

uvloop (``pip install 'garrison[fast]'``) is a drop-in loop written on libuv;
``python -m bench loops`` measures what it changes for tell and ask in the
same run. ``--loop asyncio`` keeps the standard loop even where uvloop is
installed; ``--loop uvloop`` refuses to start without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import metadata

from garrison._exitcodes import ExitCode
from garrison.cli._errors import UsageError

LOOP_CHOICES = ("auto", "asyncio", "uvloop")
"""``--loop`` values: ``auto`` is uvloop when importable, else asyncio."""

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def choose_loop(choice: str) -> tuple[str, LoopFactory | None]:
    """(the loop's name, a factory for asyncio.Runner; None: asyncio's default loop).

    UsageError with ExitCode.UNAVAILABLE (69) for ``uvloop`` when it is not installed.
    """
    if choice == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError as error:
        if choice == "auto":
            return "asyncio", None
        raise UsageError(
            "--loop uvloop: uvloop is not installed; pip install 'garrison[fast]', or use --loop asyncio",
            ExitCode.UNAVAILABLE,
        ) from error
    return f"uvloop {metadata.version('uvloop')}", uvloop.new_event_loop
