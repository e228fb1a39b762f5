"""The gateway's Hello asks the broker to replay the fills after the last one positions has taken.
When positions subscribes again (it restarted, and asks from what it wrote) while the gateway is
waiting for the old incarnation's answer, that answer (fills taken, perhaps never written) must not
win: the fills between would never be replayed, and positions would never match the broker.

Real TCP on 127.0.0.1 against a fake venue that records each Hello; real time, bounded waits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from examples.order_routing.node.gateway import Gateway
from examples.order_routing.node.messages import GetBrokerInfo, LastFillTaken, SubscribeFills
from examples.order_routing.protocol import Hello, Welcome, encode_frame
from garrison import Actor, ChildSpec, Node, SupervisorSpec
from garrison.testing import TestProbe
from tests.examples.order_routing.support import StandIn
from tests.examples.order_routing.test_venue_faults import (
    FakeVenue,
    config_for,
    requests,
    until,
    venue,
)
from tests.examples.order_routing.test_venue_faults import garrison_clock as real_clock

garrison_clock = real_clock
__all__ = ["garrison_clock", "venue"]

WRITTEN = 10
"""The last fill the restarted positions has written (and subscribes from)."""
TAKEN = 50
"""The last fill the old positions had taken, but never wrote."""


class RestartingPositions(Actor):
    """Subscribes from 0. Asked for the last fill taken the first time, it subscribes again from
    WRITTEN, as a restarted positions would, waits until the gateway has handled that, and only
    then answers TAKEN, as the old incarnation would have. Later asks go unanswered in time."""

    def __init__(self) -> None:
        self.asked = 0

    async def on_start(self) -> None:
        await self.gateway().tell(SubscribeFills(0, self.ctx.self_ref))

    def gateway(self) -> Any:
        return self.ctx.node.lookup("/root/execution/gateway")

    async def on_receive(self, message: Any) -> Any:
        if not isinstance(message, LastFillTaken):
            return None
        self.asked += 1
        if self.asked > 1:
            await asyncio.sleep(1.0)  # past handshake_timeout: the gateway goes on without it
            return WRITTEN
        await self.gateway().tell(SubscribeFills(WRITTEN, self.ctx.self_ref))
        await self.gateway().ask(GetBrokerInfo())  # answered once the subscription was handled
        return TAKEN


async def test_a_new_subscription_during_the_question_wins_over_the_old_answer(
    node: Node, probe: TestProbe, venue: Callable[..., Awaitable[FakeVenue]]
) -> None:
    hellos: list[int] = []

    async def record_hellos(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async for message in requests(reader):
            if isinstance(message, Hello):
                hellos.append(message.fills_after)
                writer.write(encode_frame(Welcome("fake", 0.05, "none")))

    fake = await venue(record_hellos)
    config = config_for(fake.port, handshake_timeout=0.3)
    execution = SupervisorSpec(
        children=[
            ChildSpec("gateway", Gateway, args=(config,)),
            ChildSpec("executor", StandIn, args=(probe,)),
            ChildSpec("positions", RestartingPositions),
        ]
    )
    await node.start(SupervisorSpec(children=[ChildSpec("execution", execution)]))

    async def welcomed() -> bool:
        return bool(hellos)

    await until(welcomed, "a Hello")
    assert hellos[-1] == WRITTEN, f"the Hello asked for the fills after {hellos[-1]}: {hellos}"
    assert TAKEN not in hellos
