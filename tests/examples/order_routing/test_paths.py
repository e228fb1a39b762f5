"""node/paths.py names the trees tree.py and shared_tree.py build: every path in it is a child
there, so a child renamed in one place and not the other fails here, not at a lookup."""

from __future__ import annotations

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.shared_tree import build_shared_spec
from examples.order_routing.node.tree import build_spec
from garrison import DynamicSupervisorSpec, SupervisorSpec


def _paths_of(spec: SupervisorSpec, parent: str = paths.ROOT) -> set[str]:
    """Every path the spec starts (a DynamicSupervisor's children are not in it)."""
    found = {parent}
    for child in spec.children:
        path = f"{parent}/{child.id}"
        found |= _paths_of(child.start, path) if isinstance(child.start, SupervisorSpec) else {path}
    return found


def _dynamic(spec: SupervisorSpec, parent: str = paths.ROOT) -> set[str]:
    """The paths of the DynamicSupervisors in the spec."""
    found = set()
    for child in spec.children:
        path = f"{parent}/{child.id}"
        if isinstance(child.start, DynamicSupervisorSpec):
            found.add(path)
        elif isinstance(child.start, SupervisorSpec):
            found |= _dynamic(child.start, path)
    return found


SINGLE = {
    paths.ROOT,
    paths.PERSISTENCE,
    paths.EXECUTION,
    paths.GATEWAY,
    paths.INTENTS,
    paths.EXECUTOR,
    paths.POSITIONS,
    paths.RISK,
    paths.MARKET,
    paths.FEED,
    paths.STRATEGIES,
    paths.LAUNCHER,
}


def test_every_path_of_the_single_node_is_a_child_of_its_tree() -> None:
    spec = build_spec(NodeConfig())
    assert _paths_of(spec) == SINGLE
    assert _dynamic(spec) == {paths.STRATEGIES}
    assert paths.strategy("momentum") == f"{paths.STRATEGIES}/momentum"


def test_every_path_of_an_executor_only_node_is_a_child_of_its_tree() -> None:
    spec = build_shared_spec(NodeConfig(role="executor", member="b"))
    assert _paths_of(spec) == {
        paths.ROOT,
        paths.PERSISTENCE,
        paths.EXECUTION,
        paths.GATEWAY,
        paths.EXECUTOR,
        paths.FILLS,
    }
