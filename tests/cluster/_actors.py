"""Actors the cluster tests start on their nodes."""

from __future__ import annotations

import asyncio
from typing import Any

from garrison import Actor, MailboxConfig, Overflow
from tests.cluster.conftest import Ping, Pong


class Recorder(Actor):
    """Keeps every message it handles, in order; answers a Ping with a Pong."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    async def on_receive(self, message: Any) -> Any:
        self.seen.append(message)
        if isinstance(message, Ping):
            return Pong(message.n)
        return None


class Silent(Actor):
    """Takes every ask and never answers it."""

    async def on_receive(self, message: Any) -> Any:
        self.ctx.defer_reply()
        return None


class Blocked(Actor):
    """Holds its first message until ``release`` is set; a one-slot REJECT mailbox."""

    mailbox = MailboxConfig(capacity=1, overflow=Overflow.REJECT)

    def __init__(self, release: asyncio.Event, started: asyncio.Event) -> None:
        self.release = release
        self.started = started

    async def on_receive(self, message: Any) -> Any:
        self.started.set()
        await self.release.wait()
        return None


class Slow(Actor):
    """Records each message, holding the first until ``release`` is set; a one-slot
    BACKPRESSURE mailbox."""

    mailbox = MailboxConfig(capacity=1, overflow=Overflow.BACKPRESSURE)

    def __init__(self, seen: list[Any], release: asyncio.Event) -> None:
        self.seen = seen
        self.release = release

    async def on_receive(self, message: Any) -> Any:
        await self.release.wait()
        self.seen.append(message)
        return message
