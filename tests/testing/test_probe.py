"""TestProbe: expectations on what an actor ref receives, on virtual time."""

from __future__ import annotations

import asyncio

import pytest

from garrison import ActorStopped, AskTimeout, ExitKind, ManualClock, Node, Terminated
from garrison.testing import TestProbe
from tests.testing.actors import Asker, Delayed, Echo, Ping, Pong


async def test_expect_returns_the_next_message_when_it_matches_the_type(node: Node, probe: TestProbe) -> None:
    echo = await node.spawn(Echo, args=(probe,))
    await echo.tell(Ping(1))
    assert await probe.expect(Pong) == Pong(1)


async def test_expect_accepts_a_value_a_predicate_and_a_tuple_of_types(node: Node, probe: TestProbe) -> None:
    echo = await node.spawn(Echo, args=(probe,))
    for n in (1, 2, 3):
        await echo.tell(Ping(n))
    assert await probe.expect(Pong(1)) == Pong(1)
    assert await probe.expect(lambda message: message.n == 2) == Pong(2)
    assert await probe.expect((Ping, Pong)) == Pong(3)


async def test_expect_fails_naming_what_was_expected_and_what_arrived(node: Node, probe: TestProbe) -> None:
    echo = await node.spawn(Echo, args=(probe,))
    await echo.tell(Ping(7))
    with pytest.raises(
        AssertionError, match=r"expected an instance of Ping, but the next message was Pong\(n=7\)"
    ):
        await probe.expect(Ping)


async def test_expect_waits_on_virtual_time_and_stops_the_clock_when_the_message_arrives(
    node: Node, clock: ManualClock, probe: TestProbe
) -> None:
    delayed = await node.spawn(Delayed, args=(probe, 2.5))
    await delayed.tell(Ping(1))
    assert await probe.expect(Pong, within=10.0) == Pong(1)
    assert clock.now() == 2.5


async def test_expect_fails_after_within_seconds_of_virtual_time(
    node: Node, clock: ManualClock, probe: TestProbe
) -> None:
    delayed = await node.spawn(Delayed, args=(probe, 5.0))
    await delayed.tell(Ping(1))
    with pytest.raises(
        AssertionError, match=r"expected an instance of Pong within 4.0s of virtual time, but no message"
    ):
        await probe.expect(Pong, within=4.0)
    assert clock.now() == 4.0
    assert await probe.expect(Pong, within=1.0) == Pong(1)
    assert clock.now() == 5.0


async def test_expect_no_message_passes_when_nothing_arrives_and_advances_the_clock(
    node: Node, clock: ManualClock, probe: TestProbe
) -> None:
    delayed = await node.spawn(Delayed, args=(probe, 1.0))
    await delayed.tell(Ping(1))
    await probe.expect_no_message(within=0.5)
    assert clock.now() == 0.5


async def test_expect_no_message_fails_with_the_message_and_when_it_came(
    node: Node, clock: ManualClock, probe: TestProbe
) -> None:
    delayed = await node.spawn(Delayed, args=(probe, 1.0))
    await delayed.tell(Ping(1))
    with pytest.raises(AssertionError, match=r"expected no message for 3.0s, but got Pong\(n=1\) after 1s"):
        await probe.expect_no_message(within=3.0)


async def test_a_probe_replies_to_an_ask(node: Node, probe: TestProbe) -> None:
    report = TestProbe(node, "report")
    asker = await node.spawn(Asker, args=(probe, report))
    await asker.tell(Ping(1))
    assert await probe.expect(Ping) == Ping(1)
    probe.reply(Pong(1))
    assert await report.expect(Pong) == Pong(1)


async def test_a_probe_replies_to_an_ask_with_an_error(node: Node, probe: TestProbe) -> None:
    report = TestProbe(node, "report")
    asker = await node.spawn(Asker, args=(probe, report))
    await asker.tell(Ping(1))
    await probe.expect(Ping)
    probe.reply_error(ValueError("no liquidity"))
    error = await report.expect(ValueError)
    assert str(error) == "no liquidity"


