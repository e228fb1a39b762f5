"""The supervisor: the whole life of a child, readable top to bottom.

start (in list order) -> watch (child exits arrive on the supervisor's system
lane, one at a time) -> decide (restart type, strategy, intensity, backoff)
-> restart (same slot, same ref, queued mailbox kept) -> shut down (reverse
start order, each child within its shutdown timeout).

A supervisor is an actor: every decision runs inside its own task, so two
exits are never handled at once, and management calls (``restart_child``
...) queue behind them like OTP's ``gen_server:call``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from garrison._clock import Cancellable
from garrison._errors import (
    ActorStartError,
    ChildExists,
    ChildNotFound,
    ChildRunning,
    Fenced,
    InvalidSpec,
    NameTaken,
    RestartIntensityExceeded,
)
from garrison.actors import (
    Actor,
    ActorContext,
    ActorRef,
    ActorState,
    ExitKind,
    ExitReason,
    GaveUp,
    Restarted,
    SystemMessage,
)
from garrison.actors._slot import Slot
from garrison.supervision._intensity import RestartIntensity
from garrison.supervision._singleton import SingletonClaim, SingletonCoordinator
from garrison.supervision._spec import (
    AutoShutdown,
    ChildSpec,
    DynamicSupervisorSpec,
    Restart,
    Strategy,
    SupervisorSpec,
)


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of ``which_children()`` (OTP's ``{Id, Child, Type, Modules}``)."""

    id: str
    ref: ActorRef | None
    """None when the child is not running (terminated, or its spec kept after a normal exit)."""
    state: str
    """``running``, ``restarting`` (waiting on backoff or mid-restart), ``standby`` (a
    singleton child another node runs) or ``undefined``."""
    kind: str
    """``worker`` or ``supervisor``."""
    restart: Restart
    restarts: int


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """``count_children()``: specs, active children, and how many are supervisors/workers."""

    specs: int
    active: int
    supervisors: int
    workers: int


class _Child:
    """The supervisor's record of one child spec and its current slot."""

    __slots__ = (
        "backoff_attempt",
        "pending_restart",
        "restart_timer",
        "singleton",
        "slot",
        "spec",
        "started_at",
        "traceback_summary_timer",
        "traceback_window_end",
        "tracebacks_in_window",
        "tracebacks_omitted",
    )

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.singleton: _SingletonState | None = None
        """A singleton child's claim on its lease (None: not a singleton, or no cluster)."""
        self.slot: Slot | None = None
        self.backoff_attempt = 0
        self.started_at: float | None = None
        """When the current incarnation started running; None after a failed start (it never ran)."""
        self.pending_restart: _DelayedRestart | None = None
        """The restart this child waits on, until it runs or is forgotten; only it may start the group."""
        self.restart_timer: Cancellable | None = None
        """Posts ``pending_restart`` when its backoff delay has passed (None: already posted)."""
        self.traceback_window_end = float("-inf")
        """When the current window of this child's crash tracebacks ends (node clock)."""
        self.tracebacks_in_window = 0
        """Failure records logged with their traceback in the current window."""
        self.tracebacks_omitted = 0
        """Failure records logged without their traceback since the last summary."""
        self.traceback_summary_timer: Cancellable | None = None
        """Logs the summary of the omitted tracebacks when the window closes."""

    @property
    def running(self) -> bool:
        return self.slot is not None and self.slot.state is not ActorState.STOPPED

    @property
    def standing_by(self) -> bool:
        """A singleton child that this node does not run now (another node does, or none yet)."""
        return self.singleton is not None and self.slot is None

    @property
    def waiting_group(self) -> list[_Child]:
        """The children that restart with this one (itself included) when its pending restart runs."""
        return self.pending_restart.group if self.pending_restart is not None else []

    def await_restart(self, restart: _DelayedRestart, timer: Cancellable | None) -> None:
        """Make ``restart`` this child's pending restart, posted by ``timer`` (None: posted already).

        Only the pending restart may run: once it is forgotten (folded into a group restart,
        cancelled by terminate_child or a stop), a copy already in the mailbox is stale.
        """
        self.pending_restart = restart
        self.restart_timer = timer

    def forget_pending_restart(self) -> list[_Child]:
        """Cancel the pending restart, if any; returns the group that was waiting on it.

        Safe to call whether or not a restart is pending, and after its timer has fired: the
        restart it posted then finds itself stale and does nothing.
        """
        group = self.waiting_group
        if self.restart_timer is not None:
            self.restart_timer.cancel()
        self.restart_timer = None
        self.pending_restart = None
        return group

    def is_pending(self, restart: _DelayedRestart) -> bool:
        return self.pending_restart is restart


