"""``TestProbe``: an actor ref a test reads from, with expectations on what arrives."""

from __future__ import annotations

import asyncio
from typing import Any

from garrison._node import Node
from garrison.actors import Actor, ActorRef, Terminated
from garrison.actors._slot import stop_for_good
from garrison.mailbox import MailboxConfig
from garrison.testing._awaited import expectation
from garrison.testing._matching import Matcher, describe, matches
from garrison.testing._waiting import check_within, clock_kind, wait_until

DEFAULT_WITHIN = 3.0
"""Seconds an expectation waits by default (virtual seconds on the manual clock)."""

DEFAULT_NO_MESSAGE_WITHIN = 0.1
"""Seconds ``expect_no_message`` watches by default (Akka's default too)."""


class ProbeActor(Actor):
    """Stands for a TestProbe in the node's registry. Never instantiated: the
    probe's test reads the slot's mailbox itself."""


class TestProbe(ActorRef):
    """An actor ref that records what it receives, for a test to assert on.

    Create it inside a running node (``TestProbe(node)``, or the ``probe``
    fixture) and hand it to the actors under test like any ref: it is
    registered at ``/<name>``, accepts ``tell`` and ``ask``, can be watched,
    and can watch. Nothing is processed until the test reads it.

    Each ``expect*`` takes the *next* message (asks included; ``Terminated``
    notices first, as the runtime serves its system lane first) and raises
    ``AssertionError`` saying what was expected and what arrived. ``within``
    is node-clock time: on a :class:`~garrison.ManualClock` the probe advances
    virtual time while it waits, timer by timer, and stops at the moment the
    message arrived (or after ``within``); on a real clock it waits real time.
    One task at a time should drive a manual clock.
    """

    __test__ = False  # not a pytest test class, despite the name

    __slots__ = ("_last", "_last_reply", "_replied", "default_within", "node", "received")

    def __init__(
        self,
        node: Node,
        name: str | None = None,
        *,
        capacity: int = 10_000,
        default_within: float = DEFAULT_WITHIN,
    ) -> None:
        if name is None:
            name = node.kernel.unique_name("probe")
        slot = node.kernel.prepare(
            ProbeActor, None, stop_for_good, name=name, mailbox=MailboxConfig(capacity=capacity), shutdown=0
        )
        super().__init__(slot)
        slot.adopt(self)
        self.node = node
        self.default_within = check_within("default_within", default_within)
        self.received: list[Any] = []
        """Every message taken so far, oldest first."""
        self._last: Any = None
        self._last_reply: asyncio.Future[Any] | None = None
        self._replied = False

    # -- reading -------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Messages that arrived and were not taken yet."""
        self._drop_control()
        return len(self._mailbox) + len(self._mailbox.system)

    @property
    def last_message(self) -> Any:
        """The message taken last (None before the first)."""
        return self._last

    @expectation
    async def receive(self, within: float | None = None) -> Any:
        """Take the next message, whatever it is; AssertionError if none arrives within ``within``."""
        return await self._take(within, "a message")

    @expectation
    async def expect(self, matcher: Matcher, within: float | None = None) -> Any:
        """Take the next message and assert it matches; return it.

        ``matcher``: a type, a tuple of types, a predicate, or a value the
        message must equal. Raises AssertionError when the next message does
        not match or none arrives within ``within`` seconds (default
        ``default_within``) of node-clock time.
        """
        expected = describe(matcher)
        message = await self._take(within, expected)
        if not matches(matcher, message):
            raise AssertionError(
                f"probe {self.path} expected {expected}, but the next message was {message!r}"
            )
        return message

    @expectation
    async def expect_no_message(self, within: float = DEFAULT_NO_MESSAGE_WITHIN) -> None:
        """Assert that nothing arrives for ``within`` seconds of node-clock time.

        On the manual clock this advances virtual time by exactly ``within``
        (firing the timers that fall due) unless a message arrives first.
        """
        within = check_within("within", within)
        clock = self.node.clock
        started = clock.now()
        if await wait_until(clock, self._has_message, within, self._mailbox.wait):
            message = self._take_now()
            raise AssertionError(
                f"probe {self.path} expected no message for {within}s, but got {message!r} "
                f"after {clock.now() - started:g}s of {clock_kind(clock)} time"
            )

    @expectation
    async def expect_terminated(self, ref: ActorRef, within: float | None = None) -> Terminated:
        """Watch ``ref`` (if not yet) and assert the next message is its ``Terminated``.

        Returns the notice (``.reason`` says how it ended). Supervised
        restarts do not terminate a ref; only a stop for good does.
        """
        self.watch(ref)
        expected = f"Terminated({ref.path})"
        message = await self._take(within, expected)
        if not (
            isinstance(message, Terminated)
            and isinstance(message.ref, ActorRef)
            and message.ref.slot is ref.slot
        ):
            raise AssertionError(
                f"probe {self.path} expected {expected}, but the next message was {message!r}"
            )
        return message

    def watch(self, ref: ActorRef) -> None:
        """Receive ``Terminated(ref, reason)`` when ``ref`` stops for good."""
        self.slot.watch(ref)

    def unwatch(self, ref: ActorRef) -> None:
        self.slot.unwatch(ref)

    # -- answering asks ------------------------------------------------------

    def reply(self, value: Any) -> None:
        """Answer the ask that delivered the last message taken.

        Raises AssertionError if that message came with ``tell`` or was
        already answered. If the asker has given up (timed out), the reply
        goes to dead letters, as a late reply from any actor does.
        """
        reply = self._pending_reply()
        if reply.done():
            self.node.dead_letters.publish(
                value,
                self.path,
                f"reply to {type(self._last).__name__} after the ask timed out or was cancelled",
            )
        else:
            reply.set_result(value)

    def reply_error(self, error: BaseException) -> None:
        """Answer the last ask with an exception: the asker's ``await ref.ask`` raises it."""
        reply = self._pending_reply()
        if not reply.done():
            reply.set_exception(error)

    async def stop(self) -> None:
        """Stop the probe for good; messages not taken go to dead letters."""
        await self.node.stop(self)

    # -- inside ----------------------------------------------------------------

    def _pending_reply(self) -> asyncio.Future[Any]:
        if self._last_reply is None:
            raise AssertionError(
                f"probe {self.path}: the last message ({self._last!r}) was not sent with ask; "
                "there is nothing to reply to"
            )
        if self._replied:
            raise AssertionError(f"probe {self.path}: the ask of {self._last!r} was already answered")
        self._replied = True
        return self._last_reply

    def _drop_control(self) -> None:
        """Drop runtime control messages (anything but Terminated) from the system lane."""
        self._mailbox.extract_system(_is_runtime_control)

    def _has_message(self) -> bool:
        self._drop_control()
        return self._mailbox.has_system() or bool(self._mailbox.pending)

    def _take_now(self) -> Any:
        mailbox = self._mailbox
        reply: asyncio.Future[Any] | None = None
        if mailbox.has_system():
            message = mailbox.take_system()
        else:
            message, _, reply = mailbox.take()
        self.received.append(message)
        self._last = message
        self._last_reply = reply
        self._replied = False
        return message

    async def _take(self, within: float | None, expected: str) -> Any:
        within = self.default_within if within is None else check_within("within", within)
        clock = self.node.clock
        if not await wait_until(clock, self._has_message, within, self._mailbox.wait):
            raise AssertionError(
                f"probe {self.path} expected {expected} within {within}s of {clock_kind(clock)} time, "
                f"but no message arrived (taken so far: {len(self.received)})"
            )
        return self._take_now()

    def __repr__(self) -> str:
        return f"TestProbe({self.path!r})"


def _is_runtime_control(control: Any) -> bool:
    """What a probe drops from its system lane: runtime control, not a Terminated for the test."""
    return type(control) is not Terminated
