"""Rule 9: DynamicSupervisor (OTP's simple_one_for_one). Children of one template, started on
demand, restarted one for one under the same intensity rules, stopped together."""

from __future__ import annotations

from typing import Any

import pytest

from garrison import (
    ChildExists,
    ChildNotFound,
    ChildSpec,
    DynamicSupervisorSpec,
    InvalidSpec,
    ManualClock,
    Node,
    Restart,
    SupervisorRef,
    SupervisorSpec,
)

from ._support import Finish, Journal, Work, Worker, crash, drive, worker


class SymbolWorker(Worker):
    """A template child: the symbol comes from start_child's args."""

    def __init__(self, journal: Journal, venue: str, symbol: str) -> None:
        super().__init__(journal)
        self.where = f"{venue}:{symbol}"

    async def on_receive(self, message: Any) -> Any:
        if message == "where":
            return self.where
        return await super().on_receive(message)


async def _strategies(
    node: Node, journal: Journal, restart: Restart = Restart.PERMANENT, **options: Any
) -> SupervisorRef:
    template = ChildSpec("strategy", SymbolWorker, args=(journal, "XNAS"), restart=restart, shutdown=5.0)
    await node.start(
        SupervisorSpec(
            intensity=5,
            children=[
                worker("feed", journal),
                ChildSpec("strategies", DynamicSupervisorSpec(template, **options)),
            ],
        )
    )
    return node.supervisor("/root/strategies")


async def test_children_of_the_template_start_on_demand_with_their_args(node: Node) -> None:
    journal = Journal()
    strategies = await _strategies(node, journal)
    assert await strategies.which_children() == []
    aapl = await strategies.start_child(id="AAPL", args=("AAPL",))
    msft = await strategies.start_child(id="MSFT", args=("MSFT",))
    assert (aapl.path, msft.path) == ("/root/strategies/AAPL", "/root/strategies/MSFT")
    assert await aapl.ask("where") == "XNAS:AAPL"
    assert await msft.ask("where") == "XNAS:MSFT"
    assert [(row.id, row.state) for row in await strategies.which_children()] == [
        ("AAPL", "running"),
        ("MSFT", "running"),
    ]


async def test_a_crashed_dynamic_child_is_restarted_alone_with_the_same_args(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    strategies = await _strategies(node, journal)
    aapl = await strategies.start_child(id="AAPL", args=("AAPL",))
    await strategies.start_child(id="MSFT", args=("MSFT",))
    journal.clear()
    await crash(aapl, clock)
    assert journal.entries == [("start", "AAPL")]
    assert await aapl.ask("where") == "XNAS:AAPL"
    assert [row.restarts for row in await strategies.which_children()] == [1, 0]


async def test_dynamic_children_share_one_intensity_window(node: Node, clock: ManualClock) -> None:
    journal = Journal()
    strategies = await _strategies(node, journal, intensity=1, period=5.0)
    aapl = await strategies.start_child(id="AAPL", args=("AAPL",))
    msft = await strategies.start_child(id="MSFT", args=("MSFT",))
    await crash(aapl, clock)
    await crash(msft, clock)
    # The dynamic supervisor gave up; root restarted it, and its children are gone (as in OTP).
    assert [(row.id, row.restarts) for row in await node.supervisor("/root").which_children()] == [
        ("feed", 0),
        ("strategies", 1),
    ]
    assert await strategies.which_children() == []
    assert not aapl.is_alive


@pytest.mark.parametrize(("restart", "how"), [(Restart.TEMPORARY, "crash"), (Restart.TRANSIENT, "normal")])
async def test_a_dynamic_child_that_exits_without_restart_is_removed(
    node: Node, clock: ManualClock, restart: Restart, how: str
) -> None:
    journal = Journal()
    strategies = await _strategies(node, journal, restart)
    aapl = await strategies.start_child(id="AAPL", args=("AAPL",))
    await strategies.start_child(id="MSFT", args=("MSFT",))
    if how == "crash":
        await crash(aapl, clock)
    else:
        await aapl.tell(Finish())
        await clock.advance(0)
    assert [row.id for row in await strategies.which_children()] == ["MSFT"]
    # The id is free again.
    again = await strategies.start_child(id="AAPL", args=("AAPL",))
    assert await again.ask("where") == "XNAS:AAPL"


async def test_every_dynamic_child_finishes_its_message_and_stops_with_the_supervisor(
    node: Node, clock: ManualClock
) -> None:
    journal = Journal()
    strategies = await _strategies(node, journal)
    for symbol in ("AAPL", "MSFT", "NVDA"):
        ref = await strategies.start_child(id=symbol, args=(symbol,))
        await ref.tell(Work(2.0))
    await clock.advance(0)
    journal.clear()
    await drive(clock, node.supervisor("/root").terminate_child("strategies"), within=10.0)
    assert clock.now() == 2.0
    assert sorted(journal.steps("stop")) == [("stop", "AAPL"), ("stop", "MSFT"), ("stop", "NVDA")]
    assert {at for at, step, _ in journal.timeline if step == "stop"} == {2.0}


async def test_dynamic_children_stop_at_once_not_one_after_another(node: Node, clock: ManualClock) -> None:
    class Stuck(Worker):
        async def on_receive(self, message: Any) -> Any:
            await self.ctx.node.clock.sleep(1e9)

    template = ChildSpec("stuck", Stuck, args=(Journal(),), shutdown=3.0)
    root = await node.start(SupervisorSpec(children=[ChildSpec("pool", DynamicSupervisorSpec(template))]))
    pool = node.supervisor("/root/pool")
    for index in range(4):
        ref = await pool.start_child(id=f"s{index}")
        await ref.tell("work")
    await clock.advance(0)
    await drive(clock, root.terminate_child("pool"), within=100.0)
    assert clock.now() == 3.0  # one shared timeout, not 4 x 3 s


async def test_max_children_caps_the_dynamic_supervisor(node: Node) -> None:
    strategies = await _strategies(node, Journal(), max_children=2)
    await strategies.start_child(id="AAPL", args=("AAPL",))
    await strategies.start_child(id="MSFT", args=("MSFT",))
    with pytest.raises(InvalidSpec) as error:
        await strategies.start_child(id="NVDA", args=("NVDA",))
    assert error.value.field == "max_children"


async def test_dynamic_management_calls(node: Node) -> None:
    strategies = await _strategies(node, Journal())
    await strategies.start_child(id="AAPL", args=("AAPL",))
    with pytest.raises(ChildExists):
        await strategies.start_child(id="AAPL", args=("AAPL",))
    with pytest.raises(InvalidSpec):
        await strategies.start_child(args=("MSFT",))
    await strategies.terminate_child("AAPL")
    assert await strategies.which_children() == []  # a dynamic child's spec goes with it
    with pytest.raises(ChildNotFound):
        await strategies.restart_child("AAPL")
    with pytest.raises(InvalidSpec):
        await node.supervisor("/root").start_child(id="x")
