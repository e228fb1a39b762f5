"""Where the node's actors live: the paths of the tree that ``tree.py`` builds.

Actors find each other by path (``ctx.node.lookup(paths.EXECUTOR)``), and
so do the live view, the chaos monkey and the tests. The child ids in
``tree.py`` and ``shared_tree.py`` are the last part of these paths; a child
renamed there is renamed here, and nowhere else.
"""

from __future__ import annotations

ROOT = "/root"

PERSISTENCE = f"{ROOT}/persistence"
"""The journal's monitor."""

EXECUTION = f"{ROOT}/execution"
"""The rest_for_one group that owns the broker connection and the orders."""
GATEWAY = f"{EXECUTION}/gateway"
INTENTS = f"{EXECUTION}/intents"
EXECUTOR = f"{EXECUTION}/executor"
POSITIONS = f"{EXECUTION}/positions"
FILLS = f"{EXECUTION}/fills"
"""Positions' place on an executor-only node (``shared_tree.FillSink``)."""

RISK = f"{ROOT}/risk"

MARKET = f"{ROOT}/market"
"""The rest_for_one group of the feed and the strategies."""
FEED = f"{MARKET}/feed"
STRATEGIES = f"{MARKET}/strategies"
"""The DynamicSupervisor holding one Strategy actor per configured strategy."""
LAUNCHER = f"{MARKET}/launcher"


def strategy(name: str) -> str:
    """The path of the strategy started under ``name`` (one of ``NodeConfig.strategies``)."""
    return f"{STRATEGIES}/{name}"
