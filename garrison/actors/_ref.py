"""``ActorRef``: the only way to reach an actor."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from garrison._defaults import DEFAULT_ASK_TIMEOUT
from garrison._validate import check_seconds
from garrison.actors._messages import ActorState

if TYPE_CHECKING:
    from garrison.actors._deadlines import AskDeadlines
    from garrison.actors._messages import ExitReason
    from garrison.actors._slot import Slot
    from garrison.mailbox import MailboxMetrics


class ActorRef:
    """A stable handle on one actor slot: valid across restarts, dead once the slot stops.

    Messages from one sender to one actor arrive in the order sent (per
    sender FIFO), except as the mailbox's overflow policy says (dropped or
    conflated messages).
    """

    __slots__ = ("_context", "_deadlines", "_done", "_loop", "_mailbox", "_try_put", "path")

    def __init__(self, slot: Slot) -> None:
        self._context = slot  # the slot this ref names
        self._mailbox = slot.mailbox
        self._try_put = slot.mailbox.try_put  # bound once: tell is the hot path
        kernel = slot.node.kernel
        # A completed future: awaiting it returns at once, cheaper than a coroutine.
        self._done = kernel.completed
        self._loop = slot.loop
        self._deadlines: AskDeadlines = kernel.ask_deadlines
        self.path = slot.path

    @property
    def name(self) -> str:
        return self._context.name

    @property
    def is_alive(self) -> bool:
        """False once the slot has stopped for good (restarts keep it alive)."""
        return self._context.state is not ActorState.STOPPED

    @property
    def slot(self) -> Slot:
        """Internal: the runtime slot this ref names, for garrison's own layers (the node,
        supervisors, the test kit). Actors use refs and their context, never this."""
        return self._context

    def tell(self, message: Any) -> Awaitable[None]:
        """Send ``message``; await the result.

        Completes at once when the mailbox accepts it; under BACKPRESSURE
        (and CONFLATE with a new key) a full mailbox makes the await wait for
        space. Raises MailboxFull under REJECT, ActorStopped once the actor
        has stopped for good. Cancelling the wait leaves the message unsent.
        """
        if self._try_put(message):
            return self._done
        waiting: Awaitable[None] = self._mailbox.put(message)
        return waiting

    def tell_nowait(self, message: Any) -> None:
        """Send ``message`` without waiting.

        Raises MailboxFull when the mailbox is full and its policy is
        BACKPRESSURE or REJECT (the message was not enqueued), ActorStopped
        once the actor has stopped for good.
        """
        self._mailbox.put_nowait(message)

    async def ask(self, message: Any, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send ``message`` and await the handler's return value.

        The handler's exception is raised here and does not crash the actor.
        Raises AskTimeout after ``timeout`` seconds of node-clock time
        (including any wait for mailbox space; None waits forever),
        ActorStopped if the actor stops before it answers, MailboxFull under
        REJECT, MessageDropped if the mailbox policy drops the message.
        A reply that arrives after the timeout goes to dead letters.
        """
        if timeout.__class__ is not float or not timeout > 0:  # the usual case, a positive float, inline
            check_seconds("timeout", timeout, allow_none=True)
        reply: asyncio.Future[Any] = self._loop.create_future()
        if timeout is not None:
            self._deadlines.add(reply, timeout, self.path, message)
        try:
            if not self._mailbox.try_put(message, reply):
                await self._mailbox.put(message, reply)
        except BaseException:
            reply.cancel()  # never sent: nothing is left for its deadline to expire
            raise
        return await reply

    def mailbox_metrics(self) -> MailboxMetrics:
        """A snapshot of this actor's mailbox counters and consumer lag (also after it stopped)."""
        return self._mailbox.metrics()

    def wait_terminated(self) -> Awaitable[ExitReason]:
        """Await the slot's final exit reason (immediately if already stopped)."""
        return self._context.wait_terminated()

    def __repr__(self) -> str:
        return f"ActorRef({self.path!r})"
