"""The dead-letter sink: every message not processed, with its reason, counted, logged at a rate limit."""

from __future__ import annotations

from typing import Any

from garrison import DeadLetter, ManualClock, Node
from garrison._clock import settle
from tests.actors.helpers import Boom, Fragile


def dead_letter_warnings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["message"].startswith("dead letter to")]


async def test_dead_letters_are_counted_by_reason_and_kept_in_order(node: Node, clock: ManualClock) -> None:
    await clock.advance(3.0)
    node.dead_letters.publish("a", "/x", "reason one")
    node.dead_letters.publish("b", "/y", "reason two")
    node.dead_letters.publish("c", "/x", "reason one")
    assert node.dead_letters.count == 3
    assert node.dead_letters.by_reason == {"reason one": 2, "reason two": 1}
    recent = node.dead_letters.recent()
    assert [letter.message for letter in recent] == ["a", "b", "c"]
    assert recent[0] == DeadLetter("a", "/x", "reason one", None, 3.0)


async def test_subscribers_see_every_dead_letter_and_one_that_raises_does_not_stop_the_others(
    node: Node,
) -> None:
    seen: list[DeadLetter] = []

    def broken(letter: DeadLetter) -> None:
        raise RuntimeError("subscriber bug")

    node.dead_letters.subscribe(broken)
    unsubscribe = node.dead_letters.subscribe(seen.append)
    node.dead_letters.publish("a", "/x", "why")
    unsubscribe()
    node.dead_letters.publish("b", "/x", "why")
    assert [letter.message for letter in seen] == ["a"]
    assert node.dead_letters.count == 2


async def test_dead_letter_logging_is_rate_limited_on_the_node_clock(
    clock: ManualClock, log_records: list[dict[str, Any]]
) -> None:
    async with Node(
        "t", clock=clock, handle_signals=False, dead_letter_log_limit=3, dead_letter_log_interval=10.0
    ) as node:
        for index in range(8):
            node.dead_letters.publish(index, "/x", "dropped")
        assert node.dead_letters.count == 8
        assert len(dead_letter_warnings(log_records)) == 3
        await clock.advance(9.9)
        node.dead_letters.publish(8, "/x", "dropped")
        assert len(dead_letter_warnings(log_records)) == 3
        await clock.advance(0.1)
        node.dead_letters.publish(9, "/x", "dropped")
        assert len(dead_letter_warnings(log_records)) == 4
        summaries = [r for r in log_records if "more dead letters were not logged" in r["message"]]
        assert len(summaries) == 1
        assert summaries[0]["message"].startswith("6 more dead letters")
        assert node.dead_letters.count == 10


async def test_a_dead_letter_log_record_names_the_recipient_reason_and_message_type(
    node: Node, log_records: list[dict[str, Any]]
) -> None:
    ref = await node.spawn(Fragile, name="fragile", args=([],))
    ref.tell_nowait(Boom())
    await settle()
    warnings = dead_letter_warnings(log_records)
    assert len(warnings) == 1
    record = warnings[0]
    assert "/fragile" in record["message"]
    assert "Boom" in record["message"]
    assert "Crash" in record["message"]
    assert record["extra"]["node"] == "t"
    assert record["extra"]["actor"] == "/fragile"
