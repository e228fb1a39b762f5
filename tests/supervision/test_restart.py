"""Rule 5: what a restart does. A fresh instance from the spec, on_start again, the same ref,
the queued mailbox kept, the failing message to dead letters with the exception attached."""

from __future__ import annotations

from typing import Any

import pytest

from garrison import Actor, ChildSpec, ExitReason, ManualClock, Node, SupervisorSpec
from garrison.testing import LogCapture

from ._support import Boom, Crash, Finish, Journal, Ping, Record, crash, worker


class Counter(Actor):
    """Counts the messages this instance has seen; ``starts`` counts on_start calls across instances."""

    def __init__(self, starts: list[int], base: int) -> None:
        self.starts = starts
        self.count = base

    async def on_start(self) -> None:
        self.starts.append(self.count)

    async def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise Boom("counter crashed")
        self.count += 1
        return self.count


async def test_a_restart_builds_a_fresh_instance_from_the_spec_and_runs_on_start_again(
    node: Node, clock: ManualClock
) -> None:
    starts: list[int] = []
    await node.start(
        SupervisorSpec(children=[ChildSpec("counter", Counter, args=(starts,), kwargs={"base": 10})])
    )
    ref = node.lookup("/root/counter")
    assert [await ref.ask("tick") for _ in range(3)] == [11, 12, 13]
    await ref.tell("crash")
    await clock.advance(0)
    # State is gone (the same args build it again) and on_start ran twice.
    assert await ref.ask("tick") == 11
    assert starts == [10, 10]


async def test_a_restarted_child_keeps_its_ref(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(SupervisorSpec(children=[worker("a", journal)]))
    ref = node.lookup("/root/a")
    name, first = await ref.ask(Ping())
    await crash(ref, clock)
    assert ref.is_alive
    assert node.lookup("/root/a") is ref
    assert (await sup.which_children())[0].ref is ref
    assert (await ref.ask(Ping())) == (name, first + 1)


async def test_the_queued_mailbox_survives_the_restart_in_order(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    await node.start(SupervisorSpec(children=[worker("a", journal)]))
    ref = node.lookup("/root/a")
    journal.clear()
    await ref.tell(Record("before"))
    await ref.tell(Crash())
    for label in ("one", "two", "three"):
        await ref.tell(Record(label))
    await clock.advance(0)
    assert journal.entries == [
        ("got", "before"),
        ("start", "a"),
        ("got", "one"),
        ("got", "two"),
        ("got", "three"),
    ]


async def test_the_failing_message_goes_to_dead_letters_with_the_exception(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    await node.start(SupervisorSpec(children=[worker("a", journal)]))
    ref = node.lookup("/root/a")
    await ref.tell(Crash("order-17"))
    await ref.tell(Record("after"))
    await clock.advance(0)
    [letter] = node.dead_letters.recent()
    assert letter.message == Crash("order-17")
    assert letter.recipient == "/root/a"
    assert isinstance(letter.error, Boom)
    assert str(letter.error) == "a crashed order-17"
    # Only the failing one: the message queued behind it is processed by the new instance.
    assert ("got", "after") in journal.entries


async def test_an_ask_whose_handler_raises_does_not_restart_the_child(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(SupervisorSpec(intensity=0, children=[worker("a", journal)]))
    ref = node.lookup("/root/a")
    with pytest.raises(Boom):
        await ref.ask(Crash())
    await clock.advance(0)
    assert [(row.state, row.restarts) for row in await sup.which_children()] == [("running", 0)]
    assert journal.steps("start") == [("start", "a")]


async def test_a_group_restart_never_launches_a_child_that_is_still_running(
    node: Node, clock: ManualClock
) -> None:
    # An internal guard: reaching _start_group with a running member is a bug elsewhere; the
    # running incarnation is left alone (one task per slot), and the error names the child.
    journal = Journal()
    sup = await node.start(SupervisorSpec(children=[worker("a", journal), worker("b", journal)]))
    ref = node.lookup("/root/a")
    _, serial = await ref.ask(Ping())
    await node.lookup("/root/b").tell(Finish())  # b stops normally: a PERMANENT child, restarted
    await clock.advance(0)
    journal.clear()
    reason = ExitReason.shutdown("test: a stale group restart")
    with LogCapture(clock=clock) as logs:
        await sup._call(
            lambda instance: instance._start_group(instance._children, instance._children[0], reason)
        )
    assert journal.steps("start") == []
    assert await ref.ask(Ping()) == ("a", serial)
    assert [(row.id, row.restarts) for row in await sup.which_children()] == [("a", 0), ("b", 1)]
    [error] = logs.find("child 'a' is already running", level="ERROR")
    assert "not starting it twice" in error.message
