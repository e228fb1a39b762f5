"""The node's supervision tree (DESIGN §10), built from a NodeConfig.

The child ids here are the last part of the paths in ``paths.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from examples.order_routing.node.answers import EarlierProcesses
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.executor import Executor
from examples.order_routing.node.feed import Feed
from examples.order_routing.node.gateway import Gateway
from examples.order_routing.node.intents import Intents
from examples.order_routing.node.monitor import JournalMonitor
from examples.order_routing.node.positions import Positions
from examples.order_routing.node.risk import Risk
from examples.order_routing.node.strategies import StrategyLauncher
from garrison import Actor, Backoff, ChildSpec, DynamicSupervisorSpec, Strategy, SupervisorSpec


def build_spec(
    config: NodeConfig,
    *,
    executor: type[Actor] = Executor,
    gateway: type[Gateway] | None = None,
    extras: Sequence[ChildSpec] = (),
    earlier: EarlierProcesses | None = None,
) -> SupervisorSpec:
    """root (one_for_one): persistence, execution, risk, market.

    Children start in dependency order (a proposal needs risk, risk needs
    intents), which is the reverse of the order a diagram reads top-down.
    execution is rest_for_one: when the gateway reconnects, intents reopens
    the log, the executor reconciles with the broker, and positions asks for
    the fills it missed. market is rest_for_one: when the strategies'
    DynamicSupervisor restarts, the launcher starts the strategies again.

    The hooks, for those who run the node in another shape (the product itself passes none):
    ``executor`` is the actor class started (with the config) as execution's executor: a node
    of several runs a SharedExecutor there. ``gateway`` is the class started (with the config)
    as execution's gateway, a subclass of Gateway (default: Gateway itself, or FixGateway when
    ``config.venue`` is ``fix``): a harness passes one that injects faults at the socket.
    ``extras`` are started last under root, after market: a harness's own actors (a chaos
    monkey, a settler). ``earlier``: when the node's earlier processes wrote their last order
    frame (the process entry knows: ``entry.spec``), given to the executor so that it trusts
    look-ups of what they left in doubt sooner.
    """
    if gateway is None and config.venue == "fix":
        # Imported only for a FIX venue: the FIX codec needs the example's optional `fix` extra.
        from examples.order_routing.node.fix.gateway import FixGateway

        gateway = FixGateway
    execution = SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        intensity=30,
        period=10.0,
        children=[
            ChildSpec("gateway", gateway or Gateway, args=(config,), backoff=Backoff(initial=0.05, max=1.0)),
            ChildSpec("intents", Intents, args=(config,)),
            ChildSpec("executor", executor, args=(config,) if earlier is None else (config, earlier)),
            ChildSpec("positions", Positions, args=(config.role != "single",)),
        ],
    )
    feed = [ChildSpec("feed", Feed, args=(config,))] if config.feed else []
    market = SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        intensity=20,
        period=10.0,
        children=[
            *feed,
            ChildSpec("strategies", DynamicSupervisorSpec(intensity=20, period=10.0)),
            ChildSpec("launcher", StrategyLauncher, args=(config,)),
        ],
    )
    return SupervisorSpec(
        strategy=Strategy.ONE_FOR_ONE,
        intensity=10,
        period=10.0,
        children=[
            ChildSpec("persistence", JournalMonitor),
            ChildSpec("execution", execution),
            ChildSpec("risk", Risk, args=(config,)),
            ChildSpec("market", market),
            *extras,
        ],
    )
