"""``Slot``: the machinery behind one actor ref, top to bottom: start, serve, stop, exit.

A slot is what an :class:`ActorRef` names. It owns the mailbox (which
survives restarts) and runs one incarnation at a time as one asyncio task:
build a fresh instance, ``on_recover``, ``on_start``, serve the mailbox
(system lane first), end. Every exit it did not ask for (a crash,
``ctx.stop()``) goes to its exit hook: the node and plain parents stop the
slot for good (:func:`stop_for_good`), supervisors decide restarts.

Internal. An actor sees its slot only through its :class:`ActorContext`
(``self.ctx``). The rest of garrison drives it through the members below,
in three groups:

- the **slot lifecycle** a node or supervisor drives: ``launch``,
  ``stop_incarnation``, ``stop``, ``finalize``, ``kill``,
  ``has_incarnation``, and the fields ``state``, ``restarts``,
  ``incarnation``, ``log_failures``, ``stop_children_concurrently``,
  ``order_children``;
- what the actor's context uses: ``watch``/``unwatch``, ``take_reply``,
  ``enter_critical``/``exit_critical``, ``track_timer``/``track_task``,
  ``intercept``;
- what the test kit uses: ``adopt`` (a probe reads the mailbox itself),
  ``intercept`` (fault injection), ``kill_reason``.

What a slot guarantees: one incarnation at a time; the mailbox and its
queued messages outlive every incarnation; nothing queued vanishes silently
(it is served, or dead-lettered with a reason); watchers hear
``Terminated`` once, when the ref dies. A slot stopped because its parent's
incarnation ends is *parked*: its ref outlives it and moves to the slot the
parent's next incarnation creates at the same path (see ``Kernel``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from garrison._clock import Cancellable
from garrison._errors import ActorStartError, ActorStopped, FatalError, MessageDropped
from garrison.actors._actor import Actor, constructing
from garrison.actors._context import ActorContext
from garrison.actors._control import Rewire, Stop, SystemMessage, TimerMessage
from garrison.actors._events import Failed, Started, Stopped
from garrison.actors._messages import ActorState, ExitReason, Terminated
from garrison.actors._ref import ActorRef, Watchable
from garrison.actors._stash import Stash
from garrison.actors._timers import TimerTick
from garrison.mailbox import Mailbox, MailboxConfig, make_mailbox

if TYPE_CHECKING:
    from loguru import Logger

    from garrison.actors._runtime import Runtime

Receive = Callable[[Any], Awaitable[Any]]
Interceptor = Callable[[Receive], Receive]
"""Wraps an instance's ``on_receive``: how fault injection reaches a running actor."""

ExitHook = Callable[["Slot", ExitReason], None]
"""Decides what happens after an exit the slot did not ask for (crash, ``ctx.stop()``)."""


def stop_for_good(slot: Slot, reason: ExitReason) -> None:
    """The exit hook of unsupervised actors: an exit ends the slot."""
    slot.finalize(reason)


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
        """A slot stop (``stop``) is among the callers: the slot is finalized when the incarnation ends."""
        self.stop: Stop | None = None
        """The Stop asked for on the system lane (None for an immediate kill)."""
        self.deadline: float | None = None
        """Node-clock time at which what is left is cancelled; None: never."""
        self.timer: Cancellable | None = None
        """Fires at ``deadline`` (None once the deadline is now, or never)."""


