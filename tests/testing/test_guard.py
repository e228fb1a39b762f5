"""NodeGuard: a test fails when an actor crashed or a message was dead-lettered unexpectedly."""

from __future__ import annotations

import pytest

from garrison import ChildSpec, Failed, Node, Restarted, SupervisorSpec
from garrison.testing import ActorTestKit, NodeGuard, TestProbe
from tests.testing.actors import Boom, Echo, Ping


async def test_an_unexpected_crash_fails_the_kit_on_exit_naming_the_actor_and_message() -> None:
    with pytest.raises(AssertionError) as failure:
        async with ActorTestKit() as kit:
            echo = await kit.node.spawn(Echo, args=(kit.probe(),), name="echo")
            await echo.tell(Boom())
            await kit.events.expect(Failed(path="/echo"))
    text = str(failure.value)
    assert "1 unexpected failure(s) on node 'test'" in text
    assert "actor /echo failed handling Boom at t=0: failure: RuntimeError: boom" in text
    assert "allow_crashes" in text


async def test_an_unexpected_dead_letter_is_reported_with_its_reason() -> None:
    kit = await ActorTestKit().start()
    echo = await kit.node.spawn(Echo, args=(kit.probe(),), name="echo")
    await kit.clock.advance(1.5)
    await echo.tell("not handled")
    await kit.probe("wait").expect_no_message()
    assert kit.guard.unexpected == ["dead letter to /echo at t=1.5: str 'not handled' (unhandled by Echo)"]
    with pytest.raises(AssertionError, match="dead letter to /echo"):
        await kit.close()
    assert not kit.node.running


async def test_allowing_crashes_forgives_what_happened_and_what_follows() -> None:
    async with ActorTestKit() as kit:
        echo = await kit.node.spawn(Echo, args=(kit.probe(),), name="echo")
        await echo.tell(Boom())
        await kit.events.expect(Failed(path="/echo"))
        assert len(kit.guard.unexpected) == 1
        kit.guard.allow_crashes("/echo", RuntimeError)
        assert kit.guard.unexpected == []


async def test_an_allowance_is_as_narrow_as_its_path_and_error() -> None:
    kit = await ActorTestKit().start()
    await kit.node.start(SupervisorSpec(intensity=5, children=[ChildSpec("a", Echo, args=(kit.probe(),))]))
    a = kit.node.lookup("/root/a")
    kit.guard.allow_crashes("/root/b")
    kit.guard.allow_crashes("/root/a", KeyError)
    await a.tell(Boom())
    await kit.events.expect(Restarted(path="/root/a"))
    assert len(kit.guard.unexpected) == 1
    await kit.close(check=False)


async def test_a_real_crash_after_an_injected_one_is_still_unexpected() -> None:
    kit = await ActorTestKit().start()
    await kit.node.start(SupervisorSpec(intensity=5, children=[ChildSpec("a", Echo, args=(kit.probe(),))]))
    a = kit.node.lookup("/root/a")
    kit.faults.crash(a, on=Ping)
    await a.tell(Ping(1))
    await kit.events.expect(Restarted(path="/root/a"))
    assert kit.guard.unexpected == []
    await a.tell(Boom())
    await kit.events.expect(Restarted(path="/root/a"))
    [line] = kit.guard.unexpected
    assert "failed handling Boom" in line
    await kit.close(check=False)


async def test_kit_options_allow_crashes_and_dead_letters_up_front() -> None:
    async with ActorTestKit(allow_crashes=True, allow_dead_letters=True) as kit:
        echo = await kit.node.spawn(Echo, args=(kit.probe(),), name="echo")
        await echo.tell("not handled")
        await echo.tell(Boom())
        await kit.events.expect(Failed(path="/echo"))
        assert kit.guard.unexpected == []


async def test_allow_dead_letters_matches_recipient_message_and_reason(
    node: Node, node_guard: NodeGuard, probe: TestProbe
) -> None:
    echo = await node.spawn(Echo, args=(probe,), name="echo")
    node_guard.allow_dead_letters("/echo", str, reason="unhandled")
    await echo.tell("not handled")
    await echo.tell(b"bytes")
    await probe.expect_no_message()
    [line] = node_guard.unexpected
    assert line == "dead letter to /echo at t=0: bytes b'bytes' (unhandled by Echo)"
    node_guard.allow_dead_letters(message=lambda message: isinstance(message, bytes))
    assert node_guard.unexpected == []


async def test_when_the_body_fails_the_guard_does_not_hide_its_error() -> None:
    with pytest.raises(KeyError, match="the test's own failure"):
        async with ActorTestKit() as kit:
            echo = await kit.node.spawn(Echo, args=(kit.probe(),), name="echo")
            await echo.tell(Boom())
            await kit.events.expect(Failed(path="/echo"))
            raise KeyError("the test's own failure")
