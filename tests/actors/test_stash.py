"""ctx.stash() / ctx.unstash_all(): a bounded stash, kept across state switches and restarts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from garrison import (
    Actor,
    ActorStopped,
    ChildSpec,
    InvalidConfig,
    MailboxConfig,
    ManualClock,
    Node,
    Overflow,
    StashError,
    StashOverflow,
    SupervisorSpec,
)
from tests.actors.helpers import dead_letters_to


class Gate(Actor):
    """Two states in one field: while closed it stashes work; ``"open"`` unstashes it all.

    The ``become`` pattern: the handler for the current state is chosen by ``self.state``.
    """

    mailbox = MailboxConfig(capacity=10, stash_capacity=3)

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen
        self.state = "closed"

    async def on_receive(self, message: Any) -> Any:
        if message == "open":
            self.state = "open"
            return self.ctx.unstash_all()
        if message == "close":
            self.state = "closed"
            return None
        if message == "stashed?":
            return self.ctx.stashed
        if message == "crash":
            raise RuntimeError("crash on purpose")
        if self.state == "closed":
            self.ctx.stash()
            return None
        self.seen.append(message)
        return f"done {message}"


async def test_unstash_all_puts_stashed_messages_first_in_their_order(node: Node) -> None:
    seen: list[Any] = []
    ref = await node.spawn(Gate, args=(seen,))
    for message in ("a", "b", "c"):
        await ref.tell(message)
    assert await ref.ask("stashed?") == 3
    # Queued behind "open" before it is handled: the unstashed ones still come first.
    await ref.tell("open")
    await ref.tell("d")
    await ref.ask("stashed?")
    assert seen == ["a", "b", "c", "d"]


async def test_a_stashed_ask_is_answered_by_the_handler_that_takes_it_again(node: Node) -> None:
    ref = await node.spawn(Gate, args=([],))
    answer = asyncio.ensure_future(ref.ask("job"))
    await asyncio.sleep(0)  # the ask is queued before the next one
    assert await ref.ask("stashed?") == 1
    assert not answer.done()
    assert await ref.ask("open") == 1
    assert await answer == "done job"


async def test_stashing_past_the_capacity_raises_stash_overflow(node: Node) -> None:
    ref = await node.spawn(Gate, args=([],))
    for message in ("a", "b", "c"):
        await ref.tell(message)
    with pytest.raises(StashOverflow) as raised:
        await ref.ask("d")
    assert raised.value.capacity == 3
    assert raised.value.path == ref.path
    assert "stash_capacity=3" in str(raised.value)
    assert await ref.ask("stashed?") == 3


async def test_the_stash_is_kept_across_state_switches(node: Node) -> None:
    seen: list[Any] = []
    ref = await node.spawn(Gate, args=(seen,))
    await ref.tell("a")
    await ref.ask("open")
    await ref.tell("b")
    await ref.ask("close")
    await ref.tell("c")
    await ref.tell("d")
    await ref.ask("open")
    await ref.ask("stashed?")
    assert seen == ["a", "b", "c", "d"]


async def test_stashed_messages_go_to_dead_letters_when_the_actor_stops(node: Node) -> None:
    ref = await node.spawn(Gate, args=([],))
    await ref.tell("a")
    pending = asyncio.ensure_future(ref.ask("b"))
    await asyncio.sleep(0)
    await ref.ask("stashed?")
    await node.stop(ref)
    letters = dead_letters_to(node, ref.path)
    assert [letter.message for letter in letters] == ["a", "b"]
    assert {letter.kind for letter in letters} == {"stashed_on_stop"}
    assert all("stashed" in letter.reason for letter in letters)
    with pytest.raises(ActorStopped):
        await pending


async def test_a_restart_puts_the_stash_back_first_for_the_next_incarnation(
    node: Node, clock: ManualClock
) -> None:
    seen: list[Any] = []
    await node.start(SupervisorSpec(children=[ChildSpec("gate", Gate, args=(seen,))]), name="sup")
    ref = node.lookup("/sup/gate")
    await ref.tell("a")
    await ref.tell("b")
    await ref.tell("crash")
    await ref.tell("c")  # queued after the crash: after the stash
    await clock.advance(0.0)
    assert ref.slot.incarnation == 2
    # The new incarnation starts closed: it stashes a and b again, then c, in order.
    assert await ref.ask("stashed?") == 3
    await ref.ask("open")
    await ref.ask("stashed?")
    assert seen == ["a", "b", "c"]


class Plain(Actor):
    """No stash configured."""

    async def on_receive(self, message: Any) -> Any:
        if message == "stash":
            self.ctx.stash()
        elif message == "unstash":
            self.ctx.unstash_all()
        return None


@pytest.mark.parametrize("call", ["stash", "unstash"])
async def test_stash_without_a_stash_capacity_raises_invalid_config(node: Node, call: str) -> None:
    ref = await node.spawn(Plain)
    with pytest.raises(InvalidConfig) as raised:
        await ref.ask(call)
    assert raised.value.field == "stash_capacity"
    assert "MailboxConfig(stash_capacity=" in str(raised.value)


class Twice(Actor):
    mailbox = MailboxConfig(stash_capacity=5)

    def __init__(self) -> None:
        self.error_outside: BaseException | None = None
        try:
            self.ctx.stash()
        except StashError as error:
            self.error_outside = error

    async def on_receive(self, message: Any) -> Any:
        if message == "outside":
            return self.error_outside
        self.ctx.stash()
        self.ctx.stash()
        return None


async def test_stash_outside_a_handler_or_twice_raises_stash_error(node: Node) -> None:
    ref = await node.spawn(Twice)
    outside = await ref.ask("outside")
    assert isinstance(outside, StashError)
    assert "no message is in flight" in str(outside)
    with pytest.raises(StashError, match="already stashed"):
        await ref.ask("twice")


def test_a_negative_stash_capacity_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidConfig) as raised:
        MailboxConfig(stash_capacity=-1)
    assert raised.value.field == "stash_capacity"


class Conflating(Gate):
    mailbox = MailboxConfig(
        capacity=10, overflow=Overflow.CONFLATE, key=lambda message: None, stash_capacity=3
    )


async def test_unstash_on_a_conflating_mailbox_keeps_every_stashed_message(node: Node) -> None:
    seen: list[Any] = []
    ref = await node.spawn(Conflating, args=(seen,))
    await ref.tell("a")
    await ref.tell("b")
    await ref.ask("open")
    await ref.ask("stashed?")
    assert seen == ["a", "b"]
