"""The tree ``garrison run`` starts in the two-process test: one echo actor at /root/echo."""

from __future__ import annotations

from typing import Any, cast

from garrison import Actor, ChildSpec, Node, SupervisorSpec


class Echo(Actor):
    """Answers a plain dict with itself plus the id of the node that answered."""

    async def on_receive(self, message: Any) -> Any:
        cluster = cast(Node, self.ctx.node).cluster
        assert cluster is not None
        return {**message, "from": cluster.node_id}


def root_spec() -> SupervisorSpec:
    return SupervisorSpec(children=[ChildSpec("echo", Echo)])
