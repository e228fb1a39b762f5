"""Deterministic mode: the manual clock and a seeded node replay the same interleaving."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from garrison import Actor, ActorRef, Backoff, ChildSpec, Strategy, SupervisorSpec, Terminated
from garrison.testing import ActorTestKit
from tests.testing.actors import Counter, Ping

Trace = list[tuple[Any, ...]]


class Worker(Actor):
    def __init__(self, trace: Trace) -> None:
        self.trace = trace

    async def on_receive(self, message: Any) -> Any:
        self.trace.append(("handled", self.ctx.path, message.n, self.ctx.node.clock.now()))


async def chaos_run(seed: int) -> Trace:
    """Three workers under a backoff supervisor, each message crashing with probability 0.3."""
    trace: Trace = []
    async with ActorTestKit(seed=seed, allow_crashes=True, allow_dead_letters=True) as kit:
        kit.node.events.subscribe(lambda event: trace.append((type(event).__name__, event.path, event.at)))
        backoff = Backoff(initial=0.05, max=0.5, jitter=0.5)
        await kit.node.start(
            SupervisorSpec(
                strategy=Strategy.ONE_FOR_ONE,
                intensity=1000,
                period=1.0,
                children=[ChildSpec(name, Worker, args=(trace,), backoff=backoff) for name in "abc"],
            )
        )
        workers = [kit.node.lookup(f"/root/{name}") for name in "abc"]
        for worker in workers:
            kit.faults.crash(worker, probability=0.3, times=None)
        for n in range(40):
            for worker in workers:
                await worker.tell(Ping(n))
            await kit.clock.advance(0.02)
        await kit.clock.advance(5.0)
    return trace


async def test_the_same_seed_replays_the_same_messages_crashes_and_restarts() -> None:
    first = await chaos_run(seed=1234)
    second = await chaos_run(seed=1234)
    assert any(entry[0] == "Restarted" for entry in first)
    assert any(entry[0] == "handled" for entry in first)
    assert first == second


async def test_another_seed_gives_another_interleaving() -> None:
    baseline = await chaos_run(seed=1234)
    others = [await chaos_run(seed=seed) for seed in (1, 2, 3)]
    assert any(other != baseline for other in others)


class Watcher(Actor):
    def __init__(self, target: ActorRef, trace: Trace) -> None:
        self.target = target
        self.trace = trace

    async def on_start(self) -> None:
        self.ctx.watch(self.target)

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Terminated):
            self.trace.append(self.ctx.name)


class Hanging(Actor):
    heartbeat_timeout: ClassVar[float | None] = 1.0

    def __init__(self, trace: Trace) -> None:
        self.trace = trace

    async def on_receive(self, message: Any) -> Any:
        try:
            await asyncio.Event().wait()
        finally:
            self.trace.append(self.ctx.name)


async def run_with_allocations(
    scenario: Callable[[ActorTestKit, Trace], Awaitable[None]], padding: int
) -> Trace:
    """Run ``scenario`` after ``padding`` allocations: object addresses differ, nothing else does."""
    trace: Trace = []
    padding_objects = [object() for _ in range(padding)]
    async with ActorTestKit(seed=1, allow_crashes=True) as kit:
        await scenario(kit, trace)
    del padding_objects
    return trace


async def test_watchers_get_terminated_in_watch_order_on_every_run() -> None:
    async def scenario(kit: ActorTestKit, trace: Trace) -> None:
        target = await kit.node.spawn(Counter, name="target")
        for index in range(8):
            await kit.node.spawn(Watcher, args=(target, trace), name=f"w{index}")
        await kit.node.stop(target)
        await kit.clock.advance(0.1)

    runs = {tuple(await run_with_allocations(scenario, padding)) for padding in range(1, 60, 4)}
    assert runs == {tuple(f"w{index}" for index in range(8))}


async def test_hung_actors_are_cancelled_in_start_order_on_every_run() -> None:
    async def scenario(kit: ActorTestKit, trace: Trace) -> None:
        for index in range(8):
            ref = await kit.node.spawn(Hanging, args=(trace,), name=f"h{index}")
            await ref.tell(Ping(index))
        await kit.clock.advance(2.0)

    runs = {tuple(await run_with_allocations(scenario, padding)) for padding in range(1, 60, 4)}
    assert runs == {tuple(f"h{index}" for index in range(8))}
