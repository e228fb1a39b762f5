"""Rule 11 (events): started, restarted, stopped and gave-up events, with reasons, published on
the node's event stream and logged."""

from __future__ import annotations

from typing import Any

import pytest

from garrison import (
    ActorStartError,
    ChildSpec,
    Failed,
    GaveUp,
    InvalidConfig,
    LifecycleEvent,
    ManualClock,
    Node,
    Restart,
    Restarted,
    Started,
    Stopped,
    Strategy,
    SupervisorSpec,
)

from ._support import Boom, Journal, Worker, crash, of_type, worker


async def test_every_lifecycle_step_is_published_with_its_reason(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    events: list[LifecycleEvent] = []
    node.events.subscribe(events.append)
    sup = await node.start(
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE, intensity=1, children=[worker(n, journal) for n in "abc"]
        )
    )
    assert [(type(event).__name__, event.path) for event in events] == [
        ("Started", "/root/a"),
        ("Started", "/root/b"),
        ("Started", "/root/c"),
        ("Started", "/root"),
    ]
    events.clear()
    await clock.advance(1.5)
    await crash(node.lookup("/root/b"), clock, "order-7")
    [failed] = of_type(events, Failed)
    assert (failed.path, failed.at, failed.error_type, failed.message_type) == (
        "/root/b",
        1.5,
        "Boom",
        "Crash",
    )
    assert "b crashed order-7" in failed.reason
    restarted = of_type(events, Restarted)
    assert [(event.path, event.restarts, event.at) for event in restarted] == [
        ("/root/b", 1, 1.5),
        ("/root/c", 1, 1.5),
    ]
    assert "Boom: b crashed order-7" in restarted[0].reason
    assert "rest_for_one" in restarted[1].reason and "'b'" in restarted[1].reason
    assert [event.path for event in of_type(events, Started)] == ["/root/b", "/root/c"]

    events.clear()
    await sup.terminate_child("a")
    [stopped] = of_type(events, Stopped)
    assert stopped.path == "/root/a" and "terminate_child" in stopped.reason

    events.clear()
    await crash(node.lookup("/root/c"), clock)
    [gave_up] = of_type(events, GaveUp)
    assert gave_up.path == "/root"
    assert "intensity=1" in gave_up.reason and "period=5.0" in gave_up.reason and "c:" in gave_up.reason
    assert [event.path for event in of_type(events, Stopped)] == ["/root/c", "/root/b", "/root"]
    assert "RestartIntensityExceeded" in of_type(events, Stopped)[-1].reason


async def test_each_crash_is_logged_once_with_who_why_and_what_happens_next(
    node: Node, clock: ManualClock, log_records: list[dict[str, Any]]
) -> None:
    journal = Journal()
    await node.start(
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            intensity=1,
            children=[worker(n, journal) for n in ("feed", "book")],
        )
    )
    await crash(node.lookup("/root/feed"), clock, "first")
    await crash(node.lookup("/root/feed"), clock, "second")
    errors = [record for record in log_records if record["level"].name == "ERROR"]
    # OTP's supervisor report: one record per crash, bound with the child's path, carrying the exception.
    restart, gave_up, root_exit = errors
    assert restart["extra"]["actor"] == "/root/feed"
    assert str(restart["message"]) == (
        "actor /root/feed failed: crashed handling Crash: Boom: feed crashed first; "
        "supervisor /root restarts it (restart #1) with 'book' (rest_for_one)"
    )
    assert isinstance(restart["exception"].value, Boom)
    assert gave_up["extra"]["actor"] == "/root"
    assert str(gave_up["message"]) == (
        "supervisor /root gave up: more than 1 restart(s) in 5.0s, last of 'feed'; stopping all children"
    )
    assert "feed crashed second" in gave_up["extra"]["last_failure"]
    assert isinstance(gave_up["exception"].value, Boom)
    assert "root supervisor /root exited" in str(root_exit["message"])
    started = [str(record["message"]) for record in log_records if ": started " in str(record["message"])]
    assert started == ["supervisor /root: started feed (worker)", "supervisor /root: started book (worker)"]


async def test_a_child_that_is_not_restarted_is_logged_with_the_decision(
    node: Node, clock: ManualClock, log_records: list[dict[str, Any]]
) -> None:
    journal = Journal()
    await node.start(SupervisorSpec(children=[worker("job", journal, Restart.TEMPORARY)]))
    await crash(node.lookup("/root/job"), clock)
    [record] = [record for record in log_records if record["level"].name == "ERROR"]
    assert str(record["message"]) == (
        "actor /root/job failed: crashed handling Crash: Boom: job crashed; "
        "supervisor /root does not restart it (TEMPORARY child)"
    )


async def test_a_failed_start_is_logged_with_its_exception(
    node: Node, log_records: list[dict[str, Any]]
) -> None:
    with pytest.raises(ActorStartError):
        await node.start(SupervisorSpec(children=[ChildSpec("a", Worker, args=(Journal(), [True]))]))
    [record, *_] = [record for record in log_records if record["level"].name == "ERROR"]
    assert str(record["message"]).startswith("actor /root/a failed to start: Boom: a refuses to start")
    assert isinstance(record["exception"].value, Boom)