class _SupervisorMessage(SystemMessage):
    """A message a supervisor posts to itself; served by the supervisor instance running then."""

    __slots__ = ()

    async def run(self, context: ActorContext, instance: Actor) -> ExitReason | None:
        assert isinstance(instance, Supervisor)
        return await instance.serve(self)


class _ChildExit(_SupervisorMessage):
    """A child's incarnation ended without the supervisor asking for it."""

    __slots__ = ("incarnation", "reason", "slot")

    def __init__(self, slot: Slot, incarnation: int, reason: ExitReason) -> None:
        self.slot = slot
        self.incarnation = incarnation
        self.reason = reason


class _DelayedRestart(_SupervisorMessage):
    """The backoff delay of a restart has passed (or terminate_child released the siblings).

    Its timer can fire while we are busy, queueing it behind an exit or a call that restarts
    or terminates the same child; then it is no longer ``child``'s pending restart and must
    not start anyone (OTP never runs a child twice).
    """

    __slots__ = ("child", "group", "reason")

    def __init__(self, child: _Child, group: list[_Child], reason: ExitReason) -> None:
        self.child = child
        self.group = group
        self.reason = reason


class _RetryRestart(_SupervisorMessage):
    """A restart whose start failed, tried again from our loop (OTP's ``try_again_restart``).

    Going through the mailbox lets queued calls and exits in between, and a
    child that never starts costs no stack depth however large the intensity.
    """

    __slots__ = ("child", "reason", "slot")

    def __init__(self, child: _Child, slot: Slot, reason: ExitReason) -> None:
        self.child = child
        self.slot = slot
        self.reason = reason


class _SingletonGranted(_SupervisorMessage):
    """This node owns a singleton child's lease now, under fencing token ``token``."""

    __slots__ = ("state", "token")

    def __init__(self, state: _SingletonState, token: int) -> None:
        self.state = state
        self.token = token


class _SingletonLost(_SupervisorMessage):
    """This node no longer owns a singleton child's lease: the child stops, and stands by."""

    __slots__ = ("reason", "state")

    def __init__(self, state: _SingletonState, reason: str) -> None:
        self.state = state
        self.reason = reason


class _SingletonState:
    """One singleton's claim, and the events its coordinator sends (``SingletonEvents``).

    The singleton is one ``singleton=True`` child, or every child of a supervisor whose
    spec says ``singleton=True`` (they start, stop and stand by together, in start order).
    Called from the coordinator's task: it only posts to the supervisor's mailbox, except
    that ``revoked`` is set at once, so that a child failing because its lease is gone is
    not restarted while the news is still on its way.
    """

    __slots__ = ("children", "claim", "name", "post", "revoked", "token")

    def __init__(self, name: str, children: list[_Child], post: Callable[[SystemMessage], None]) -> None:
        self.name = name
        self.children = children
        self.post = post
        self.claim: SingletonClaim | None = None
        self.token: int | None = None
        self.revoked = False

    def granted(self, token: int) -> None:
        self.revoked = False
        self.post(_SingletonGranted(self, token))

    def lost(self, reason: str) -> None:
        self.revoked = True
        self.post(_SingletonLost(self, reason))


