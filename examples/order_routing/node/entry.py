"""The node as a process: ``garrison run examples.order_routing.node.entry:spec``.

The configuration comes as JSON in the ORDER_ROUTING_CONFIG environment
variable (the chaos runner and `python -m examples.order_routing node` set
it). The process writes its pid to ``<journal>.pid`` so a chaos run can
SIGKILL the node itself rather than the heart that restarts it.
"""

from __future__ import annotations

import os

import msgspec

from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.tree import build_spec
from garrison import SupervisorSpec

CONFIG_ENV = "ORDER_ROUTING_CONFIG"


def load_config() -> NodeConfig:
    raw = os.environ.get(CONFIG_ENV)
    if raw is None:
        return NodeConfig()
    return msgspec.json.decode(raw, type=NodeConfig)


def spec() -> SupervisorSpec:
    config = load_config()
    with open(f"{config.journal}.pid", "w") as pid_file:
        pid_file.write(str(os.getpid()))
    return build_spec(config)