@pytest.mark.garrison(allow_crashes=True, allow_dead_letters=True)
async def test_give_up_lines_stay_short_with_the_detail_in_extra_fields(
    node: Node, clock: ManualClock, log_records: list[dict[str, Any]]
) -> None:
    long_note = "x" * 600
    inner = SupervisorSpec(intensity=0, children=[worker("feed", Journal())])
    await node.start(SupervisorSpec(intensity=0, children=[ChildSpec("market", inner)]))
    await crash(node.lookup("/root/market/feed"), clock, long_note)
    await clock.advance(0)
    give_up_lines = [record for record in log_records if record["level"].name == "ERROR"]
    assert [str(record["message"]) for record in give_up_lines] == [
        "supervisor /root/market gave up: more than 0 restart(s) in 5.0s, last of 'feed'; "
        "stopping all children",
        "supervisor /root gave up: more than 0 restart(s) in 5.0s, last of 'market'; stopping all children",
        "root supervisor /root exited (shutdown: restart intensity exceeded (RestartIntensityExceeded)); "
        "node t shuts down",
    ]
    # The stops that follow a give-up too (the crashed message's dead letter is about the crash).
    for record in log_records:
        if not str(record["message"]).startswith("dead letter"):
            assert len(str(record["message"])) <= 200, record["message"]
    market, root, root_exit = give_up_lines
    assert long_note in market["extra"]["last_failure"]
    assert long_note in market["extra"]["error"]
    assert isinstance(market["exception"].value, Boom)
    assert root["extra"]["last_failure"] == "shutdown: restart intensity exceeded (RestartIntensityExceeded)"
    assert "supervisor /root/market gave up" in root["extra"]["error"] and long_note in root["extra"]["error"]
    assert long_note in root_exit["extra"]["reason"]


def summaries(log_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in log_records if "logged without traceback" in str(record["message"])]


async def test_a_crash_loop_logs_every_failure_but_its_traceback_only_the_first_times_per_window(
    log_records: list[dict[str, Any]],
) -> None:
    clock = ManualClock()
    async with Node(
        "t", clock=clock, handle_signals=False, crash_traceback_limit=2, crash_traceback_window=10.0
    ) as node:
        await node.start(SupervisorSpec(intensity=100, children=[worker("feed", Journal())]))
        for _ in range(5):
            await crash(node.lookup("/root/feed"), clock)
        failures = [record for record in log_records if record["level"].name == "ERROR"]
        assert [record["extra"]["restarts"] for record in failures] == [0, 1, 2, 3, 4]
        assert [record["extra"]["error_type"] for record in failures] == ["Boom"] * 5
        assert [record["extra"]["traceback"] for record in failures] == ["logged"] * 2 + ["omitted"] * 3
        assert [record["exception"] is not None for record in failures] == [True, True, False, False, False]
        assert not summaries(log_records)

        await clock.advance(10.0)
        [summary] = summaries(log_records)
        assert summary["level"].name == "WARNING"
        assert str(summary["message"]) == (
            "actor /root/feed: 3 more failure(s) logged without traceback "
            "(at most 2 tracebacks per 10s per child)"
        )
        assert summary["extra"]["actor"] == "/root/feed"
        await crash(node.lookup("/root/feed"), clock)  # a new window: the traceback again
        *_, latest = [record for record in log_records if record["level"].name == "ERROR"]
        assert (latest["extra"]["restarts"], latest["extra"]["traceback"]) == (5, "logged")
        assert isinstance(latest["exception"].value, Boom)


async def test_omitted_tracebacks_are_summarised_when_the_supervisor_stops_before_the_window_closes(
    log_records: list[dict[str, Any]],
) -> None:
    clock = ManualClock()
    async with Node("t", clock=clock, handle_signals=False, crash_traceback_limit=0) as node:
        await node.start(SupervisorSpec(intensity=100, children=[worker("feed", Journal())]))
        await crash(node.lookup("/root/feed"), clock)
        [failure] = [record for record in log_records if record["level"].name == "ERROR"]
        assert failure["exception"] is None
    [summary] = summaries(log_records)
    assert "1 more failure(s) logged without traceback" in str(summary["message"])
    assert clock.pending_timers == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("crash_traceback_limit", -1), ("crash_traceback_limit", 1.5), ("crash_traceback_window", 0)],
)
def test_a_bad_crash_traceback_setting_is_refused_naming_it(field: str, value: object) -> None:
    with pytest.raises(InvalidConfig) as refused:
        Node("t", handle_signals=False, **{field: value})  # type: ignore[arg-type]
    assert refused.value.field == field and refused.value.value == value


async def test_a_removed_temporary_childs_omitted_tracebacks_are_summarised_when_the_supervisor_stops(
    log_records: list[dict[str, Any]],
) -> None:
    clock = ManualClock()
    async with Node("t", clock=clock, handle_signals=False, crash_traceback_limit=0) as node:
        await node.start(SupervisorSpec(children=[worker("job", Journal(), Restart.TEMPORARY)]))
        await crash(node.lookup("/root/job"), clock)  # not restarted: its spec goes
        assert not summaries(log_records)
    [summary] = summaries(log_records)
    assert summary["extra"]["actor"] == "/root/job"
    assert clock.pending_timers == 0