class _Call(SystemMessage):
    """A management call run inside the supervisor's task; the caller awaits ``reply``.

    If the supervisor stops for good before serving it, or is cancelled while serving it,
    the slot fails ``reply`` with ActorStopped (see ``SystemMessage.reply``).
    """

    __slots__ = ("fn", "reply")

    def __init__(self, fn: Callable[[Supervisor], Awaitable[Any]], reply: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.reply: asyncio.Future[Any] = reply

    async def run(self, context: ActorContext, instance: Actor) -> ExitReason | None:
        assert isinstance(instance, Supervisor)
        try:
            result = await self.fn(instance)
        except Exception as error:
            if not self.reply.done():
                self.reply.set_exception(error)
        else:
            if not self.reply.done():
                self.reply.set_result(result)
        return None


class Supervisor(Actor):
    """Runs a :class:`SupervisorSpec`. Started by ``node.start(spec)`` or as a nested child."""

    is_supervisor = True

    def __init__(self, spec: SupervisorSpec) -> None:
        self.spec = spec
        self.dynamic = isinstance(spec, DynamicSupervisorSpec)
        self._intensity = RestartIntensity(spec.intensity, spec.period)
        self._children: list[_Child] = [_Child(child) for child in spec.children]
        self._slot = self.ctx.self_ref.slot
        """Our own slot: we create our children's slots under it and drive their lifecycle."""
        self._path = self.ctx.path
        self._clock = self.ctx.node.clock
        self._summaries_due: list[_Child] = []
        """Children (removed ones too) whose omitted tracebacks await their summary."""
        self._singletons: SingletonCoordinator | None = self.ctx.node.singletons
        """The cluster's coordinator; None: singleton children run here as any other child."""

    # -- start -----------------------------------------------------------------

    async def on_start(self) -> None:
        """Start the children in list order; a child that fails to start fails this start."""
        self._slot.stop_children_concurrently = self.dynamic
        if self.spec.singleton and self._singletons is not None:
            self._stand_by(self._path, list(self._children), self._singletons)
            return
        for child in list(self._children):
            if child.spec.singleton and self._singletons is not None:
                self._stand_by(f"{self._path}/{child.spec.id}", [child], self._singletons)
                continue
            try:
                await self._start_new_slot(child)
            except ActorStartError:
                self.ctx.logger.error(
                    "supervisor {path} failed to start: child {id} did not start; "
                    "stopping the children already started",
                    path=self._path,
                    id=child.spec.id,
                )
                raise

    async def _start_new_slot(self, child: _Child) -> ActorRef:
        spec = child.spec
        node = self.ctx.node
        args: tuple[Any, ...] = (spec.start,) if isinstance(spec.start, SupervisorSpec) else spec.args
        slot = node.kernel.prepare(
            _actor_class(spec),
            self._slot,
            self._exit_hook,
            name=spec.id,
            args=args,
            kwargs=spec.kwargs,
            mailbox=spec.mailbox,
            shutdown=spec.shutdown,
        )
        child.slot = slot
        if spec.register is not None:
            try:
                node.kernel.register(spec.register, slot.self_ref)
            except NameTaken as taken:
                slot.finalize(ExitReason.shutdown(f"failed to start: {taken}"))
                child.slot = None
                raise ActorStartError(slot.path, taken) from taken
        # We log each failure of our children once, with what we do about it (_report).
        slot.log_failures = False
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slot.launch(started)
        try:
            await started
        except ActorStartError as error:
            slot.logger.opt(exception=error.cause).error(
                "actor {path} failed to start: {error}; supervisor {supervisor} does not retry it",
                path=slot.path,
                error=f"{type(error.cause).__name__}: {error.cause}",
                supervisor=self._path,
            )
            # Our own start fails with it: if we are retried, our next incarnation creates it
            # again, and its ref (from an earlier incarnation of ours) should move there too.
            slot.parked = self._slot.state is ActorState.STARTING
            slot.finalize(ExitReason.shutdown("failed to start"))
            child.slot = None
            raise
        child.started_at = self._clock.now()
        self.ctx.logger.info(
            "supervisor {path}: started {id} ({kind})",
            path=self._path,
            id=spec.id,
            kind="supervisor" if spec.is_supervisor else "worker",
        )
        return slot.self_ref

    def _stand_by(self, name: str, children: list[_Child], coordinator: SingletonCoordinator) -> None:
        """Claim singleton ``name``'s lease for ``children``; they start when (and each time)
        the claim is granted."""
        state = _SingletonState(name, children, self._slot.mailbox.put_system)
        for child in children:
            child.singleton = state
        state.claim = coordinator.claim(name, state)
        self.ctx.logger.info(
            "supervisor {path}: singleton {name} stands by until this node holds its lease",
            path=self._path,
            name=name,
        )

    def _exit_hook(self, slot: Slot, reason: ExitReason) -> None:
        # Called from the child's task: hand the decision to our own task.
        if self._slot.state is ActorState.STOPPED:
            slot.finalize(reason)
            return
        self._slot.mailbox.put_system(_ChildExit(slot, slot.incarnation, reason))

    # -- watch and decide --------------------------------------------------------

    async def serve(self, message: _SupervisorMessage) -> ExitReason | None:
        """Internal: handle a message we posted to ourselves, inside our own task.

        The slot's loop calls this for child exits, backoff restarts that fell
        due and restarts to retry; an exit reason ends this incarnation.
        """
        if isinstance(message, _ChildExit):
            return await self._child_exited(message.slot, message.incarnation, message.reason)
        if isinstance(message, _DelayedRestart):
            return await self._delayed_restart_due(message)
        if isinstance(message, _SingletonGranted):
            return await self._singleton_granted(message)
        if isinstance(message, _SingletonLost):
            return await self._singleton_lost(message)
        assert isinstance(message, _RetryRestart)
        return await self._retry_restart(message)

    def _record(self, slot: Slot) -> _Child | None:
        for child in self._children:
            if child.slot is slot:
                return child
        return None

    async def _child_exited(self, slot: Slot, incarnation: int, reason: ExitReason) -> ExitReason | None:
        child = self._record(slot)
        if child is None or slot.incarnation != incarnation or slot.state is ActorState.STOPPED:
            return None  # stale: that slot was already restarted, terminated or replaced
        spec = child.spec
        state = child.singleton
        if state is not None and (state.revoked or _fenced(reason)):
            # Restarting it would only meet the same refusal: another node owns it now.
            self._report(
                child, slot, reason, "does not restart it: another node owns this singleton; it stands by"
            )
            slot.finalize(reason)
            child.slot = None
            child.forget_pending_restart()
            if not state.revoked and state.claim is not None:
                state.revoked = True
                state.claim.resign(f"a write was fenced: {_why(reason)}")
            await self._stop_singleton(state, "another node owns this singleton (fenced)")
            return None
        if _restarts(spec.restart, reason):
            return await self._restart(child, reason)
        self._report(child, slot, reason, f"does not restart it ({spec.restart.name} child)")
        slot.finalize(reason)
        child.slot = None
        if spec.restart is Restart.TEMPORARY or self.dynamic:
            self._children.remove(child)
        if spec.significant:
            return self._auto_shutdown(spec.id)
        return None

    async def _delayed_restart_due(self, restart: _DelayedRestart) -> ExitReason | None:
        child = restart.child
        if not child.is_pending(restart):
            return None  # stale: folded into a group restart, or cancelled, after it was posted
        child.forget_pending_restart()
        if child not in self._children:
            return None
        return await self._start_group(restart.group, child, restart.reason)

    async def _retry_restart(self, retry: _RetryRestart) -> ExitReason | None:
        child = retry.child
        if child not in self._children or child.slot is not retry.slot or retry.slot.has_incarnation:
            return None  # terminated, or restarted with its group, meanwhile
        for other in self._children:
            if child in other.waiting_group:
                # Folded into a group restart waiting on a sibling's backoff: it starts with
                # that group, once; retrying now would start it twice, or cut the wait short.
                self._report(child, retry.slot, retry.reason, f"restarts it with {other.spec.id!r} (backoff)")
                return None
        return await self._restart(child, retry.reason)

    def _members(self, state: _SingletonState) -> list[_Child]:
        """The children ``state`` still speaks for, in start order."""
        return [child for child in state.children if child.singleton is state and child in self._children]

    async def _singleton_granted(self, granted: _SingletonGranted) -> ExitReason | None:
        state = granted.state
        waiting = [child for child in self._members(state) if child.slot is None]
        if not waiting or self.ctx.node.state != "running":
            return None  # stale (released, replaced, or it runs already), or the node is stopping
        state.token = granted.token
        self.ctx.logger.info(
            "supervisor {path}: this node holds singleton {name}'s lease (fencing token {token}); "
            "starting it",
            path=self._path,
            name=state.name,
            token=granted.token,
        )
        for child in waiting:
            try:
                await self._start_new_slot(child)
            except ActorStartError as error:
                if state.claim is not None:
                    state.claim.resign(f"{child.spec.id} failed to start: {error}")
                await self._stop_singleton(state, f"{child.spec.id} failed to start")
                return None
        return None

    async def _singleton_lost(self, lost: _SingletonLost) -> ExitReason | None:
        state = lost.state
        if not any(child.slot is not None for child in self._members(state)):
            return None  # stale, or it is not running here anyway
        self.ctx.logger.warning(
            "supervisor {path}: singleton {name} lost its lease ({reason}); stopping it, it stands by",
            path=self._path,
            name=state.name,
            reason=lost.reason,
        )
        await self._stop_singleton(state, f"singleton lease lost: {lost.reason}")
        return None

    async def _stop_singleton(self, state: _SingletonState, why: str) -> None:
        """Stop every running child of ``state``, in reverse start order; they stand by."""
        for child in reversed(self._members(state)):
            child.forget_pending_restart()
            if child.slot is not None:
                slot, child.slot = child.slot, None
                await slot.stop(ExitReason.shutdown(why), child.spec.shutdown)

    def _auto_shutdown(self, child_id: str) -> ExitReason | None:
        mode = self.spec.auto_shutdown
        if mode is AutoShutdown.ANY_SIGNIFICANT:
            return ExitReason.shutdown(f"auto_shutdown: significant child {child_id!r} exited")
        if mode is AutoShutdown.ALL_SIGNIFICANT and not any(
            child.running for child in self._children if child.spec.significant
        ):
            return ExitReason.shutdown("auto_shutdown: all significant children exited")
        return None

    async def _restart(self, child: _Child, reason: ExitReason) -> ExitReason | None:
        """Restart ``child`` (and its group under REST_FOR_ONE / ONE_FOR_ALL), or give up."""
        now = self._clock.now()
        if not self._intensity.allow(now):
            return self._give_up(child, reason)
        group = self._group(child)
        delay = self._backoff_delay(child, now)
        assert child.slot is not None
        text = str(reason)  # formatted once for the record and the Restarted event
        self._report(child, child.slot, reason, self._plan(child, group, delay), text)
        for member in group:
            # A pending backoff restart is folded into this one.
            member.forget_pending_restart()
        for other in reversed(group):
            if other is child:
                continue
            assert other.slot is not None
            ended = await other.slot.stop_incarnation(
                ExitReason.shutdown(f"{self.spec.strategy.value}: sibling {child.spec.id!r} failed"),
                other.spec.shutdown,
            )
            if ended.abnormal:
                self._report(other, other.slot, ended, "restarts it with the group")
        for other in [other for other in group if other is not child]:
            if other.spec.restart is Restart.TEMPORARY:
                # OTP: a temporary sibling stopped as collateral is not restarted; its spec goes.
                assert other.slot is not None
                other.slot.finalize(ExitReason.shutdown("temporary sibling of a restarted child"))
                self._children.remove(other)
                group.remove(other)
        if delay > 0:
            for member in group:
                assert member.slot is not None
                member.slot.state = ActorState.RESTARTING
            restart = _DelayedRestart(child, group, reason)
            timer = self._clock.call_later(delay, self._slot.mailbox.put_system, restart)
            child.await_restart(restart, timer)
            return None
        return await self._start_group(group, child, reason, text)

    def _plan(self, child: _Child, group: Sequence[_Child], delay: float) -> str:
        """What a restart will do, in words, for the log."""
        assert child.slot is not None
        plan = f"restarts it (restart #{child.slot.restarts + 1})"
        others = [
            member.spec.id
            for member in group
            if member is not child and member.spec.restart is not Restart.TEMPORARY
        ]
        if others:
            plan += f" with {', '.join(map(repr, others))} ({self.spec.strategy.value})"
        if delay > 0:
            plan += f" in {delay:.3f}s (backoff)"
        return plan

    def _report(
        self, child: _Child, slot: Slot, reason: ExitReason, next_step: str, text: str | None = None
    ) -> None:
        """One record per child exit we handle: who, why, and what happens next (OTP's supervisor report).

        Bound with the child's path; structured fields name the error's type and text and the
        restarts so far. A failure carries its traceback for the first
        ``node.crash_traceback_limit`` failures of the child per ``crash_traceback_window``
        seconds; later ones in that window are logged without it (``traceback="omitted"``), and
        one summary record when the window closes says how many. ``text``: ``str(reason)`` when
        the caller has it already.
        """
        if text is None:
            text = str(reason)
        if not reason.abnormal:
            slot.logger.info(
                "actor {path} exited: {why}; supervisor {supervisor} {next_step}",
                path=slot.path,
                why=_why(reason),
                supervisor=self._path,
                next_step=next_step,
                reason=text,
                restarts=slot.restarts,
            )
            return
        error = reason.error
        with_traceback = error is not None and self._traceback_allowed(child)
        logger = slot.logger
        # opt() builds a logger per call: only a record that carries the traceback pays for it.
        (logger.opt(exception=error) if with_traceback else logger).error(
            "actor {path} failed: {why}; supervisor {supervisor} {next_step}",
            path=slot.path,
            why=_why(reason),
            supervisor=self._path,
            next_step=next_step,
            reason=text,
            error_type=type(error).__name__ if error is not None else "",
            error_message=str(error) if error is not None else "",
            restarts=slot.restarts,
            traceback="logged" if with_traceback else "omitted",
        )

    def _traceback_allowed(self, child: _Child) -> bool:
        """Whether this failure of ``child`` is logged with its traceback (and count it)."""
        node = self.ctx.node
        now = self._clock.now()
        if now >= child.traceback_window_end:
            child.traceback_window_end = now + node.crash_traceback_window
            child.tracebacks_in_window = 0
        if child.tracebacks_in_window < node.crash_traceback_limit:
            child.tracebacks_in_window += 1
            return True
        if child.traceback_summary_timer is None:
            child.traceback_summary_timer = self._clock.call_later(
                child.traceback_window_end - now, self._summarise_omitted_tracebacks, child
            )
            self._summaries_due.append(child)
        child.tracebacks_omitted += 1
        return False

    def _summarise_omitted_tracebacks(self, child: _Child) -> None:
        """The window of ``child``'s tracebacks closed (or we stop): say how many were left out."""
        child.traceback_summary_timer = None
        if child in self._summaries_due:
            self._summaries_due.remove(child)
        omitted, child.tracebacks_omitted = child.tracebacks_omitted, 0
        if not omitted:
            return
        node = self.ctx.node
        node.logger.bind(actor=f"{self._path}/{child.spec.id}").warning(
            "actor {path}: {omitted} more failure(s) logged without traceback "
            "(at most {limit} tracebacks per {window:g}s per child)",
            path=f"{self._path}/{child.spec.id}",
            omitted=omitted,
            limit=node.crash_traceback_limit,
            window=node.crash_traceback_window,
        )

    def _group(self, child: _Child) -> list[_Child]:
        strategy = self.spec.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            return [child]
        running = [other for other in self._children if other.slot is not None]
        if strategy is Strategy.ONE_FOR_ALL:
            return running
        return running[running.index(child) :]

    def _backoff_delay(self, child: _Child, now: float) -> float:
        backoff = child.spec.backoff
        if backoff is None:
            return 0.0
        # Quiet means it ran that long without failing; time spent failing to start is not quiet.
        if child.started_at is not None and now - child.started_at >= backoff.quiet_period:
            child.backoff_attempt = 0
        delay = backoff.delay(child.backoff_attempt, self.ctx.node.random.random())
        child.backoff_attempt += 1
        return delay

    async def _start_group(
        self, group: Sequence[_Child], failed: _Child, reason: ExitReason, text: str | None = None
    ) -> ExitReason | None:
        """Start each member's slot again, in start order. A failed start counts as another restart.

        ``failed`` is the child whose exit caused the restart and ``reason`` its exit reason.
        A member whose slot still runs an incarnation is never launched again: it is left
        running and the skip is logged as an internal error naming it (one task per slot).
        """
        for member in group:
            slot = member.slot
            if slot is None or member not in self._children:
                continue
            if slot.has_incarnation:
                # Launching it again would run two incarnations of one slot: a bug upstream
                # (a stale restart that was not recognised). The running one stays untouched.
                self.ctx.logger.error(
                    "supervisor {path}: internal error: child {id!r} is already running; "
                    "not starting it twice (restart of {failed!r} after {why})",
                    path=self._path,
                    id=member.spec.id,
                    failed=failed.spec.id,
                    why=reason,
                )
                continue
            started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            slot.restarts += 1
            slot.launch(started)
            try:
                await started
            except ActorStartError as error:
                failure = ExitReason.failure(error.cause, "on_start failed during restart")
                member.started_at = None
                # Counted again when retried; the rest of the group restarts with it then.
                self._slot.mailbox.put_system(_RetryRestart(member, slot, failure))
                return None
            started_at = member.started_at = self._clock.now()
            why = (
                (text if text is not None else str(reason))
                if member is failed
                else f"{self.spec.strategy.value}: sibling {failed.spec.id!r} exited ({reason})"
            )
            self.ctx.node.events.publish(
                Restarted(path=slot.path, at=started_at, restarts=slot.restarts, reason=why)
            )
            self.ctx.logger.debug(
                "supervisor {path}: restarted {id} (restart #{n}) after {why}",
                path=self._path,
                id=member.spec.id,
                n=slot.restarts,
                why=why,
            )
        return None

    def _give_up(self, child: _Child, reason: ExitReason) -> ExitReason:
        error = RestartIntensityExceeded(
            self._path, self.spec.intensity, self.spec.period, f"{child.spec.id}: {reason}"
        )
        assert child.slot is not None
        # It stops with us, as its siblings do: its ref waits for our next incarnation, if any.
        child.slot.parked = True
        child.slot.finalize(reason)
        child.slot = None
        self._cancel_restart_timers()
        self.ctx.node.events.publish(GaveUp(path=self._path, at=self._clock.now(), reason=str(error)))
        # The child's failure is logged here, once, with its exception. The line stays short
        # whatever the failure's text: the detail travels in the record's extra fields.
        self.ctx.logger.opt(exception=reason.error if reason.abnormal else None).error(
            "supervisor {path} gave up: more than {intensity} restart(s) in {period}s, "
            "last of {child!r}; stopping all children",
            path=self._path,
            intensity=self.spec.intensity,
            period=self.spec.period,
            child=child.spec.id,
            last_failure=_why(reason),
            error=str(error),
        )
        # OTP exits with reason `shutdown`: a PERMANENT parent restarts us, others do not.
        return ExitReason(ExitKind.SHUTDOWN, "restart intensity exceeded", error)

    async def on_stop(self) -> None:
        self._cancel_restart_timers()
        # A singleton is stopped before its lease goes: never two owners running at once.
        for child in reversed(self._children):
            await self._release_singleton(child, "its supervisor stops")

    async def _release_singleton(self, child: _Child, why: str) -> None:
        """Stop ``child`` and take it out of its singleton; the last one out releases the lease."""
        state = child.singleton
        if state is None:
            return
        others = [other for other in self._members(state) if other is not child]
        child.singleton = None
        if child.slot is not None:
            slot, child.slot = child.slot, None
            await slot.stop(ExitReason.shutdown(why), child.spec.shutdown)
        if not others and state.claim is not None:
            await state.claim.release()

    def _cancel_restart_timers(self) -> None:
        for child in self._children:
            child.forget_pending_restart()
        for child in list(self._summaries_due):
            # We stop before the window closes: the summary is written now, not lost.
            if child.traceback_summary_timer is not None:
                child.traceback_summary_timer.cancel()
            self._summarise_omitted_tracebacks(child)

    # -- management calls (run inside our task via _Call) -------------------------

    def _find(self, child_id: str) -> _Child:
        for child in self._children:
            if child.spec.id == child_id:
                return child
        raise ChildNotFound(self._path, child_id)

    async def which_children(self) -> list[ChildInfo]:
        rows = []
        for child in self._children:
            slot = child.slot
            if child.standing_by:
                state, ref, restarts = "standby", None, 0
            elif slot is None or slot.state is ActorState.STOPPED:
                state, ref, restarts = "undefined", None, 0
            else:
                ref, restarts = slot.self_ref, slot.restarts
                state = "running" if slot.state is ActorState.RUNNING else "restarting"
            kind = "supervisor" if child.spec.is_supervisor else "worker"
            rows.append(ChildInfo(child.spec.id, ref, state, kind, child.spec.restart, restarts))
        return rows

    def tree_children(self, live: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Internal: ``node.tree()``'s children of this supervisor, in spec order, the specs
        kept without a running slot shown as ``stopped`` (see ``DescribesChildren``)."""
        by_name = {entry["name"]: entry for entry in live}
        rows = []
        for child in self._children:
            entry = by_name.pop(child.spec.id, None)
            if entry is None:
                entry = self._stopped_row(child)
                if child.standing_by:
                    entry["state"] = "standby"
            rows.append(entry)
        rows.extend(by_name.values())
        return rows

    def _stopped_row(self, child: _Child) -> dict[str, Any]:
        """The row ``node.tree()`` gives a live slot, for the slot this spec would have if stopped."""
        spec = child.spec
        actor_class = _actor_class(spec)
        mailbox = spec.mailbox if spec.mailbox is not None else actor_class.mailbox
        return self.ctx.node.kernel.describe_unstarted(self._slot, spec.id, actor_class, mailbox)

    async def count_children(self) -> ChildCounts:
        supervisors = sum(1 for child in self._children if child.spec.is_supervisor)
        return ChildCounts(
            specs=len(self._children),
            # As OTP: a child waiting to be restarted has no live process, so it is not active.
            active=sum(
                1
                for child in self._children
                if child.running and child.slot is not None and child.slot.has_incarnation
            ),
            supervisors=supervisors,
            workers=len(self._children) - supervisors,
        )

    async def terminate_child(self, child_id: str) -> None:
        child = self._find(child_id)
        # A singleton child stops claiming its lease too.
        await self._release_singleton(child, "terminate_child")
        waiting = [member for member in child.forget_pending_restart() if member is not child]
        if child.slot is not None:
            slot, child.slot = child.slot, None
            await slot.stop(ExitReason.shutdown("terminate_child"), child.spec.shutdown)
        if child.spec.restart is Restart.TEMPORARY or self.dynamic:
            self._children.remove(child)
        if waiting:
            # Siblings stopped only because this child failed, waiting on its backoff: OTP's
            # terminate_child would not have touched them, so they start now rather than never.
            reason = ExitReason.shutdown(f"terminate_child({child_id!r}) during its backoff")
            restart = _DelayedRestart(waiting[0], waiting, reason)
            # Pending like a timed one, so a group restart that gets there first cancels it.
            waiting[0].await_restart(restart, None)
            self._slot.mailbox.put_system(restart)

    async def restart_child(self, child_id: str) -> ActorRef:
        child = self._find(child_id)
        if child.slot is not None or child.singleton is not None:
            raise ChildRunning(self._path, child_id, "restart_child")
        if (child.spec.singleton or self.spec.singleton) and self._singletons is not None:
            raise InvalidSpec(
                child_id,
                "singleton",
                True,
                "a singleton child of a cluster node is not restarted by hand (its lease decides where it "
                "runs); restart its supervisor to claim it again",
            )
        ref = await self._start_new_slot(child)
        self._keep_slots_in_start_order()
        return ref

    def _keep_slots_in_start_order(self) -> None:
        # Slots are stopped in reverse registration order; a spec started again by hand keeps
        # its place in the list (OTP), so its slot moves back there.
        self._slot.order_children([child.spec.id for child in self._children])

    async def delete_child(self, child_id: str) -> None:
        child = self._find(child_id)
        if child.slot is not None:
            raise ChildRunning(self._path, child_id, "delete_child")
        self._children.remove(child)

    async def start_child(self, spec: ChildSpec) -> ActorRef:
        if any(child.spec.id == spec.id for child in self._children):
            raise ChildExists(self._path, spec.id)
        if isinstance(self.spec, DynamicSupervisorSpec):
            limit = self.spec.max_children
            if limit is not None and len(self._children) >= limit:
                raise InvalidSpec(spec.id, "max_children", limit, "the dynamic supervisor is full")
            if spec.significant:
                raise InvalidSpec(spec.id, "significant", True, "dynamic children cannot be significant")
        elif spec.significant and self.spec.auto_shutdown is AutoShutdown.NEVER:
            raise InvalidSpec(spec.id, "significant", True, "needs the supervisor's auto_shutdown")
        if (spec.singleton or self.spec.singleton) and self._singletons is not None:
            raise InvalidSpec(
                spec.id,
                "singleton",
                True,
                "a singleton's children are declared in its SupervisorSpec (its lease says where they run)",
            )
        child = _Child(spec)
        self._children.append(child)
        try:
            return await self._start_new_slot(child)
        except ActorStartError:
            self._children.remove(child)
            raise


def _actor_class(spec: ChildSpec) -> type[Actor]:
    if isinstance(spec.start, SupervisorSpec):
        return spec.start.runner or Supervisor
    return spec.start


def _why(reason: ExitReason) -> str:
    error = reason.error
    if error is None:
        return str(reason)
    if isinstance(error, RestartIntensityExceeded):
        # A child supervisor gave up: it logged the detail itself; its parent's line stays short.
        return reason.brief
    what = f"{type(error).__name__}: {error}"
    return f"{reason.detail}: {what}" if reason.detail else what


def _fenced(reason: ExitReason) -> bool:
    """Whether a write of the child was refused with Fenced (the error or one of its causes)."""
    error: BaseException | None = reason.error
    seen = 0
    while error is not None and seen < 16:
        if isinstance(error, Fenced):
            return True
        error = getattr(error, "cause", None) or error.__cause__
        seen += 1
    return False


def _restarts(restart: Restart, reason: ExitReason) -> bool:
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return reason.abnormal
    return False
