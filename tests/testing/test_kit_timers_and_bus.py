"""The test kit drives keyed timers on virtual time, and a probe can subscribe to the bus."""

from __future__ import annotations

from typing import Any

import msgspec

from garrison import Actor, Node
from garrison.testing import TestProbe


class Tick(msgspec.Struct, frozen=True):
    n: int


class Heartbeat(msgspec.Struct, frozen=True):
    at: float


class Publisher(Actor):
    """Publishes a Heartbeat on the bus every 2 s of node time (fixed rate)."""

    async def on_start(self) -> None:
        self.ctx.timers.start_at_fixed_rate("beat", "beat", 2.0)

    async def on_receive(self, message: Any) -> Any:
        self.ctx.node.bus.publish(Heartbeat(self.ctx.node.clock.now()))


async def test_a_probe_subscribed_to_the_bus_sees_timer_driven_messages_on_virtual_time(
    node: Node, probe: TestProbe
) -> None:
    node.bus.subscribe(probe, Heartbeat)
    await node.spawn(Publisher, name="publisher")
    # expect waits on virtual time: the kit advances the clock to the next timer.
    assert await probe.expect(Heartbeat, within=3.0) == Heartbeat(2.0)
    assert await probe.expect(Heartbeat, within=3.0) == Heartbeat(4.0)
    await probe.expect_no_message(within=1.5)


class Countdown(Actor):
    """Tells the probe Tick(n) once a second, three times, then cancels its timer."""

    def __init__(self, probe: TestProbe) -> None:
        self.probe = probe
        self.n = 0

    async def on_start(self) -> None:
        self.ctx.timers.start_periodic("count", "count", 1.0)

    async def on_receive(self, message: Any) -> Any:
        self.n += 1
        await self.probe.tell(Tick(self.n))
        if self.n == 3:
            self.ctx.timers.cancel("count")


async def test_a_cancelled_periodic_timer_goes_quiet_under_the_kit(node: Node, probe: TestProbe) -> None:
    await node.spawn(Countdown, args=(probe,))
    for n in (1, 2, 3):
        assert await probe.expect(Tick, within=1.5) == Tick(n)
    await probe.expect_no_message(within=10.0)
