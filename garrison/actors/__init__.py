"""Actors, refs, the node runtime, watch/Terminated, dead letters and lifecycle events."""

from garrison.actors._actor import Actor
from garrison.actors._context import ActorContext, ActorState, DeferredReply, SystemMessage
from garrison.actors._deadletters import DeadLetters
from garrison.actors._events import (
    EventStream,
    Failed,
    GaveUp,
    LifecycleEvent,
    Restarted,
    Started,
    Stopped,
)
from garrison.actors._messages import DeadLetter, ExitKind, ExitReason, Terminated
from garrison.actors._node import Node
from garrison.actors._ref import DEFAULT_ASK_TIMEOUT, ActorRef
from garrison.actors._threaded import ABANDONED_THREADS_EXIT_CODE, ThreadedActor

__all__ = [
    "ABANDONED_THREADS_EXIT_CODE",
    "DEFAULT_ASK_TIMEOUT",
    "Actor",
    "ActorContext",
    "ActorRef",
    "ActorState",
    "DeadLetter",
    "DeadLetters",
    "DeferredReply",
    "EventStream",
    "ExitKind",
    "ExitReason",
    "Failed",
    "GaveUp",
    "LifecycleEvent",
    "Node",
    "Restarted",
    "Started",
    "Stopped",
    "SystemMessage",
    "Terminated",
    "ThreadedActor",
]
