"""``ThreadedActor``: a stateful component that must own a thread, supervised like any actor.

Two halves. The **slot** is an ordinary garrison actor on the loop (bounded
mailbox, supervision, heartbeats). Each incarnation owns one fresh pykka
``ThreadingActor`` (daemon thread) that runs the user's synchronous hooks.
The slot hands the thread one call at a time and awaits an asyncio future
that the thread resolves with ``loop.call_soon_threadsafe``; nothing on the
loop ever waits on the thread.

The life of one incarnation, top to bottom:

- ``on_start`` starts the thread; ``on_thread_start`` runs there.
- ``on_receive`` passes the message to ``handle`` on the thread and awaits
  its outcome; an exception comes back and follows the usual rules (crash
  for a tell, raised in the asker for an ask).
- ``on_stop`` (orderly stops only) runs ``on_thread_stop`` there; the thread
  then ends.
- When the incarnation ends any other way (crash, kill), the thread is told
  to run ``on_thread_stop`` and end, without waiting for it.
- When the slot is cancelled while the thread is inside a call (heartbeat
  timeout, shutdown timeout), the thread cannot be stopped: it is
  **abandoned**, counted in ``node.abandoned_threads`` and left to finish on
  its own; the next incarnation gets a fresh thread. What an abandoned call
  returns later goes to dead letters. Past ``node.max_abandoned_threads``
  the node fails with ``ABANDONED_THREADS_EXIT_CODE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import pykka

from garrison._errors import InvalidConfig
from garrison._exitcodes import ExitCode
from garrison.actors._actor import Actor

if TYPE_CHECKING:
    from garrison.actors._slot import Slot

ABANDONED_THREADS_EXIT_CODE = ExitCode.ABANDONED_THREADS
"""The node's exit code when more than ``max_abandoned_threads`` hung threads were abandoned."""

_INBOX_CAPACITY = 2
"""One call (queued or being skipped) and the final stop call: the slot sends no more."""

_PENDING, _RUNNING, _FINISHED, _CANCELLED = range(4)


class _Unhandled:
    """What the default ``handle`` returns: the slot dead-letters the message on the loop."""

    def __repr__(self) -> str:
        return "<unhandled>"


_UNHANDLED = _Unhandled()
_NO_MESSAGE = object()
"""The ``message`` of a call that is not a message (start, stop)."""


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Schedule ``fn(*args)`` on ``loop`` from any thread; once the loop is closed (nobody is
    left to tell) it is dropped."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


LateOutcome = Callable[["_ThreadCall", bool, Any], None]
"""Told, on the loop, the outcome of a call nobody waits for any more."""


class _ThreadCall:
    """One call onto an actor's thread; its outcome comes back with ``call_soon_threadsafe``.

    ``future`` is None when nobody waits (a stop sent while abandoning or
    releasing the thread): then only a failure is logged.
    """

    __slots__ = (
        "_lock",
        "_state",
        "abandoned",
        "description",
        "final",
        "fn",
        "future",
        "loop",
        "message",
        "on_late",
        "returned",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_late: LateOutcome,
        fn: Callable[[], Any],
        description: str,
        *,
        future: asyncio.Future[Any] | None,
        message: Any = _NO_MESSAGE,
        final: bool = False,
    ) -> None:
        self.loop = loop
        """The node's loop, where the outcome is settled."""
        self.on_late = on_late
        self.fn = fn
        self.description = description
        self.future = future
        self.message = message
        self.final = final
        """The last call: the thread ends after it."""
        self.abandoned = False
        """The caller was cancelled while the thread was inside ``fn``."""
        self.returned = False
        """``fn`` ran and returned normally (written and read on the actor's thread)."""
        self._lock = threading.Lock()
        self._state = _PENDING

    # -- on the thread -------------------------------------------------------------

    def run(self) -> bool:
        """Run ``fn`` unless the caller gave up before it began; True if it returned normally."""
        with self._lock:
            if self._state == _CANCELLED:
                return False
            self._state = _RUNNING
        ok = True
        try:
            outcome = self.fn()
        except BaseException as error:
            ok = False
            outcome = (
                error
                if isinstance(error, Exception)
                # Never hand SystemExit & co. to the loop: they would end it.
                else RuntimeError(f"{self.description} raised {type(error).__name__}: {error}")
            )
        self.returned = ok
        with self._lock:
            self._state = _FINISHED
        _post(self.loop, self._settle, ok, outcome)
        return ok

    # -- on the loop -----------------------------------------------------------------

    def give_up(self) -> bool:
        """The caller stops waiting. True if the thread is inside ``fn`` (it is now abandoned);
        a call not begun yet is skipped by the thread."""
        with self._lock:
            if self._state == _PENDING:
                self._state = _CANCELLED
                return False
            return self._state == _RUNNING

    def _settle(self, ok: bool, outcome: Any) -> None:
        future = self.future
        if future is not None and not future.done():
            if ok:
                future.set_result(outcome)
            else:
                future.set_exception(outcome)
            return
        self.on_late(self, ok, outcome)


