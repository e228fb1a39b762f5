"""Facts the runtime reports: what state a slot is in, why an actor exited, that a watched
actor terminated, and what was not delivered."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from garrison.actors._ref import Watchable


class ActorState(enum.Enum):
    """Where an actor slot is in its life (``node.tree()`` shows the value)."""

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"


class ExitKind(enum.Enum):
    NORMAL = "normal"
    """The actor asked to stop (``ctx.stop()``)."""
    SHUTDOWN = "shutdown"
    """Its parent or the node stopped it."""
    FAILURE = "failure"
    """An exception escaped a handler, ``on_start`` failed, or it was declared hung."""


@dataclass(frozen=True, slots=True)
class ExitReason:
    """Why an incarnation of an actor ended. ``error`` is set for failures."""

    kind: ExitKind
    detail: str = ""
    error: BaseException | None = None

    @property
    def abnormal(self) -> bool:
        """True for failures: what OTP calls an abnormal exit (restarts a TRANSIENT child)."""
        return self.kind is ExitKind.FAILURE

    def __str__(self) -> str:
        kind: str = self.kind._value_  # not .value: a property, read per exit and per record
        if self.error is not None:
            return f"{kind}: {type(self.error).__name__}: {self.error}"
        return f"{kind}: {self.detail}" if self.detail else kind

    @property
    def brief(self) -> str:
        """The reason in a few words, for a log line: the error's type without its text, which
        can run long (a give-up carries the last failure's). ``str(reason)`` has it all."""
        error = self.error
        if error is None:
            return str(self)
        kind: str = self.kind._value_
        if self.detail:
            return f"{kind}: {self.detail} ({type(error).__name__})"
        return f"{kind}: {type(error).__name__}"

    @classmethod
    def normal(cls, detail: str = "") -> ExitReason:
        return cls(ExitKind.NORMAL, detail)

    @classmethod
    def shutdown(cls, detail: str = "") -> ExitReason:
        return cls(ExitKind.SHUTDOWN, detail)

    @classmethod
    def failure(cls, error: BaseException, detail: str = "") -> ExitReason:
        return cls(ExitKind.FAILURE, detail, error)


@dataclass(frozen=True, slots=True)
class Terminated:
    """Delivered to a watcher when the watched actor has stopped for good.

    Not sent for a supervised restart: the ref stays valid across those. ``ref`` is the
    ``ActorRef`` watched, or the ``RemoteRef`` of an actor on another node
    (``garrison.cluster``: also sent when that node leaves the cluster).
    """

    ref: Watchable
    reason: ExitReason


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that was not processed, with the reason and, for crashes, the error."""

    message: Any
    recipient: str
    reason: str
    error: BaseException | None = None
    at: float = field(default=0.0)
    kind: str = "other"
    """A low-cardinality category for metrics: overflow, stopped, crashed, killed,
    unhandled, late_reply, watcher_stopped, timer, restarting; and from the cluster:
    unreachable, unknown_type, malformed, expired."""
