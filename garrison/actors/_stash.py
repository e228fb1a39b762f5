"""``Stash``: messages an actor set aside to handle later (Akka's Stash), bounded.

An actor with ``MailboxConfig(stash_capacity=N)`` gets one; ``ctx.stash()``
sets the message in flight aside and ``ctx.unstash_all()`` puts everything set
aside back at the front of the mailbox, in the order stashed, ahead of the
messages queued since. A stashed ask keeps its reply: it is answered when the
handler that takes it again returns.

The stash belongs to the slot, not to one incarnation: at a restart it goes
back to the front of the mailbox (as Akka classic's ``preRestart`` does), so the
new incarnation sees those messages first; when the slot stops for good, each
stashed message goes to dead letters (kind ``stashed_on_stop``) and a stashed
ask fails with ActorStopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from garrison._errors import ActorStopped, StashError, StashOverflow

if TYPE_CHECKING:
    from garrison.actors._slot import Slot

Receive = Callable[[Any], Awaitable[Any]]

_IDLE = object()
"""``in_flight`` when no handler runs."""


class Stash:
    """Internal: one slot's stash; actors use ``ctx.stash()`` and ``ctx.unstash_all()``."""

    __slots__ = ("_entries", "_stashed_in_flight", "capacity", "in_flight", "slot")

    def __init__(self, slot: Slot, capacity: int) -> None:
        self.slot = slot
        self.capacity = capacity
        self._entries: list[tuple[Any, asyncio.Future[Any] | None]] = []
        self.in_flight: Any = _IDLE
        """The message the running handler was given (recorded by :meth:`recording`)."""
        self._stashed_in_flight = False

    def __len__(self) -> int:
        return len(self._entries)

    def recording(self, receive: Receive) -> Receive:
        """Wrap the handler so that the stash knows which message is in flight."""

        async def receive_recorded(message: Any) -> Any:
            self.in_flight = message
            self._stashed_in_flight = False
            try:
                return await receive(message)
            finally:
                self.in_flight = _IDLE

        return receive_recorded

    def stash(self) -> None:
        """Set the message in flight aside (see ``ActorContext.stash``)."""
        slot = self.slot
        if self.in_flight is _IDLE:
            raise StashError(slot.path, "no message is in flight; call it inside on_receive")
        if self._stashed_in_flight:
            raise StashError(slot.path, "the message in flight is already stashed")
        if len(self._entries) >= self.capacity:
            raise StashOverflow(slot.path, self.capacity)
        self._entries.append((self.in_flight, slot.take_reply()))
        self._stashed_in_flight = True

    def unstash_all(self) -> int:
        """Put every stashed message back at the front of the mailbox, in order; returns how many.

        Once the mailbox is closed (the actor is stopping) they go to dead
        letters instead, as they would at the stop.
        """
        entries, self._entries = self._entries, []
        if not entries:
            return 0
        mailbox = self.slot.mailbox
        if mailbox.closed:
            self._dead_letter(entries, "it was stopping when they were unstashed")
            return len(entries)
        mailbox.put_front(entries)
        return len(entries)

    def drop(self, reason: str) -> None:
        """The slot stopped for good: every stashed message goes to dead letters."""
        entries, self._entries = self._entries, []
        self._dead_letter(entries, reason)

    def _dead_letter(self, entries: list[tuple[Any, asyncio.Future[Any] | None]], why: str) -> None:
        slot = self.slot
        for message, reply in entries:
            if reply is not None and not reply.done():
                reply.set_exception(ActorStopped(slot.path, f"stashed and never handled: {why}"))
            slot.node.dead_letters.publish(
                message, slot.path, f"stashed in {slot.path}, never unstashed: {why}", kind="stashed_on_stop"
            )
