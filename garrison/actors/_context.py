"""``ActorContext``: what an actor sees as ``self.ctx``.

Its ref, its parent and children, its node, its logger, and the runtime's
services for one incarnation: timers (``send_later``, keyed ``timers``), the
stash, linked tasks, watches, deferred replies, heartbeats, critical
sections, blocking isolation. The machinery
that runs the incarnation (start, the message loop, stop, exit) is the
actor's slot (``garrison.actors._slot``), which this context reads and asks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from garrison._clock import Cancellable
from garrison._errors import ActorStopped, InvalidConfig, MailboxFull, UnhandledMessage
from garrison.actors._control import Stop, TimerMessage
from garrison.actors._messages import ActorState, ExitReason
from garrison.actors._timers import TimerScheduler

if TYPE_CHECKING:
    from loguru import Logger

    from garrison.actors._actor import Actor
    from garrison.actors._kernel import SpawnOptions
    from garrison.actors._metrics import ActorMetrics
    from garrison.actors._ref import ActorRef, Watchable
    from garrison.actors._runtime import Runtime
    from garrison.actors._slot import Interceptor, Slot
    from garrison.actors._stash import Stash

T = TypeVar("T")


class DeferredReply:
    """The answer to an ask, to be given later: see ``ActorContext.defer_reply``."""

    __slots__ = ("_future", "_node", "_path")

    def __init__(self, future: asyncio.Future[Any] | None, node: Runtime, path: str) -> None:
        self._future = future
        self._node = node
        self._path = path

    @property
    def expects_answer(self) -> bool:
        """False for a tell, or once answered or given up."""
        return self._future is not None and not self._future.done()

    def resolve(self, value: Any) -> None:
        """Answer the ask with ``value`` (dead-lettered if the asker gave up)."""
        future = self._future
        if future is None:
            return
        if future.done():
            self._node.dead_letters.publish(
                value, self._path, "deferred reply after the ask gave up", kind="late_reply"
            )
            return
        future.set_result(value)

    def fail(self, error: BaseException) -> None:
        """Raise ``error`` in the asker."""
        future = self._future
        if future is not None and not future.done():
            future.set_exception(error)


class _Critical:
    """``async with ctx.critical():`` defers runtime cancellation to the end of the block."""

    __slots__ = ("_slot",)

    def __init__(self, slot: Slot) -> None:
        self._slot = slot

    async def __aenter__(self) -> None:
        self._slot.enter_critical()

    async def __aexit__(self, *exc_info: object) -> None:
        self._slot.exit_critical()


class ActorContext:
    """What an actor sees as ``self.ctx``: its ref, its node, and the runtime's services.

    One per actor slot; the same context serves every incarnation (restarts
    included). Everything here runs on the node's loop; nothing blocks it.
    """

    __slots__ = ("_slot", "_timers", "name", "node", "path")

    def __init__(self, slot: Slot) -> None:
        self._slot = slot
        self._timers: TimerScheduler | None = None
        self.node: Runtime = slot.node
        """The node this actor runs on (a ``garrison.Node``)."""
        self.name = slot.name
        self.path = slot.path
        """``/``-joined names from the top, e.g. ``/root/execution/executor``."""

    # -- who and where -----------------------------------------------------------------

    @property
    def self_ref(self) -> ActorRef:
        """This actor's own ref (stable across its restarts)."""
        return self._slot.self_ref

    @property
    def parent(self) -> ActorRef | None:
        """The parent's ref; None for a top-level actor."""
        parent = self._slot.parent
        return parent.self_ref if parent is not None else None

    @property
    def children(self) -> list[ActorRef]:
        """Refs of the live children, in start order."""
        return [child.self_ref for child in self._slot.children.values()]

    @property
    def logger(self) -> Logger:
        """A loguru logger bound with the node name and this actor's path."""
        return self._slot.logger

    @property
    def state(self) -> ActorState:
        """Where the slot is in its life (RUNNING while this actor serves messages)."""
        return self._slot.state

    @property
    def incarnation(self) -> int:
        """How many times this slot has been started (1 for the first incarnation)."""
        return self._slot.incarnation

    @property
    def restarts(self) -> int:
        """Supervised restarts of this slot so far."""
        return self._slot.restarts

    @property
    def queued(self) -> int:
        """User messages waiting in this actor's mailbox behind the one in flight.

        Lets a handler batch: queue work without awaiting while more messages
        wait, and commit once when ``queued == 0``.
        """
        return len(self._slot.mailbox)

    @property
    def metrics(self) -> ActorMetrics:
        """Register this actor's own counters, gauges and histograms, shown on ``/metrics``
        with its ``actor`` label (see docs/operations.md, "Application metrics")."""
        return self.node.metrics.for_actor(self.path)

    # -- children and watches -------------------------------------------------------------

    async def spawn(self, actor_class: type[Actor], **options: Unpack[SpawnOptions]) -> ActorRef:
        """Start a child actor under this one; awaits its ``on_start``.

        ``options`` are those of ``node.spawn`` (:class:`~garrison.actors.SpawnOptions`).
        A child exit stops the child for good (use a supervisor for restarts);
        children stop, in reverse start order, whenever this actor's
        incarnation ends. Raises ActorStartError if its ``on_start`` fails.
        """
        return await self.node.kernel.spawn(actor_class, parent=self._slot, **options)

    def watch(self, ref: Watchable) -> None:
        """Deliver ``Terminated(ref, reason)`` to this actor when ``ref`` stops for good.

        ``ref`` is an ActorRef or a ``garrison.cluster.RemoteRef`` (an actor on another node:
        also delivered when that node leaves the cluster).

        Delivered at once if it has already stopped. Not delivered for
        supervised restarts, its own or an ancestor's (the ref lives on; see
        docs/supervision.md, "When a ref dies"). Watching twice delivers once.
        """
        self._slot.watch(ref)

    def unwatch(self, ref: Watchable) -> None:
        """Stop watching ``ref``; a Terminated already queued is still delivered."""
        self._slot.unwatch(ref)

    def stop(self) -> None:
        """Stop this actor normally once the message in flight is done.

        ``on_stop`` runs; queued messages go to dead letters. A normal stop:
        a TRANSIENT child is not restarted.
        """
        self._slot.mailbox.put_system(Stop(ExitReason.normal("ctx.stop()")))

    # -- timers and linked tasks ---------------------------------------------------------

    @property
    def timers(self) -> TimerScheduler:
        """This actor's keyed timers (Akka's TimerScheduler): see :class:`TimerScheduler`.

        ``start_single``, ``start_periodic`` (fixed delay), ``start_at_fixed_rate``,
        ``cancel``, ``cancel_all``, ``is_active``. Cancelled when the incarnation
        ends; a message of a cancelled or replaced timer is never delivered.
        """
        timers = self._timers
        if timers is None:
            timers = self._timers = TimerScheduler(self._slot)
        return timers

    @property
    def timer_scheduler(self) -> TimerScheduler | None:
        """Internal, for the slot: the keyed timers if this actor ever used ``timers``, else None."""
        return self._timers

    def send_later(self, delay: float, message: Any, *, to: ActorRef | None = None) -> Cancellable:
        """Tell ``message`` to ``to`` (default: this actor) after ``delay`` seconds of node-clock time.

        The timer belongs to this incarnation (as Akka's timers do): it is
        cancelled when the incarnation ends (stop, crash, restart). A timer to
        this actor is never lost to a full mailbox (it is deferred to the system
        lane and delivered ahead of queued user messages), so a
        self-rescheduling poll keeps going. A deferred message still waiting
        when its incarnation ends is not delivered to the next one: it goes to
        dead letters (kind ``timer`` at a restart, ``stopped`` at a stop) with
        the reason. A timer message that found room went into the queue as an
        ordinary user message and, like any queued message, survives a
        restart. A message for another actor that has stopped or whose mailbox
        refuses it goes to dead letters.
        """
        slot = self._slot
        target = to if to is not None else slot.self_ref
        timer: Cancellable | None = None

        def fire() -> None:
            slot.untrack_timer(timer)  # type: ignore[arg-type,unused-ignore]
            try:
                if target is slot.self_ref:
                    # A timer to itself (a poll, a sweep) must not die because the mailbox
                    # is busy: it is deferred to the system lane, delivered like any message.
                    slot.mailbox.put_or_defer(message, TimerMessage)
                else:
                    target.tell_nowait(message)
            except MailboxFull:
                self.node.dead_letters.publish(
                    message, target.path, f"timer message refused: {target.path} is full", kind="timer"
                )
            except ActorStopped as error:
                self.node.dead_letters.publish(
                    message, target.path, f"timer message refused: {error}", kind="timer"
                )

        timer = self.node.clock.call_later(delay, fire)
        slot.track_timer(timer)
        return timer

    def run_task(self, coroutine: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coroutine`` as a task linked to this incarnation (like an OTP link).

        Cancelled when the incarnation ends; an exception escaping it crashes
        the actor (its supervisor decides), so a reader loop or a poller can
        never die unnoticed.
        """
        slot = self._slot
        task = slot.loop.create_task(coroutine, name=f"garrison:{self.path}:{name or 'task'}")
        slot.track_task(task)
        return task

    # -- answering, progress, sections that must not be cut ------------------------------------

    def defer_reply(self) -> DeferredReply:
        """Answer the message in flight later, from elsewhere (Akka's ``forward``).

        Call inside a handler: the handler's return value no longer answers
        the ask; ``resolve(value)`` or ``fail(error)`` on the returned handle
        does, at any later time (for example after another actor confirmed a
        durable write). For a ``tell`` the handle does nothing. A reply after
        the ask gave up goes to dead letters.
        """
        return DeferredReply(self._slot.take_reply(), self.node, self.path)

    def heartbeat(self) -> None:
        """Tell the runtime a long message is still making progress (see heartbeat_timeout)."""
        slot = self._slot
        if slot.busy_since is not None:
            slot.busy_since = self.node.clock.now()

    def critical(self) -> _Critical:
        """``async with ctx.critical():`` — a section stop and kill never cut in half.

        Cancellation requested by the runtime (shutdown timeout, kill,
        heartbeat) while inside is delivered when the outermost block exits.
        """
        return _Critical(self._slot)

    # -- the stash ------------------------------------------------------------------------

    def stash(self) -> None:
        """Set the message in flight aside, to be handled after ``unstash_all()`` (Akka's ``stash``).

        Call inside ``on_receive``. A stashed ask is not answered by this
        handler's return value: it is answered when a later handler takes it
        again. Needs ``MailboxConfig(stash_capacity=N)``: raises InvalidConfig
        without one, StashOverflow when ``N`` messages are already stashed
        (the message is then not stashed), StashError outside a handler or
        for a message stashed already. Stashed messages survive a restart
        (they come back first) and go to dead letters (kind
        ``stashed_on_stop``) when the actor stops for good.
        """
        self._stash_of("stash").stash()

    def unstash_all(self) -> int:
        """Put every stashed message back at the front of the mailbox, in the order stashed.

        They are handled next, before any message queued meanwhile (control
        on the system lane still comes first), once the handler in flight
        returns. Returns how many. They may take the mailbox past its
        capacity for a while; senders wait (or are refused) until it is back
        under. Raises InvalidConfig without ``stash_capacity``.
        """
        return self._stash_of("unstash_all").unstash_all()

    @property
    def stashed(self) -> int:
        """How many messages are stashed now (0 without a stash)."""
        stash = self._slot.stash
        return len(stash) if stash is not None else 0

    def _stash_of(self, call: str) -> Stash:
        stash = self._slot.stash
        if stash is None:
            raise InvalidConfig(
                "stash_capacity",
                0,
                f"ctx.{call}() in {self.path} needs a stash: give the actor "
                "MailboxConfig(stash_capacity=N) (class attribute mailbox, or spawn's mailbox=)",
            )
        return stash

    def unhandled(self, message: Any) -> None:
        """This actor does not handle ``message``, the message in flight.

        For an ``ask`` the asker gets UnhandledMessage (the handler's return
        value no longer answers it); a ``tell`` goes to dead letters with kind
        ``unhandled``. Either way the actor carries on. The default
        ``on_receive`` calls this for every message.
        """
        slot = self._slot
        reply = slot.take_reply()
        if reply is not None and not reply.done():
            error = UnhandledMessage(self.path, type(message).__name__, slot.actor_class.__name__)
            reply.set_exception(error)
            return
        self.node.dead_letters.publish(
            message, self.path, f"unhandled by {slot.actor_class.__name__}", kind="unhandled"
        )

    # -- blocking work --------------------------------------------------------------------

    async def run_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn(*args)`` on the node's thread pool; see Node.run_in_thread."""
        return await self.node.run_in_thread(fn, *args)

    async def run_in_process(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound ``fn(*args)`` on the node's process pool; see Node.run_in_process."""
        return await self.node.run_in_process(fn, *args)

    def intercept(self, interceptor: Interceptor) -> Callable[[], None]:
        """Wrap ``on_receive`` of this and every later incarnation (fault injection, tracing).

        Takes effect before the next message. Returns a function that removes
        it (also before the next message). Costs nothing when unused.
        """
        return self._slot.intercept(interceptor)

    def __repr__(self) -> str:
        return f"<ActorContext {self.path} {self._slot.state.value}>"
