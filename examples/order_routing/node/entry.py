"""The node as a process: ``garrison run examples.order_routing.node.entry:spec``.

The configuration comes as JSON (a NodeConfig) in the ORDER_ROUTING_CONFIG
environment variable (``python -m examples.order_routing node`` sets it);
without it, the defaults. The chaos and multinode runs start the node through
``harness.entry`` instead, which builds this same tree with their faults added.
"""

from __future__ import annotations

import gc
import os

import msgspec

from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.tree import build_spec
from garrison import SupervisorSpec

CONFIG_ENV = "ORDER_ROUTING_CONFIG"


def load_config() -> NodeConfig:
    """The config from the environment (CONFIG_ENV), or the defaults without one."""
    raw = os.environ.get(CONFIG_ENV)
    return NodeConfig() if raw is None else msgspec.json.decode(raw, type=NodeConfig)


FULL_COLLECTION_EVERY = 100
"""Generation-1 collections between two full ones (CPython's default is 10)."""


def settle_the_heap() -> None:
    """Move everything allocated so far (modules, classes, config) out of the garbage collector's
    reach (``gc.freeze()``), so a full collection walks only what the node allocates from here on,
    and make full collections ten times rarer (``FULL_COLLECTION_EVERY``).

    Call it once the node's modules are imported and before it starts: a full collection that
    walked them all took tens of ms, on the loop, at random moments. The intent log's intents
    are not tracked at all (Intent and OrderIntent are gc=False). Even so, at capacity a full
    collection came every ~2 s (the frozen heap leaves few long-lived objects, so CPython's
    "a quarter more than last time" rule hardly delays it) and took 5-13 ms of the loop's CPU,
    walking the long-lived containers (the intent log's state per id, and in the benchmark its own
    stamps): one loop-lag spike each. Every ~20 s keeps cyclic garbage bounded all the same; the
    young generations are collected as usual."""
    gc.collect()
    gc.freeze()
    threshold0, threshold1, _ = gc.get_threshold()
    gc.set_threshold(threshold0, threshold1, FULL_COLLECTION_EVERY)


def spec() -> SupervisorSpec:
    config = load_config()
    settle_the_heap()
    return build_spec(config)
