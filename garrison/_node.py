"""``Node``: the composition root. One process, one event loop, and everything its actors share.

The node wires the layers together: the actor kernel (``garrison.actors``:
slots, refs, dead letters, events), supervision (the root supervisor),
persistence (the journal it opens and closes) and observe (loop monitor,
metrics endpoint). It runs them in one order and stops them in the reverse:
journal, metrics, loop monitor and signal handlers come up before any actor;
on shutdown the tree stops first (reverse start order), then signal handlers,
journal, metrics, loop monitor and pools. Nothing below imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, Unpack

from loguru import logger

from garrison._clock import Clock, ManualClock, MonotonicClock
from garrison._clock import settle as run_ready_callbacks
from garrison._errors import InvalidConfig, NodeNotRunning, SettleTimeout
from garrison._exitcodes import ExitCode
from garrison._validate import check_count, check_seconds
from garrison.actors import (
    Actor,
    ActorRef,
    ActorState,
    DeadLetters,
    EventBus,
    EventStream,
    ExitReason,
    GaveUp,
    LifecycleEvent,
    MetricRegistry,
    Restarted,
)
from garrison.actors._kernel import Kernel, SpawnOptions, validate_name, validate_shutdown
from garrison.actors._slot import Slot, stop_for_good
from garrison.observe import (
    DEFAULT_ACTOR_LABEL_LIMIT,
    ActorLabels,
    LoopGuard,
    LoopMonitor,
    MetricsServer,
    reopen_log_files,
)
from garrison.supervision import SingletonCoordinator, Supervisor, SupervisorRef, SupervisorSpec

if TYPE_CHECKING:
    from garrison.persistence import ConsumerGroup, Journal, RedisConsumer

T = TypeVar("T")

_DEFAULT_GUARD = LoopGuard()

SETTLE_POLL_INTERVAL = 0.001
"""Real seconds ``settle`` sleeps between looks while work runs off the loop (threads)."""


class NodeCluster(Protocol):
    """What the node needs of the cluster it joined (``garrison.cluster.Cluster`` implements it;
    the node never imports the cluster). Users reach the rest of the cluster's API through
    ``node.cluster`` too; typed code that needs it writes ``cast(garrison.cluster.Cluster, ...)``
    or keeps the ``Cluster`` that ``Cluster.join`` returned."""

    @property
    def name(self) -> str:
        """The cluster's name."""
        ...

    @property
    def node_id(self) -> str:
        """This node's id in the cluster."""
        ...

    def members(self) -> list[Any]:
        """The members up now (``garrison.cluster.Member``)."""
        ...

    def ref(self, node_id: str, path: str) -> Any:
        """A ref to the actor at ``path`` on node ``node_id`` (``garrison.cluster.RemoteRef``)."""
        ...

    async def leave(self) -> None:
        """Leave the cluster; called on shutdown after the actors stopped. Never raises."""
        ...