class _BoundedInbox(queue.Queue[Any]):
    """A pykka inbox that never blocks its sender: a full inbox raises ``queue.Full``.

    The slot sends at most one call and one stop, so it is never full; if it
    were, that is a bug to see, not a wait on the event loop.
    """

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block=False)


class _ThreadWorker(pykka.ThreadingActor):
    """The pykka actor that owns one incarnation's thread."""

    use_daemon_thread = True

    def __init__(self, start: _ThreadCall, thread_name: str) -> None:
        super().__init__()
        self._start = start
        self._thread_name = thread_name

    @staticmethod
    def _create_actor_inbox() -> _BoundedInbox:
        return _BoundedInbox(_INBOX_CAPACITY)

    def on_start(self) -> None:
        threading.current_thread().name = self._thread_name
        self._start.run()

    def on_receive(self, message: Any) -> None:
        call: _ThreadCall = message
        call.run()
        if call.final:
            self.stop()


class ThreadedActor(Actor):
    """An actor whose handlers run on a thread it owns (a blocking broker SDK, a FIX engine).

    Subclass it and write **synchronous** hooks; they run one at a time, in
    order, on the actor's own thread (a pykka ``ThreadingActor`` on a daemon
    thread), a fresh thread for every (re)start:

    - ``on_thread_start()`` after every (re)start, before the first message
      (raising fails the start);
    - ``handle(message)`` for each message; the return value answers an ask;
    - ``on_thread_stop()`` when the thread ends (not after a failed
      ``on_thread_start``).

    Everything else is an ordinary actor: spawn it or put it in a
    ``ChildSpec``; its ref is the usual ``ActorRef`` (``tell``/``ask`` from
    asyncio never block the loop); its mailbox is the bounded garrison
    mailbox, and the thread is handed one message at a time (its own inbox
    holds at most one call and the stop). An exception in ``handle`` crashes
    the actor for a tell (its supervisor restarts it on a new thread; the
    message goes to dead letters) and is raised in the asker for an ask.

    ``heartbeat_timeout`` (default 30 s) bounds every call onto the thread,
    ``on_thread_start`` and ``on_thread_stop`` included; long work calls
    ``self.heartbeat()``. A call that outruns it cannot be stopped (Python
    cannot kill a thread): the thread is abandoned, left to finish as a
    daemon, counted in ``node.abandoned_threads``, and the supervisor's
    restart starts a new one. Whatever it returns later goes to dead
    letters. More than ``Node(max_abandoned_threads=...)`` abandoned threads
    fail the node: ``wait_closed()`` returns and ``exit_code`` is
    ``ABANDONED_THREADS_EXIT_CODE``, so the process supervisor restarts the
    process.

    From the thread, use only ``self.heartbeat()``, ``self.call_on_loop()``
    and ``self.ctx.logger``; the rest of ``self.ctx`` belongs to the loop.
    ``on_start``, ``on_receive`` and ``on_stop`` are the bridge: an override
    must await ``super()``'s.
    """

    heartbeat_timeout: ClassVar[float | None] = 30.0

    _loop: asyncio.AbstractEventLoop | None = None
    _loop_thread: int | None = None
    _worker: pykka.ActorRef[_ThreadWorker] | None = None
    _start_call: _ThreadCall | None = None
    _stop_sent = False
    _abandoned = False
    _heartbeat_pending = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for hook in ("on_thread_start", "handle", "on_thread_stop"):
            method = cls.__dict__.get(hook)
            if method is not None and inspect.iscoroutinefunction(method):
                raise InvalidConfig(
                    f"{cls.__qualname__}.{hook}",
                    method,
                    "must be a plain (synchronous) method: it runs on the actor's own thread",
                )

    # -- what users write (on the actor's thread) ----------------------------------------

    def on_thread_start(self) -> None:
        """On the actor's thread after every (re)start, before the first message.

        Raising fails the start. Bounded by ``heartbeat_timeout``.
        """

    def handle(self, message: Any) -> Any:
        """Handle one message on the actor's thread; the return value answers an ask.

        May block. Bounded by ``heartbeat_timeout`` unless it calls
        ``self.heartbeat()``. The default sends the message to dead letters
        as unhandled.
        """
        return _UNHANDLED

    def on_thread_stop(self) -> None:
        """On the actor's thread, last, when its thread ends (orderly stop, crash, restart).

        Not run if ``on_thread_start`` failed. For an abandoned thread it runs
        if and when the stuck call returns, after the next incarnation started.
        """

    # -- what the thread may call ---------------------------------------------------------

    def heartbeat(self) -> None:
        """Tell the runtime the call in progress is still making progress. Thread-safe; never blocks.

        From an abandoned thread it does nothing: it never keeps the next
        incarnation alive.
        """
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._heartbeat_on_loop()
            return
        if self._heartbeat_pending:
            return  # one wake-up of the loop is already on its way
        self._heartbeat_pending = True
        _post(loop, self._heartbeat_on_loop)

    def call_on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` on the node's loop (e.g. ``ref.tell_nowait``). Thread-safe;
        never blocks or waits for ``fn``.

        An exception from ``fn`` is logged. Dropped silently once the loop
        has closed.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("call_on_loop before on_start: the actor has no loop yet")
        _post(loop, self._call_logged, fn, args)

    def _call_logged(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception:
            self.ctx.logger.opt(exception=True).error(
                "{fn} scheduled by {path} with call_on_loop raised", fn=fn, path=self.ctx.path
            )

    @property
    def _slot(self) -> Slot:
        """This actor's slot: the bridge marks calls onto the thread as work in flight."""
        return self.ctx.self_ref.slot

    def _heartbeat_on_loop(self) -> None:
        self._heartbeat_pending = False
        if not self._abandoned and self._slot.instance is self:
            self.ctx.heartbeat()

    # -- the bridge (on the loop) ---------------------------------------------------------

    async def on_start(self) -> None:
        """Start this incarnation's thread and run ``on_thread_start`` there; awaits it."""
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._loop_thread = threading.get_ident()
        start = self._start_call = _ThreadCall(
            loop, self._late_outcome, self.on_thread_start, "on_thread_start", future=loop.create_future()
        )
        self._worker = _ThreadWorker.start(start, f"garrison{ctx.path}#{ctx.incarnation}")
        # Private to this actor: pykka's stop_all() would hang on an abandoned thread, and
        # broadcast() would put foreign messages in its bounded inbox.
        pykka.ActorRegistry.unregister(self._worker)
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(self._release)
        await self._await_thread(start)

    async def on_receive(self, message: Any) -> Any:
        """Hand ``message`` to ``handle`` on the thread and await its outcome (the loop keeps running)."""
        call = self._submit(
            functools.partial(self.handle, message),
            f"handle({type(message).__name__})",
            message=message,
        )
        result = await self._await_thread(call)
        if result is _UNHANDLED:
            self.ctx.unhandled(message)
            return None
        return result

    async def on_stop(self) -> None:
        """Run ``on_thread_stop`` on the thread and await it; the thread then ends."""
        if self._stop_sent or self._worker is None:
            return
        call = self._submit(self._thread_stop, "on_thread_stop", final=True)
        self._stop_sent = True
        await self._await_thread(call)

    def _thread_stop(self) -> None:
        start = self._start_call
        if start is not None and start.returned:  # not after a failed on_thread_start
            self.on_thread_stop()

    def _submit(
        self, fn: Callable[[], Any], description: str, *, message: Any = _NO_MESSAGE, final: bool = False
    ) -> _ThreadCall:
        assert self._loop is not None and self._worker is not None
        call = _ThreadCall(
            self._loop,
            self._late_outcome,
            fn,
            description,
            future=self._loop.create_future(),
            message=message,
            final=final,
        )
        self._worker.tell(call)
        return call

    async def _await_thread(self, call: _ThreadCall) -> Any:
        """Await the call's outcome; the heartbeat timeout covers it. Cancelled mid-call, the
        thread is abandoned."""
        assert call.future is not None
        slot = self._slot
        if self.heartbeat_timeout is not None and slot.busy_since is None:
            # The runtime tracks messages; start and stop are calls onto the thread too.
            slot.busy_since = slot.node.clock.now()
            clear_busy = True
        else:
            clear_busy = False
        try:
            return await call.future
        except asyncio.CancelledError:
            if call.give_up():
                self._abandon(call)
            raise
        finally:
            if clear_busy:
                slot.busy_since = None

    def _release(self, _task: asyncio.Task[None]) -> None:
        """The incarnation's task ended (crash, kill, stop): its thread must end too."""
        self._end_thread()

    def _end_thread(self) -> None:
        """Tell the thread to run ``on_thread_stop`` and end, after any call in progress; no wait."""
        if self._stop_sent or self._worker is None:
            return
        self._stop_sent = True
        assert self._loop is not None
        call = _ThreadCall(
            self._loop, self._late_outcome, self._thread_stop, "on_thread_stop", future=None, final=True
        )
        with contextlib.suppress(pykka.ActorDeadError):  # its thread is gone already
            self._worker.tell(call)

    def _abandon(self, call: _ThreadCall) -> None:
        ctx = self.ctx
        node = ctx.node
        self._abandoned = True
        call.abandoned = True
        self._end_thread()
        node.abandoned_threads += 1
        ctx.logger.warning(
            "{path}: its thread is stuck in {call} and cannot be stopped; abandoned (it runs on as a "
            "daemon; a late reply goes to dead letters) and replaced on restart; {count} thread(s) "
            "abandoned on node {node} (max_abandoned_threads={limit})",
            path=ctx.path,
            call=call.description,
            count=node.abandoned_threads,
            node=node.name,
            limit=node.max_abandoned_threads,
        )
        if node.abandoned_threads > node.max_abandoned_threads:
            ctx.logger.error(
                "node {node}: {count} hung threads abandoned, more than max_abandoned_threads={limit}; "
                "the node fails (exit code {code}) so that the process is restarted",
                node=node.name,
                count=node.abandoned_threads,
                limit=node.max_abandoned_threads,
                code=ABANDONED_THREADS_EXIT_CODE,
            )
            node.request_shutdown(ABANDONED_THREADS_EXIT_CODE)

    def _late_outcome(self, call: _ThreadCall, ok: bool, outcome: Any) -> None:
        """The outcome of a call nobody waits for any more: it answers no one."""
        ctx = self.ctx
        when = "after its thread was abandoned" if call.abandoned else "after the caller was cancelled"
        if call.message is not _NO_MESSAGE:
            ctx.node.dead_letters.publish(
                outcome if ok else call.message,
                ctx.path,
                f"{call.description} {'returned' if ok else 'raised'} {when}",
                None if ok else outcome,
                kind="late_reply",
            )
        elif not ok:
            ctx.logger.opt(exception=outcome).warning(
                "{path}: {call} raised {when}",
                path=ctx.path,
                call=call.description,
                when=when if call.future is not None else "on a thread released after its incarnation ended",
            )
