"""ThreadedActor: a supervised actor that owns a thread; and the contracts of run_in_thread/run_in_process.

Real threads throughout. Virtual time drives the heartbeat scan; waiting for a
thread is always a short, bounded real wait.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from garrison import (
    ABANDONED_THREADS_EXIT_CODE,
    ActorRef,
    ActorStartError,
    ActorStopped,
    ChildSpec,
    HeartbeatTimeout,
    InvalidConfig,
    MailboxConfig,
    MailboxFull,
    ManualClock,
    Node,
    Overflow,
    SupervisorSpec,
    ThreadedActor,
    UnhandledMessage,
)
from garrison.actors import Actor
from tests.actors import helpers

WAIT = 5.0
"""The longest real wait for a thread in these tests."""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def node(clock: ManualClock) -> AsyncIterator[Node]:
    async with Node("t", clock=clock, handle_signals=False, heartbeat_interval=0.25) as running:
        yield running


@pytest.fixture
def release(node: Node) -> Iterator[threading.Event]:
    """Set by the test, or at teardown before the node stops, so that no thread stays blocked."""
    event = threading.Event()
    yield event
    event.set()


async def ask(ref: ActorRef, message: Any) -> Any:
    return await asyncio.wait_for(ref.ask(message, timeout=None), timeout=WAIT)


async def take(entered: queue.Queue[Any]) -> Any:
    """The next thing a thread reported, waiting for it without blocking the loop."""
    return await asyncio.to_thread(entered.get, True, WAIT)


async def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition did not hold in time"
        await asyncio.sleep(0.01)


def thread_alive(name: str) -> bool:
    return any(thread.name == name for thread in threading.enumerate())


def supervised(actor: type[Actor], *args: Any, intensity: int = 5) -> SupervisorSpec:
    return SupervisorSpec(intensity=intensity, period=60.0, children=[ChildSpec("worker", actor, args=args)])


class Boom:
    def __repr__(self) -> str:
        return "Boom()"


class Counter(ThreadedActor):
    """Counts on its thread; reports thread starts and stops to ``log``."""

    def __init__(self, log: queue.Queue[Any]) -> None:
        self.log = log

    def on_thread_start(self) -> None:
        self.count = 0
        self.log.put(("start", threading.get_ident(), threading.current_thread().name))

    def handle(self, message: Any) -> Any:
        match message:
            case "incr":
                self.count += 1
                return self.count
            case "who":
                return threading.get_ident(), threading.current_thread().name, self.count
            case "fail":
                raise ValueError("bad request")
            case Boom():
                raise helpers.Crash("boom")
        return super().handle(message)

    def on_thread_stop(self) -> None:
        self.log.put(("stop", threading.get_ident(), threading.current_thread().name))


class Hanger(ThreadedActor):
    """``"hang"`` blocks until ``release`` is set, then answers; other messages answer at once."""

    heartbeat_timeout = 1.0

    def __init__(self, release: threading.Event, entered: queue.Queue[Any]) -> None:
        self.release = release
        self.entered = entered

    def handle(self, message: Any) -> Any:
        if message == "hang":
            self.entered.put(threading.current_thread().name)
            self.release.wait()
            return "late"
        return message, threading.get_ident()


# -- the actor and its thread ---------------------------------------------------------------


async def test_handle_runs_on_the_actors_own_thread_and_keeps_its_state_there(node: Node) -> None:
    log: queue.Queue[Any] = queue.Queue()
    ref = await node.spawn(Counter, name="counter", args=(log,))
    _, start_thread, _ = log.get_nowait()
    await ref.tell("incr")
    assert await ask(ref, "incr") == 2
    thread, _, count = await ask(ref, "who")
    assert thread == start_thread != threading.get_ident()
    assert count == 2


async def test_an_ask_whose_handler_raises_gets_the_error_and_the_actor_carries_on(node: Node) -> None:
    ref = await node.spawn(Counter, name="counter", args=(queue.Queue(),))
    assert await ask(ref, "incr") == 1
    with pytest.raises(ValueError, match="bad request"):
        await ask(ref, "fail")
    assert await ask(ref, "incr") == 2
    assert ref._context.restarts == 0


async def test_an_orderly_stop_runs_on_thread_stop_on_the_thread_and_the_thread_ends(node: Node) -> None:
    log: queue.Queue[Any] = queue.Queue()
    ref = await node.spawn(Counter, name="counter", args=(log,))
    _, thread, name = log.get_nowait()
    assert name == "garrison/counter#1"
    await asyncio.wait_for(node.stop(ref), timeout=WAIT)
    assert log.get_nowait() == ("stop", thread, name)
    await eventually(lambda: not thread_alive(name))


async def test_an_unhandled_tell_goes_to_dead_letters_and_an_unhandled_ask_raises(node: Node) -> None:
    ref = await node.spawn(Counter, name="counter", args=(queue.Queue(),))
    with pytest.raises(UnhandledMessage) as raised:
        await ask(ref, "nonsense")
    assert (raised.value.path, raised.value.message_type) == ("/counter", "str")
    ref.tell_nowait("more nonsense")
    await eventually(lambda: len(helpers.dead_letters_to(node, "/counter")) == 1)
    [letter] = helpers.dead_letters_to(node, "/counter")
    assert (letter.message, letter.kind) == ("more nonsense", "unhandled")
    assert ref.is_alive


class FailsToStart(ThreadedActor):
    def __init__(self, log: queue.Queue[Any]) -> None:
        self.log = log

    def on_thread_start(self) -> None:
        self.log.put(threading.current_thread().name)
        raise RuntimeError("broker refused the login")

    def on_thread_stop(self) -> None:
        self.log.put("on_thread_stop")


async def test_an_on_thread_start_that_raises_fails_the_start_and_ends_the_thread(node: Node) -> None:
    log: queue.Queue[Any] = queue.Queue()
    with pytest.raises(ActorStartError, match="broker refused the login"):
        await asyncio.wait_for(node.spawn(FailsToStart, name="gateway", args=(log,)), timeout=WAIT)
    name = log.get_nowait()
    await eventually(lambda: not thread_alive(name))
    assert log.empty(), "on_thread_stop must not run after a failed on_thread_start"


def test_a_coroutine_hook_is_rejected_when_the_class_is_defined() -> None:
    with pytest.raises(InvalidConfig, match=r"AsyncHandle\.handle"):

        class AsyncHandle(ThreadedActor):
            async def handle(self, message: Any) -> Any:  # type: ignore[override]
                return message


def test_max_abandoned_threads_is_validated() -> None:
    for bad in (-1, 1.5, True, "8"):
        with pytest.raises(InvalidConfig, match="max_abandoned_threads"):
            Node("t", max_abandoned_threads=bad)  # type: ignore[arg-type]


class GatedBroker(ThreadedActor):
    mailbox = MailboxConfig(capacity=2, overflow=Overflow.REJECT)

    def __init__(self, release: threading.Event, entered: queue.Queue[Any]) -> None:
        self.release = release
        self.entered = entered

    def handle(self, message: Any) -> Any:
        self.entered.put(message)
        self.release.wait(WAIT)
        return message


async def test_messages_wait_in_the_bounded_mailbox_not_in_the_threads_inbox(
    node: Node, release: threading.Event
) -> None:
    entered: queue.Queue[Any] = queue.Queue()
    ref = await node.spawn(GatedBroker, name="broker", args=(release, entered))
    await ref.tell(1)
    assert await take(entered) == 1
    await ref.tell(2)
    await ref.tell(3)
    # The thread holds one message; the rest wait in the mailbox, whose policy applies.
    assert ref.mailbox_metrics().depth == 2
    with pytest.raises(MailboxFull):
        ref.tell_nowait(4)
    release.set()
    assert [await take(entered), await take(entered)] == [2, 3]
    assert await ask(ref, 5) == 5


# -- supervision -------------------------------------------------------------------------------


async def test_a_handler_that_raises_is_restarted_by_its_supervisor_on_a_fresh_thread(node: Node) -> None:
    log: queue.Queue[Any] = queue.Queue()
    await asyncio.wait_for(node.start(supervised(Counter, log)), timeout=WAIT)
    ref = node.lookup("/root/worker")
    _, first_thread, first_name = log.get_nowait()
    assert await ask(ref, "incr") == 1
    await ref.tell(Boom())
    _, name, count = await ask(ref, "who")
    # Thread idents are reused once a thread ends; names are per incarnation.
    assert (first_name, name) == ("garrison/root/worker#1", "garrison/root/worker#2")
    assert count == 0, "a restart starts from fresh state"
    assert ref._context.restarts == 1
    [letter] = helpers.dead_letters_to(node, "/root/worker")
    assert letter.kind == "crashed" and isinstance(letter.error, helpers.Crash)
    await eventually(lambda: not thread_alive(first_name))
    assert ("stop", first_thread, first_name) in [log.get_nowait() for _ in range(log.qsize())]


async def test_a_hung_handler_is_abandoned_after_heartbeat_timeout_and_replaced(
    node: Node, clock: ManualClock, release: threading.Event
) -> None:
    entered: queue.Queue[Any] = queue.Queue()
    await node.start(supervised(Hanger, release, entered))
    ref = node.lookup("/root/worker")
    await ref.tell("hang")
    hung_thread = await take(entered)
    await clock.advance(1.5)
    assert node.abandoned_threads == 1
    answer, thread = await ask(ref, "ping")
    assert answer == "ping" and thread != threading.get_ident()
    assert ref._context.restarts == 1
    assert thread_alive(hung_thread), "an abandoned thread runs on; Python cannot kill it"
    [letter] = helpers.dead_letters_to(node, "/root/worker")
    assert letter.kind == "killed" and isinstance(letter.error, HeartbeatTimeout)
    assert node.exit_code == 0
    release.set()
    await eventually(lambda: not thread_alive(hung_thread))


async def test_a_late_reply_from_an_abandoned_thread_is_dead_lettered_and_answers_no_one(
    node: Node, clock: ManualClock, release: threading.Event
) -> None:
    entered: queue.Queue[Any] = queue.Queue()
    await node.start(supervised(Hanger, release, entered))
    ref = node.lookup("/root/worker")
    hung_ask = asyncio.create_task(ref.ask("hang", timeout=None))
    await take(entered)
    await clock.advance(1.5)
    with pytest.raises(ActorStopped):
        await asyncio.wait_for(hung_ask, timeout=WAIT)
    # The replacement is busy with its own ask when the abandoned thread answers.
    replacement_ask = asyncio.create_task(ref.ask("hang", timeout=None))
    await take(entered)
    release.set()
    await eventually(lambda: any(letter.kind == "late_reply" for letter in node.dead_letters.recent()))
    assert await asyncio.wait_for(replacement_ask, timeout=WAIT) == "late"
    late = [letter for letter in node.dead_letters.recent() if letter.kind == "late_reply"]
    assert [letter.message for letter in late] == ["late"]
    assert late[0].recipient == "/root/worker"


class Beating(ThreadedActor):
    """Works in steps the test releases; each step heartbeats, then tells the test."""

    heartbeat_timeout = 1.0

    def __init__(self, steps: queue.Queue[Any], beats: asyncio.Queue[int]) -> None:
        self.steps = steps
        self.beats = beats

    def handle(self, message: Any) -> Any:
        for step in range(message):
            self.steps.get(timeout=WAIT)
            self.heartbeat()
            # Scheduled after the heartbeat, so it runs on the loop after it.
            self.call_on_loop(self.beats.put_nowait, step)
        return "done"


async def test_heartbeats_from_the_thread_keep_a_long_call_alive(node: Node, clock: ManualClock) -> None:
    steps: queue.Queue[Any] = queue.Queue()
    beats: asyncio.Queue[int] = asyncio.Queue()
    await node.start(supervised(Beating, steps, beats))
    ref = node.lookup("/root/worker")
    work = asyncio.create_task(ref.ask(3, timeout=None))
    for step in range(3):
        await clock.advance(0.75)
        steps.put(None)
        assert await asyncio.wait_for(beats.get(), timeout=WAIT) == step
    assert await asyncio.wait_for(work, timeout=WAIT) == "done"
    assert clock.now() >= 2.25 > Beating.heartbeat_timeout
    assert node.abandoned_threads == 0
    assert ref._context.restarts == 0


class HangsOnStart(ThreadedActor):
    heartbeat_timeout = 1.0

    def __init__(self, release: threading.Event, entered: queue.Queue[Any]) -> None:
        self.release = release
        self.entered = entered

    def on_thread_start(self) -> None:
        self.entered.put(threading.current_thread().name)
        self.release.wait()


async def test_an_on_thread_start_that_hangs_fails_the_start_and_is_abandoned(
    node: Node, clock: ManualClock, release: threading.Event
) -> None:
    entered: queue.Queue[Any] = queue.Queue()
    spawning = asyncio.create_task(node.spawn(HangsOnStart, name="gateway", args=(release, entered)))
    await take(entered)
    await clock.advance(1.5)
    with pytest.raises(ActorStartError) as raised:
        await asyncio.wait_for(spawning, timeout=WAIT)
    assert isinstance(raised.value.cause, HeartbeatTimeout)
    assert node.abandoned_threads == 1


async def test_a_thread_hung_past_the_shutdown_timeout_is_abandoned(
    node: Node, clock: ManualClock, release: threading.Event
) -> None:
    entered: queue.Queue[Any] = queue.Queue()
    ref = await node.spawn(Hanger, name="gateway", args=(release, entered))
    await ref.tell("hang")
    await take(entered)
    stopping = asyncio.create_task(node.stop(ref, timeout=0.5))
    await clock.advance(0.6)
    await asyncio.wait_for(stopping, timeout=WAIT)
    assert not ref.is_alive
    assert node.abandoned_threads == 1


async def test_more_abandoned_threads_than_the_limit_fail_the_node(
    clock: ManualClock, release: threading.Event
) -> None:
    entered: queue.Queue[Any] = queue.Queue()
    async with Node(
        "limited", clock=clock, handle_signals=False, heartbeat_interval=0.25, max_abandoned_threads=1
    ) as node:
        await node.start(supervised(Hanger, release, entered))
        ref = node.lookup("/root/worker")
        closed = asyncio.create_task(node.wait_closed())
        for hung in (1, 2):
            await ref.tell("hang")
            await take(entered)
            await clock.advance(1.5)
            assert node.abandoned_threads == hung
            if hung == 1:
                assert await ask(ref, "ping") is not None, "the replacement serves"
                assert node.exit_code == 0 and not closed.done()
        await asyncio.wait_for(closed, timeout=WAIT)
        assert node.exit_code == ABANDONED_THREADS_EXIT_CODE != 0
        release.set()


# -- the loop stays free -----------------------------------------------------------------------


class SlowBroker(ThreadedActor):
    def handle(self, message: Any) -> Any:
        time.sleep(message)
        return "filled"


async def test_asking_a_threaded_actor_while_it_works_does_not_stall_the_loop(node: Node) -> None:
    ref = await node.spawn(SlowBroker, name="broker")
    worst_lateness = 0.0
    probing = True

    async def probe() -> None:
        nonlocal worst_lateness
        while probing:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            worst_lateness = max(worst_lateness, time.monotonic() - before - 0.005)

    probe_task = asyncio.create_task(probe())
    started = time.monotonic()
    try:
        assert await ask(ref, 0.3) == "filled"
    finally:
        probing = False
        await probe_task
    assert time.monotonic() - started >= 0.3
    assert worst_lateness < 0.05


# -- run_in_thread and run_in_process: what cancellation does (results are in test_pools.py) ----


class Offloader(Actor):
    async def on_receive(self, message: Any) -> Any:
        where, fn, args = message
        if where == "thread":
            return await self.ctx.run_in_thread(fn, *args)
        return await self.ctx.run_in_process(fn, *args)


async def test_cancelling_run_in_thread_does_not_stop_the_thread_and_discards_its_result(
    node: Node, release: threading.Event
) -> None:
    entered: queue.Queue[Any] = queue.Queue()
    finished: list[str] = []

    def blocking_call() -> str:
        entered.put("in")
        release.wait(WAIT)
        finished.append("ran to the end")
        return "result nobody gets"

    ref = await node.spawn(Offloader, name="off")
    asked = asyncio.create_task(ref.ask(("thread", blocking_call, ()), timeout=None))
    await take(entered)
    await node.stop(ref, timeout=0)  # cancels the handler awaiting the thread
    with pytest.raises(ActorStopped):
        await asyncio.wait_for(asked, timeout=WAIT)
    assert finished == []
    release.set()
    await eventually(lambda: finished == ["ran to the end"])


def write_marker_after(started: str, done: str, delay: float) -> str:
    """Runs in a worker process: importable by name for the spawn start method."""
    pathlib.Path(started).write_text(str(os.getpid()))
    time.sleep(delay)
    pathlib.Path(done).write_text("done")
    return "result nobody gets"


@pytest.fixture
async def pooled_node() -> AsyncIterator[Node]:
    async with Node("pools", clock=ManualClock(), handle_signals=False, process_workers=1) as running:
        yield running


async def test_cancelling_run_in_process_does_not_stop_the_call_in_the_worker(
    pooled_node: Node, tmp_path: pathlib.Path
) -> None:
    started, done = tmp_path / "started", tmp_path / "done"
    ref = await pooled_node.spawn(Offloader, name="off")
    asked = asyncio.create_task(
        ref.ask(("process", write_marker_after, (str(started), str(done), 0.3)), timeout=None)
    )
    deadline = time.monotonic() + 60.0  # the first call starts a worker process
    while not started.exists():
        assert time.monotonic() < deadline, "the worker process never started the call"
        await asyncio.sleep(0.01)
    await pooled_node.stop(ref, timeout=0)
    with pytest.raises(ActorStopped):
        await asyncio.wait_for(asked, timeout=WAIT)
    await eventually(done.exists)


async def test_run_in_process_arguments_that_do_not_pickle_raise_in_the_caller(pooled_node: Node) -> None:
    ref = await pooled_node.spawn(Offloader, name="off")
    unpicklable = threading.Lock()
    with pytest.raises(TypeError):
        await asyncio.wait_for(ref.ask(("process", repr, (unpicklable,)), timeout=None), timeout=60.0)
    # The pool is still usable afterwards.
    assert await asyncio.wait_for(ref.ask(("process", repr, (42,)), timeout=None), timeout=60.0) == "42"
