"""Fault injection: crash or hang a running actor on chosen messages, fail the node's
journal on chosen appends, kill child processes; then take it all out.

An actor fault wraps the target's ``on_receive`` through
``ActorContext.intercept``: it applies to the incarnation running now (from
its next message on) and to every later incarnation after restarts, until it
is removed. Removing it restores the handler before the next message and
leaves nothing behind. A journal fault stands in front of ``node.journal``
until removed (see :class:`~garrison.testing.JournalFault`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from garrison._errors import InvalidConfig
from garrison._validate import check_count, number_problem
from garrison.actors import ActorRef
from garrison.testing._awaited import expectation
from garrison.testing._injected import InjectedFault
from garrison.testing._journal import JournalErrorSpec, JournalFault, JournalFaultMode
from garrison.testing._matching import Matcher, describe, matches
from garrison.testing._process import ChildProcess, Output, kill_process
from garrison.testing._waiting import Notifier, check_within, clock_kind, wait_until

if TYPE_CHECKING:
    from garrison._node import Node
    from garrison.actors._slot import Receive
    from garrison.testing._guard import NodeGuard


ExceptionSpec = BaseException | type[BaseException] | Callable[[Any], BaseException] | None
"""What a crash raises: an exception instance (raised each time), an exception
class (instantiated with a message), a factory called with the message, or None
for :class:`InjectedFault`."""


class Fault:
    """One installed fault. ``fired`` counts how often it struck.

    Use ``remove()`` (or a ``with`` block) to take it out; removal is
    idempotent and takes effect before the actor's next message.
    """

    def __init__(
        self,
        ref: ActorRef,
        on: Matcher | None,
        nth: int,
        times: int | None,
        probability: float,
        kind: str,
    ) -> None:
        check_count("nth", nth)  # 1 is the first matching message
        check_count("times", times, allow_none=True)  # None: every match
        if number_problem(probability) is not None or probability > 1:
            raise InvalidConfig("probability", probability, "must be a number in (0, 1]")
        self.ref = ref
        self.on = on
        self.nth = nth
        self.times = times
        self.probability = float(probability)
        self.kind = kind
        self.matched = 0
        """Messages that matched ``on`` so far (across restarts)."""
        self.fired = 0
        """Times the fault struck so far."""
        self._remove: Callable[[], None] | None = ref.slot.intercept(self._intercept)

    @property
    def active(self) -> bool:
        return self._remove is not None

    def remove(self) -> None:
        """Take the fault out; the actor's next message reaches the real handler."""
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def _should_fire(self, message: Any) -> bool:
        if not self.active:
            return False
        if self.on is not None and not matches(self.on, message):
            return False
        self.matched += 1
        if self.matched < self.nth or (self.times is not None and self.fired >= self.times):
            return False
        # Drawn only for a candidate message, so a seed replays the same choices.
        if self.probability < 1.0 and self.ref.slot.node.random.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def _intercept(self, receive: Receive) -> Receive:
        async def intercepted(message: Any) -> Any:
            if self._should_fire(message):
                await self._strike(message)
            return await receive(message)

        return intercepted

    async def _strike(self, message: Any) -> None:
        raise NotImplementedError

    def _describe(self) -> str:
        target = "every message" if self.on is None else describe(self.on)
        times = "every time" if self.times is None else f"{self.times} time(s)"
        return f"{self.kind} {self.ref.path} on {target} from match {self.nth}, {times}"

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"<{type(self).__name__} {self._describe()}, fired {self.fired}, {state}>"


class Crash(Fault):
    """Raises in the handler instead of running it: a ``tell`` crashes the actor
    (its supervisor decides; the message goes to dead letters), an ``ask``
    raises in the asker, exactly as a real handler error would."""

    def __init__(
        self,
        ref: ActorRef,
        on: Matcher | None,
        nth: int,
        times: int | None,
        probability: float,
        exc: ExceptionSpec,
        guard: NodeGuard | None,
    ) -> None:
        self._exc = exc
        self._guard = guard
        super().__init__(ref, on, nth, times, probability, "crash")

    def _exception(self, message: Any) -> BaseException:
        exc = self._exc
        text = f"injected crash of {self.ref.path} on {type(message).__name__}"
        if exc is None:
            return InjectedFault(text)
        if isinstance(exc, BaseException):
            return exc
        if isinstance(exc, type) and issubclass(exc, BaseException):
            return exc(text)
        factory = cast("Callable[[Any], BaseException]", exc)
        return factory(message)

    async def _strike(self, message: Any) -> None:
        error = self._exception(message)
        if self._guard is not None:
            self._guard.injected_error(self.ref.path, error)
        raise error


