"""The command line and environment that start the example node as a child process (``garrison
run`` on one of its entries): the chaos run, the multinode run and the recovery bench all start
it this way.

Everything the child is told that is not a plain flag travels in its environment, never in
its argv (which every user of the host can read in ps and /proc/PID/cmdline): its NodeConfig
as the ``[order_routing]`` section's variables (``GARRISON_ORDER_ROUTING_<KEY>``), the journal
URL, which may hold a Redis password, as ``GARRISON_JOURNAL_URL``, and a harnessed one's
HarnessConfig as JSON in HARNESS_ENV (harness/entry.py). ``node_env`` puts them there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from examples.order_routing.harness.entry import HARNESS_ENV, HarnessConfig
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.entry import SECTION
from garrison import section_environ
from garrison.persistence import RedisJournal, SqliteJournal

JOURNAL_ENV = "GARRISON_JOURNAL_URL"
"""Where the child reads its journal's location (garrison's ``[journal] url`` setting)."""

SINGLE_NODE = "examples.order_routing.node.entry:spec"
"""The single node's tree (node/tree.py), as a user runs it."""
HARNESSED_SINGLE_NODE = "examples.order_routing.harness.entry:single_node"
"""The single node's tree with the harness's faults (what the chaos run starts)."""
HARNESSED_SHARED_NODE = "examples.order_routing.harness.entry:shared_node"
"""A node of several on one Redis journal (node/shared_tree.py), with the harness's faults."""


@dataclass(frozen=True)
class HeartOptions:
    """Run the node under ``garrison run --heart``, restarted after every exit.

    The runs kill the node on purpose, far more often than anything would in
    production, so heart must never give up: ``intensity`` is that high.
    """

    backoff: float
    max_backoff: float
    timeout: float = 5.0
    intensity: int = 100_000


def node_command(
    target: str,
    *,
    name: str,
    log_level: str = "WARNING",
    stall_timeout: float = 0.0,
    heart: HeartOptions | None = None,
) -> list[str]:
    """The argv of ``garrison run target`` as node ``name``, with this interpreter; the journal
    and the config come by environment (``node_env``). ``stall_timeout`` 0: the loop watchdog
    never dumps stacks."""
    command = [
        *(sys.executable, "-m", "garrison.cli", "run", target),
        *("--name", name, "--log-level", log_level, "--stall-timeout", str(stall_timeout)),
    ]
    if heart is not None:
        command += [
            *("--heart", "--heart-timeout", str(heart.timeout), "--heart-intensity", str(heart.intensity)),
            *("--heart-backoff", str(heart.backoff), "--heart-max-backoff", str(heart.max_backoff)),
        ]
    return command


def node_env(
    config: NodeConfig,
    harness: HarnessConfig | None = None,
    *,
    journal: str,
    base: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """A copy of ``base`` (default: this process's environment, as it is at the call) with
    ``config`` as the ``[order_routing]`` section's variables, ``journal`` (a path or a URL with
    its password) under JOURNAL_ENV, and ``harness`` (if given) under HARNESS_ENV, where the
    node started by ``node_command`` reads them."""
    env = {
        **{key: value for key, value in base.items() if not key.startswith("GARRISON_ORDER_ROUTING_")},
        **section_environ(SECTION, config),
        JOURNAL_ENV: journal,
    }
    env.pop(JOURNAL_ENV + "_FILE", None)
    if harness is not None:
        env[HARNESS_ENV] = msgspec.json.encode(harness).decode()
    return env


def open_journal(location: str) -> SqliteJournal | RedisJournal:
    """The journal at ``location`` (not yet opened): a ``redis://`` or ``rediss://`` URL, else a
    SQLite file."""
    if location.startswith(("redis://", "rediss://")):
        return RedisJournal(location)
    return SqliteJournal(location)
