"""The life of one actor slot, top to bottom: start, serve, stop, exit.

An :class:`ActorContext` is the slot an :class:`ActorRef` names. It owns the
mailbox (which survives restarts), runs one incarnation at a time as one
asyncio task, and hands every exit it did not ask for to its exit hook: the
node and plain parents stop the slot for good, supervisors decide restarts.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from garrison._clock import Cancellable
from garrison._errors import ActorStartError, ActorStopped, FatalError, MailboxFull, MessageDropped
from garrison.actors._actor import Actor, _constructing
from garrison.actors._events import Failed, Started, Stopped
from garrison.actors._messages import ExitReason, Terminated
from garrison.actors._ref import ActorRef
from garrison.mailbox import Mailbox, MailboxConfig, make_mailbox

if TYPE_CHECKING:
    from loguru import Logger

    from garrison.actors._runtime import Runtime

T = TypeVar("T")

Receive = Callable[[Any], Awaitable[Any]]
Interceptor = Callable[[Receive], Receive]
"""Wraps an instance's ``on_receive``: how fault injection reaches a running actor."""

ExitHook = Callable[["ActorContext", ExitReason], None]
"""Decides what happens after an exit the slot did not ask for (crash, ``ctx.stop()``)."""


class ActorState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"


class SystemMessage:
    """A control message served on the system lane, inside the actor's own task."""

    reply: asyncio.Future[Any] | None = None
    """What a sender awaits, if anything (a supervisor call). Should the slot stop for good
    before serving the message, or the incarnation be cancelled while serving it, this
    future fails with ActorStopped naming the exit reason."""

    async def run(self, context: ActorContext, instance: Actor) -> ExitReason | None:
        """Do the work; return an exit reason to end the incarnation, or None to go on."""
        raise NotImplementedError


class _Stop(SystemMessage):
    __slots__ = ("reason",)

    def __init__(self, reason: ExitReason) -> None:
        self.reason = reason


class _IncarnationStop:
    """A stop of the running incarnation in progress; every stop call while it lasts joins it.

    The first call's reason stands (as in OTP and Akka), and so does its
    shutdown deadline unless a later call's ends sooner: a joining call may
    bring the deadline forward (``timeout=0`` cancels at once, as OTP's
    ``exit(Pid, kill)`` cuts a graceful shutdown short), never push it back.
    A later call does not replace what the earlier callers await. It belongs
    to the slot, not to a caller, so a caller that is cancelled does not take
    the stop back.
    """

    __slots__ = ("deadline", "ended", "for_good", "stop", "timer")

    def __init__(self, ended: asyncio.Future[ExitReason]) -> None:
        self.ended = ended
        """How the incarnation ended; every joined caller awaits it (shielded)."""
        self.for_good = False
        """A slot stop (``_stop``) is among the callers: the slot is finalized when the incarnation ends."""
        self.stop: _Stop | None = None
        """The _Stop asked for on the system lane (None for an immediate kill)."""
        self.deadline: float | None = None
        """Node-clock time at which what is left is cancelled; None: never."""
        self.timer: Cancellable | None = None
        """Fires at ``deadline`` (None once the deadline is now, or never)."""


class _Rewire(SystemMessage):
    """Re-read the interceptors before the next message."""

    __slots__ = ()

    async def run(self, context: ActorContext, instance: Actor) -> ExitReason | None:
        return None


class DeferredReply:
    """The answer to an ask, to be given later: see ``ActorContext.defer_reply``."""

    __slots__ = ("_future", "_context")

    def __init__(self, future: asyncio.Future[Any] | None, context: ActorContext) -> None:
        self._future = future
        self._context = context

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
            self._context.node.dead_letters.publish(
                value, self._context.path, "deferred reply after the ask gave up", kind="late_reply"
            )
            return
        future.set_result(value)

    def fail(self, error: BaseException) -> None:
        """Raise ``error`` in the asker."""
        future = self._future
        if future is not None and not future.done():
            future.set_exception(error)


class _TimerMessage(SystemMessage):
    """A ``send_later`` to self that found the mailbox full: delivered from the system lane.

    Only while the incarnation that set the timer lives: see ``_discard_timer_messages``.
    """

    __slots__ = ("message",)

    def __init__(self, message: Any) -> None:
        self.message = message


