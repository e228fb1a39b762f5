"""Read-only views of the running actors: what ``node.tree()``, ``/tree`` and ``/metrics`` show."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from garrison.actors._context import ActorContext


def describe(context: ActorContext) -> dict[str, Any]:
    """One row of ``node.tree()``: the slot and, recursively, its children."""
    metrics = context.mailbox.metrics()
    return {
        "path": context.path,
        "name": context.name,
        "kind": "supervisor" if context.actor_class.is_supervisor else "worker",
        "actor_class": context.actor_class.__qualname__,
        "state": context.state.value,
        "restarts": context.restarts,
        "mailbox": {
            "depth": metrics.depth,
            "capacity": metrics.capacity,
            "consumer_lag_seconds": metrics.oldest_age_seconds,
            "dropped": metrics.dropped,
        },
        "children": _describe_children(context),
    }


def _describe_children(context: ActorContext) -> list[dict[str, Any]]:
    children = [describe(child) for child in context._children.values()]
    # A supervisor also lists the specs it keeps without a running slot, as "stopped".
    with_specs = getattr(context.instance, "_tree_children", None)
    return with_specs(children) if with_specs is not None else children
