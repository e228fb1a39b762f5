"""A ChildSpec's ``register``: the child's name follows its ref across restarts and comes back
when the supervisor starts the spec again."""

from __future__ import annotations

import pytest

from garrison import (
    ActorStartError,
    ChildSpec,
    DynamicSupervisorSpec,
    InvalidSpec,
    ManualClock,
    NameTaken,
    Node,
    Strategy,
    SupervisorSpec,
)

from ._support import Journal, Ping, Worker, crash, worker


async def test_a_spec_name_follows_the_child_across_restarts_and_restart_child(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sub = SupervisorSpec(intensity=5, children=[worker("x1", journal, register="pricing")])
    spec = SupervisorSpec(
        strategy=Strategy.ONE_FOR_ALL,
        intensity=5,
        children=[worker("w1", journal), ChildSpec("sub", sub)],
    )
    await node.start(spec)
    sub_ref = node.supervisor("/root/sub")
    pricing = node.whereis("pricing")
    assert pricing is not None and pricing.path == "/root/sub/x1"

    await crash(pricing, clock)  # its own restart
    await crash(node.lookup("/root/w1"), clock)  # its parent's restart
    assert node.whereis("pricing") is pricing
    assert (await pricing.ask(Ping()))[0] == "x1"

    await sub_ref.terminate_child("x1")
    assert node.whereis("pricing") is None
    again = await sub_ref.restart_child("x1")
    assert node.whereis("pricing") is again


async def test_a_spec_name_taken_by_another_actor_fails_the_childs_start(node: Node) -> None:
    journal = Journal()
    holder = await node.spawn(Worker, name="holder", args=(journal,))
    node.register("pricing", holder)

    with pytest.raises(ActorStartError) as failed:
        await node.start(SupervisorSpec(children=[worker("x1", journal, register="pricing")]))

    assert isinstance(failed.value.cause, ActorStartError)
    assert isinstance(failed.value.cause.cause, NameTaken)
    assert node.whereis("pricing") is holder


def test_two_children_of_one_spec_cannot_register_the_same_name() -> None:
    journal = Journal()
    with pytest.raises(InvalidSpec) as raised:
        SupervisorSpec(children=[worker("a", journal, register="n"), worker("b", journal, register="n")])
    assert (raised.value.child_id, raised.value.field, raised.value.value) == ("b", "register", "n")


@pytest.mark.parametrize("name", ["", "a/b", 3])
def test_a_bad_spec_name_raises_invalid_spec_naming_it(name: object) -> None:
    with pytest.raises(InvalidSpec) as raised:
        ChildSpec("a", Worker, register=name)  # type: ignore[arg-type]
    assert (raised.value.field, raised.value.value) == ("register", name)


def test_a_dynamic_template_cannot_register_a_name() -> None:
    with pytest.raises(InvalidSpec) as raised:
        DynamicSupervisorSpec(ChildSpec("t", Worker, register="n"))
    assert raised.value.field == "register"
