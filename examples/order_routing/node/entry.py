"""The node as a process: ``garrison run examples.order_routing.node.entry:spec``.

The configuration comes as JSON in the ORDER_ROUTING_CONFIG environment
variable (the chaos runner and `python -m examples.order_routing node` set
it). With ``control_dir`` set, the process writes its pid to
``<control_dir>/node.pid`` so a chaos run can SIGKILL the node itself rather
than the heart that restarts it, and takes a one-shot ``die-after`` order
from there (SIGKILL itself right after the Nth order it sends).
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
    """The config from the environment, with a one-shot chaos order applied if one is waiting."""
    raw = os.environ.get(CONFIG_ENV)
    config = NodeConfig() if raw is None else msgspec.json.decode(raw, type=NodeConfig)
    if not config.control_dir:
        return config
    order = os.path.join(config.control_dir, "die-after")
    try:
        with open(order) as file:
            sends = int(file.read().strip() or 0)
        os.unlink(order)
    except FileNotFoundError:
        return config
    return msgspec.structs.replace(config, die_after_sends=sends)


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


def write_pid(config: NodeConfig) -> None:
    """Leave this process's pid where a chaos runner looks for it (its control folder)."""
    if config.control_dir:
        with open(os.path.join(config.control_dir, "node.pid"), "w") as pid_file:
            pid_file.write(str(os.getpid()))


def spec() -> SupervisorSpec:
    config = load_config()
    settle_the_heap()
    write_pid(config)
    return build_spec(config)
