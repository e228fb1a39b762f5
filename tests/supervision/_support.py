"""What the supervision tests share: a worker that records its life, messages, spec helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec

from garrison import Actor, ActorRef, ChildSpec, LifecycleEvent, ManualClock, Node, Restart

T = TypeVar("T")


class Crash(msgspec.Struct, frozen=True):
    """Raise Boom from the handler (a tell of this crashes the actor)."""

    note: str = ""


class Finish(msgspec.Struct, frozen=True):
    """Stop normally: ``ctx.stop()``."""


class Ping(msgspec.Struct, frozen=True):
    """Answer with (child name, instance serial)."""


class Block(msgspec.Struct, frozen=True):
    """Await an event that never fires: a handler stuck for good."""


class Work(msgspec.Struct, frozen=True):
    """Run for ``seconds`` of node-clock time, then record ("done", name)."""

    seconds: float


class Record(msgspec.Struct, frozen=True):
    """Journal ("got", label): shows which messages a (restarted) instance processed."""

    label: str


class Boom(Exception):
    """The failure the test workers raise."""


class Journal:
    """Records every worker's lifecycle steps in order, across all instances."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []
        self.timeline: list[tuple[float, str, str]] = []
        """(node-clock time, step, name) for every entry."""
        self.serial = 0

    def add(self, step: str, name: str, at: float = 0.0) -> None:
        self.entries.append((step, name))
        self.timeline.append((at, step, name))

    def steps(self, *kinds: str) -> list[tuple[str, str]]:
        return [entry for entry in self.entries if entry[0] in kinds]

    def when(self, step: str, name: str) -> float:
        """The node-clock time of the last ``step`` by ``name``."""
        return [at for at, s, n in self.timeline if (s, n) == (step, name)][-1]

    def clear(self) -> None:
        self.entries.clear()
        self.timeline.clear()


class Worker(Actor):
    """A child that journals ``start``/``stop`` and obeys the test messages above."""

    def __init__(self, journal: Journal, fail_start: list[bool] | None = None) -> None:
        self.journal = journal
        self.fail_start = fail_start
        journal.serial += 1
        self.serial = journal.serial

    @property
    def name(self) -> str:
        return self.ctx.self_ref.name

    def now(self) -> float:
        return self.ctx.node.clock.now()

    async def on_start(self) -> None:
        if self.fail_start:
            self.fail_start.pop(0)
            self.journal.add("start-failed", self.name, self.now())
            raise Boom(f"{self.name} refuses to start")
        self.journal.add("start", self.name, self.now())

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Crash():
                raise Boom(f"{self.name} crashed {message.note}".strip())
            case Finish():
                self.ctx.stop()
            case Ping():
                return (self.name, self.serial)
            case Block():
                await asyncio.Event().wait()
            case Record(label=label):
                self.journal.add("got", label, self.now())
            case Work(seconds=seconds):
                await self.ctx.node.clock.sleep(seconds)
                self.journal.add("done", self.name, self.now())
            case _:
                return message
        return None

    async def on_stop(self) -> None:
        self.journal.add("stop", self.name, self.now())


def worker(id: str, journal: Journal, restart: Restart = Restart.PERMANENT, **options: Any) -> ChildSpec:
    return ChildSpec(id, Worker, args=(journal,), restart=restart, **options)


def manual_node(clock: ManualClock, **options: Any) -> Node:
    return Node("t", clock=clock, handle_signals=False, **options)


async def crash(ref: ActorRef, clock: ManualClock, note: str = "") -> None:
    """Crash the actor behind ``ref`` and let its supervisor act."""
    await ref.tell(Crash(note))
    await clock.advance(0)


REAL_GRACE = 5.0
"""Seconds of real time ``drive`` grants a wait that no virtual timer can end (a thread join)."""


async def drive(clock: ManualClock, awaitable: Awaitable[T], *, within: float) -> T:
    """Await ``awaitable`` while firing timers, for at most ``within`` seconds of virtual time.

    When no timer is due, it grants the wait up to REAL_GRACE seconds of real time (the node's
    shutdown joins its watchdog thread). Fails the test, and cancels the wait, if it has not
    completed by then.
    """
    task = asyncio.ensure_future(awaitable)
    limit = clock.now() + within
    await clock.advance(0)
    while not task.done():
        deadline = clock.next_deadline()
        if deadline is not None and deadline <= limit:
            await clock.advance(deadline - clock.now())
            continue
        await asyncio.wait({task}, timeout=REAL_GRACE)
        deadline = clock.next_deadline()
        if not task.done() and (deadline is None or deadline > limit):
            break
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise AssertionError(f"still waiting after {within}s of virtual time")
    return task.result()


def of_type(events: list[LifecycleEvent], kind: type[LifecycleEvent]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]