async def test_a_test_can_ask_a_probe_directly(node: Node, probe: TestProbe) -> None:
    answer = asyncio.ensure_future(probe.ask(Ping(3)))
    await probe.expect(Ping(3))
    probe.reply(Pong(3))
    assert await answer == Pong(3)


async def test_replying_to_a_tell_or_twice_is_an_assertion_error(node: Node, probe: TestProbe) -> None:
    await probe.tell(Ping(1))
    await probe.expect(Ping)
    with pytest.raises(AssertionError, match="was not sent with ask"):
        probe.reply(Pong(1))
    answer = asyncio.ensure_future(probe.ask(Ping(2)))
    await probe.expect(Ping(2))
    probe.reply(Pong(2))
    with pytest.raises(AssertionError, match="already answered"):
        probe.reply(Pong(2))
    assert await answer == Pong(2)


@pytest.mark.garrison(allow_dead_letters=True)
async def test_a_reply_after_the_ask_timed_out_goes_to_dead_letters(
    node: Node, clock: ManualClock, probe: TestProbe
) -> None:
    answer = asyncio.ensure_future(probe.ask(Ping(1), timeout=1.0))
    await probe.expect(Ping)
    await clock.advance(1.0)
    with pytest.raises(AskTimeout):
        await answer
    probe.reply(Pong(1))
    [letter] = node.dead_letters.recent()
    assert letter.message == Pong(1)
    assert letter.recipient == probe.path
    assert "after the ask timed out" in letter.reason


async def test_expect_terminated_sees_a_stop_for_good(node: Node, probe: TestProbe) -> None:
    echo = await node.spawn(Echo, args=(probe,))
    await node.stop(echo)
    terminated = await probe.expect_terminated(echo)
    assert terminated.ref is echo
    assert terminated.reason.kind is ExitKind.SHUTDOWN


async def test_expect_terminated_fails_while_the_actor_lives(node: Node, probe: TestProbe) -> None:
    echo = await node.spawn(Echo, args=(probe,))
    with pytest.raises(AssertionError, match=r"expected Terminated\(/echo-\d+\) within 1.0s"):
        await probe.expect_terminated(echo, within=1.0)


async def test_a_probe_is_a_registered_watchable_ref(node: Node, probe: TestProbe) -> None:
    watcher = TestProbe(node, "watcher")
    assert node.lookup("/probe") is probe
    watcher.watch(probe)
    await probe.stop()
    assert isinstance(await watcher.expect(Terminated), Terminated)
    with pytest.raises(ActorStopped):
        await probe.tell(Ping(1))


async def test_received_and_pending_record_what_the_probe_got(node: Node, probe: TestProbe) -> None:
    for n in range(3):
        await probe.tell(Ping(n))
    assert probe.pending == 3
    await probe.expect(Ping(0))
    assert probe.received == [Ping(0)]
    assert probe.last_message == Ping(0)
    assert probe.pending == 2
    assert await probe.receive() == Ping(1)


async def test_a_probe_shows_in_the_node_tree(node: Node, probe: TestProbe) -> None:
    await probe.tell(Ping(1))
    [entry] = [entry for entry in node.tree() if entry["path"] == "/probe"]
    assert (entry["actor_class"], entry["state"], entry["mailbox"]["depth"]) == ("ProbeActor", "running", 1)


async def test_on_a_real_clock_the_probe_waits_real_time_for_the_message() -> None:
    async with Node("real", handle_signals=False) as real_node:
        probe = TestProbe(real_node)
        asyncio.get_running_loop().call_soon(probe.tell_nowait, Ping(1))
        assert await probe.expect(Ping, within=30.0) == Ping(1)
        with pytest.raises(AssertionError, match=r"within 0.0s of real time, but no message arrived"):
            await probe.expect(Ping, within=0.0)