class _Critical:
    """``async with ctx.critical():`` defers runtime cancellation to the end of the block."""

    __slots__ = ("_context",)

    def __init__(self, context: ActorContext) -> None:
        self._context = context

    async def __aenter__(self) -> None:
        self._context._critical_depth += 1

    async def __aexit__(self, *exc_info: object) -> None:
        context = self._context
        context._critical_depth -= 1
        if context._critical_depth == 0 and context._deferred_kill:
            context._deferred_kill = False
            raise asyncio.CancelledError("deferred by ctx.critical()")


def stop_for_good(context: ActorContext, reason: ExitReason) -> None:
    """The exit hook of unsupervised actors: an exit ends the slot."""
    context._finalize(reason)


class ActorContext:
    """What an actor sees as ``self.ctx``, and the slot its ref names.

    Everything here runs on the node's loop; nothing blocks it.
    """

    __slots__ = (
        "__weakref__",
        "_children",
        "_critical_depth",
        "_deferred_kill",
        "_exit_reason",
        "_interceptors",
        "_reply",
        "_kill_reason",
        "_logger",
        "_loop",
        "_on_exit",
        "_parent",
        "_stopping",
        "_task",
        "_terminated",
        "_throughput",
        "_throughput_deadline",
        "_watchers",
        "_owned_timers",
        "_owned_tasks",
        "actor_class",
        "args",
        "busy_since",
        "incarnation",
        "instance",
        "kwargs",
        "log_failures",
        "mailbox",
        "name",
        "node",
        "path",
        "restarts",
        "self_ref",
        "shutdown",
        "state",
        "stop_children_concurrently",
    )

    def __init__(
        self,
        node: Runtime,
        parent: ActorContext | None,
        name: str,
        actor_class: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        mailbox: MailboxConfig,
        shutdown: float | None,
        on_exit: ExitHook,
    ) -> None:
        self.node = node
        self.name = name
        self.path: str = f"{parent.path if parent is not None else ''}/{name}"
        self.actor_class = actor_class
        self.args = args
        self.kwargs = kwargs
        self.mailbox: Mailbox = make_mailbox(
            mailbox, path=self.path, now=node.clock.now, on_drop=self._dropped
        )
        self.self_ref = ActorRef(self)
        self.shutdown = shutdown
        self.state = ActorState.STARTING
        self.restarts = 0
        self.incarnation = 0
        """Counts launches; tells a supervisor whether an exit notice is stale."""
        self.stop_children_concurrently = False
        """Stop children all at once rather than in reverse start order (DynamicSupervisor)."""
        self.log_failures = True
        """False when the exit hook logs each failure itself (a supervisor: one record with its decision)."""
        self.instance: Actor | None = None
        self.busy_since: float | None = None
        """Node-clock time the message in flight started (or last heartbeat); None when idle."""
        self._parent = parent
        self._children: dict[str, ActorContext] = {}
        # A dict, not a set: Terminated goes out in watch order, the same on every run.
        self._watchers: dict[ActorContext, None] = {}
        self._on_exit = on_exit
        self._task: asyncio.Task[None] | None = None
        self._stopping: _IncarnationStop | None = None
        self._kill_reason: ExitReason | None = None
        self._critical_depth = 0
        self._deferred_kill = False
        self._exit_reason: ExitReason | None = None
        self._terminated: asyncio.Future[ExitReason] | None = None
        self._logger: Logger | None = None
        self._loop = asyncio.get_running_loop()
        self._throughput = mailbox.throughput
        self._throughput_deadline = mailbox.throughput_deadline
        self._interceptors: list[Interceptor] = []
        self._reply: asyncio.Future[Any] | None = None
        self._owned_timers: set[Cancellable] = set()
        self._owned_tasks: set[asyncio.Task[Any]] = set()

    # -- what the actor uses ---------------------------------------------

    @property
    def parent(self) -> ActorRef | None:
        """The parent's ref; None for a top-level actor."""
        return self._parent.self_ref if self._parent is not None else None

    @property
    def children(self) -> list[ActorRef]:
        """Refs of the live children, in start order."""
        return [child.self_ref for child in self._children.values()]

    @property
    def logger(self) -> Logger:
        """A loguru logger bound with the node name and this actor's path."""
        if self._logger is None:
            self._logger = self.node.logger.bind(actor=self.path)
        return self._logger

    async def spawn(
        self,
        actor_class: type[Actor],
        *,
        name: str | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        mailbox: MailboxConfig | None = None,
        shutdown: float | None = 5.0,
    ) -> ActorRef:
        """Start a child actor under this one; awaits its ``on_start``.

        A child exit stops the child for good (use a supervisor for restarts);
        children stop, in reverse start order, whenever this actor's
        incarnation ends. Raises ActorStartError if its ``on_start`` fails.
        """
        return await self.node.kernel.spawn(
            actor_class,
            parent=self,
            name=name,
            args=args,
            kwargs=kwargs,
            mailbox=mailbox,
            shutdown=shutdown,
            on_exit=stop_for_good,
        )

    def watch(self, ref: ActorRef) -> None:
        """Deliver ``Terminated(ref, reason)`` to this actor when ``ref`` stops for good.

        Delivered at once if it has already stopped. Not delivered for
        supervised restarts. Watching twice delivers once.
        """
        target = ref._context
        if target.state is ActorState.STOPPED:
            assert target._exit_reason is not None
            self.mailbox.put_system(Terminated(ref, target._exit_reason))
        else:
            target._watchers[self] = None

    def unwatch(self, ref: ActorRef) -> None:
        """Stop watching ``ref``; a Terminated already queued is still delivered."""
        ref._context._watchers.pop(self, None)

    def stop(self) -> None:
        """Stop this actor normally once the message in flight is done.

        ``on_stop`` runs; queued messages go to dead letters. A normal stop:
        a TRANSIENT child is not restarted.
        """
        self.mailbox.put_system(_Stop(ExitReason.normal("ctx.stop()")))

    @property
    def queued(self) -> int:
        """User messages waiting in this actor's mailbox behind the one in flight.

        Lets a handler batch: queue work without awaiting while more messages
        wait, and commit once when ``queued == 0``.
        """
        return len(self.mailbox)

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
        target = to if to is not None else self.self_ref
        timer: Cancellable | None = None

        def fire() -> None:
            self._owned_timers.discard(timer)  # type: ignore[arg-type,unused-ignore]
            try:
                if target is self.self_ref:
                    # A timer to itself (a poll, a sweep) must not die because the mailbox
                    # is busy: it is deferred to the system lane, delivered like any message.
                    self.mailbox.put_or_defer(message, _TimerMessage)
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
        self._owned_timers.add(timer)
        return timer

    def run_task(self, coroutine: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coroutine`` as a task linked to this incarnation (like an OTP link).

        Cancelled when the incarnation ends; an exception escaping it crashes
        the actor (its supervisor decides), so a reader loop or a poller can
        never die unnoticed.
        """
        task = self._loop.create_task(coroutine, name=f"garrison:{self.path}:{name or 'task'}")
        self._owned_tasks.add(task)
        task.add_done_callback(self._owned_task_done)
        return task

    def _owned_task_done(self, task: asyncio.Task[Any]) -> None:
        self._owned_tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and self.instance is not None:
            self._kill(ExitReason.failure(error, f"task {task.get_name()} failed"))

    async def _cancel_owned(self) -> None:
        self._cancel_owned_timers()
        tasks = list(self._owned_tasks)
        self._owned_tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
            # A task's cleanup may have set a timer while it was being cancelled.
            self._cancel_owned_timers()

    def _cancel_owned_timers(self) -> None:
        for timer in self._owned_timers:
            timer.cancel()
        self._owned_timers.clear()

    def _discard_timer_messages(self, reason: str, kind: str) -> None:
        """Dead-letter the timer messages deferred to the system lane; other control stays queued.

        A timer message belongs to the incarnation that set the timer: it must reach neither
        the next incarnation nor a slot that is stopping.
        """
        system = self.mailbox._system
        if not any(control.__class__ is _TimerMessage for control in system):
            return
        kept = []
        for control in system:
            if control.__class__ is _TimerMessage:
                self.node.dead_letters.publish(control.message, self.path, reason, kind=kind)
            else:
                kept.append(control)
        system[:] = kept

    def defer_reply(self) -> DeferredReply:
        """Answer the message in flight later, from elsewhere (Akka's ``forward``).

        Call inside a handler: the handler's return value no longer answers
        the ask; ``resolve(value)`` or ``fail(error)`` on the returned handle
        does, at any later time (for example after another actor confirmed a
        durable write). For a ``tell`` the handle does nothing. A reply after
        the ask gave up goes to dead letters.
        """
        reply, self._reply = self._reply, None
        return DeferredReply(reply, self)

    def heartbeat(self) -> None:
        """Tell the runtime a long message is still making progress (see heartbeat_timeout)."""
        if self.busy_since is not None:
            self.busy_since = self.node.clock.now()

    def critical(self) -> _Critical:
        """``async with ctx.critical():`` — a section stop and kill never cut in half.

        Cancellation requested by the runtime (shutdown timeout, kill,
        heartbeat) while inside is delivered when the outermost block exits.
        """
        return _Critical(self)

    def unhandled(self, message: Any) -> None:
        """Send a message this actor does not handle to dead letters."""
        self.node.dead_letters.publish(
            message, self.path, f"unhandled by {self.actor_class.__name__}", kind="unhandled"
        )

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
        self._interceptors.append(interceptor)
        self.mailbox.put_system(_Rewire())

        def remove() -> None:
            if interceptor in self._interceptors:
                self._interceptors.remove(interceptor)
                if self.state is not ActorState.STOPPED:
                    self.mailbox.put_system(_Rewire())

        return remove

    def _receiver(self, instance: Actor) -> Receive:
        receive: Receive = instance.on_receive
        for interceptor in self._interceptors:
            receive = interceptor(receive)
        return receive

    # -- one incarnation ---------------------------------------------------

    def _launch(self, started: asyncio.Future[None] | None) -> None:
        """Start a fresh incarnation as a task; ``started`` resolves after ``on_start``."""
        self.state = ActorState.STARTING
        self.incarnation += 1
        self.node.kernel.launched(self)
        self._task = self._loop.create_task(self._run(started), name=f"garrison:{self.path}")

    async def _run(self, started: asyncio.Future[None] | None) -> None:
        reason: ExitReason
        message: Any = None
        reply: asyncio.Future[Any] | None = None
        serving: SystemMessage | None = None
        instance: Actor | None = None
        try:
            token = _constructing.set(self)
            try:
                instance = self.actor_class(*self.args, **self.kwargs)
            finally:
                _constructing.reset(token)
            self.instance = instance
            await instance._before_start()
            await instance.on_start()
        except asyncio.CancelledError:
            reason = self._kill_reason or ExitReason.shutdown("cancelled while starting")
        except Exception as exc:
            reason = ExitReason.failure(exc, "on_start failed")
            self._report_failure(reason, None)
        else:
            self.state = ActorState.RUNNING
            self.node.events.publish(Started(path=self.path, at=self.node.clock.now()))
            if started is not None:
                started.set_result(None)
                started = None
            mailbox = self.mailbox
            system = mailbox._system
            pending = mailbox.pending
            take = mailbox.take
            receive = self._receiver(instance)
            track_busy = self.actor_class.heartbeat_timeout is not None
            now = self.node.clock.now
            throughput = self._throughput
            deadline = self._throughput_deadline
            # Fairness is about the real loop: real time, except on a manual clock (see slice_time).
            slice_time = self.node.clock.slice_time
            yielded_at = slice_time()
            served = 0
            try:
                while True:
                    if system:
                        control = system.pop(0)
                        if control.__class__ is Terminated:
                            message = control
                        elif control.__class__ is _TimerMessage:
                            message = control.message
                        elif control.__class__ is _Stop:
                            reason = control.reason
                            await self._run_on_stop(instance)
                            break
                        else:
                            serving = control
                            try:
                                outcome = await control.run(self, instance)
                            except Exception as exc:
                                reason = ExitReason.failure(exc, f"{type(control).__name__} failed")
                                self._report_failure(reason, None)
                                break
                            serving = None
                            if outcome is not None:
                                reason = outcome
                                break
                            receive = self._receiver(instance)
                            continue
                    elif pending:
                        message, _, reply = take()
                    else:
                        await mailbox.wait()
                        yielded_at = slice_time()
                        served = 0
                        continue
                    if track_busy:
                        self.busy_since = now()
                    if reply is None:
                        try:
                            await receive(message)
                        except Exception as exc:
                            reason = self._crashed(message, exc)
                            break
                    else:
                        self._reply = reply
                        try:
                            result = await receive(message)
                        except Exception as exc:
                            if not reply.done():
                                reply.set_exception(exc)
                            if isinstance(exc, FatalError):
                                reason = self._crashed(message, exc)
                                break
                        else:
                            if self._reply is reply:  # not deferred
                                if not reply.done():
                                    reply.set_result(result)
                                else:
                                    self._late_reply(message, result)
                        reply = self._reply = None
                    message = None
                    if track_busy:
                        self.busy_since = None
                    # Akka's dispatcher rule: yield after `throughput` messages, or sooner once
                    # `throughput_deadline` has passed since the last yield (checked after each
                    # message), so one slice never holds the loop much past the deadline.
                    served += 1
                    if served >= throughput or (deadline and slice_time() - yielded_at >= deadline):
                        served = 0
                        await asyncio.sleep(0)
                        yielded_at = slice_time()
            except asyncio.CancelledError:
                reason = self._kill_reason or ExitReason.shutdown("cancelled")
                if reply is not None and not reply.done():
                    reply.set_exception(ActorStopped(self.path, str(reason)))
                if serving is not None and serving.reply is not None and not serving.reply.done():
                    # A call cut off mid-way (a supervisor call) is answered, as an ask would be.
                    serving.reply.set_exception(
                        ActorStopped(self.path, f"cancelled while answering: {reason}")
                    )
                # A tell cut off by any kill (a shutdown timeout too) was not processed.
                if message is not None and reply is None:
                    self.node.dead_letters.publish(
                        message,
                        self.path,
                        f"in flight when {self.path} was killed: {reason}",
                        reason.error,
                        kind="killed",
                    )
                if reason.abnormal:
                    self._report_failure(reason, message)
        await self._end_incarnation(reason, started)

    async def _run_on_stop(self, instance: Actor) -> None:
        try:
            await instance.on_stop()
        except Exception:
            self.logger.opt(exception=True).error("on_stop of {path} raised", path=self.path)

    def _crashed(self, message: Any, error: Exception) -> ExitReason:
        """A tell's handler raised: the message goes to dead letters with the error."""
        message_type = type(message).__name__
        self.node.dead_letters.publish(
            message, self.path, f"crashed {self.path}: {type(error).__name__}: {error}", error, kind="crashed"
        )
        reason = ExitReason.failure(error, f"crashed handling {message_type}")
        self._report_failure(reason, message)
        return reason

    def _report_failure(self, reason: ExitReason, message: Any) -> None:
        message_type = type(message).__name__ if message is not None else ""
        error = reason.error
        if self.log_failures:
            self.logger.opt(exception=error).error(
                "actor {path} failed{handling}: {reason}",
                path=self.path,
                handling=f" handling {message_type}" if message_type else "",
                reason=reason,
            )
        self.node.events.publish(
            Failed(
                path=self.path,
                at=self.node.clock.now(),
                reason=str(reason),
                error_type=type(error).__name__ if error is not None else "",
                message_type=message_type,
            )
        )

    def _late_reply(self, message: Any, result: Any) -> None:
        self.node.dead_letters.publish(
            result,
            self.path,
            f"reply to {type(message).__name__} after the ask timed out or was cancelled",
            kind="late_reply",
        )

    async def _end_incarnation(self, reason: ExitReason, started: asyncio.Future[None] | None) -> None:
        self.instance = None
        self.busy_since = None
        self._reply = None  # an ask cut off mid-handler must not be deferrable by the next incarnation
        await self._cancel_owned()
        self._discard_timer_messages(
            f"timer set by incarnation #{self.incarnation} of {self.path}, which ended ({reason}): "
            "discarded, not delivered to a later incarnation",
            "timer",
        )
        if self._children:
            await self._stop_children()
        self._task = None
        self._kill_reason = None
        self._deferred_kill = False
        self._critical_depth = 0
        stopping, self._stopping = self._stopping, None
        if stopping is not None:
            self._stop_ended(stopping, reason)
        if started is not None:
            # The first start failed (or was stopped): the spawner finalizes the slot and raises.
            error = reason.error if reason.error is not None else ActorStopped(self.path, str(reason))
            started.set_exception(ActorStartError(self.path, error))
            return
        if stopping is not None:
            # An exit the slot asked for: its callers decide, not the exit hook.
            if stopping.for_good:
                self._finalize(reason)
            return
        self._on_exit(self, reason)

    def _stop_ended(self, stopping: _IncarnationStop, reason: ExitReason) -> None:
        if stopping.timer is not None:
            stopping.timer.cancel()
        if stopping.stop is not None and stopping.stop in self.mailbox._system:
            # The incarnation ended before serving it (cancelled, or crashed): it must
            # not stop the next incarnation the moment it starts.
            self.mailbox._system.remove(stopping.stop)
        if not stopping.ended.done():
            stopping.ended.set_result(reason)

    async def _stop_children(self) -> None:
        reason = ExitReason.shutdown(f"parent {self.path} stopping")
        children = list(self._children.values())
        if self.stop_children_concurrently:
            await asyncio.gather(*(child._stop(reason, child.shutdown) for child in children))
            return
        for child in reversed(children):
            await child._stop(reason, child.shutdown)

    def _kill(self, reason: ExitReason) -> None:
        """Cancel the running incarnation now (or at the end of a critical section).

        Not once the instance is gone: the incarnation is ending (stopping its
        children, each within its own shutdown), and cutting that short would
        leave its children running and its stop callers waiting for ever.
        """
        task = self._task
        if task is None or task.done() or self.instance is None:
            return
        self._kill_reason = reason
        if self._critical_depth:
            self._deferred_kill = True
            return
        task.cancel()

    def _begin_stop(self, reason: ExitReason, timeout: float | None) -> _IncarnationStop | None:
        """Ask the running incarnation to end, or join the stop already asked for.

        None when no incarnation is running. The first call's reason stands
        for everyone who joins; a joining call may only bring the deadline
        forward (see ``_hasten``).
        """
        if self._task is None or self._task.done():
            return None
        stopping = self._stopping
        if stopping is None:
            stopping = self._stopping = _IncarnationStop(self._loop.create_future())
            if timeout != 0:
                stopping.stop = _Stop(reason)
                self.mailbox.put_system(stopping.stop)
        self._hasten(stopping, reason, timeout)
        return stopping

    def _hasten(self, stopping: _IncarnationStop, reason: ExitReason, timeout: float | None) -> None:
        """Cancel what is left of the stopping incarnation within ``timeout``, unless due sooner.

        A deadline is only ever brought forward. ``timeout=0`` cancels now
        with ``reason``; a later deadline cancels with a reason naming it.
        """
        if timeout is None:
            return
        deadline = self.node.clock.now() + timeout
        if stopping.deadline is not None and deadline >= stopping.deadline:
            return
        stopping.deadline = deadline
        if stopping.timer is not None:
            stopping.timer.cancel()
            stopping.timer = None
        if timeout == 0:
            self._kill(reason)
        else:
            stopping.timer = self.node.clock.call_later(
                timeout,
                self._kill,
                ExitReason.shutdown(f"did not stop within shutdown={timeout}s; cancelled"),
            )

    async def _stop_incarnation(self, reason: ExitReason, timeout: float | None) -> ExitReason:
        """End the running incarnation without ending the slot; awaits, and returns how it ended.

        ``timeout=0`` cancels at once (no ``on_stop``); otherwise the message in
        flight finishes and ``on_stop`` runs, and after ``timeout`` seconds
        (None: never) what is left is cancelled. The queued mailbox is kept.
        If a stop is already in progress, this joins it: its reason stands,
        and so does its deadline unless ``timeout`` ends sooner, which brings
        it forward (0: cancelled now). Cancelling the await does not cancel
        the stop.
        """
        stopping = self._begin_stop(reason, timeout)
        if stopping is None:
            return reason
        return await asyncio.shield(stopping.ended)

    async def _stop(self, reason: ExitReason, timeout: float | None) -> None:
        """Stop the slot for good: close the mailbox, dead-letter what is queued,
        end the incarnation within ``timeout``, then finalize. Awaits the end.

        A slot already stopping is not stopped again: this joins that stop and
        returns when the slot has stopped. Its reason stands, and so does its
        deadline unless ``timeout`` ends sooner, which brings it forward (0:
        cancelled now, as ``shutdown=0`` is). A slot already stopped returns
        at once. Cancelling the await does not cancel the stop.
        """
        if self.state is ActorState.STOPPED:
            return
        if self.state is ActorState.STOPPING:
            if self._stopping is not None:
                self._hasten(self._stopping, reason, timeout)
        else:
            self.state = ActorState.STOPPING
            self.mailbox.close(f"stopping: {reason}")
            self.mailbox.drain(f"{self.path} stopped before processing it")
            self._discard_timer_messages(
                f"{self.path} stopped before processing it (deferred timer)", "stopped"
            )
            stopping = self._begin_stop(reason, timeout)
            if stopping is None:
                self._finalize(reason)
                return
            # Also when it joined a supervisor's stop of the incarnation (a restart).
            stopping.for_good = True
        await self._wait_terminated()

    def _finalize(self, reason: ExitReason) -> None:
        """The slot is gone: refs raise ActorStopped, watchers get Terminated."""
        if self.state is ActorState.STOPPED:
            return
        self.state = ActorState.STOPPED
        self._exit_reason = reason
        self.mailbox.close(str(reason))
        self.mailbox.drain(f"{self.path} stopped before processing it ({reason})")
        for control in self.mailbox.drain_system():
            self._undelivered(control, reason)
        self.node.kernel.forget(self)
        if self._parent is not None and self._parent._children.get(self.name) is self:
            del self._parent._children[self.name]
        for watcher in self._watchers:
            if watcher.state is not ActorState.STOPPED:
                watcher.mailbox.put_system(Terminated(self.self_ref, reason))
        self._watchers.clear()
        if self._terminated is not None and not self._terminated.done():
            self._terminated.set_result(reason)
        self.node.events.publish(Stopped(path=self.path, at=self.node.clock.now(), reason=str(reason)))
        self.logger.info("actor {path} stopped: {reason}", path=self.path, reason=reason)

    def _undelivered(self, control: Any, reason: ExitReason) -> None:
        """A system message the slot stopped for good before serving: nothing vanishes silently."""
        if control.__class__ is Terminated:
            self.node.dead_letters.publish(
                control, self.path, "watcher stopped first", kind="watcher_stopped"
            )
        elif control.__class__ is _TimerMessage:
            self.node.dead_letters.publish(
                control.message,
                self.path,
                f"{self.path} stopped before processing it ({reason}; deferred timer)",
                kind="stopped",
            )
        elif isinstance(control, SystemMessage):
            reply = control.reply
            if reply is not None and not reply.done():
                reply.set_exception(ActorStopped(self.path, f"stopped before answering: {reason}"))

    def _dropped(self, message: Any, reply: asyncio.Future[Any] | None, reason: str) -> None:
        if reply is not None and not reply.done():
            closed = self.mailbox.closed
            reply.set_exception(
                ActorStopped(self.path, reason) if closed else MessageDropped(self.path, reason)
            )
        kind = "stopped" if self.mailbox.closed else "overflow"
        self.node.dead_letters.publish(message, self.path, reason, kind=kind)

    def _wait_terminated(self) -> Awaitable[ExitReason]:
        if self._terminated is None:
            self._terminated = self._loop.create_future()
            if self.state is ActorState.STOPPED and self._exit_reason is not None:
                self._terminated.set_result(self._exit_reason)
        return asyncio.shield(self._terminated)

    def __repr__(self) -> str:
        return f"<ActorContext {self.path} {self.state.value}>"