class Hang(Fault):
    """Makes the handler wait, without heartbeats, until the fault is released
    or removed (then the real handler runs) or the runtime cancels it (a stop,
    a shutdown timeout, a heartbeat timeout)."""

    def __init__(
        self,
        ref: ActorRef,
        on: Matcher | None,
        nth: int,
        times: int | None,
        guard: NodeGuard | None,
    ) -> None:
        self._guard = guard
        self._released: asyncio.Event = asyncio.Event()
        self._hung = Notifier()
        self.hanging = 0
        """Handlers hanging right now."""
        super().__init__(ref, on, nth, times, 1.0, "hang")

    def release(self) -> None:
        """Let every hanging handler go on to the real handler; later matches still hang."""
        released, self._released = self._released, asyncio.Event()
        released.set()

    def remove(self) -> None:
        """Take the fault out and release every hanging handler."""
        super().remove()
        self._released.set()

    @expectation
    async def wait_hanging(self, within: float = 3.0) -> None:
        """Wait until a handler hangs; AssertionError after ``within`` seconds of node-clock
        time (virtual time is advanced while waiting, as for probes)."""
        within = check_within("within", within)
        clock = self.ref.slot.node.clock
        if not await wait_until(clock, lambda: self.hanging > 0, within, self._hung.changed):
            raise AssertionError(
                f"expected {self.ref.path} to hang within {within}s of {clock_kind(clock)} time "
                f"(matched {self.matched} message(s), fired {self.fired})"
            )

    async def _strike(self, message: Any) -> None:
        released = self._released
        self.hanging += 1
        self._hung.notify()
        try:
            await released.wait()
        except asyncio.CancelledError:
            kill = self.ref.slot.kill_reason
            if self._guard is not None and kill is not None and kill.abnormal:
                self._guard.injected_kill(self.ref.path)
            raise
        finally:
            self.hanging -= 1


class Faults:
    """Installs faults and takes every one of them out again.

    The ``faults`` fixture is one of these, closed after the test. Standalone:
    ``async with Faults() as faults: ...``. Given the node's guard, failures
    the faults cause are expected and do not fail the test. ``node`` (default:
    the guard's) is the node whose journal :meth:`fail_journal` fails.
    """

    def __init__(self, guard: NodeGuard | None = None, *, node: Node | None = None) -> None:
        self._guard = guard
        self._node = node if node is not None else guard.node if guard is not None else None
        self._faults: list[Fault | JournalFault] = []
        self._processes: list[ChildProcess] = []

    def crash(
        self,
        ref: ActorRef,
        on: Matcher | None = None,
        *,
        nth: int = 1,
        times: int | None = 1,
        exc: ExceptionSpec = None,
        probability: float = 1.0,
    ) -> Crash:
        """Crash ``ref``'s handler on a chosen message instead of running it.

        ``on`` selects messages (a type, predicate or value; None: all);
        among those, the ``nth`` (1-based, counted across restarts) and the
        following ones crash until ``times`` crashes happened (None: no
        limit). With ``probability`` < 1, each candidate crashes with that
        probability, drawn from ``node.random`` (seed the node to replay).
        ``exc`` chooses the exception (default :class:`InjectedFault`).
        """
        fault = Crash(ref, on, nth, times, probability, exc, self._guard)
        self._faults.append(fault)
        return fault

    def hang(
        self,
        ref: ActorRef,
        on: Matcher | None = None,
        *,
        nth: int = 1,
        times: int | None = 1,
    ) -> Hang:
        """Make ``ref``'s handler hang on a chosen message (selection as in :meth:`crash`).

        The handler neither returns nor calls ``ctx.heartbeat()``: an actor
        with a ``heartbeat_timeout`` is declared hung once that much node-clock
        time passes. ``release()`` or ``remove()`` lets it run on.
        """
        fault = Hang(ref, on, nth, times, self._guard)
        self._faults.append(fault)
        return fault

    def fail_journal(
        self,
        after: int = 0,
        *,
        mode: JournalFaultMode = "before_write",
        times: int | None = 1,
        stream: str | None = None,
        error: JournalErrorSpec = None,
        node: Node | None = None,
    ) -> JournalFault:
        """Make the node's journal fail appends: the first ``after`` go through, the next ``times`` fail.

        ``mode="before_write"``: nothing is written and the append raises.
        ``mode="after_write"``: the append is durable, then raises (the
        writer is not told: an EventSourcedActor stops with PersistFailed and
        its recovery finds the events). ``stream`` limits the fault to one
        stream (None: every stream; only matching appends are counted).
        ``error`` chooses what is raised (default: JournalWriteError with an
        :class:`InjectedFault` as its cause, what a real failed write raises).

        Installs a :class:`~garrison.testing.JournalFault` as ``node.journal``
        (``node`` defaults to the kit's), so it reaches code that reads
        ``node.journal`` at each use, as EventSourcedActor does. Removing it
        puts the journal back. Raises InvalidConfig when the node has no journal.
        """
        target = node if node is not None else self._node
        if target is None:
            raise InvalidConfig("node", None, "Faults() without a guard needs fail_journal(node=...)")
        fault = JournalFault(
            target, after=after, times=times, mode=mode, error=error, stream=stream, guard=self._guard
        )
        self._faults.append(fault)
        return fault

    async def start_process(
        self,
        *argv: str,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> ChildProcess:
        """Start a child process (output captured), killed and reaped when the faults close."""
        process = await ChildProcess.start(*argv, env=env, cwd=cwd)
        self._processes.append(process)
        return process

    async def kill_process(
        self,
        process: ChildProcess,
        *,
        after_output: Output | None = None,
        timeout: float = 30.0,
    ) -> int:
        """SIGKILL ``process`` (after it prints a line matching ``after_output``), reap it,
        and return its exit status (``-9``). See :func:`garrison.testing.kill_process`."""
        return await kill_process(process, after_output=after_output, timeout=timeout)

    @property
    def installed(self) -> list[Fault | JournalFault]:
        """Faults still active."""
        return [fault for fault in self._faults if fault.active]

    def remove_all(self) -> None:
        """Take every fault out (hanging handlers are released)."""
        faults, self._faults = self._faults, []
        for fault in faults:
            fault.remove()

    async def aclose(self) -> None:
        """Remove every fault, then kill and reap every process started here."""
        self.remove_all()
        processes, self._processes = self._processes, []
        for process in processes:
            await process.aclose()

    async def __aenter__(self) -> Faults:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
