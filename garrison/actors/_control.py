"""Control messages: what a slot serves on its mailbox's system lane, ahead of any user message."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from garrison.actors._actor import Actor
    from garrison.actors._context import ActorContext
    from garrison.actors._messages import ExitReason


class SystemMessage:
    """A control message served on the system lane, inside the actor's own task.

    The slot's loop awaits ``run`` between two user messages, ahead of any
    queued one; a supervisor's child exits and management calls travel this way.
    """

    reply: asyncio.Future[Any] | None = None
    """What a sender awaits, if anything (a supervisor call). Should the slot stop for good
    before serving the message, or the incarnation be cancelled while serving it, this
    future fails with ActorStopped naming the exit reason."""

    async def run(self, context: ActorContext, instance: Actor) -> ExitReason | None:
        """Do the work; return an exit reason to end the incarnation, or None to go on."""
        raise NotImplementedError


class Stop(SystemMessage):
    """End the incarnation in an orderly way: the message in flight finishes, ``on_stop`` runs."""

    __slots__ = ("reason",)

    def __init__(self, reason: ExitReason) -> None:
        self.reason = reason


class Rewire(SystemMessage):
    """Re-read the interceptors before the next message."""

    __slots__ = ()

    async def run(self, context: ActorContext, instance: Actor) -> ExitReason | None:
        return None


class TimerMessage(SystemMessage):
    """A ``send_later`` to self that found the mailbox full: delivered from the system lane.

    Only while the incarnation that set the timer lives: a slot discards the ones
    still queued when that incarnation ends.
    """

    __slots__ = ("message",)

    def __init__(self, message: Any) -> None:
        self.message = message
