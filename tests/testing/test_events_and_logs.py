"""EventRecorder and LogCapture: assertions on lifecycle events and loguru records."""

from __future__ import annotations

import re

import pytest
from loguru import logger

from garrison import ChildSpec, Failed, GaveUp, ManualClock, Node, Restarted, Started, Stopped, SupervisorSpec
from garrison.testing import EventRecorder, Faults, LogCapture, TestProbe
from tests.testing.actors import Boom, Counter, Echo, Ping


async def start_tree(node: Node, probe: TestProbe, intensity: int = 3) -> None:
    await node.start(
        SupervisorSpec(
            intensity=intensity,
            period=10.0,
            children=[ChildSpec("feed", Echo, args=(probe,)), ChildSpec("count", Counter)],
        )
    )


@pytest.mark.garrison(allow_crashes=True)
async def test_events_expect_matches_the_fields_given_and_returns_the_event(
    node: Node, probe: TestProbe, events: EventRecorder
) -> None:
    await start_tree(node, probe)
    await node.lookup("/root/feed").tell(Boom())
    failed = await events.expect(Failed(path="/root/feed", error_type="RuntimeError"))
    assert failed.message_type == "Boom"
    restarted = await events.expect(Restarted(path="/root/feed"))
    assert restarted.restarts == 1


@pytest.mark.garrison(allow_crashes=True)
async def test_events_expect_asserts_order(node: Node, probe: TestProbe, events: EventRecorder) -> None:
    await start_tree(node, probe)
    await node.lookup("/root/feed").tell(Boom())
    await events.expect(Restarted(path="/root/feed"))
    with pytest.raises(AssertionError, match=r"expected an event Failed\(path='/root/feed'\) within 1.0s"):
        await events.expect(Failed(path="/root/feed"), within=1.0)


async def test_events_expect_fails_listing_the_events_seen(
    node: Node, probe: TestProbe, events: EventRecorder, clock: ManualClock
) -> None:
    await start_tree(node, probe)
    with pytest.raises(AssertionError) as failure:
        await events.expect(Restarted(path="/root/feed"), within=2.0)
    assert clock.now() == 2.0
    text = str(failure.value)
    assert "expected an event Restarted(path='/root/feed') within 2.0s of virtual time" in text
    assert "Started(path='/root/feed'" in text
    assert "Started(path='/root/count'" in text


async def test_events_of_and_expect_accept_types_and_predicates(
    node: Node, probe: TestProbe, events: EventRecorder
) -> None:
    await start_tree(node, probe)
    assert [event.path for event in events.of(Started)] == ["/root/feed", "/root/count", "/root"]
    started = await events.expect(lambda event: event.path.endswith("count"))
    assert isinstance(started, Started)


@pytest.mark.garrison(allow_crashes=True)
async def test_expect_no_event_fails_when_a_matching_event_arrives(
    node: Node, probe: TestProbe, events: EventRecorder
) -> None:
    await start_tree(node, probe)
    await events.expect_no_event(Restarted, within=1.0)
    await node.lookup("/root/feed").tell(Boom())
    with pytest.raises(AssertionError, match=r"expected no event an instance of Restarted for 1.0s, but got"):
        await events.expect_no_event(Restarted, within=1.0)


@pytest.mark.garrison(allow_crashes=True)
async def test_a_restart_storm_on_virtual_time_ends_with_gave_up(
    node: Node, probe: TestProbe, events: EventRecorder, faults: Faults
) -> None:
    await start_tree(node, probe, intensity=2)
    feed = node.lookup("/root/feed")
    faults.crash(feed, on=Ping, times=None)
    for n in range(3):
        await feed.tell(Ping(n))
        await probe.expect_no_message(within=0.5)
    await events.expect(GaveUp(path="/root"))
    await events.expect(Stopped(path="/root"))
    assert [event.restarts for event in events.of(Restarted(path="/root/feed"))] == [1, 2]


@pytest.mark.garrison(allow_crashes=True)
async def test_logs_capture_the_records_of_a_crash_with_the_actor_path(
    node: Node, logs: LogCapture, probe: TestProbe
) -> None:
    echo = await node.spawn(Echo, args=(probe,), name="echo")
    await echo.tell(Boom())
    await logs.expect(re.compile(r"^dead letter to /echo: Boom"), level="WARNING")
    record = await logs.expect("failed handling Boom", level="ERROR", actor="/echo")
    assert isinstance(record.exception, RuntimeError)
    assert record.extra["node"] == "test"
    with pytest.raises(AssertionError, match=r"expected no log record at level ERROR containing 'failed'"):
        logs.assert_none("failed", level="ERROR")


async def test_logs_expect_fails_listing_the_records_seen(logs: LogCapture) -> None:
    logger.info("hello {who}", who="world")
    with pytest.raises(
        AssertionError, match=r"expected a log record containing 'goodbye'.*\n  INFO: hello world"
    ):
        await logs.expect("goodbye", within=1.0)


def test_a_closed_capture_removes_its_sink() -> None:
    with LogCapture("INFO") as capture:
        logger.info("inside")
        logger.debug("below the level")
    logger.info("outside")
    assert [record.message for record in capture.records] == ["inside"]
