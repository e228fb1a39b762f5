"""Rule 10: heartbeats. An actor whose single message runs longer than heartbeat_timeout without
ctx.heartbeat() is cancelled and reported as failed with HeartbeatTimeout, within the timeout plus
one check interval; idle actors are never hung; a deadlock between two full mailboxes is caught."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from garrison import (
    ChildSpec,
    Failed,
    HeartbeatTimeout,
    LifecycleEvent,
    MailboxConfig,
    ManualClock,
    Node,
    Restarted,
    SupervisorSpec,
)

from ._support import Block, Journal, Ping, Work, Worker, drive, of_type

TIMEOUT = 1.0
INTERVAL = 0.25


class Watched(Worker):
    heartbeat_timeout = TIMEOUT

    async def on_receive(self, message: Any) -> Any:
        if message == "long-but-alive":
            for _ in range(10):
                await self.ctx.node.clock.sleep(0.5)
                self.ctx.heartbeat()
            self.journal.add("done", self.name, self.now())
            return None
        if message == "critical-hang":
            async with self.ctx.critical():
                await self.ctx.node.clock.sleep(3.0)
                self.journal.add("critical-done", self.name, self.now())
            self.journal.add("after-critical", self.name, self.now())
            return None
        return await super().on_receive(message)


@pytest.fixture
async def hb_node(clock: ManualClock) -> AsyncIterator[Node]:
    async with Node("t", clock=clock, handle_signals=False, heartbeat_interval=INTERVAL) as node:
        yield node
        await drive(clock, node.shutdown(), within=3600.0)


async def _start(node: Node, journal: Journal, *names: str) -> None:
    await node.start(
        SupervisorSpec(intensity=10, children=[ChildSpec(name, Watched, args=(journal,)) for name in names])
    )


async def test_a_handler_stuck_forever_is_cancelled_and_restarted_within_timeout_plus_one_interval(
    hb_node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    events: list[LifecycleEvent] = []
    hb_node.events.subscribe(events.append)
    await _start(hb_node, journal, "a")
    await clock.advance(0.3)
    ref = hb_node.lookup("/root/a")
    await ref.tell(Block())  # awaits asyncio.Event().wait(): never returns
    await clock.advance(TIMEOUT - 0.01)
    assert of_type(events, Restarted) == []
    await clock.advance(INTERVAL + 0.01)
    [restarted] = of_type(events, Restarted)
    assert 0.3 + TIMEOUT <= restarted.at <= 0.3 + TIMEOUT + INTERVAL
    [failed] = of_type(events, Failed)
    assert (failed.path, failed.error_type, failed.message_type) == ("/root/a", "HeartbeatTimeout", "Block")
    [letter] = [letter for letter in hb_node.dead_letters.recent() if letter.message == Block()]
    assert isinstance(letter.error, HeartbeatTimeout)
    assert letter.error.path == "/root/a" and letter.error.timeout == TIMEOUT
    assert letter.error.busy_for >= TIMEOUT
    assert "ctx.heartbeat()" in str(letter.error)
    assert (await drive(clock, ref.ask(Ping()), within=1.0))[0] == "a"  # the new instance serves again


async def test_a_long_handler_that_calls_heartbeat_is_not_hung(hb_node: Node, clock: ManualClock) -> None:
    journal = Journal()
    events: list[LifecycleEvent] = []
    hb_node.events.subscribe(events.append)
    await _start(hb_node, journal, "a")
    await hb_node.lookup("/root/a").tell("long-but-alive")
    await clock.advance(6.0)
    assert journal.steps("done") == [("done", "a")]
    assert of_type(events, Failed) == []


async def test_a_slow_handler_without_heartbeat_is_hung(hb_node: Node, clock: ManualClock) -> None:
    journal = Journal()
    await _start(hb_node, journal, "a")
    await hb_node.lookup("/root/a").tell(Work(5.0))
    await clock.advance(6.0)
    assert journal.steps("done") == []
    assert [row.restarts for row in await hb_node.supervisor("/root").which_children()] == [1]


async def test_idle_actors_are_never_hung(hb_node: Node, clock: ManualClock) -> None:
    journal = Journal()
    await _start(hb_node, journal, "a", "b")
    await clock.advance(100.0)
    ref = hb_node.lookup("/root/a")
    for _ in range(5):
        await ref.tell(Work(0.5))  # busy in short bursts, idle between them
        await clock.advance(10.0)
    assert [row.restarts for row in await hb_node.supervisor("/root").which_children()] == [0, 0]


async def test_a_critical_section_defers_the_heartbeat_cancellation_to_its_end(
    hb_node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    await _start(hb_node, journal, "a")
    await hb_node.lookup("/root/a").tell("critical-hang")
    await clock.advance(5.0)
    assert journal.steps("critical-done", "after-critical") == [("critical-done", "a")]
    assert [row.restarts for row in await hb_node.supervisor("/root").which_children()] == [1]


class Relay(msgspec.Struct, frozen=True):
    count: int


class Flooder(Worker):
    """On Relay(n), tells its peer n one-line notes: with two full mailboxes, both wait forever."""

    heartbeat_timeout = TIMEOUT
    mailbox = MailboxConfig(capacity=1)

    def __init__(self, journal: Journal, peer: str) -> None:
        super().__init__(journal)
        self.peer = peer

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Relay):
            peer = self.ctx.node.lookup(self.peer)
            for _ in range(message.count):
                await peer.tell("note")  # backpressure: waits for space in the peer's mailbox
            return None
        return None


def _depth(node: Node, name: str) -> int:
    [root] = node.tree()
    [child] = [child for child in root["children"] if child["name"] == name]
    return int(child["mailbox"]["depth"])


async def test_a_deadlock_between_two_full_mailboxes_is_caught(hb_node: Node, clock: ManualClock) -> None:
    journal = Journal()
    events: list[LifecycleEvent] = []
    hb_node.events.subscribe(events.append)
    await hb_node.start(
        SupervisorSpec(
            intensity=10,
            children=[
                ChildSpec("a", Flooder, args=(journal, "/root/b")),
                ChildSpec("b", Flooder, args=(journal, "/root/a")),
            ],
        )
    )
    a, b = hb_node.lookup("/root/a"), hb_node.lookup("/root/b")
    await a.tell(Relay(3))
    await b.tell(Relay(3))
    await clock.advance(0)
    # Each sent one note into the other's single slot and now waits for the other to take it.
    assert (_depth(hb_node, "a"), _depth(hb_node, "b")) == (1, 1)
    await clock.advance(TIMEOUT + INTERVAL)
    failed = of_type(events, Failed)
    assert {event.path for event in failed} == {"/root/a", "/root/b"}
    assert {event.error_type for event in failed} == {"HeartbeatTimeout"}
    assert {event.path for event in of_type(events, Restarted)} == {"/root/a", "/root/b"}
    # Restarted with their queued notes kept, both drain and go idle: no new failures.
    await clock.advance(10.0)
    assert len(of_type(events, Failed)) == 2
    assert (_depth(hb_node, "a"), _depth(hb_node, "b")) == (0, 0)