class Slot:
    """Internal: the slot one ActorRef names, and the incarnations it runs (see the module doc).

    Everything here runs on the node's loop; nothing blocks it.
    """

    __slots__ = (
        "__weakref__",
        "_critical_depth",
        "_deferred_kill",
        "_exit_reason",
        "_interceptors",
        "_kill_reason",
        "_logger",
        "_on_exit",
        "_owned_tasks",
        "_owned_timers",
        "_reply",
        "_stopping",
        "_task",
        "_terminated",
        "_throughput",
        "_throughput_deadline",
        "actor_class",
        "args",
        "busy_since",
        "children",
        "context",
        "incarnation",
        "instance",
        "kwargs",
        "log_failures",
        "loop",
        "mailbox",
        "name",
        "node",
        "parent",
        "parked",
        "path",
        "restarts",
        "self_ref",
        "shutdown",
        "stash",
        "state",
        "stop_children_concurrently",
    )

    def __init__(
        self,
        node: Runtime,
        parent: Slot | None,
        name: str,
        actor_class: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        mailbox: MailboxConfig,
        shutdown: float | None,
        on_exit: ExitHook,
        ref: ActorRef | None = None,
    ) -> None:
        self.node = node
        self.name = name
        self.path: str = f"{parent.path if parent is not None else ''}/{name}"
        self.actor_class = actor_class
        self.args = args
        self.kwargs = kwargs
        self.loop = asyncio.get_running_loop()
        self.mailbox: Mailbox = make_mailbox(
            mailbox, path=self.path, now=node.clock.now, on_drop=self._dropped, done=node.kernel.completed
        )
        if ref is None:
            self.self_ref = ActorRef(self)
        else:
            # The path's earlier slot stopped while an ancestor restarted: its refs move here.
            ref.bind(self)
            self.self_ref = ref
        self.shutdown = shutdown
        self.state = ActorState.STARTING
        self.restarts = 0
        """Supervised restarts so far (the supervisor counts them)."""
        self.incarnation = 0
        """Counts launches; tells a supervisor whether an exit notice is stale."""
        self.stop_children_concurrently = False
        """Stop children all at once rather than in reverse start order (DynamicSupervisor)."""
        self.log_failures = True
        """False when the exit hook logs each failure itself (a supervisor: one record with its decision)."""
        self.instance: Actor | None = None
        """The running incarnation's actor; None between incarnations."""
        self.busy_since: float | None = None
        """Node-clock time the message in flight started (or last heartbeat); None when idle."""
        self.parent = parent
        self.children: dict[str, Slot] = {}
        """Child slots by name, in start order (the order they stop in, reversed)."""
        self.parked = False
        """Stopped because the parent's incarnation ends: its ref waits for the parent's next
        incarnation to re-create it, rather than dying with this slot."""
        self._on_exit = on_exit
        self._task: asyncio.Task[None] | None = None
        self._stopping: _IncarnationStop | None = None
        self._kill_reason: ExitReason | None = None
        self._critical_depth = 0
        self._deferred_kill = False
        self._exit_reason: ExitReason | None = None
        self._terminated: asyncio.Future[ExitReason] | None = None
        self._logger: Logger | None = None
        self._throughput = mailbox.throughput
        self._throughput_deadline = mailbox.throughput_deadline
        # Created on first use: most actors never intercept, set a timer or own a task, and
        # an empty set is 216 bytes (two of them were a tenth of an idle actor's memory).
        self._interceptors: list[Interceptor] | None = None
        self._reply: asyncio.Future[Any] | None = None
        self._owned_timers: set[Cancellable] | None = None
        self._owned_tasks: set[asyncio.Task[Any]] | None = None
        self.stash: Stash | None = Stash(self, mailbox.stash_capacity) if mailbox.stash_capacity else None
        """Messages set aside with ``ctx.stash()`` (None without ``stash_capacity``); kept
        across restarts (back at the mailbox's front), dead-lettered at the final stop."""
        self.context = ActorContext(self)
        """What the actor sees of this slot (``self.ctx``)."""

    @property
    def logger(self) -> Logger:
        """The node's logger bound with this actor's path."""
        if self._logger is None:
            self._logger = self.node.logger.bind(actor=self.path)
        return self._logger

    @property
    def exit_reason(self) -> ExitReason | None:
        """Why the slot stopped for good; None while it lives."""
        return self._exit_reason

    @property
    def kill_reason(self) -> ExitReason | None:
        """Why the runtime is cancelling the running incarnation (set before the cancel); else None."""
        return self._kill_reason

    @property
    def has_incarnation(self) -> bool:
        """An incarnation's task is running (starting, serving, or stopping)."""
        task = self._task
        return task is not None and not task.done()

    # -- what the actor's context uses -----------------------------------------------

    def watch(self, ref: Watchable) -> None:
        """Deliver ``Terminated(ref, reason)`` here when ``ref`` dies (at once if it has).

        A ref dies when its actor stops for good; restarts, its own or an ancestor's, do not count.
        """
        reason = ref.exit_reason
        if reason is not None:
            self.mailbox.put_system(Terminated(ref, reason))
        else:
            ref.add_watcher(self)

    def unwatch(self, ref: Watchable) -> None:
        """Stop watching ``ref``; a Terminated already queued is still delivered."""
        ref.remove_watcher(self)

    def take_reply(self) -> asyncio.Future[Any] | None:
        """Hand over the reply of the ask in flight (None for a tell): the handler's return
        value no longer answers it (``ctx.defer_reply``)."""
        reply, self._reply = self._reply, None
        return reply

    def enter_critical(self) -> None:
        """A section runtime cancellation must not cut in half begins (``ctx.critical()``)."""
        self._critical_depth += 1

    def exit_critical(self) -> None:
        """That section ends. Raises CancelledError if a kill was deferred while inside it."""
        self._critical_depth -= 1
        if self._critical_depth == 0 and self._deferred_kill:
            self._deferred_kill = False
            raise asyncio.CancelledError("deferred by ctx.critical()")

    def track_timer(self, timer: Cancellable) -> None:
        """``timer`` belongs to this incarnation: cancelled when it ends."""
        if self._owned_timers is None:
            self._owned_timers = set()
        self._owned_timers.add(timer)

    def untrack_timer(self, timer: Cancellable) -> None:
        """``timer`` fired: nothing left to cancel."""
        if self._owned_timers is not None:
            self._owned_timers.discard(timer)

    def track_task(self, task: asyncio.Task[Any]) -> None:
        """``task`` belongs to this incarnation: cancelled when it ends; its failure crashes it."""
        if self._owned_tasks is None:
            self._owned_tasks = set()
        self._owned_tasks.add(task)
        task.add_done_callback(self._owned_task_done)

    def intercept(self, interceptor: Interceptor) -> Callable[[], None]:
        """Wrap ``on_receive`` of this and every later incarnation (fault injection, tracing).

        Takes effect before the next message. Returns a function that removes
        it (also before the next message). Costs nothing when unused.
        """
        if self._interceptors is None:
            self._interceptors = []
        interceptors = self._interceptors
        interceptors.append(interceptor)
        self.mailbox.put_system(Rewire())

        def remove() -> None:
            if interceptor in interceptors:
                interceptors.remove(interceptor)
                if self.state is not ActorState.STOPPED:
                    self.mailbox.put_system(Rewire())

        return remove

    # -- what the test kit uses ------------------------------------------------------------

    def adopt(self, ref: ActorRef) -> None:
        """Internal, for the test kit's probe: ``ref`` becomes this slot's ref, and the slot
        counts as running without any incarnation (whoever holds ``ref`` reads the mailbox)."""
        self.self_ref = ref
        self.state = ActorState.RUNNING

    # -- the slot lifecycle (node and supervisors) -------------------------------------------

    def order_children(self, names: list[str]) -> None:
        """Put the child slots named in ``names`` first, in that order (the order they stop in,
        reversed); the others keep their order after them."""
        children = self.children
        ordered = {name: children[name] for name in names if name in children}
        ordered.update((name, child) for name, child in children.items() if name not in ordered)
        children.clear()
        children.update(ordered)

    def launch(self, started: asyncio.Future[None] | None) -> None:
        """Start a fresh incarnation as a task; ``started`` resolves after ``on_start``.

        Must not be called while an incarnation runs (``has_incarnation``).
        ``started`` (when given) fails with ActorStartError if the incarnation
        ends before it runs; otherwise an exit goes to the exit hook.
        """
        self.state = ActorState.STARTING
        self.incarnation += 1
        if self.stash:
            # Akka classic's preRestart: what the last incarnation stashed comes first.
            self.stash.unstash_all()
        self.node.kernel.launched(self)
        self._task = self.loop.create_task(self._run(started), name=f"garrison:{self.path}")

    def kill(self, reason: ExitReason) -> None:
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

    async def stop_incarnation(self, reason: ExitReason, timeout: float | None) -> ExitReason:
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

    async def stop(self, reason: ExitReason, timeout: float | None) -> None:
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
                self.finalize(reason)
                return
            # Also when it joined a supervisor's stop of the incarnation (a restart).
            stopping.for_good = True
        await self.wait_terminated()

    def finalize(self, reason: ExitReason) -> None:
        """The slot is gone. Unless parked, so is its ref: sends raise ActorStopped, watchers
        get Terminated. Idempotent."""
        if self.state is ActorState.STOPPED:
            return
        self.state = ActorState.STOPPED
        self._exit_reason = reason
        self.mailbox.close(str(reason))
        self.mailbox.drain(f"{self.path} stopped before processing it ({reason.brief})")
        if self.stash:
            self.stash.drop(f"{self.path} stopped ({reason.brief})")
        for control in self.mailbox.drain_system():
            self._undelivered(control, reason)
        parent = self.parent
        if parent is not None and parent.children.get(self.name) is self:
            del parent.children[self.name]
        # Parked: the ref waits for the parent's next incarnation; else it dies, with its
        # parked descendants, and its watchers hear Terminated.
        self.node.kernel.forget(self, reason)
        if self._terminated is not None and not self._terminated.done():
            self._terminated.set_result(reason)
        self.node.events.publish(Stopped(path=self.path, at=self.node.clock.now(), reason=str(reason)))
        self.logger.info("actor {path} stopped: {why}", path=self.path, why=reason.brief, reason=str(reason))

    def wait_terminated(self) -> Awaitable[ExitReason]:
        """Await the slot's final exit reason (immediately if already stopped); shielded."""
        if self._terminated is None:
            self._terminated = self.loop.create_future()
            if self.state is ActorState.STOPPED and self._exit_reason is not None:
                self._terminated.set_result(self._exit_reason)
        return asyncio.shield(self._terminated)

    # -- one incarnation -------------------------------------------------------------------

    def _receiver(self, instance: Actor) -> Receive:
        receive: Receive = instance.on_receive
        for interceptor in self._interceptors or ():
            receive = interceptor(receive)
        timers = self.context.timer_scheduler
        if timers is not None:
            receive = timers.after_ticks(receive)
        if self.stash is not None:
            receive = self.stash.recording(receive)
        return receive

    def _build(self) -> Actor:
        """A fresh instance, with ``ctx`` available inside its ``__init__``. The context
        variable's token lives only while it is built, not as long as the actor runs."""
        token = constructing.set(self.context)
        try:
            return self.actor_class(*self.args, **self.kwargs)
        finally:
            constructing.reset(token)

    async def _run(self, started: asyncio.Future[None] | None) -> None:
        reason: ExitReason
        message: Any = None
        reply: asyncio.Future[Any] | None = None
        serving: SystemMessage | None = None
        instance: Actor | None = None
        try:
            instance = self._build()
            self.instance = instance
            await instance.on_recover()
            await instance.on_start()
        except asyncio.CancelledError:
            reason = self._kill_reason or ExitReason.shutdown("cancelled while starting")
        except Exception as exc:
            reason = ExitReason.failure(exc, "on_start failed")
            self._report_failure(reason, None)
        else:
            self.state = ActorState.RUNNING
            # Children this incarnation did not re-create by now are gone: their refs die.
            self.node.kernel.release_unclaimed(self)
            self.node.events.publish(Started(path=self.path, at=self.node.clock.now()))
            if started is not None:
                started.set_result(None)
                started = None
            mailbox = self.mailbox
            system = mailbox.system
            pending = mailbox.pending
            # The mailbox's take, inline: pop, sample one wait in `wait_sample`, wake a
            # producer waiting for space (see Mailbox.take).
            put_waiters = mailbox.put_waiters
            wait_sample = mailbox.wait_sample
            receive = self._receiver(instance)
            track_busy = self.actor_class.heartbeat_timeout is not None
            now = self.node.clock.now
            throughput = self._throughput
            deadline = self._throughput_deadline
            # Fairness is about the real loop: real time, except on a manual clock (see slice_time).
            slice_time = self.node.clock.slice_time
            yielded_at = slice_time()
            # Counts of messages served by this incarnation (system ones too): `served` so far,
            # `slice_start` when the slice began, `check_at` when the slice's time is read next,
            # `sample_at` when the wait of the next user message taken is sampled.
            served = slice_start = 0
            check_at = 1
            sample_at = wait_sample - 1
            try:
                while True:
                    if system:
                        control = system.pop(0)
                        if control.__class__ is Terminated:
                            message = control
                        elif control.__class__ is TimerMessage:
                            message = control.message
                        elif control.__class__ is TimerTick:
                            if not control.claim():
                                continue  # its timer was cancelled or replaced: never delivered
                            message = control.message
                        elif control.__class__ is Stop:
                            reason = control.reason
                            message = None
                            await self._run_on_stop(instance)
                            break
                        else:
                            serving = control
                            message = None
                            try:
                                outcome = await control.run(self.context, instance)
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
                        message, enqueued_at, reply = pending.popleft()
                        if served >= sample_at:
                            sample_at = served + wait_sample
                            mailbox.record_wait(enqueued_at)
                        if put_waiters:
                            mailbox.wake_producer()
                    elif mailbox.pending is not pending:
                        # The first user message made the mailbox's queue (it has none before).
                        pending = mailbox.pending
                        continue
                    else:
                        message = None
                        await mailbox.wait()
                        yielded_at = slice_time()
                        slice_start = served
                        check_at = served + 1
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
                    if track_busy:
                        self.busy_since = None
                    # Akka's dispatcher rule: yield after `throughput` messages, or sooner once
                    # `throughput_deadline` has passed since the last yield. The time is read
                    # after the first message of a slice, then DEADLINE_CHECK_STRIDE messages
                    # later while that many more fit, at the slice's pace so far, in half the
                    # time left; else after the next message. Only when more is queued: an
                    # empty mailbox parks the actor anyway (an ask's round trip pays no check).
                    # `message` keeps the message just served until the next await that is
                    # not its handler: each of those sets it to None first, so that a kill
                    # there does not dead-letter it as in flight.
                    served += 1
                    if served >= check_at and (pending or system):
                        in_slice = served - slice_start
                        if in_slice >= throughput:
                            yield_now = True
                        elif deadline:
                            elapsed = slice_time() - yielded_at
                            yield_now = elapsed >= deadline
                            if (deadline - elapsed) * in_slice >= _STRIDE_PACE * elapsed:
                                check_at = min(served + DEADLINE_CHECK_STRIDE, slice_start + throughput)
                            else:
                                check_at = served + 1
                        else:
                            yield_now = False
                            check_at = slice_start + throughput
                        if yield_now:
                            message = None
                            await asyncio.sleep(0)
                            yielded_at = slice_time()
                            slice_start = served
                            check_at = served + 1
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

    def _owned_task_done(self, task: asyncio.Task[Any]) -> None:
        if self._owned_tasks is not None:
            self._owned_tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and self.instance is not None:
            self.kill(ExitReason.failure(error, f"task {task.get_name()} failed"))

    async def _cancel_owned(self) -> None:
        self._cancel_owned_timers()
        if not self._owned_tasks:
            return
        tasks = list(self._owned_tasks)
        self._owned_tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
            # A task's cleanup may have set a timer while it was being cancelled.
            self._cancel_owned_timers()

    def _cancel_owned_timers(self) -> None:
        timers = self._owned_timers
        if not timers:
            return
        for timer in timers:
            timer.cancel()
        timers.clear()

    def _discard_timer_messages(self, reason: str, kind: str) -> None:
        """Dead-letter the timer messages deferred to the system lane; other control stays queued.

        A timer message belongs to the incarnation that set the timer: it must reach neither
        the next incarnation nor a slot that is stopping.
        """
        for control in self.mailbox.extract_system(_is_timer_message):
            self.node.dead_letters.publish(control.message, self.path, reason, kind=kind)

    # -- the end of an incarnation ------------------------------------------------------

    async def _end_incarnation(self, reason: ExitReason, started: asyncio.Future[None] | None) -> None:
        self.instance = None
        self.busy_since = None
        self._reply = None  # an ask cut off mid-handler must not be deferrable by the next incarnation
        if self._owned_timers or self._owned_tasks:  # most incarnations own neither
            await self._cancel_owned()
        if self.mailbox.system:  # the reason is formatted only when there is a message to give it
            self._discard_timer_messages(
                f"timer set by incarnation #{self.incarnation} of {self.path}, which ended ({reason}): "
                "discarded, not delivered to a later incarnation",
                "timer",
            )
        if self.children:
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
                self.finalize(reason)
            return
        self._on_exit(self, reason)

    def _stop_ended(self, stopping: _IncarnationStop, reason: ExitReason) -> None:
        if stopping.timer is not None:
            stopping.timer.cancel()
        if stopping.stop is not None:
            # The incarnation ended before serving it (cancelled, or crashed): it must
            # not stop the next incarnation the moment it starts.
            self.mailbox.remove_system(stopping.stop)
        if not stopping.ended.done():
            stopping.ended.set_result(reason)

    async def _stop_children(self) -> None:
        reason = ExitReason.shutdown(f"parent {self.path} stopping")
        children = list(self.children.values())
        for child in children:
            # This incarnation ends; the next one re-creates them, and their refs move there.
            # Whether there is a next one is decided later: our finalize releases them if not.
            child.parked = True
        if self.stop_children_concurrently:
            await asyncio.gather(*(child.stop(reason, child.shutdown) for child in children))
            return
        for child in reversed(children):
            await child.stop(reason, child.shutdown)

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
            stopping = self._stopping = _IncarnationStop(self.loop.create_future())
            if timeout != 0:
                stopping.stop = Stop(reason)
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
            self.kill(reason)
        else:
            stopping.timer = self.node.clock.call_later(
                timeout,
                self.kill,
                ExitReason.shutdown(f"did not stop within shutdown={timeout}s; cancelled"),
            )

    def _undelivered(self, control: Any, reason: ExitReason) -> None:
        """A system message the slot stopped for good before serving: nothing vanishes silently."""
        if control.__class__ is Terminated:
            self.node.dead_letters.publish(
                control, self.path, "watcher stopped first", kind="watcher_stopped"
            )
        elif control.__class__ is TimerMessage:
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

    def __repr__(self) -> str:
        return f"<Slot {self.path} {self.state.value}>"


DEADLINE_CHECK_STRIDE = 16
"""At most this many messages between two reads of a slice's time (``throughput_deadline``)."""
_STRIDE_PACE = 2.0 * DEADLINE_CHECK_STRIDE
"""A stride is taken while, at ``elapsed / served`` per message, it fits in half the time left."""


def _is_timer_message(control: Any) -> bool:
    return control.__class__ is TimerMessage
