"""``Runtime``: what the actor kernel needs from the node that hosts its actors.

The kernel sits below everything else in garrison: it never imports the
node, supervision, persistence or observe. What it needs of the node it
declares here, and ``garrison.Node`` (the composition root, one layer up)
implements it. The same protocol is the static type of ``ActorContext.node``:
what an actor's handlers use of their node. At run time ``ctx.node`` is the
``Node`` itself, so the rest of its API (``node.supervisor(...)``,
``node.tree()``) works too; typed code that needs it writes
``cast(garrison.Node, self.ctx.node)``.
"""

from __future__ import annotations

from collections.abc import Callable
from random import Random
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, Unpack

if TYPE_CHECKING:
    from loguru import Logger

    from garrison._clock import Clock
    from garrison.actors._actor import Actor
    from garrison.actors._deadletters import DeadLetters
    from garrison.actors._eventbus import EventBus
    from garrison.actors._events import EventStream
    from garrison.actors._kernel import Kernel, SpawnOptions
    from garrison.actors._metrics import MetricRegistry
    from garrison.actors._ref import ActorRef

T = TypeVar("T")


class Runtime(Protocol):
    """The node as the kernel sees it (``garrison.Node`` implements it)."""

    # -- what the kernel's machinery uses ------------------------------------------

    @property
    def name(self) -> str:
        """The node's name (logs, thread names)."""
        ...

    @property
    def state(self) -> str:
        """``new``, ``running``, ``stopping`` or ``closed``: slots are created only while running."""
        ...

    @property
    def clock(self) -> Clock:
        """The clock every timer of the runtime reads (timeouts, heartbeats, backoff, lag)."""
        ...

    @property
    def logger(self) -> Logger:
        """The node's logger; each actor binds its path onto it."""
        ...

    @property
    def dead_letters(self) -> DeadLetters:
        """Where every message that was not processed goes, with its reason."""
        ...

    @property
    def events(self) -> EventStream:
        """Where lifecycle events (Started, Failed, Restarted, Stopped, GaveUp) are published."""
        ...

    @property
    def bus(self) -> EventBus:
        """Publish/subscribe between actors, through each subscriber's own mailbox."""
        ...

    @property
    def kernel(self) -> Kernel:
        """Internal: the kernel's own state for this node (slots by path, heartbeats, ask deadlines)."""
        ...

    @property
    def heartbeat_interval(self) -> float:
        """How often the kernel looks for hung actors, in seconds."""
        ...

    abandoned_threads: int
    """Hung ThreadedActor threads given up on so far (the kernel counts them here)."""

    @property
    def max_abandoned_threads(self) -> int:
        """More abandoned threads than this fail the node."""
        ...

    def request_shutdown(self, exit_code: int = 0) -> None:
        """Ask for an orderly shutdown; a non-zero code sticks."""
        ...

    async def run_in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn(*args)`` on the node's thread pool."""
        ...

    async def run_in_process(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound ``fn(*args)`` on the node's process pool."""
        ...

    # -- what else an actor uses through ``ctx.node`` ----------------------------------

    @property
    def random(self) -> Random:
        """The runtime's random source (seeded with ``Node(seed=...)``)."""
        ...

    @property
    def crash_traceback_limit(self) -> int:
        """Failure records of one supervised child that carry their traceback, per window."""
        ...

    @property
    def crash_traceback_window(self) -> float:
        """Seconds (node clock) of the window ``crash_traceback_limit`` counts in."""
        ...

    @property
    def metrics(self) -> MetricRegistry:
        """The application metrics its actors register (``ctx.metrics``)."""
        ...

    @property
    def journal(self) -> Any:
        """The node's default journal (a ``garrison.persistence.Journal``) or None.

        Typed ``Any`` here: the journal belongs to persistence, a layer above the kernel.
        """
        ...

    def journal_for(self, path: str) -> Any:
        """The journal the actor at ``path`` writes through: ``journal``, fenced with the token
        of the cluster singleton whose subtree holds ``path`` if there is one (see
        ``RedisJournal.fenced``). Raises InvalidConfig if a singleton's journal cannot be fenced."""
        ...

    @property
    def singletons(self) -> Any:
        """The cluster's singleton coordinator (a ``garrison.supervision.SingletonCoordinator``),
        or None when the node is not in a cluster. Typed ``Any``: supervision is a layer above."""
        ...

    async def spawn(self, actor_class: type[Actor], **options: Unpack[SpawnOptions]) -> ActorRef:
        """Start a top-level actor; see ``Node.spawn``."""
        ...

    def lookup(self, path: str) -> ActorRef:
        """The ref of the actor at ``path``; raises ActorNotFound."""
        ...

    def register(self, name: str, ref: ActorRef) -> None:
        """Register ``ref`` under ``name`` until it dies; see ``Node.register``."""
        ...

    def whereis(self, name: str) -> ActorRef | None:
        """The ref registered under ``name``, or None; see ``Node.whereis``."""
        ...

    async def stop(self, ref: ActorRef, *, timeout: float | None = None) -> None:
        """Stop an actor for good; see ``Node.stop``."""
        ...
