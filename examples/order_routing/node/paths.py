"""Where the node's actors live: the paths of the tree that ``tree.py`` builds.

Actors find each other by path (``ctx.node.lookup(paths.EXECUTOR)``), and
so do the live view, the chaos monkey and the tests. The child ids in
``tree.py`` and ``shared_tree.py`` are the last part of these paths; a child
renamed there is renamed here, and nowhere else.
"""

from __future__ import annotations

ROOT = "/root"
"""one_for_one over the groups below, which fail independently."""
PERSISTENCE = f"{ROOT}/persistence"
"""JournalMonitor: reports the node journal's group-commit figures."""

EXECUTION = f"{ROOT}/execution"
"""rest_for_one: each child below depends on the ones before it."""
GATEWAY = f"{EXECUTION}/gateway"
"""Gateway: the broker connection."""
INTENTS = f"{EXECUTION}/intents"
"""Intents: the intent log's owner, which records approved orders durably."""
EXECUTOR = f"{EXECUTION}/executor"
"""Executor (SharedExecutor on a node of several): sends each intent exactly once."""
POSITIONS = f"{EXECUTION}/positions"
"""Positions: fills to positions, event-sourced."""
FILLS = f"{EXECUTION}/fills"
"""FillSink: positions' place on an executor-only node (``shared_tree.py``)."""

RISK = f"{ROOT}/risk"
"""Risk: limits every proposed order before it can become an intent."""

MARKET = f"{ROOT}/market"
"""rest_for_one: the feed, then the strategies."""
FEED = f"{MARKET}/feed"
"""Feed: simulated ticks, durable first."""
STRATEGIES = f"{MARKET}/strategies"
"""A DynamicSupervisor: one Strategy actor per configured strategy (``strategy(name)``)."""
LAUNCHER = f"{MARKET}/launcher"
"""StrategyLauncher: starts the strategies in it again after it restarts."""


def strategy(name: str) -> str:
    """The path of the strategy started under ``name`` (one of ``NodeConfig.strategies``)."""
    return f"{STRATEGIES}/{name}"
