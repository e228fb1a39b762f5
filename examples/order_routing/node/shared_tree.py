"""The tree of a node of several on one Redis journal (node/shared_work.py says how they share).

``full``: the single node's tree (feed, strategies, risk, intents, positions)
with a SharedExecutor. ``executor``: a gateway, a SharedExecutor and a
FillSink, nothing else. Run one with ``garrison run
examples.order_routing.node.shared_tree:spec`` and the config in the
``[order_routing]`` section of its settings (the multinode command starts this
tree through ``harness.entry``, with its faults added).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.entry import load_config
from examples.order_routing.node.gateway import Gateway
from examples.order_routing.node.messages import Fills, LastFillTaken, Snapshot, SubscribeFills
from examples.order_routing.node.monitor import JournalMonitor
from examples.order_routing.node.shared_work import SharedExecutor
from examples.order_routing.node.tree import build_spec
from examples.order_routing.protocol import Fill
from garrison import Actor, ChildSpec, Settings, Strategy, SupervisorSpec

NO_REPLAY = 2**62
"""fills_after for a node that counts no fills: the broker replays none."""


class FillSink(Actor):
    """Positions' place on an executor-only node. The broker welcomes a session once it
    subscribes to fills and then streams every fill of the account to it; this node counts
    none (the full node's positions does), so it asks for no replay and drops them."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.dropped = 0

    async def on_start(self) -> None:
        gateway = self.ctx.node.lookup(paths.GATEWAY)
        await gateway.tell(SubscribeFills(NO_REPLAY, self.ctx.self_ref))

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Fills(fills=fills):
                self.dropped += len(fills)
            case Fill():
                self.dropped += 1
            case LastFillTaken():
                return NO_REPLAY
            case Snapshot():
                return {"fills_dropped": self.dropped}
            case _:
                self.ctx.unhandled(message)
        return None


def build_shared_spec(
    config: NodeConfig, *, gateway: type[Gateway] | None = None, extras: Sequence[ChildSpec] = ()
) -> SupervisorSpec:
    """The tree of one node of several: ``full`` is the single node's tree with a
    SharedExecutor; ``executor`` is a gateway, a SharedExecutor and a FillSink. ``gateway``
    and ``extras`` are ``build_spec``'s hooks, for either role."""
    if config.role == "full":
        return build_spec(config, executor=SharedExecutor, gateway=gateway, extras=extras)
    if config.role != "executor":
        raise ValueError(f"role={config.role!r}: build_spec builds a single node")
    single = build_spec(config, gateway=gateway)
    gateway = next(
        c
        for group in single.children
        if group.id == "execution" and isinstance(group.start, SupervisorSpec)
        for c in group.start.children
        if c.id == "gateway"
    )
    execution = SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        intensity=30,
        period=10.0,
        children=[
            gateway,
            ChildSpec("executor", SharedExecutor, args=(config,)),
            ChildSpec("fills", FillSink, args=(config,)),
        ],
    )
    return SupervisorSpec(
        strategy=Strategy.ONE_FOR_ONE,
        intensity=10,
        period=10.0,
        children=[ChildSpec("persistence", JournalMonitor), ChildSpec("execution", execution), *extras],
    )


def spec(settings: Settings) -> SupervisorSpec:
    """``garrison run examples.order_routing.node.shared_tree:spec``: the config from the
    settings, as ``node.entry`` reads it."""
    return build_shared_spec(load_config(settings))
