"""``EventBus`` (``node.bus``): publish/subscribe between actors, through each subscriber's mailbox.

A topic is a message class or a name. ``publish(message)`` reaches every
actor subscribed to the message's class or to any of its base classes (once,
however many of them it subscribed to); ``publish(message, topic="fills")``
reaches the actors subscribed to the name ``"fills"``. Each delivery is a
``tell_nowait`` into the subscriber's own bounded mailbox: the publisher never
waits, and a slow subscriber applies its own overflow policy (a full
BACKPRESSURE or REJECT mailbox refuses the message, which goes to dead
letters; DROP_* and CONFLATE do what they always do). Subscribers that stop
for good are removed automatically.

The node's lifecycle events (``Started``, ``Failed``, ``Restarted``,
``Stopped``, ``GaveUp``) are published on the bus too: subscribe to
``LifecycleEvent`` (or one of them) to hear about them in an actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from garrison._errors import ActorStopped, InvalidConfig, MailboxFull
from garrison.actors._events import LifecycleEvent, Started, Stopped

if TYPE_CHECKING:
    from garrison.actors._deadletters import DeadLetters
    from garrison.actors._events import EventStream

Topic = type | str
"""What a subscription names: a message class (its subclasses too) or a topic name."""


class Subscriber(Protocol):
    """What the bus needs of a subscriber: an ``ActorRef``, or a ``PoolRef`` (each message
    then goes to one routee, as the pool routes it)."""

    @property
    def path(self) -> str: ...

    @property
    def is_alive(self) -> bool: ...

    def tell_nowait(self, message: Any) -> None: ...


class EventBus:
    """The node's publish/subscribe bus: ``node.bus`` (``self.ctx.node.bus`` in an actor).

    Everything runs on the node's loop and never awaits. Delivery order is
    deterministic: for a class topic, subscribers of the message's own class
    first, then of each base class in method resolution order; within a
    topic, in subscription order. A message published before a subscription
    is not delivered to it (no replay). An actor's subscriptions survive its
    restarts (the ref is the same) and end when it stops for good.
    """

    __slots__ = ("_by_class", "_by_name", "_dead_letters", "_resolved", "_topics_of")

    def __init__(self, dead_letters: DeadLetters, events: EventStream) -> None:
        self._dead_letters = dead_letters
        # A dict per topic, not a set: delivery goes out in subscription order, the same on every run.
        self._by_class: dict[type, dict[str, Subscriber]] = {}
        self._by_name: dict[str, dict[str, Subscriber]] = {}
        self._topics_of: dict[str, set[Topic]] = {}
        """Per subscriber path, its topics: what to remove when it stops."""
        self._resolved: dict[type, tuple[Subscriber, ...]] = {}
        """Per published class, its subscribers over the whole MRO (cleared on any change)."""
        events.subscribe(self._lifecycle)

    def subscribe(self, ref: Subscriber, topic: Topic) -> None:
        """Deliver every message published on ``topic`` to ``ref`` from now on.

        ``ref`` is an ``ActorRef`` or a ``PoolRef`` (each message then goes to
        the routee the pool picks). ``topic`` is a class (messages of it and
        of its subclasses) or a non-empty name. Subscribing twice to one
        topic delivers once. Raises InvalidConfig for another kind of topic,
        ActorStopped for a ref that has stopped for good.
        """
        _check_topic(topic)
        if not ref.is_alive:
            raise ActorStopped(ref.path, "a stopped actor cannot subscribe to the event bus")
        if isinstance(topic, type):
            self._by_class.setdefault(topic, {})[ref.path] = ref
            self._resolved.clear()
        else:
            self._by_name.setdefault(topic, {})[ref.path] = ref
        self._topics_of.setdefault(ref.path, set()).add(topic)

    def unsubscribe(self, ref: Subscriber, topic: Topic | None = None) -> None:
        """Stop delivering ``topic`` (None: every topic) to ``ref``. Unknown pairs are ignored.

        A message already delivered to its mailbox is still handled. Unsubscribing
        from a class does not undo a subscription to its base class.
        """
        if topic is not None:
            _check_topic(topic)
        topics = self._topics_of.get(ref.path)
        if topics is None:
            return
        for each in list(topics) if topic is None else [topic]:
            if each in topics:
                topics.discard(each)
                self._remove(ref.path, each)
        if not topics:
            del self._topics_of[ref.path]

    def publish(self, message: Any, *, topic: str | None = None) -> int:
        """Tell ``message`` to every subscriber of its class (and base classes), or of ``topic``.

        Never awaits and never raises because of a subscriber: a subscriber
        whose mailbox refuses the message (full under BACKPRESSURE or REJECT)
        does not get it, and the message goes to dead letters naming it (kind
        ``overflow``; ``stopped`` for a subscriber found stopped, which is then
        removed; ``refused`` for any other error, such as a pool's key
        function raising).
        Returns how many subscribers' mailboxes took the message (a message a
        DROP_* policy dropped counts as taken: the policy decided).
        """
        if topic is None:
            subscribers = self._resolved.get(message.__class__)
            if subscribers is None:
                subscribers = self._resolve(message.__class__)
        else:
            if not isinstance(topic, str) or not topic:
                raise InvalidConfig(
                    "topic", topic, "publish(message) goes by class; a named topic is a non-empty str"
                )
            by_path = self._by_name.get(topic)
            if not by_path:
                return 0
            subscribers = tuple(by_path.values())
        delivered = 0
        for ref in subscribers:
            try:
                ref.tell_nowait(message)
            except MailboxFull as full:
                self._dead_letters.publish(message, ref.path, f"event bus: {full}", full, kind="overflow")
            except ActorStopped as stopped:
                self.unsubscribe(ref)
                self._dead_letters.publish(
                    message, ref.path, f"event bus: {stopped}", stopped, kind="stopped"
                )
            except Exception as error:  # a pool's key function, say: the subscriber's problem
                self._dead_letters.publish(
                    message, ref.path, f"event bus: {type(error).__name__}: {error}", error, kind="refused"
                )
            else:
                delivered += 1
        return delivered

    def subscribers(self, topic: Topic) -> list[Subscriber]:
        """Who is subscribed to ``topic`` itself (not to its base classes), in subscription order."""
        _check_topic(topic)
        by_path = self._table(topic).get(topic)
        return list(by_path.values()) if by_path else []

    # -- inside ------------------------------------------------------------------------

    def _resolve(self, message_class: type) -> tuple[Subscriber, ...]:
        by_class = self._by_class
        seen: dict[str, Subscriber] = {}
        for base in message_class.__mro__:
            by_path = by_class.get(base)
            if by_path:
                for path, ref in by_path.items():
                    seen.setdefault(path, ref)
        resolved = tuple(seen.values())
        self._resolved[message_class] = resolved
        return resolved

    def _table(self, topic: Topic) -> dict[Any, dict[str, Subscriber]]:
        return self._by_class if isinstance(topic, type) else self._by_name

    def _remove(self, path: str, topic: Topic) -> None:
        table = self._table(topic)
        by_path = table.get(topic)
        if by_path is None:
            return
        by_path.pop(path, None)
        if not by_path:
            del table[topic]
        if isinstance(topic, type):
            self._resolved.clear()

    def _lifecycle(self, event: LifecycleEvent) -> None:
        kind = event.__class__
        if (kind is Stopped or kind is Started) and self._topics_of:
            self._forget_dead_under(event.path)
        if self._by_class:
            self.publish(event)

    def _forget_dead_under(self, path: str) -> None:
        """An actor at ``path`` stopped or (re)started: drop the subscriptions of refs at or under
        it that died. A ref that waits for a later incarnation of its path (an ancestor
        restarting) is alive and keeps them; refs parked under a path die when its actor stops
        for good, or when it starts again without re-creating them."""
        prefix = f"{path}/"
        for subscribed in [each for each in self._topics_of if each == path or each.startswith(prefix)]:
            topics = self._topics_of[subscribed]
            for topic in list(topics):
                ref = self._table(topic).get(topic, {}).get(subscribed)
                if ref is not None and not ref.is_alive:
                    topics.discard(topic)
                    self._remove(subscribed, topic)
            if not topics:
                del self._topics_of[subscribed]

    def __repr__(self) -> str:
        return f"<EventBus subscribers={len(self._topics_of)}>"


def _check_topic(topic: object) -> None:
    if isinstance(topic, type):
        return
    if isinstance(topic, str) and topic:
        return
    raise InvalidConfig("topic", topic, "must be a message class or a non-empty topic name (str)")
