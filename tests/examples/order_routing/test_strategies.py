"""Strategies: deterministic client order ids, bad ticks refused with a reason, indicators
rebuilt from the durable tick stream, and a conflating mailbox that keeps the latest tick."""

from __future__ import annotations

import math
import re

import msgspec
import pytest

from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.feed import TICKS_STREAM
from examples.order_routing.node.messages import ProposeOrder, Snapshot, Tick
from examples.order_routing.node.strategies import MeanReversion, Momentum, Strategy
from examples.order_routing.protocol import Side
from garrison import ActorRef, ChildSpec, Node, SupervisorSpec
from garrison.persistence import Journal, client_order_id
from garrison.testing import ActorTestKit, Faults, NodeGuard, TestProbe
from tests.examples.order_routing.support import StandIn

CONFIG = NodeConfig(symbols=("ACME", "GLOBEX"), order_qty=7)
PATH = "/root/momentum"


async def start_strategy(node: Node, risk: TestProbe, kind: type[Strategy] = Momentum) -> ActorRef:
    """One strategy, with a stand-in at /root/risk forwarding its proposals to ``risk``."""
    await node.start(
        SupervisorSpec(
            children=[
                ChildSpec("risk", StandIn, args=(risk,)),
                ChildSpec("momentum", kind, args=("momentum", CONFIG)),
            ]
        )
    )
    return node.lookup(PATH)


async def feed(strategy: ActorRef, *ticks: Tick) -> None:
    """Tell each tick and let the strategy take it before the next: queued ticks of one
    symbol conflate (the mailbox keeps the latest), which a test of decisions must avoid."""
    for tick in ticks:
        await strategy.tell(tick)
        await strategy.ask(Snapshot())


# -- deterministic ids --------------------------------------------------------------------------


def test_client_order_id_is_the_same_in_every_process_and_fits_venue_limits() -> None:
    # Pinned literally: a hash seeded per process (Python's hash()) would break exactly-once.
    assert client_order_id("momentum", 1) == "a7l7WXAGvS1FIC7v3Qe_mqpnBieN9au2"
    ids = {client_order_id(strategy, seq) for strategy in ("momentum", "mean-revert") for seq in range(1000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,36}", cid) for cid in ids)


async def test_a_proposal_carries_the_id_of_its_strategy_and_tick(
    node: Node, probe: TestProbe, journal: Journal
) -> None:
    strategy = await start_strategy(node, probe)
    await feed(strategy, Tick(1, "ACME", 100.0), Tick(2, "ACME", 101.0))

    proposal = await probe.expect(ProposeOrder)
    assert proposal.reply_to == strategy
    intent = proposal.intent
    assert (intent.client_order_id, intent.strategy_id, intent.signal_seq) == (
        client_order_id("momentum", 2),
        "momentum",
        2,
    )
    assert (intent.symbol, intent.side, intent.qty, intent.price) == ("ACME", Side.BUY, 7, 101.0)


async def test_the_same_ticks_give_the_same_intents_in_another_node(
    node: Node, probe: TestProbe, journal: Journal, tmp_path
) -> None:
    """What a redelivered signal in another incarnation (or process) proposes is the same intent."""
    ticks = [Tick(seq, "ACME", price) for seq, price in enumerate((100.0, 101.0, 100.5, 100.5, 99.0), 1)]
    strategy = await start_strategy(node, probe)
    await feed(strategy, *ticks)
    first = [(await probe.expect(ProposeOrder)).intent for _ in range(3)]
    await probe.expect_no_message(within=0.5)

    async with ActorTestKit(name="other", seed=99, journal=tmp_path / "other.db") as other:
        other_probe = other.probe()
        other_strategy = await start_strategy(other.node, other_probe)
        await feed(other_strategy, *ticks)
        second = [(await other_probe.expect(ProposeOrder)).intent for _ in range(3)]

    assert second == first
    assert [intent.signal_seq for intent in first] == [2, 3, 5]  # 4 is no move: no signal


# -- bad ticks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [math.nan, -101.0, 0.0, math.inf, -math.inf])
async def test_a_bad_tick_is_refused_with_a_reason_in_dead_letters_and_changes_nothing(
    node: Node, probe: TestProbe, journal: Journal, node_guard: NodeGuard, price: float
) -> None:
    node_guard.allow_dead_letters(PATH, Tick, reason="bad tick")
    strategy = await start_strategy(node, probe)
    await feed(strategy, Tick(1, "ACME", 100.0))

    await strategy.tell(Tick(2, "ACME", price))
    await probe.expect_no_message(within=0.5)
    [letter] = node.dead_letters.recent()
    assert (letter.recipient, letter.kind, letter.message) == (PATH, "invalid", Tick(2, "ACME", price))
    assert letter.reason == f"bad tick: price={price!r} (must be > 0 and finite)"
    assert (await strategy.ask(Snapshot()))["bad_ticks"] == 1

    # The indicators never saw it: the next tick is compared with the last good one.
    await strategy.tell(Tick(3, "ACME", 99.0))
    proposal = await probe.expect(ProposeOrder)
    assert (proposal.intent.signal_seq, proposal.intent.side) == (3, Side.SELL)


# -- warm-up from the durable stream, conflation ---------------------------------------------


@pytest.mark.parametrize(("kind", "side"), [(Momentum, Side.SELL), (MeanReversion, Side.BUY)])
async def test_a_strategy_starts_from_the_durable_tick_stream(
    node: Node, probe: TestProbe, journal: Journal, kind: type[Strategy], side: Side
) -> None:
    """Indicators come back from the stream (what a restart does); no signal is sent for them."""
    encode = msgspec.msgpack.Encoder().encode
    history = [Tick(seq, "ACME", 100.0 + seq) for seq in range(1, 11)]
    await journal.append(TICKS_STREAM, [encode(tick) for tick in history], 0)

    strategy = await start_strategy(node, probe, kind)
    await probe.expect_no_message(within=0.5)
    # Below the last price (momentum: a down-tick) and below the moving average (mean reversion).
    await strategy.tell(Tick(11, "ACME", 104.0))

    proposal = await probe.expect(ProposeOrder)
    assert (proposal.intent.signal_seq, proposal.intent.side) == (11, side)


async def test_a_busy_strategy_sees_only_the_latest_tick_of_each_symbol(
    node: Node, probe: TestProbe, journal: Journal, faults: Faults
) -> None:
    strategy = await start_strategy(node, probe)
    await feed(strategy, Tick(1, "ACME", 100.0), Tick(2, "GLOBEX", 50.0))
    hang = faults.hang(strategy, on=Tick)
    await strategy.tell(Tick(3, "ACME", 100.0))  # the strategy is stuck in this one
    await hang.wait_hanging()
    for seq, price in ((4, 101.0), (5, 102.0), (6, 103.0)):
        await strategy.tell(Tick(seq, "ACME", price))
    await strategy.tell(Tick(7, "GLOBEX", 49.0))
    hang.remove()

    proposed = [(await probe.expect(ProposeOrder)).intent.signal_seq for _ in range(2)]
    await probe.expect_no_message(within=0.5)
    assert proposed == [6, 7]  # 4 and 5 were replaced in the mailbox by 6, keeping its place
