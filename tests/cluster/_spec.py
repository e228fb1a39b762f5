"""The tree ``garrison run`` starts in the two-process test: one echo actor at /root/echo."""

from __future__ import annotations

from typing import Any, cast

from garrison import Actor, ChildSpec, Node, SupervisorSpec


class Echo(Actor):
    """Answers a plain dict with itself plus the id of the node that answered and the kind of
    its singleton coordinator (``garrison run`` builds one from the ``[cluster]`` section)."""

    async def on_receive(self, message: Any) -> Any:
        node = cast(Node, self.ctx.node)
        assert node.cluster is not None
        return {**message, "from": node.cluster.node_id, "singletons": type(node.singletons).__name__}


def root_spec() -> SupervisorSpec:
    return SupervisorSpec(children=[ChildSpec("echo", Echo)])
