"""Registered names (Erlang's register/whereis) and path look-up."""

from __future__ import annotations

from typing import Any

import pytest

from garrison import Actor, ActorNotFound, ActorStopped, InvalidConfig, NameTaken, Node


class Echo(Actor):
    async def on_receive(self, message: Any) -> Any:
        return message


async def test_whereis_returns_the_registered_ref_until_it_is_unregistered(node: Node) -> None:
    ref = await node.spawn(Echo, name="echo")
    assert node.whereis("greeter") is None

    node.register("greeter", ref)
    node.register("greeter", ref)  # the same pair again: nothing changes

    assert node.whereis("greeter") is ref
    assert await node.whereis("greeter").ask("hi") == "hi"  # type: ignore[union-attr]
    assert node.registered() == {"greeter": "/echo"}
    node.unregister("greeter")
    node.unregister("greeter")  # not registered: nothing happens
    assert node.whereis("greeter") is None
    assert ref.is_alive


async def test_a_name_is_freed_when_its_actor_stops_for_good(node: Node) -> None:
    ref = await node.spawn(Echo, name="echo")
    node.register("greeter", ref)
    node.register("also", ref)

    await node.stop(ref)

    assert (node.whereis("greeter"), node.whereis("also")) == (None, None)
    assert node.registered() == {}
    other = await node.spawn(Echo, name="other")
    node.register("greeter", other)
    assert node.whereis("greeter") is other


async def test_a_name_held_by_another_actor_raises_name_taken(node: Node) -> None:
    first = await node.spawn(Echo, name="first")
    second = await node.spawn(Echo, name="second")
    node.register("greeter", first)

    with pytest.raises(NameTaken) as taken:
        node.register("greeter", second)

    assert (taken.value.name, taken.value.holder, taken.value.wanted_by) == ("greeter", "/first", "/second")
    assert node.whereis("greeter") is first


@pytest.mark.parametrize("name", ["", "a/b", 7, None])
async def test_a_bad_name_raises_invalid_config_naming_it(node: Node, name: Any) -> None:
    ref = await node.spawn(Echo, name="echo")
    with pytest.raises(InvalidConfig) as raised:
        node.register(name, ref)
    assert (raised.value.field, raised.value.value) == ("name", name)


async def test_registering_something_else_than_a_live_ref_is_refused(node: Node) -> None:
    with pytest.raises(InvalidConfig) as raised:
        node.register("greeter", "/echo")  # type: ignore[arg-type]
    assert raised.value.field == "ref"
    ref = await node.spawn(Echo, name="echo")
    await node.stop(ref)
    with pytest.raises(ActorStopped):
        node.register("greeter", ref)
    assert node.whereis("greeter") is None


async def test_lookup_finds_a_nested_actor_by_path_and_raises_for_an_unknown_one(node: Node) -> None:
    class Parent(Actor):
        async def on_start(self) -> None:
            await self.ctx.spawn(Echo, name="b")

    await node.spawn(Parent, name="a")

    child = node.lookup("/a/b")

    assert (child.path, await child.ask(1)) == ("/a/b", 1)
    with pytest.raises(ActorNotFound):
        node.lookup("/a/c")


async def test_an_actor_finds_another_by_name_through_its_context(node: Node) -> None:
    class Client(Actor):
        async def on_receive(self, message: Any) -> Any:
            server = self.ctx.node.whereis("server")
            return None if server is None else await server.ask(message)

    client = await node.spawn(Client, name="client")
    assert await client.ask("ping") is None
    node.register("server", await node.spawn(Echo, name="echo"))
    assert await client.ask("ping") == "ping"
