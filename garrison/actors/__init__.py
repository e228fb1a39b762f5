"""The actor kernel: actors, refs, contexts, watch/Terminated, dead letters and lifecycle events.

It imports nothing from the layers above it (supervision, persistence,
observe, the node): what it needs of the node that hosts it is declared in
:class:`Runtime`, which ``garrison.Node`` implements.
"""

from garrison._defaults import DEFAULT_ASK_TIMEOUT
from garrison.actors._actor import Actor
from garrison.actors._context import ActorContext, DeferredReply
from garrison.actors._control import SystemMessage
from garrison.actors._deadletters import DeadLetters
from garrison.actors._eventbus import EventBus
from garrison.actors._events import (
    EventStream,
    Failed,
    GaveUp,
    LifecycleEvent,
    Restarted,
    Started,
    Stopped,
)
from garrison.actors._kernel import SpawnOptions
from garrison.actors._messages import ActorState, DeadLetter, ExitKind, ExitReason, Terminated
from garrison.actors._metrics import DEFAULT_BUCKETS, ActorMetrics, Counter, Gauge, Histogram, MetricRegistry
from garrison.actors._ref import ActorRef
from garrison.actors._runtime import Runtime
from garrison.actors._threaded import ABANDONED_THREADS_EXIT_CODE, ThreadedActor
from garrison.actors._timers import TimerScheduler

__all__ = [
    "ABANDONED_THREADS_EXIT_CODE",
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_BUCKETS",
    "Actor",
    "ActorContext",
    "ActorMetrics",
    "ActorRef",
    "ActorState",
    "Counter",
    "DeadLetter",
    "DeadLetters",
    "DeferredReply",
    "EventBus",
    "EventStream",
    "ExitKind",
    "ExitReason",
    "Failed",
    "Gauge",
    "GaveUp",
    "Histogram",
    "LifecycleEvent",
    "MetricRegistry",
    "Restarted",
    "Runtime",
    "SpawnOptions",
    "Started",
    "Stopped",
    "SystemMessage",
    "Terminated",
    "ThreadedActor",
    "TimerScheduler",
]
