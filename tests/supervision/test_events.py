"""Rule 11 (events): started, restarted, stopped and gave-up events, with reasons, published on
the node's event stream and logged."""

from __future__ import annotations

from typing import Any

from garrison import (
    Failed,
    GaveUp,
    LifecycleEvent,
    ManualClock,
    Node,
    Restarted,
    Started,
    Stopped,
    Strategy,
    SupervisorSpec,
)

from ._support import Journal, crash, of_type, worker


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


async def test_restarts_and_giving_up_are_logged_with_the_path_and_the_reason(
    node: Node, clock: ManualClock, log_records: list[dict[str, Any]]
) -> None:
    journal = Journal()
    await node.start(SupervisorSpec(intensity=1, children=[worker("feed", journal)]))
    await crash(node.lookup("/root/feed"), clock, "first")
    await crash(node.lookup("/root/feed"), clock, "second")

    def messages(level: str) -> list[str]:
        return [str(record["message"]) for record in log_records if record["level"].name == level]

    started = [text for text in messages("INFO") if "started feed" in text]
    assert started and "/root" in started[0]
    [restart] = [text for text in messages("INFO") if "restarted feed" in text]
    assert "/root" in restart and "restart #1" in restart and "Boom: feed crashed first" in restart
    gave_up = [text for text in messages("ERROR") if "gave up" in text]
    assert gave_up and "supervisor /root" in gave_up[0] and "feed crashed second" in gave_up[0]
    failures = [record for record in log_records if "failed handling Crash" in str(record["message"])]
    assert [record["extra"]["actor"] for record in failures] == ["/root/feed", "/root/feed"]
    assert any("root supervisor /root exited" in text for text in messages("ERROR"))
