"""What the order-routing node tests share: stand-ins for collaborators, intents, the durable view."""

from __future__ import annotations

from typing import Any

from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.intents import INTENTS_STREAM
from examples.order_routing.node.messages import OrderIntent, OrdersRecorded
from examples.order_routing.protocol import Side
from garrison import Actor, ActorRef
from garrison.persistence import Intent, IntentLog, IntentState, Journal, client_order_id
from garrison.testing import TestProbe

FAST = NodeConfig(ack_timeout=2.0, lookup_margin=0.5, lookup_retry=0.25)
"""The timings the decision-table tests reason about (the defaults, spelled out)."""


class StandIn(Actor):
    """Sits at a collaborator's path and forwards every message to a probe.

    Asks whose type is in ``answers`` are answered from it instead (an
    executor asks the gateway for the broker's Welcome facts while it starts,
    before a test could reply). Messages of a type in ``ignore`` are dropped
    (risk's stand-in need not pass on every tick). ``before_forward`` runs
    first on each message, e.g. to read what is durable the moment it arrives.
    """

    def __init__(
        self,
        to: ActorRef,
        answers: dict[type, Any] | None = None,
        before_forward: Any = None,
        ignore: tuple[type, ...] = (),
    ) -> None:
        self.to = to
        self.answers = answers or {}
        self.before_forward = before_forward
        self.ignore = ignore

    async def on_receive(self, message: Any) -> Any:
        if type(message) in self.answers:
            return self.answers[type(message)]
        if isinstance(message, self.ignore):
            return None
        if self.before_forward is not None:
            await self.before_forward(message)
        await self.to.tell(message)
        return None


def make_intent(
    strategy: str = "momentum",
    seq: int = 1,
    *,
    symbol: str = "ACME",
    side: Side = Side.BUY,
    qty: int = 10,
    price: float = 100.0,
) -> OrderIntent:
    """An intent as a strategy builds it: its id derived from (strategy, tick seq)."""
    return OrderIntent(client_order_id(strategy, seq), strategy, seq, symbol, side, qty, price)


async def durable_intents(journal: Journal) -> dict[str, Intent[OrderIntent]]:
    """Every intent as the journal holds it (a fresh read, not any actor's memory)."""
    log = await IntentLog(journal, INTENTS_STREAM, OrderIntent).open()
    return {intent.id: intent for intent in log.intents()}


async def durable_state(journal: Journal, cid: str) -> IntentState | None:
    intent = (await durable_intents(journal)).get(cid)
    return None if intent is None else intent.state


async def intent_events(journal: Journal) -> list[bytes]:
    """The raw events of the intents stream, in order."""
    return [payload async for _, payload in journal.read(INTENTS_STREAM)]


async def seed_intents(journal: Journal, *paths: tuple[OrderIntent, tuple[IntentState, ...]]) -> None:
    """Write intents as an earlier incarnation left them: each recorded, then moved through its states."""
    log = await IntentLog(journal, INTENTS_STREAM, OrderIntent).open()
    for intent, states in paths:
        await log.record(intent.client_order_id, intent)
        for state in states:
            await log.move(intent.client_order_id, state, "seeded")


async def expect_recorded(probe: TestProbe, count: int, within: float | None = None) -> set[str]:
    """The ids of the next ``count`` acceptances (OrdersRecorded: one notice per durable write)."""
    recorded: list[str] = []
    while len(recorded) < count:
        recorded.extend((await probe.expect(OrdersRecorded, within=within)).client_order_ids)
    assert len(recorded) == count, f"more acceptances than expected: {recorded}"
    return set(recorded)
