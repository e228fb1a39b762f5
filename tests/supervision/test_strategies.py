"""Rule 2 (strategies): ONE_FOR_ONE, REST_FOR_ONE and ONE_FOR_ALL restart the children OTP restarts,
stopping them in reverse start order and starting them again in start order."""

from __future__ import annotations

from garrison import ChildSpec, ManualClock, Node, Restart, Strategy, SupervisorSpec

from ._support import Journal, Ping, crash, worker


async def _serials(node: Node, *names: str, under: str = "/root") -> dict[str, int]:
    return {name: (await node.lookup(f"{under}/{name}").ask(Ping()))[1] for name in names}


async def test_one_for_one_restarts_only_the_failed_child(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            strategy=Strategy.ONE_FOR_ONE, intensity=5, children=[worker(n, journal) for n in "abcd"]
        )
    )
    before = await _serials(node, *"abcd")
    journal.clear()
    await crash(node.lookup("/root/b"), clock)
    assert journal.entries == [("start", "b")]
    after = await _serials(node, *"abcd")
    assert {name for name in "abcd" if after[name] != before[name]} == {"b"}
    assert [(row.id, row.state, row.restarts) for row in await sup.which_children()] == [
        ("a", "running", 0),
        ("b", "running", 1),
        ("c", "running", 0),
        ("d", "running", 0),
    ]


async def test_rest_for_one_stops_later_siblings_in_reverse_order_and_restarts_them_in_start_order(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE, intensity=5, children=[worker(n, journal) for n in "abcde"]
        )
    )
    before = await _serials(node, *"abcde")
    journal.clear()
    await crash(node.lookup("/root/b"), clock)
    assert journal.entries == [
        ("stop", "e"),
        ("stop", "d"),
        ("stop", "c"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
        ("start", "e"),
    ]
    after = await _serials(node, *"abcde")
    assert after["a"] == before["a"]
    assert all(after[name] != before[name] for name in "bcde")
    assert [row.restarts for row in await sup.which_children()] == [0, 1, 1, 1, 1]


async def test_rest_for_one_on_the_last_child_restarts_only_that_child(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    await node.start(
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE, intensity=5, children=[worker(n, journal) for n in "abc"]
        )
    )
    journal.clear()
    await crash(node.lookup("/root/c"), clock)
    assert journal.entries == [("start", "c")]


async def test_one_for_all_stops_all_others_in_reverse_order_and_restarts_all_in_start_order(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            strategy=Strategy.ONE_FOR_ALL, intensity=5, children=[worker(n, journal) for n in "abcd"]
        )
    )
    before = await _serials(node, *"abcd")
    journal.clear()
    await crash(node.lookup("/root/b"), clock)
    assert journal.entries == [
        ("stop", "d"),
        ("stop", "c"),
        ("stop", "a"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]
    after = await _serials(node, *"abcd")
    assert all(after[name] != before[name] for name in "abcd")
    assert [row.restarts for row in await sup.which_children()] == [1, 1, 1, 1]


async def test_a_temporary_sibling_stopped_as_collateral_is_not_restarted_and_its_spec_is_dropped(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    sup = await node.start(
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            intensity=5,
            children=[
                worker("a", journal),
                worker("b", journal),
                worker("scratch", journal, Restart.TEMPORARY),
                worker("c", journal),
            ],
        )
    )
    journal.clear()
    await crash(node.lookup("/root/b"), clock)
    assert journal.entries == [
        ("stop", "c"),
        ("stop", "scratch"),
        ("start", "b"),
        ("start", "c"),
    ]
    assert [row.id for row in await sup.which_children()] == ["a", "b", "c"]
    assert "/root/scratch" not in node.paths()


async def test_a_group_restart_stops_and_restarts_a_nested_supervisor_with_its_children(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    inner = SupervisorSpec(children=[worker("x", journal), worker("y", journal)])
    await node.start(
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            intensity=5,
            children=[worker("a", journal), ChildSpec("inner", inner), worker("z", journal)],
        )
    )
    journal.clear()
    await crash(node.lookup("/root/a"), clock)
    assert journal.entries == [
        ("stop", "z"),
        ("stop", "y"),
        ("stop", "x"),
        ("start", "a"),
        ("start", "x"),
        ("start", "y"),
        ("start", "z"),
    ]
    assert (await node.supervisor("/root").which_children())[1].restarts == 1
    assert [row.restarts for row in await node.supervisor("/root/inner").which_children()] == [0, 0]


async def test_children_of_a_strategy_that_did_not_fail_keep_running_through_a_nested_restart(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    inner = SupervisorSpec(
        strategy=Strategy.ONE_FOR_ALL, intensity=5, children=[worker("x", journal), worker("y", journal)]
    )
    await node.start(
        SupervisorSpec(
            strategy=Strategy.ONE_FOR_ALL,
            intensity=5,
            children=[worker("a", journal), ChildSpec("inner", inner)],
        )
    )
    journal.clear()
    await crash(node.lookup("/root/inner/x"), clock)
    # The failure is handled by the inner supervisor alone: the outer one-for-all never hears of it.
    assert journal.entries == [("stop", "y"), ("start", "x"), ("start", "y")]
