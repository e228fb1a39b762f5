"""garrison: an Erlang/OTP-style actor framework for asyncio.

Users import from here: ``from garrison import Actor, Node, MailboxConfig``.
"""

from garrison._clock import Clock, ManualClock, MonotonicClock
from garrison._errors import (
    ActorNotFound,
    ActorStartError,
    ActorStopped,
    AskTimeout,
    DuplicateActorName,
    GarrisonError,
    InvalidConfig,
    MailboxFull,
    MessageDropped,
    NodeNotRunning,
    NotAnActor,
)
from garrison.actors import (
    Actor,
    ActorContext,
    ActorRef,
    ActorState,
    DeadLetter,
    ExitKind,
    ExitReason,
    Failed,
    GaveUp,
    LifecycleEvent,
    Node,
    Restarted,
    Started,
    Stopped,
    Terminated,
)
from garrison.mailbox import MailboxConfig, MailboxMetrics, Overflow

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "ActorContext",
    "ActorNotFound",
    "ActorRef",
    "ActorStartError",
    "ActorState",
    "ActorStopped",
    "AskTimeout",
    "Clock",
    "DeadLetter",
    "DuplicateActorName",
    "ExitKind",
    "ExitReason",
    "Failed",
    "GarrisonError",
    "GaveUp",
    "InvalidConfig",
    "LifecycleEvent",
    "MailboxConfig",
    "MailboxFull",
    "MailboxMetrics",
    "ManualClock",
    "MessageDropped",
    "MonotonicClock",
    "Node",
    "NodeNotRunning",
    "NotAnActor",
    "Overflow",
    "Restarted",
    "Started",
    "Stopped",
    "Terminated",
    "__version__",
]
