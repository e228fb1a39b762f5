"""What a supervisor needs of a cluster to run a ``singleton=True`` child: a named Protocol.

Supervision sits below the cluster and never imports it. A node that is part
of a cluster holds a ``SingletonCoordinator`` (``Node(singletons=...)``;
``garrison.cluster.RedisSingletons`` implements it); a supervisor asks it for
a ``SingletonClaim`` per singleton child and starts the child only while the
claim is granted. Without a coordinator a singleton child runs as any other
child: the node is a cluster of one.
"""

from __future__ import annotations

from typing import Protocol

from garrison._clock import Clock


class SingletonEvents(Protocol):
    """How a coordinator tells the supervisor about its claim; called from the coordinator's
    task, so an implementation only posts a message to the supervisor's own task."""

    def granted(self, token: int) -> None:
        """This node owns the singleton now, under fencing token ``token`` (strictly higher
        than every token granted before for this singleton, on any node)."""
        ...

    def lost(self, reason: str) -> None:
        """This node no longer owns the singleton (or may no longer: its lease could not be
        refreshed in time); the child must stop now. The claim stands by for the next grant."""
        ...


class SingletonClaim(Protocol):
    """One supervisor's standing claim on one singleton, from ``SingletonCoordinator.claim``."""

    def resign(self, reason: str) -> None:
        """Give up ownership now (the child stopped on a fenced write, or failed to start),
        releasing the lease if it is still ours; the claim stands by for a later grant."""
        ...

    async def release(self) -> None:
        """Stop claiming for good and release the lease if it is ours (the child has stopped).
        Awaits the release; idempotent."""
        ...


class SingletonCoordinator(Protocol):
    """What supervision needs of a cluster to run singleton children (the cluster implements
    it; the node opens it before its first actor starts and closes it after the last stops)."""

    async def open(self, clock: Clock) -> None:
        """Connect; leases are timed on ``clock`` (the node's). Raises ConnectionError."""
        ...

    async def close(self) -> None:
        """Release every lease this node owns and disconnect (idempotent)."""
        ...

    def claim(self, name: str, events: SingletonEvents) -> SingletonClaim:
        """Start claiming singleton ``name`` (the child's path): ``events.granted`` once this
        node owns it, ``events.lost`` when it does not any more. A second claim on a name
        this node already claims replaces the first (which is released)."""
        ...

    def valid_until(self, path: str) -> float:
        """Until when (node clock) this node counts the singleton whose subtree holds ``path`` as
        its own: ``-inf`` while it does not hold it, ``inf`` outside every singleton. An effect
        outside the journal checks it in the same step as it happens."""
        ...

    def fence_for(self, path: str) -> tuple[int, FencedCallback] | None:
        """The fencing token of the singleton whose subtree holds ``path`` (the token it was
        last granted under, even if lost since: a stale writer must be refused, not unfenced),
        and what to call when a write is refused; None outside every singleton."""
        ...


class FencedCallback(Protocol):
    """Called with a write refused for a stale token (``garrison.persistence.Fenced``)."""

    def __call__(self, error: BaseException) -> None: ...
