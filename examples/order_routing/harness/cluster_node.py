"""One node of the hot-standby pair: the full node's tree as a cluster singleton on Redis.

``python -m examples.order_routing.harness.cluster_node --name a`` runs the same tree as the
single node (node/tree.py, with the harness's hooks), its root supervisor marked
``singleton=True``: every node of the pair runs ``/root``, and only the one holding the
lease runs its children; the other stands by and takes over, recovering the intent log,
when the owner dies or freezes past its lease. Every write of the tree is fenced with the
lease's token, so an owner that wakes up after losing the lease can never write again.

It reads its NodeConfig and HarnessConfig from the environment as ``harness/entry.py``
does (``launch.node_env``), and the journal URL from GARRISON_JOURNAL_URL (redis://).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys

from examples.order_routing.harness.entry import extras, gateway, load_harness
from examples.order_routing.harness.processes import write_pid
from examples.order_routing.node.entry import load_config
from examples.order_routing.node.tree import build_spec
from garrison import Node, Settings, SupervisorSpec
from garrison.cluster import RedisSingletons
from garrison.observe import configure_logging
from garrison.persistence import RedisJournal

JOURNAL_ENV = "GARRISON_JOURNAL_URL"


def singleton_spec(settings: Settings) -> SupervisorSpec:
    """The single node's tree, with the harness's hooks, as one cluster singleton."""
    config, harness = load_config(settings), load_harness()
    return dataclasses.replace(
        build_spec(config, gateway=gateway(harness, config), extras=extras(config, harness)), singleton=True
    )


async def run(name: str) -> int:
    settings = Settings.load(None)
    harness = load_harness()
    spec = singleton_spec(settings)
    url = os.environ.get(JOURNAL_ENV, "")
    if not url.startswith(("redis://", "rediss://")):
        print(f"cluster node: {JOURNAL_ENV} must be a redis:// URL (the nodes share it)", file=sys.stderr)
        return 2
    if harness.control_dir:
        write_pid(harness.control_dir)
    singletons = RedisSingletons(url, node_id=name, ttl=harness.lease_ttl, refresh=harness.lease_refresh)
    async with Node(name, journal=RedisJournal(url), singletons=singletons) as node:
        await node.start(spec)
        await node.wait_closed()
        return node.exit_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="this node's name (its lease owner id)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    configure_logging(args.log_level, who=args.name)
    return asyncio.run(run(args.name))


if __name__ == "__main__":
    sys.exit(main())
