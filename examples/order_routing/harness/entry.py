"""The node as the chaos and multinode runs start it: the product's tree, with faults added.

``garrison run examples.order_routing.harness.entry:single_node`` (or
``:shared_node``, a node of several) reads the NodeConfig as ``node.entry``
does (the ``[order_routing]`` section of its settings), and the harness's
own settings (a ``HarnessConfig`` as JSON) from ORDER_ROUTING_HARNESS.
Everything it adds reaches the node through the tree builder's hooks:

- ``extras``: a ChaosMonkey (``chaos_faults_per_second``), and a Settler
  (``settle_report``) that stops the node once nothing is pending;
- ``gateway``: a DeadZoneGateway, when the run armed a kill in the dead zone.

With ``control_dir`` set, the process leaves its pid there, so a run can
SIGKILL the node itself rather than the heart that restarts it, and takes a
one-shot order from there to die in the dead zone (``processes.py``).
"""

from __future__ import annotations

import os

import msgspec

from examples.order_routing.harness.chaos_monkey import ChaosMonkey
from examples.order_routing.harness.dead_zone import dead_zone_gateway
from examples.order_routing.harness.processes import take_dead_zone_order, write_pid
from examples.order_routing.harness.settler import Settler
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.entry import earlier_processes, load_config, settle_the_heap
from examples.order_routing.node.gateway import Gateway
from examples.order_routing.node.shared_tree import build_shared_spec
from examples.order_routing.node.tree import build_spec
from garrison import ChildSpec, Settings, SupervisorSpec

HARNESS_ENV = "ORDER_ROUTING_HARNESS"


class HarnessConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What a run adds to a node; the defaults add nothing."""

    chaos_faults_per_second: float = 0.0
    """Crash or hang a random actor this often (a ChaosMonkey in the tree)."""
    settle_report: str = ""
    """When set, the node waits until no intent is pending, writes this JSON report and stops."""
    settle_timeout: float = 60.0
    """The settle phase gives up after this long without an intent settling."""
    settle_limit: float = 600.0
    """The settle phase's longest wait in all, progress or not."""
    control_dir: str = ""
    """Where the node writes its pid (node.pid) and finds one-shot orders (die-after)."""
    die_after_sends: int = 0
    """SIGKILL this process right after the Nth order frame is written (the dead zone)."""
    lease_ttl: float = 3.0
    """A cluster node's singleton lease TTL (``cluster_node.py``)."""
    lease_refresh: float = 1.0
    """A cluster node's lease refresh interval."""


def load_harness() -> HarnessConfig:
    """The harness settings from the environment, with a one-shot die-after order applied (and
    taken away) if one is waiting in the control folder."""
    raw = os.environ.get(HARNESS_ENV)
    harness = HarnessConfig() if raw is None else msgspec.json.decode(raw, type=HarnessConfig)
    sends = take_dead_zone_order(harness.control_dir) if harness.control_dir else None
    return harness if sends is None else msgspec.structs.replace(harness, die_after_sends=sends)


def gateway(harness: HarnessConfig, config: NodeConfig) -> type[Gateway] | None:
    """The gateway hook: one armed for the dead zone, or None (the product's own)."""
    return dead_zone_gateway(config, harness.die_after_sends) if harness.die_after_sends else None


def extras(config: NodeConfig, harness: HarnessConfig) -> list[ChildSpec]:
    """The harness's actors, started last under root."""
    children = []
    if harness.chaos_faults_per_second > 0:
        children.append(ChildSpec("chaos", ChaosMonkey, args=(config.seed, harness.chaos_faults_per_second)))
    if harness.settle_report:
        children.append(
            ChildSpec(
                "settler", Settler, args=(harness.settle_report, harness.settle_timeout, harness.settle_limit)
            )
        )
    return children


def single_node(settings: Settings) -> SupervisorSpec:
    """The single node's tree (``node.entry:spec``) with the harness's faults."""
    config, harness = load_config(settings), load_harness()
    settle_the_heap()
    if harness.control_dir:
        write_pid(harness.control_dir)
    return build_spec(
        config, gateway=gateway(harness, config), extras=extras(config, harness), earlier=earlier_processes()
    )


def shared_node(settings: Settings) -> SupervisorSpec:
    """A node of several (``node.shared_tree:spec``) with the harness's faults."""
    config, harness = load_config(settings), load_harness()
    if harness.control_dir:
        write_pid(harness.control_dir)
    return build_shared_spec(config, gateway=gateway(harness, config), extras=extras(config, harness))
