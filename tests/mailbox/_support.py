"""Building a mailbox by hand, outside any actor, with its drops recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from garrison import MailboxConfig, ManualClock, Overflow
from garrison.mailbox import Mailbox, make_mailbox


@dataclass
class Drops:
    """What the mailbox handed to its drop hook: (message, reply future, reason)."""

    calls: list[tuple[Any, asyncio.Future[Any] | None, str]] = field(default_factory=list)

    def __call__(self, message: Any, reply: asyncio.Future[Any] | None, reason: str) -> None:
        self.calls.append((message, reply, reason))

    @property
    def messages(self) -> list[Any]:
        return [message for message, _, _ in self.calls]


def build(
    capacity: int = 4,
    overflow: Overflow = Overflow.BACKPRESSURE,
    key: Callable[[Any], Hashable] | None = None,
    clock: ManualClock | None = None,
    metrics: bool = True,
) -> tuple[Mailbox, Drops]:
    """A mailbox at path ``/m`` (needs a running loop) and the record of its drops."""
    drops = Drops()
    mailbox = make_mailbox(
        MailboxConfig(capacity=capacity, overflow=overflow, key=key, metrics=metrics),
        path="/m",
        now=(clock or ManualClock()).now,
        on_drop=drops,
    )
    return mailbox, drops


def take_all(mailbox: Mailbox) -> list[Any]:
    """Take every queued user message, in the order the consumer would."""
    taken = []
    while mailbox.pending:
        taken.append(mailbox.take()[0])
    return taken


def counts_add_up(mailbox: Mailbox) -> bool:
    """enqueued == processed + dropped + depth."""
    metrics = mailbox.metrics()
    return metrics.enqueued == metrics.processed + metrics.dropped + metrics.depth
