"""``node.settle()``: wait until no mailbox holds a message and no handler runs."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest

from garrison import (
    Actor,
    ActorRef,
    ChildSpec,
    InvalidConfig,
    ManualClock,
    Node,
    NodeNotRunning,
    SettleTimeout,
    SupervisorSpec,
)
from garrison.supervision import Backoff
from garrison.testing import TestProbe


@dataclass(frozen=True)
class Hop:
    left: int


class Relay(Actor):
    """Passes ``Hop(n)`` on to ``next`` as ``Hop(n - 1)``; records what it saw."""

    def __init__(self, seen: list[int], next_hop: ActorRef | None = None) -> None:
        self.seen = seen
        self.next_hop = next_hop

    async def on_receive(self, message: Any) -> Any:
        self.seen.append(message.left)
        if self.next_hop is not None and message.left > 0:
            await self.next_hop.tell(Hop(message.left - 1))


class Sleeper(Actor):
    """Awaits ``seconds`` of node-clock time per message."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def on_receive(self, message: Any) -> Any:
        await self.ctx.node.clock.sleep(self.seconds)


class Later(Actor):
    """On any message, sends itself ``Hop(0)`` ``delay`` seconds later; records the hops."""

    def __init__(self, seen: list[int], delay: float) -> None:
        self.seen = seen
        self.delay = delay

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Hop):
            self.seen.append(message.left)
        else:
            self.ctx.send_later(self.delay, Hop(0))


class Threaded(Actor):
    """Runs a blocking call on the node's thread pool per message."""

    def __init__(self, release: threading.Event, done: list[str]) -> None:
        self.release = release
        self.done = done

    async def on_receive(self, message: Any) -> Any:
        await self.ctx.run_in_thread(self.release.wait, 5.0)
        self.done.append(message)


class Crashy(Actor):
    async def on_receive(self, message: Any) -> Any:
        raise RuntimeError("crash")


async def test_settle_returns_once_a_chain_of_tells_has_run_to_its_end(node: Node) -> None:
    seen: list[int] = []
    last = await node.spawn(Relay, name="c", args=(seen,))
    middle = await node.spawn(Relay, name="b", args=(seen, last))
    first = await node.spawn(Relay, name="a", args=(seen, middle))
    first.tell_nowait(Hop(2))
    assert seen == []
    await node.settle()
    assert seen == [2, 1, 0]


async def test_settle_fires_timers_due_now_but_does_not_move_virtual_time(
    node: Node, clock: ManualClock
) -> None:
    now_seen: list[int] = []
    later_seen: list[int] = []
    now = await node.spawn(Later, name="now", args=(now_seen, 0.0))
    later = await node.spawn(Later, name="later", args=(later_seen, 1.0))
    now.tell_nowait("go")
    later.tell_nowait("go")
    await node.settle()
    assert now_seen == [0]
    assert later_seen == []
    assert clock.now() == 0.0
    await clock.advance(1.0)
    await node.settle()
    assert later_seen == [0]


async def test_settle_times_out_naming_the_busy_actor_and_its_queue(node: Node, clock: ManualClock) -> None:
    sleeper = await node.spawn(Sleeper, name="sleeper", args=(10.0,))
    for n in range(3):
        sleeper.tell_nowait(n)
    with pytest.raises(SettleTimeout) as raised:
        await node.settle(timeout=0.05)
    assert raised.value.busy == ["/sleeper (running a handler; 2 queued)"]
    assert raised.value.timeout == 0.05
    assert "did not settle within timeout=0.05s: still busy: /sleeper (running a handler; 2 queued)" in str(
        raised.value
    )
    assert clock.now() == 0.0
    await clock.advance(30.0)
    await node.settle()


async def test_settle_ignores_what_waits_unread_in_a_probe(node: Node, probe: TestProbe) -> None:
    probe.tell_nowait("for the test")
    await node.settle(timeout=0.05)
    assert await probe.receive() == "for the test"


async def test_settle_waits_for_a_handler_blocked_on_a_thread(node: Node) -> None:
    release = threading.Event()
    done: list[str] = []
    threaded = await node.spawn(Threaded, name="threaded", args=(release, done))
    threaded.tell_nowait("work")
    with pytest.raises(SettleTimeout, match=r"/threaded \(running a handler; 0 queued\)"):
        await node.settle(timeout=0.05)
    release.set()
    await node.settle()
    assert done == ["work"]


@pytest.mark.garrison(allow_crashes=True, allow_dead_letters=True)
async def test_settle_names_messages_held_for_a_child_waiting_out_its_backoff(
    node: Node, clock: ManualClock
) -> None:
    spec = SupervisorSpec(
        intensity=5, children=[ChildSpec("crashy", Crashy, backoff=Backoff(initial=1.0, jitter=0.0))]
    )
    await node.start(spec)
    crashy = node.lookup("/root/crashy")
    crashy.tell_nowait("first")
    crashy.tell_nowait("second")
    with pytest.raises(SettleTimeout) as raised:
        await node.settle(timeout=0.05)
    assert raised.value.busy == [
        "/root/crashy (restarting, messages wait for its next incarnation; 1 queued)"
    ]
    await clock.advance(1.0)
    await node.settle()


async def test_settle_on_a_real_clock() -> None:
    seen: list[int] = []
    async with Node("real", handle_signals=False) as node:
        relay = await node.spawn(Relay, args=(seen,))
        relay.tell_nowait(Hop(0))
        await node.settle(timeout=2.0)
        assert seen == [0]


@pytest.mark.parametrize("timeout", [0, -1.0, "1", True])
async def test_settle_refuses_a_bad_timeout(node: Node, timeout: Any) -> None:
    with pytest.raises(InvalidConfig) as raised:
        await node.settle(timeout=timeout)
    assert raised.value.field == "timeout"


async def test_settle_outside_a_running_node_raises_node_not_running() -> None:
    node = Node("idle", handle_signals=False)
    with pytest.raises(NodeNotRunning):
        await node.settle()
