"""Actors and functions shared by the actor tests.

Module-level so the process pool (spawn start method) can import them by name.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from garrison import Actor, DeadLetter, Node


class Recorder(Actor):
    """Appends every message it handles to ``seen``; answers an ask with the message."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    async def on_receive(self, message: Any) -> Any:
        self.seen.append(message)
        return message


class Gated(Actor):
    """Holds each message until ``gate`` is set, then records it; a full mailbox builds up behind it."""

    def __init__(self, gate: asyncio.Event, seen: list[Any]) -> None:
        self.gate = gate
        self.seen = seen

    async def on_receive(self, message: Any) -> Any:
        await self.gate.wait()
        self.seen.append(message)
        return message


class Crash(Exception):
    """What a test actor raises on purpose."""


class Boom:
    """A message that makes ``Fragile`` raise."""

    def __repr__(self) -> str:
        return "Boom()"


class Fragile(Actor):
    """Records messages; raises Crash on a ``Boom``."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Boom):
            raise Crash("boom")
        self.seen.append(message)
        return message


def dead_letters_to(node: Node, path: str) -> list[DeadLetter]:
    return [letter for letter in node.dead_letters.recent() if letter.recipient == path]


def current_pid() -> int:
    return os.getpid()


def current_thread_id() -> int:
    return threading.get_ident()


def fail_in_worker(text: str) -> None:
    raise ValueError(text)
