"""An actor that sets timers to itself, shared by the actor and mailbox tests of ``send_later``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from garrison import Actor, ActorRef, MailboxConfig, Node
from garrison._clock import settle
from tests.actors.helpers import Crash


class Poller(Actor):
    """Sets a "tick" to itself at t+1 on start and, with ``rearm``, again on every tick (a poll loop).

    Records every message it finishes handling in ``seen`` and the node-clock time of every tick
    in ``ticks``. "block" holds the handler for 5s of node time; "crash-later" holds it for 2s,
    then raises Crash.
    """

    def __init__(self, seen: list[Any], ticks: list[float], *, rearm: bool = False) -> None:
        self.seen = seen
        self.ticks = ticks
        self.rearm = rearm

    async def on_start(self) -> None:
        self.ctx.send_later(1.0, "tick")

    async def on_receive(self, message: Any) -> None:
        clock = self.ctx.node.clock
        if message == "block":
            await clock.sleep(5.0)
        elif message == "crash-later":
            await clock.sleep(2.0)
            raise Crash("poller crashed")
        elif message == "tick":
            self.ticks.append(clock.now())
            if self.rearm:
                self.ctx.send_later(1.0, "tick")
        self.seen.append(message)


async def spawn_busy_poller(
    node: Node, first: str, queued: Sequence[str], *, name: str = "poller", rearm: bool = False
) -> tuple[ActorRef, list[Any], list[float]]:
    """Spawn a Poller busy with ``first`` whose mailbox (capacity ``len(queued)``) is full with ``queued``.

    Its t=1 tick therefore finds the mailbox full unless ``first`` is done by then. Returns the
    ref and the poller's ``seen`` and ``ticks``.
    """
    seen: list[Any] = []
    ticks: list[float] = []
    ref = await node.spawn(
        Poller,
        name=name,
        args=(seen, ticks),
        kwargs={"rearm": rearm},
        mailbox=MailboxConfig(capacity=len(queued)),
    )
    ref.tell_nowait(first)
    await settle()
    for message in queued:
        ref.tell_nowait(message)
    return ref, seen, ticks
