"""The node as a process: ``garrison run examples.order_routing.node.entry:spec --config node.toml``.

The node's NodeConfig is the ``[order_routing]`` section of its settings: from
the config file (examples/order_routing/node.toml), overridden by
``GARRISON_ORDER_ROUTING_<KEY>`` variables; without either, the defaults. The
journal is garrison's ``[journal] url`` (give a Redis password by
``GARRISON_JOURNAL_URL`` or ``GARRISON_JOURNAL_URL_FILE``, never as a flag).
The chaos and multinode runs start the node through ``harness.entry``
instead, which builds this same tree with their faults added.
"""

from __future__ import annotations

import gc
import os
import time

from examples.order_routing.node.answers import EarlierProcesses
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.tree import build_spec
from garrison import Settings, SupervisorSpec

SECTION = "order_routing"
"""The settings section that holds the node's NodeConfig."""


def load_config(settings: Settings) -> NodeConfig:
    """The node's NodeConfig: the ``[order_routing]`` section of ``settings``."""
    return settings.section(SECTION, NodeConfig)


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


IMPORTED_AT = time.monotonic()
"""When this module was imported: after this process started (a fallback for process_started)."""


def process_started() -> float:
    """The ``time.monotonic()`` at which this process started: every earlier process of the node
    had died (and written its last order frame) by then. Read from /proc/self/stat (Linux: the
    start in clock ticks since boot, against CLOCK_BOOTTIME; the tick is 10 ms, far under
    ``lookup_margin``); elsewhere, when this module was imported, which is later (safe)."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        started_ticks = int(fields[19])  # starttime, the 22nd field (the 20th after the name)
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return IMPORTED_AT
    return min(IMPORTED_AT, time.monotonic() - max(0.0, age))


def earlier_processes() -> EarlierProcesses:
    """For the executor: the node's earlier processes wrote their order frames before this one
    started. On the node's default clock (``MonotonicClock``: ``time.monotonic``)."""
    return EarlierProcesses(process_started())


def spec(settings: Settings) -> SupervisorSpec:
    """The node's tree, from the ``[order_routing]`` section of the settings ``garrison run`` read."""
    config = load_config(settings)
    settle_the_heap()
    return build_spec(config, earlier=earlier_processes())
