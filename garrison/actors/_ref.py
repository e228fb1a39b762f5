"""``ActorRef``: the only way to reach an actor."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

from garrison._defaults import DEFAULT_ASK_TIMEOUT
from garrison._errors import MessageDropped
from garrison._validate import check_seconds
from garrison.actors._messages import ActorState, Terminated
from garrison.mailbox import STAMP_ALWAYS_BELOW, STAMP_STRIDE_MASK, Mailbox

if TYPE_CHECKING:
    from garrison.actors._deadletters import DeadLetters
    from garrison.actors._deadlines import AskDeadlines
    from garrison.actors._messages import ExitReason
    from garrison.actors._slot import Slot
    from garrison.mailbox import MailboxMetrics


class Watchable(Protocol):
    """What ``ctx.watch`` needs of a ref: an :class:`ActorRef`, or a ``garrison.cluster.RemoteRef``
    (an actor on another node). Internal for implementors: the kernel calls ``add_watcher`` with
    the watching slot, which hears ``Terminated(ref, reason)`` on its system lane once."""

    @property
    def path(self) -> str: ...

    @property
    def is_alive(self) -> bool: ...

    @property
    def exit_reason(self) -> ExitReason | None: ...

    def tell(self, message: Any) -> Awaitable[None]: ...

    def tell_nowait(self, message: Any) -> None: ...

    async def ask(self, message: Any, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any: ...

    def add_watcher(self, watcher: Slot) -> None: ...

    def remove_watcher(self, watcher: Slot) -> None: ...


_WAITING_FOR_SPACE: set[asyncio.Task[None]] = set()
"""The :meth:`ActorRef.ask_future` sends waiting for space in a full mailbox."""


class _BetweenIncarnations:
    """Where a ref's messages go while its path has no slot: an ancestor is restarting and
    has not re-created it yet. Each message goes to dead letters (kind ``restarting``) with
    the reason; an ask fails with MessageDropped. Nothing raises ActorStopped: the ref lives."""

    __slots__ = ("_dead_letters", "_done", "_path", "_reason")

    def __init__(self, dead_letters: DeadLetters, path: str, reason: str, done: Awaitable[None]) -> None:
        self._dead_letters = dead_letters
        self._path = path
        self._reason = reason
        self._done = done

    def send(self, message: Any) -> Awaitable[None]:
        self.try_put(message)
        return self._done

    def try_put(self, message: Any, reply: asyncio.Future[Any] | None = None) -> bool:
        if reply is not None and not reply.done():
            reply.set_exception(MessageDropped(self._path, self._reason))
        self._dead_letters.publish(message, self._path, self._reason, kind="restarting")
        return True

    def put_nowait(self, message: Any, reply: asyncio.Future[Any] | None = None) -> None:
        self.try_put(message, reply)


def _plain(mailbox: Mailbox) -> Mailbox | None:
    """``mailbox`` if ``ActorRef.tell`` may queue into it inline (a plain FIFO), else None."""
    return mailbox if mailbox.__class__ is Mailbox else None


class ActorRef:
    """A stable handle on one actor path: valid across restarts, dead once the path is gone.

    A ref names a path in the tree (``/root/orders/book``) and reaches the
    incarnation running there now: its own restarts keep the same mailbox,
    and when an ancestor restarts and re-creates the actor, the ref moves on
    to the new one. It goes dead (``is_alive`` False, sends raise
    ActorStopped, watchers get ``Terminated``) only when the actor stops for
    good: removed from its supervisor, stopped by request, an ancestor
    stopped for good, or the node stopped. See docs/addressing.md.

    Messages from one sender to one actor arrive in the order sent (per
    sender FIFO), except as the mailbox's overflow policy says (dropped or
    conflated messages).
    """

    __slots__ = (
        "_context",
        "_deadlines",
        "_done",
        "_ended",
        "_exit_reason",
        "_loop",
        "_mailbox",
        "_plain",
        "_target",
        "_watchers",
        "path",
    )

    def __init__(self, slot: Slot) -> None:
        self._context = slot  # the slot this ref reaches now
        self._mailbox = slot.mailbox
        # What sends go to: the mailbox, or what stands in for it while the path has no slot.
        # An object, not bound methods: one object less to track per actor each.
        self._target: Mailbox | _BetweenIncarnations = slot.mailbox
        self._plain: Mailbox | None = _plain(slot.mailbox)
        """The mailbox while it is a plain FIFO of this path's live slot: ``tell``'s inline path."""
        kernel = slot.node.kernel
        # A completed future: awaiting it returns at once, cheaper than a coroutine.
        self._done = kernel.completed
        self._loop = slot.loop
        self._deadlines: AskDeadlines = kernel.ask_deadlines
        self._exit_reason: ExitReason | None = None
        self._ended: asyncio.Future[ExitReason] | None = None
        # A dict, not a set: Terminated goes out in watch order, the same on every run.
        self._watchers: dict[Slot, None] | None = None
        """Slots that hear Terminated when this ref dies; created at the first watch."""
        self.path = slot.path

    @property
    def name(self) -> str:
        return self._context.name

    @property
    def is_alive(self) -> bool:
        """False once the actor has stopped for good (restarts, its own or an ancestor's,
        keep it alive)."""
        return self._exit_reason is None

    @property
    def exit_reason(self) -> ExitReason | None:
        """Why the actor stopped for good; None while the ref lives."""
        return self._exit_reason

    @property
    def slot(self) -> Slot:
        """Internal: the runtime slot this ref reaches now, for garrison's own layers (the
        node, supervisors, the test kit). Actors use refs and their context, never this."""
        return self._context

    # -- internal: the kernel moves a ref from one slot of its path to the next -------------

    def bind(self, slot: Slot) -> None:
        """Internal: ``slot`` is the new slot of this ref's path; messages go there from now on."""
        self._context = slot
        self._mailbox = slot.mailbox
        self._target = slot.mailbox
        self._plain = _plain(slot.mailbox)

    def park(self, dead_letters: DeadLetters, reason: str) -> None:
        """Internal: the slot stopped while an ancestor restarts; until ``bind``, each message
        goes to dead letters with ``reason``."""
        between = _BetweenIncarnations(dead_letters, self.path, reason, self._done)
        self._target = between
        self._plain = None

    def die(self, reason: ExitReason) -> None:
        """Internal: the path is gone for good. Sends raise ActorStopped from now on (the last
        slot's closed mailbox), watchers hear ``Terminated``, ``wait_terminated`` returns."""
        if self._exit_reason is not None:
            return
        self._exit_reason = reason
        mailbox = self._context.mailbox
        self._mailbox = mailbox
        self._target = mailbox
        self._plain = None
        watchers = self._watchers
        if watchers:
            for watcher in watchers:
                if watcher.state is not ActorState.STOPPED:
                    watcher.mailbox.put_system(Terminated(self, reason))
            watchers.clear()
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(reason)

    def add_watcher(self, watcher: Slot) -> None:
        """Internal: ``watcher`` hears Terminated when this ref dies (once, however often added)."""
        if self._watchers is None:
            self._watchers = {}
        self._watchers[watcher] = None

    def remove_watcher(self, watcher: Slot) -> None:
        """Internal: ``watcher`` no longer hears of this ref's death."""
        if self._watchers is not None:
            self._watchers.pop(watcher, None)

    # -- sending ------------------------------------------------------------------------

    def tell(self, message: Any) -> Awaitable[None]:
        """Send ``message``; await the result.

        Completes at once when the mailbox accepts it; under BACKPRESSURE
        (and CONFLATE with a new key) a full mailbox makes the await wait for
        space. Raises MailboxFull under REJECT, ActorStopped once the actor
        has stopped for good. Cancelling the wait leaves the message unsent.
        While an ancestor restarts (the path has no slot yet) the message
        goes to dead letters with kind ``restarting``.
        """
        # Inline, the common case of a busy actor: a backlog of at least STAMP_ALWAYS_BELOW
        # (so the consumer is awake and the queue exists), room left, and not a message whose
        # enqueue time is read: queue it as Mailbox.send would, without calling it.
        mailbox = self._plain
        if mailbox is not None:
            queue = mailbox.pending
            if STAMP_ALWAYS_BELOW <= len(queue) < mailbox.room:
                enqueued = mailbox.enqueued + 1
                if enqueued & STAMP_STRIDE_MASK:
                    mailbox.enqueued = enqueued
                    queue.append((message, mailbox.stamp, None))  # type: ignore[union-attr]
                    return self._done
        return self._target.send(message)

    def tell_nowait(self, message: Any) -> None:
        """Send ``message`` without waiting.

        Raises MailboxFull when the mailbox is full and its policy is
        BACKPRESSURE or REJECT (the message was not enqueued), ActorStopped
        once the actor has stopped for good. While an ancestor restarts the
        message goes to dead letters with kind ``restarting``.
        """
        self._target.put_nowait(message)

    async def ask(self, message: Any, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send ``message`` and await the handler's return value.

        The handler's exception is raised here and does not crash the actor.
        Raises UnhandledMessage if the actor does not handle the message
        (``ctx.unhandled``), AskTimeout after ``timeout`` seconds of node-clock
        time (including any wait for mailbox space; None waits forever),
        ActorStopped if the actor stops before it answers, MailboxFull under
        REJECT, MessageDropped if the mailbox policy drops the message or an
        ancestor is restarting (the message then goes to dead letters).
        A reply that arrives after the timeout goes to dead letters.
        """
        if timeout.__class__ is not float or not timeout > 0:  # the usual case, a positive float, inline
            check_seconds("timeout", timeout, allow_none=True)
        reply: asyncio.Future[Any] = self._loop.create_future()
        if timeout is not None:
            self._deadlines.add(reply, timeout, self.path, message)
        try:
            if not self._target.try_put(message, reply):
                await self._mailbox.put(message, reply)
        except BaseException:
            reply.cancel()  # never sent: nothing is left for its deadline to expire
            raise
        return await reply

    def ask_future(self, message: Any, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> asyncio.Future[Any]:
        """Send ``message`` now and return the future of the handler's return value.

        For code that cannot afford a task per ask (a transport relaying asks
        from another node): the message is in the mailbox when this returns,
        or, when a BACKPRESSURE mailbox is full, waits for space on its own
        (a later ``tell`` may then overtake it). The future completes as
        :meth:`ask` would return or raise: every refusal (``MailboxFull``,
        ``ActorStopped``, ``MessageDropped``), ``AskTimeout`` after ``timeout``
        seconds of node-clock time, the handler's error. Only a bad ``timeout``
        raises here (InvalidConfig). Cancelling the future withdraws an ask
        still waiting for space; a reply after that goes to dead letters.
        """
        if timeout.__class__ is not float or not timeout > 0:
            check_seconds("timeout", timeout, allow_none=True)
        reply: asyncio.Future[Any] = self._loop.create_future()
        if timeout is not None:
            self._deadlines.add(reply, timeout, self.path, message)
        try:
            if not self._target.try_put(message, reply):
                waiting = self._loop.create_task(
                    self._put_later(message, reply), name=f"garrison:{self.path}:ask"
                )
                _WAITING_FOR_SPACE.add(waiting)  # the loop holds tasks weakly
                waiting.add_done_callback(_WAITING_FOR_SPACE.discard)
        except Exception as refused:
            reply.set_exception(refused)
        return reply

    async def _put_later(self, message: Any, reply: asyncio.Future[Any]) -> None:
        """An :meth:`ask_future` whose message waits for space in a full mailbox."""
        try:
            await self._mailbox.put(message, reply)
        except Exception as refused:
            if not reply.done():
                reply.set_exception(refused)

    def mailbox_metrics(self) -> MailboxMetrics:
        """A snapshot of this actor's mailbox counters and consumer lag (also after it stopped)."""
        return self._mailbox.metrics()

    def wait_terminated(self) -> Awaitable[ExitReason]:
        """Await the final exit reason, once the actor stopped for good (at once if it has).

        Restarts, the actor's own or an ancestor's, do not end the wait. Shielded:
        cancelling the await does not stop anything.
        """
        if self._ended is None:
            self._ended = self._loop.create_future()
            if self._exit_reason is not None:
                self._ended.set_result(self._exit_reason)
        return asyncio.shield(self._ended)

    def __repr__(self) -> str:
        return f"ActorRef({self.path!r})"
