"""The node's event stream: lifecycle events, published and logged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleEvent:
    """Base of every lifecycle event; ``at`` is the node clock's time."""

    path: str
    at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Started(LifecycleEvent):
    """An actor finished ``on_start`` and takes messages."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed(LifecycleEvent):
    """An actor's incarnation ended abnormally."""

    reason: str = ""
    error_type: str = ""
    message_type: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Restarted(LifecycleEvent):
    """A supervisor started a fresh instance in the same slot."""

    restarts: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Stopped(LifecycleEvent):
    """An actor stopped for good; its ref now raises ActorStopped."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class GaveUp(LifecycleEvent):
    """A supervisor exceeded its restart intensity and stopped."""

    reason: str = ""


Subscriber = Callable[[LifecycleEvent], None]


class EventStream:
    """Synchronous publish/subscribe for lifecycle events.

    Subscribers are called in subscription order on the loop thread; one that
    raises is logged and stays subscribed (an observer never breaks the runtime).
    """

    def __init__(self) -> None:
        # A tuple replaced on every change: publish iterates it as it stands, without a copy,
        # and a subscriber that (un)subscribes while called changes only later publishes.
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            subscribers = list(self._subscribers)
            if subscriber in subscribers:
                subscribers.remove(subscriber)
                self._subscribers = tuple(subscribers)

        return unsubscribe

    def publish(self, event: LifecycleEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.opt(exception=True).error(
                    "event subscriber {subscriber!r} raised on {event!r}",
                    subscriber=subscriber,
                    event=event,
                )