class Node:
    """The runtime: one asyncio loop, its actors, and what they share.

    Use it as ``async with Node("router-1") as node:``. It owns the registry
    of actor paths, the dead-letter sink, the lifecycle event stream, the
    clock every timer reads (pass ``ManualClock()`` in tests), a thread pool
    and a process pool. Leaving the block stops every actor in reverse start
    order, each within its shutdown timeout.

    With ``handle_signals=True`` (default; main thread only) SIGINT and
    SIGTERM request an orderly shutdown: ``wait_closed()`` returns and the
    ``async with`` exit stops the tree; ``exit_code`` stays 0. A second
    SIGINT or SIGTERM while the node stops logs what is still stopping and
    ends the process at once with ``ExitCode.FORCED_STOP`` (143). SIGHUP
    reopens the log files ``configure_logging`` opened (logrotate) and the
    node runs on.
    """

    def __init__(
        self,
        name: str = "garrison",
        *,
        clock: Clock | None = None,
        journal: Journal | None = None,
        thread_workers: int | None = None,
        process_workers: int | None = None,
        process_start_method: str = "spawn",
        handle_signals: bool = True,
        dead_letter_log_limit: int = 10,
        dead_letter_log_interval: float = 5.0,
        seed: int | None = None,
        heartbeat_interval: float = 0.1,
        max_abandoned_threads: int = 8,
        guard: LoopGuard | None = _DEFAULT_GUARD,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        metrics_actor_limit: int = DEFAULT_ACTOR_LABEL_LIMIT,
        crash_traceback_limit: int = 10,
        crash_traceback_window: float = 60.0,
        singletons: SingletonCoordinator | None = None,
    ) -> None:
        validate_name("name", name)
        if clock is not None and not isinstance(clock, Clock):
            raise InvalidConfig("clock", clock, "must be a garrison Clock (MonotonicClock or ManualClock)")
        for field, workers in (("thread_workers", thread_workers), ("process_workers", process_workers)):
            if workers is not None and (not isinstance(workers, int) or workers <= 0):
                raise InvalidConfig(field, workers, "must be an int > 0 or None for the default")
        if process_start_method not in multiprocessing.get_all_start_methods():
            raise InvalidConfig(
                "process_start_method",
                process_start_method,
                f"must be one of {multiprocessing.get_all_start_methods()}",
            )
        if (
            isinstance(heartbeat_interval, bool)
            or not isinstance(heartbeat_interval, int | float)
            or (heartbeat_interval <= 0)
        ):
            raise InvalidConfig("heartbeat_interval", heartbeat_interval, "must be > 0 seconds")
        if (
            isinstance(max_abandoned_threads, bool)
            or not isinstance(max_abandoned_threads, int)
            or max_abandoned_threads < 0
        ):
            raise InvalidConfig("max_abandoned_threads", max_abandoned_threads, "must be an int >= 0")
        if guard is not None and not isinstance(guard, LoopGuard):
            raise InvalidConfig("guard", guard, "must be a garrison.LoopGuard or None (no loop monitor)")
        if metrics_port is not None and (
            isinstance(metrics_port, bool)
            or not isinstance(metrics_port, int)
            or not 0 <= metrics_port < 65536
        ):
            raise InvalidConfig("metrics_port", metrics_port, "must be a TCP port 0-65535 (0: any free port)")
        check_count("metrics_actor_limit", metrics_actor_limit, minimum=0)
        check_count("crash_traceback_limit", crash_traceback_limit, minimum=0)
        check_seconds("crash_traceback_window", crash_traceback_window)
        self.name = name
        self.guard = guard
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.loop_monitor: LoopMonitor | None = None
        """Loop lag and stall watchdog (real time), while the node runs with a guard."""
        self.metrics_address: tuple[str, int] | None = None
        """(host, port) of /metrics, /healthz, /readyz and /tree once the node runs with metrics_port."""
        self._metrics_server: MetricsServer | None = None
        self.crash_traceback_limit = crash_traceback_limit
        """A supervised child's failure records carry their traceback this many times per
        ``crash_traceback_window`` seconds; later ones in the window go without it (and are
        counted in one summary record when the window closes)."""
        self.crash_traceback_window = float(crash_traceback_window)
        self.restart_counts: Counter[str] = Counter()
        """Supervised restarts per actor path since the node started."""
        self.gave_up_counts: Counter[str] = Counter()
        """Supervisors (by path) that exceeded their restart intensity."""
        self.consumer_groups: dict[tuple[str, str], ConsumerGroup | RedisConsumer] = {}
        """Durable-stream consumer groups whose lag the metrics export, by (stream, group)."""
        self._root: Slot | None = None
        self.cluster: NodeCluster | None = None
        """The cluster this node joined (``garrison.cluster.Cluster.join``), or None."""
        self.max_abandoned_threads = max_abandoned_threads
        """More hung ThreadedActor threads abandoned than this fail the node
        (exit code ABANDONED_THREADS_EXIT_CODE) so that the process is restarted."""
        self.abandoned_threads = 0
        """Hung ThreadedActor threads given up on (left running as daemons) so far."""
        self.heartbeat_interval = float(heartbeat_interval)
        """How often hung actors are looked for: a hung actor is cancelled within
        its heartbeat_timeout plus this interval."""
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.journal = journal
        """The journal event-sourced actors use by default; opened and closed with the node."""
        self.singletons = singletons
        """The cluster's singleton coordinator (``garrison.cluster.RedisSingletons``), or None:
        ``singleton=True`` children then run here as any other child (a cluster of one).
        Opened after the journal and closed before it, around every actor's life."""
        self.logger = logger.bind(node=name, actor="")
        self.events = EventStream()
        self.events.subscribe(self._count_lifecycle)
        self.dead_letters = DeadLetters(
            self.clock,
            self.logger,
            log_limit=dead_letter_log_limit,
            log_interval=dead_letter_log_interval,
        )
        self.bus = EventBus(self.dead_letters, self.events)
        """Publish/subscribe between actors (``subscribe(ref, topic)``, ``publish(message)``)."""
        self.exit_code = 0
        self.random = random.Random(seed)
        """The runtime's random source (backoff jitter); seed it to replay a run."""
        self._thread_workers = thread_workers
        self._process_workers = process_workers
        self._process_start_method = process_start_method
        self._handle_signals = handle_signals
        self._state = "new"
        self._shutdown_requested: asyncio.Event | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None
        self._signals_installed: list[signal.Signals] = []
        self._stop_signals = 0
        self._stop_phase = "not stopping yet"
        self._loop: asyncio.AbstractEventLoop | None = None
        self.kernel = Kernel(self)
        """Internal: the actor kernel's state for this node (slots by path, heartbeats, asks)."""
        self.actor_labels = ActorLabels(self.kernel, metrics_actor_limit)
        """The ``actor`` label of each path on /metrics: at most ``metrics_actor_limit`` distinct
        labels (the rest show as ``other``), a pool's routees as one ``routee-*`` template."""
        self.metrics = MetricRegistry(self.actor_labels.label)
        """The application metrics actors register with ``ctx.metrics``, shown on /metrics."""

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> Node:
        if self._state != "new":
            raise NodeNotRunning(self.name, self._state)
        self._loop = asyncio.get_running_loop()
        self._shutdown_requested = asyncio.Event()
        self.kernel.open(self._loop)
        if self.journal is not None:
            await self.journal.open()
        if self.singletons is not None:
            try:
                await self.singletons.open(self.clock)
            except BaseException:
                if self.journal is not None:
                    await self.journal.close()
                raise
        if self.metrics_port is not None:
            # Bound before the monitor starts: a port in use leaves nothing running.
            server = MetricsServer(self, self.metrics_host, self.metrics_port)
            try:
                await server.open()
            except BaseException:
                if self.singletons is not None:
                    await self.singletons.close()
                if self.journal is not None:
                    await self.journal.close()
                raise
            self._metrics_server = server
            self.metrics_address = server.address
        if self.guard is not None:
            self.loop_monitor = LoopMonitor(self.guard, self.logger, self.name)
            self.loop_monitor.start()
        self._state = "running"
        if self._handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(signum, self._on_stop_signal, signum)
                self._signals_installed.append(signum)
            self._loop.add_signal_handler(signal.SIGHUP, self._on_hangup)
            self._signals_installed.append(signal.SIGHUP)
        self.logger.info("node {name} started", name=self.name)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    # -- signals -------------------------------------------------------------

    def _on_stop_signal(self, signum: int) -> None:
        """SIGINT/SIGTERM: the first asks for an orderly stop; another one forces the exit."""
        name = signal.Signals(signum).name
        self._stop_signals += 1
        if self._stop_signals == 1:
            self.logger.info("node {name}: got {signal}, stopping in order", name=self.name, signal=name)
            self.request_shutdown()
            return
        still = self.still_stopping()
        self.logger.error(
            "node {name}: got {signal} again while stopping ({phase}); exiting now with code {code} "
            "without finishing the stop. Still stopping: {still}",
            name=self.name,
            signal=name,
            phase=self._stop_phase,
            code=int(ExitCode.FORCED_STOP),
            still="; ".join(still) or "nothing",
        )
        for stream in (sys.stdout, sys.stderr):  # os._exit skips the interpreter's own flush
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(ExitCode.FORCED_STOP)

    def _on_hangup(self) -> None:
        reopened = reopen_log_files()
        self.logger.info(
            "node {name}: got SIGHUP, reopened {count} log file(s); the node runs on",
            name=self.name,
            count=reopened,
        )

    def still_stopping(self) -> list[str]:
        """What an orderly stop is still waiting for: one line per actor that has not stopped
        (``<path> (<state>, <n> queued)``), each busy actor's activity, in registration order."""
        lines = [
            f"{actor.path} ({actor.state.value}, {actor.mailbox.depth} queued)"
            for actor in self.kernel.actors()
            if actor.state is not ActorState.STOPPED
        ]
        return lines + [f"busy: {line}" for line in self.kernel.busy()]

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def state(self) -> str:
        """``new``, ``running`` (inside ``async with``), ``stopping`` or ``closed``."""
        return self._state

    def request_shutdown(self, exit_code: int = 0) -> None:
        """Ask for an orderly shutdown: ``wait_closed()`` returns. A non-zero code sticks."""
        if exit_code and not self.exit_code:
            self.exit_code = exit_code
        if self._shutdown_requested is not None:
            self._shutdown_requested.set()

    async def wait_closed(self) -> None:
        """Wait until shutdown is requested (SIGINT/SIGTERM, ``request_shutdown``, root gave up)."""
        if self._shutdown_requested is None:
            raise NodeNotRunning(self.name, self._state)
        await self._shutdown_requested.wait()

    async def shutdown(self) -> None:
        """Stop every actor in reverse start order, each within its shutdown timeout.

        Messages still queued go to dead letters. Then the pools close.
        Awaits; safe to call twice.
        """
        if self._state in ("stopping", "closed"):
            return
        self._state = "stopping"
        if self._shutdown_requested is not None:
            self._shutdown_requested.set()
        self.kernel.stop_heartbeats()
        self._stop_phase = "stopping the actors"
        for slot in reversed(self.kernel.top_level()):
            await slot.stop(ExitReason.shutdown(f"node {self.name} shutting down"), slot.shutdown)
        if self.singletons is not None:
            self._stop_phase = "releasing the singleton leases"
            await self.singletons.close()
        if self.cluster is not None:
            self._stop_phase = "leaving the cluster"
            await self.cluster.leave()
        self._stop_phase = "closing the journal"
        if self.journal is not None:
            await self.journal.close()
        self._stop_phase = "closing the metrics endpoint and pools"
        if self._metrics_server is not None:
            await self._metrics_server.stop()
            self._metrics_server = None
        if self.loop_monitor is not None:
            await self.loop_monitor.stop()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            processes, self._processes = self._processes, None
            await asyncio.to_thread(processes.shutdown, True, cancel_futures=True)
        # Removed last: a second SIGTERM anywhere in the stop still forces the exit.
        if self._loop is not None:
            for signum in self._signals_installed:
                self._loop.remove_signal_handler(signum)
        self._signals_installed.clear()
        self._state = "closed"
        self.logger.info(
            "node {name} stopped (exit code {code}, {dead} dead letters)",
            name=self.name,
            code=self.exit_code,
            dead=self.dead_letters.count,
        )

    # -- actors --------------------------------------------------------------

    async def spawn(self, actor_class: type[Actor], **options: Unpack[SpawnOptions]) -> ActorRef:
        """Start a top-level actor at ``/<name>``; awaits its ``on_start``.

        ``options`` are the keywords of :class:`~garrison.actors.SpawnOptions`:
        ``name``, ``args``, ``kwargs``, ``mailbox`` (overrides the class's
        config) and ``shutdown`` (default ``DEFAULT_SHUTDOWN``). An
        unsupervised actor that crashes stops for good (watchers get
        Terminated; queued messages go to dead letters). Raises NotAnActor,
        InvalidConfig, DuplicateActorName, or ActorStartError when
        ``on_start`` fails.
        """
        return await self.kernel.spawn(actor_class, parent=None, on_exit=stop_for_good, **options)

    async def stop(self, ref: ActorRef, *, timeout: float | None = None) -> None:
        """Stop an actor for good: the message in flight finishes, ``on_stop`` runs,
        queued messages go to dead letters; after ``timeout`` (default: its own
        shutdown setting) what is left is cancelled. Awaits the end.

        Stopping an actor that is already stopping joins that stop: this returns
        when the actor has stopped, and the first stop's reason stands. Its
        deadline stands too unless ``timeout`` ends sooner: then what is left
        is cancelled at the earlier moment (``timeout=0``: at once, as with
        ``shutdown=0``); a longer ``timeout`` never extends it. An actor
        already stopped returns at once. Cancelling the await does not cancel
        the stop."""
        slot = ref.slot
        wait = slot.shutdown if timeout is None else validate_shutdown("timeout", timeout)
        await slot.stop(ExitReason.shutdown("stopped by request"), wait)

    async def start(self, spec: SupervisorSpec, *, name: str = "root") -> SupervisorRef:
        """Start a supervision tree at ``/<name>``; awaits every child's start, in order.

        If the root supervisor exits on its own (it gave up, or auto_shutdown),
        the node requests shutdown: ``wait_closed()`` returns and ``exit_code``
        is 1 when it gave up, 0 otherwise. Raises ActorStartError if a child
        fails to start (children already started are stopped first).
        """
        if not isinstance(spec, SupervisorSpec):
            raise InvalidConfig("spec", spec, "must be a garrison.SupervisorSpec")
        ref = await self.kernel.spawn(
            spec.runner or Supervisor,
            parent=None,
            on_exit=self._root_exited,
            name=name,
            args=(spec,),
            shutdown=None,
        )
        self._root = ref.slot
        return SupervisorRef(ref)

    def _root_exited(self, slot: Slot, reason: ExitReason) -> None:
        slot.finalize(reason)
        gave_up = reason.error is not None
        # Short whatever the error's text (a give-up carries the last failure): the whole
        # reason travels in the record's extra fields.
        self.logger.log(
            "ERROR" if gave_up else "INFO",
            "root supervisor {path} exited ({why}); node {name} shuts down",
            path=slot.path,
            why=reason.brief,
            name=self.name,
            reason=str(reason),
        )
        self.request_shutdown(ExitCode.FAILED if gave_up else ExitCode.OK)

    async def settle(self, *, timeout: float = 5.0) -> None:
        """Wait until the node is idle: every mailbox empty, no handler running, no timer due now.

        Awaits. Idle means every actor is parked on an empty mailbox (a test
        probe's unread messages wait for the test and do not count), and on a
        :class:`~garrison.ManualClock` no timer is due at ``clock.now()``:
        timers already due fire, virtual time does not move. A handler that
        awaits a later timer keeps the node busy until the clock is advanced;
        so do messages queued for a child waiting out a restart backoff. Tasks
        started with ``ctx.run_task`` are not handlers and are not waited for.

        ``timeout`` is real seconds (virtual time stands still meanwhile).
        Raises SettleTimeout naming each busy actor with its queue size,
        NodeNotRunning outside ``async with``, InvalidConfig for a bad timeout.
        """
        check_seconds("timeout", timeout)
        if self._state != "running":
            raise NodeNotRunning(self.name, self._state)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        manual = self.clock if isinstance(self.clock, ManualClock) else None
        while True:
            await run_ready_callbacks()
            due = manual is not None and _timer_due(manual)
            busy = self.kernel.busy()
            if not busy and not due:
                return
            if loop.time() >= give_up:
                if manual is not None and due:
                    busy.append(f"timers due at virtual time {manual.now():g} keep firing")
                raise SettleTimeout(self.name, timeout, busy)
            if manual is not None and due:
                await manual.advance(0.0)
            else:
                await asyncio.sleep(SETTLE_POLL_INTERVAL)

    def health(self) -> tuple[bool, str]:
        """(healthy, why): the loop ticks and the root supervisor (if any) runs.

        Safe to call from any thread: it reads only values the loop publishes.
        """
        if self._state != "running":
            return False, f"node {self.name} is {self._state}"
        monitor = self.loop_monitor
        if monitor is not None:
            silent = time.monotonic() - monitor.last_tick
            limit = max(1.0, 3 * monitor.guard.interval)
            if silent > limit:
                return False, f"event loop has not ticked for {silent:.2f}s"
        root = self._root
        if root is not None and root.state is not ActorState.RUNNING:
            return False, f"root supervisor {root.path} is {root.state.value}"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        """(ready, why): ready to take work, what ``/readyz`` answers.

        Ready once ``node.start(spec)`` has returned (every child started, so
        every event-sourced actor has recovered from the journal the node
        opened first), while the root supervisor runs and the loop ticks, until
        shutdown is requested (SIGTERM: not ready at once, before the tree stops).
        """
        if self._state != "running":
            return False, f"node {self.name} is {self._state}"
        if self._shutdown_requested is not None and self._shutdown_requested.is_set():
            return False, f"node {self.name} is shutting down"
        if self._root is None:
            return False, "no supervision tree started yet (node.start)"
        return self.health()

    def attach_cluster(self, cluster: NodeCluster) -> None:
        """Internal (``garrison.cluster.Cluster.join``): the node holds ``cluster`` as
        ``node.cluster`` and leaves it on shutdown, after its actors stopped. Raises InvalidConfig
        when the node has joined a cluster already."""
        if self.cluster is not None and self.cluster is not cluster:
            raise InvalidConfig(
                "cluster", cluster.name, f"node {self.name} has joined cluster {self.cluster.name}"
            )
        self.cluster = cluster

    def track_consumer_lag(self, group: ConsumerGroup | RedisConsumer) -> None:
        """Export this durable-stream consumer group's lag with the node's metrics
        (a RedisConsumer's is its Redis group's lag, read from the server).

        Tracking the same (stream, group) again, as a restarted consumer does
        with its fresh ConsumerGroup, replaces the one tracked before."""
        stream = group.stream if isinstance(group.stream, str) else group.stream.name
        self.consumer_groups[(stream, group.name)] = group

    def _count_lifecycle(self, event: LifecycleEvent) -> None:
        if isinstance(event, Restarted):
            self.restart_counts[event.path] += 1
        elif isinstance(event, GaveUp):
            self.gave_up_counts[event.path] += 1

    def supervisor(self, path: str) -> SupervisorRef:
        """The supervisor at ``path`` for introspection and child management."""
        ref = self.lookup(path)
        if not ref.slot.actor_class.is_supervisor:
            raise InvalidConfig("path", path, "names a worker, not a supervisor")
        return SupervisorRef(ref)

    def journal_for(self, path: str) -> Any:
        """The journal the actor at ``path`` writes through: ``journal``, fenced
        (``RedisJournal.fenced``) with the token of the cluster singleton whose subtree holds
        ``path``, so that a stale owner's writes are refused with Fenced. Event-sourced actors
        use it; give it to an IntentLog built under a singleton. Raises InvalidConfig if a
        singleton's journal cannot be fenced (fencing needs the shared Redis journal)."""
        journal = self.journal
        if journal is None or self.singletons is None:
            return journal
        fence = self.singletons.fence_for(path)
        if fence is None:
            return journal
        token, on_fenced = fence
        fenced = getattr(journal, "fenced", None)
        if fenced is None:
            raise InvalidConfig(
                "journal",
                type(journal).__name__,
                f"singleton actor {path} needs a journal that can be fenced: the shared RedisJournal",
            )
        return fenced(token, on_fenced)

    def tree(self) -> list[dict[str, Any]]:
        """Every actor as a tree: a list with one row per top-level actor, in start order (a
        node may hold several trees and unsupervised actors), each row a dict of path, kind,
        state, restarts, mailbox depth and lag, and its ``children`` rows.

        Supervisors list their children in spec order, including specs kept
        without a running slot (state ``stopped``, restarts 0, empty mailbox).
        """
        return self.kernel.tree()

    def lookup(self, path: str) -> ActorRef:
        """The ref of the actor at ``path`` (e.g. ``/root/feed``), also while an ancestor
        restarts it. Raises ActorNotFound if no actor lives there."""
        return self.kernel.lookup(path)

    # -- registered names (Erlang's register/whereis) ----------------------------

    def register(self, name: str, ref: ActorRef) -> None:
        """Register ``ref`` under ``name``: ``whereis(name)`` returns it until the actor stops
        for good (restarts keep the name), then the name is free again.

        A ref may carry several names; registering the same pair twice does
        nothing. Raises NameTaken when another live actor holds ``name``,
        ActorStopped for a dead ref, InvalidConfig for a name that is not a
        non-empty string without '/' or a ``ref`` that is not an ActorRef.
        """
        self.kernel.register(name, ref)

    def unregister(self, name: str) -> None:
        """Free ``name`` (nothing happens if it is not registered); the actor lives on."""
        self.kernel.unregister(name)

    def whereis(self, name: str) -> ActorRef | None:
        """The ref registered under ``name``, or None if there is none (Erlang's ``whereis/1``)."""
        return self.kernel.whereis(name)

    def registered(self) -> dict[str, str]:
        """Every registered name and the path of its actor, in registration order."""
        return self.kernel.registered()

    def paths(self) -> list[str]:
        """Every registered actor path, in registration order."""
        return self.kernel.paths()

    # -- blocking isolation ----------------------------------------------------

    async def run_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn(*args)`` on the node's thread pool and await its result.

        Cancelling the await does not stop the thread: ``fn`` runs to its end
        and its result is discarded. Exceptions from ``fn`` are raised here.
        """
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                max_workers=self._thread_workers, thread_name_prefix=f"garrison-{self.name}"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(fn, *args))

    async def run_in_process(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound ``fn(*args)`` in the node's process pool and await its result.

        ``fn``, its arguments and its result must pickle (``fn`` importable by
        name). Cancelling the await does not stop a call already running in
        a worker process. The pool starts workers with ``process_start_method``.
        """
        if self._processes is None:
            self._processes = ProcessPoolExecutor(
                max_workers=self._process_workers,
                mp_context=multiprocessing.get_context(self._process_start_method),
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._processes, functools.partial(fn, *args))

    def __repr__(self) -> str:
        return f"<Node {self.name} {self._state} actors={len(self.kernel)}>"


def _timer_due(clock: ManualClock) -> bool:
    """A timer of the manual clock is due now (it fires on the next ``advance``)."""
    deadline = clock.next_deadline()
    return deadline is not None and deadline <= clock.now()
