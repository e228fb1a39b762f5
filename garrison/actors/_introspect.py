"""Read-only views of a node's actors: what ``node.tree()``, ``/tree`` and ``/metrics`` show.

Internal seam. Whoever only looks at the actors (the HTTP endpoint, the
tree, ``garrison top`` through them, tests) reads these views, taken on the
node's loop through ``node.kernel.actors()`` and ``node.kernel.tree()``;
nothing outside the kernel needs a slot for that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from garrison.actors._messages import ActorState
from garrison.mailbox import MailboxMetrics, make_mailbox

if TYPE_CHECKING:
    from collections.abc import Callable

    from garrison.actors._actor import Actor
    from garrison.actors._slot import Slot
    from garrison.mailbox import MailboxConfig


@dataclass(frozen=True, slots=True)
class ActorSnapshot:
    """One actor as it was when the snapshot was taken."""

    path: str
    name: str
    kind: str
    """``worker`` or ``supervisor``."""
    actor_class: str
    """The actor class's qualified name."""
    state: ActorState
    restarts: int
    mailbox: MailboxMetrics


@runtime_checkable
class DescribesChildren(Protocol):
    """An actor whose tree row lists more than its live children (a supervisor also lists the
    specs it keeps without a running slot). The kernel asks the running instance."""

    def tree_children(self, live: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows to show under this actor, given the rows of its live child slots."""
        ...


def snapshot(slot: Slot) -> ActorSnapshot:
    """The slot as it is now."""
    actor_class = slot.actor_class
    return ActorSnapshot(
        path=slot.path,
        name=slot.name,
        kind=_kind(actor_class),
        actor_class=actor_class.__qualname__,
        state=slot.state,
        restarts=slot.restarts,
        mailbox=slot.mailbox.metrics(),
    )


def tree_row(slot: Slot) -> dict[str, Any]:
    """One row of ``node.tree()``: the slot and, recursively, its children."""
    children = [tree_row(child) for child in slot.children.values()]
    instance = slot.instance
    if isinstance(instance, DescribesChildren):
        children = instance.tree_children(children)
    return _row(snapshot(slot), children)


def activity(slot: Slot) -> str | None:
    """What keeps the slot busy now, in words, or None when it is idle (``node.settle()``).

    Busy: an incarnation that is starting, stopping, or not parked on its empty
    mailbox (a handler runs, or the next message is about to); a slot without
    an incarnation that holds messages for its next one (a restart waits). A
    slot that never runs an incarnation (a test probe) holds its messages for
    whoever reads it, and is idle.
    """
    mailbox = slot.mailbox
    queued = len(mailbox) + len(mailbox.system)
    state = slot.state
    if slot.has_incarnation:
        if state is ActorState.STARTING or state is ActorState.STOPPING:
            doing = state.value
        elif not mailbox.consumer_waiting:
            doing = "running a handler"
        else:
            return None
    elif queued and state is not ActorState.RUNNING and state is not ActorState.STOPPED:
        doing = f"{state.value}, messages wait for its next incarnation"
    else:
        return None
    return f"{slot.path} ({doing}; {queued} queued)"


def unstarted_row(
    parent_path: str, name: str, actor_class: type[Actor], mailbox: MailboxConfig, now: Callable[[], float]
) -> dict[str, Any]:
    """The row a slot for ``actor_class`` at ``<parent_path>/<name>`` would have, stopped.

    Built from a fresh mailbox of that config by the same code as a live
    row, so that the two cannot drift apart.
    """
    path = f"{parent_path}/{name}"
    empty = make_mailbox(mailbox, path=path, now=now, on_drop=_never_dropped)
    stopped = ActorSnapshot(
        path=path,
        name=name,
        kind=_kind(actor_class),
        actor_class=actor_class.__qualname__,
        state=ActorState.STOPPED,
        restarts=0,
        mailbox=empty.metrics(),
    )
    return _row(stopped, [])


def _row(actor: ActorSnapshot, children: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = actor.mailbox
    return {
        "path": actor.path,
        "name": actor.name,
        "kind": actor.kind,
        "actor_class": actor.actor_class,
        "state": actor.state.value,
        "restarts": actor.restarts,
        "mailbox": {
            "depth": metrics.depth,
            "capacity": metrics.capacity,
            "consumer_lag_seconds": metrics.oldest_age_seconds,
            "dropped": metrics.dropped,
        },
        "children": children,
    }


def _kind(actor_class: type[Actor]) -> str:
    return "supervisor" if actor_class.is_supervisor else "worker"


def _never_dropped(message: Any, reply: Any, reason: str) -> None:
    """The drop hook of a mailbox that is only described: nothing is ever put in it."""
