"""The verdict the whole design exists for, read from the node's journal and the broker's store."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import aclosing
from dataclasses import dataclass, field

from examples.order_routing.broker.store import duplicates, load_fills, load_orders
from examples.order_routing.node.answers import EXPIRED_AFTER_LOOKUP, EXPIRED_BEFORE_SEND, EXPIRED_ON_RESEND
from examples.order_routing.node.intents import INTENTS_STREAM
from examples.order_routing.node.messages import OrderIntent
from examples.order_routing.node.positions import Book, FillApplied, FillQuarantined, apply_fill, fill_problem
from examples.order_routing.protocol import Fill, Side
from garrison.persistence import (
    EventCodec,
    Intent,
    IntentLog,
    IntentState,
    Journal,
    StateCodec,
    replay_events,
)


@dataclass
class Verdict:
    intents_recorded: int = 0
    orders_at_broker: int = 0
    duplicates: int = 0
    """Client order ids the broker accepted more than once: must be 0."""
    lost: int = 0
    """Intents recorded, not venue-rejected and not expired, that the broker never accepted: must be 0."""
    expired_before_send: int = 0
    """Intents EXPIRED unsent: their time-to-live ran out before their turn to be sent."""
    expired_after_lookup: int = 0
    """Intents EXPIRED from the dead zone: a look-up found the broker never had them, past their ttl."""
    expired_on_resend: int = 0
    """Intents EXPIRED over FIX: the venue asked for the order message again and the session
    gap-filled it instead, being older than ``fix_resend_max_age`` (the venue never had it)."""
    expired_unexplained: int = 0
    """Intents EXPIRED with neither reason (must be 0)."""
    expired_at_broker: int = 0
    """Intents EXPIRED that the broker nevertheless has (an expired order sent after all): must be 0."""
    notes: list[str] = field(default_factory=list)
    """Lines a run adds before the verdict (time to drain, the bounds' maxima)."""
    phantom: int = 0
    """Orders at the broker that the node never recorded as intents: must be 0."""
    ambiguous: int = 0
    """Intents still RECORDED/SENDING/UNKNOWN after settling: must be 0."""
    rejected_by_venue: int = 0
    states: dict[str, int] = field(default_factory=dict)
    positions_match: bool = False
    position_mismatches: dict[str, tuple[int, int]] = field(default_factory=dict)
    """symbol -> (node qty, broker net filled qty) where they differ."""
    fills_at_broker: int = 0
    fills_at_node: int = 0
    ghost_fills_quarantined: list[str] = field(default_factory=list)
    """Fills positions journaled as quarantined: "fill_seq client_order_id (why)"."""
    ghost_fills_applied: list[str] = field(default_factory=list)
    """Fills positions applied that no intent accounts for (unknown id, wrong symbol or side,
    overfill): must be none."""

    @property
    def passed(self) -> bool:
        return (
            self.duplicates == 0
            and self.lost == 0
            and self.phantom == 0
            and self.ambiguous == 0
            and self.expired_at_broker == 0
            and self.expired_unexplained == 0
            and self.positions_match
            and not self.ghost_fills_applied
        )

    def lines(self) -> list[str]:
        mark = {True: "ok", False: "FAIL"}
        return [
            f"intents recorded:        {self.intents_recorded:,}",
            f"orders at the broker:    {self.orders_at_broker:,}",
            f"rejected by the venue:   {self.rejected_by_venue:,}",
            f"duplicates (must be 0):  {self.duplicates:,}  {mark[self.duplicates == 0]}",
            f"lost intents (must be 0): {self.lost:,}  {mark[self.lost == 0]}",
            f"phantom orders (must be 0): {self.phantom:,}  {mark[self.phantom == 0]}",
            f"ambiguous after settling (must be 0): {self.ambiguous:,}  {mark[self.ambiguous == 0]}",
            f"expired, never sent late: {self.expired:,} = {self.expired_before_send:,} before send "
            f"(never sent) + {self.expired_after_lookup:,} after look-up (the broker never had them) + "
            f"{self.expired_on_resend:,} on a FIX resend (too old to send again)"
            + (f" + {self.expired_unexplained:,} unexplained  FAIL" if self.expired_unexplained else ""),
            f"expired yet at the broker (must be 0): {self.expired_at_broker:,}  "
            f"{mark[self.expired_at_broker == 0]}",
            f"fills: broker {self.fills_at_broker:,}, node {self.fills_at_node:,}",
            f"ghost fills quarantined: {len(self.ghost_fills_quarantined):,}"
            + _listed(self.ghost_fills_quarantined, limit=3),
            f"ghost fills applied (must be 0): {len(self.ghost_fills_applied):,}  "
            f"{mark[not self.ghost_fills_applied]}" + _listed(self.ghost_fills_applied),
            f"positions at the node match fills at the broker: {mark[self.positions_match]}"
            + (f" {self.position_mismatches}" if self.position_mismatches else ""),
            *self.notes,
            f"VERDICT: {'PASS' if self.passed else 'FAIL'}",
        ]

    @property
    def expired(self) -> int:
        explained = self.expired_before_send + self.expired_after_lookup + self.expired_on_resend
        return explained + self.expired_unexplained


async def judge(journal: Journal, broker_store: str, client_id: str) -> Verdict:
    """Compare what the node recorded with what the broker holds."""
    verdict = Verdict()
    # A reader of the node's journal: it never compacts (the node does).
    log = await IntentLog(journal, INTENTS_STREAM, OrderIntent, compact_every=None).open()
    intents = {intent.id: intent for intent in log.intents()}
    verdict.intents_recorded = len(intents)
    verdict.states = dict(Counter(intent.state.value for intent in intents.values()))
    orders = [
        order for order in await asyncio.to_thread(load_orders, broker_store) if order.client_id == client_id
    ]
    at_broker = {order.client_order_id for order in orders}
    verdict.orders_at_broker = len(orders)
    verdict.duplicates = sum(
        1 for d in await asyncio.to_thread(duplicates, broker_store) if d.client_id == client_id
    )
    verdict.rejected_by_venue = verdict.states.get(IntentState.REJECTED.value, 0)
    never_orders = (IntentState.REJECTED, IntentState.EXPIRED)
    verdict.lost = sum(
        1 for cid, intent in intents.items() if intent.state not in never_orders and cid not in at_broker
    )
    for cid, intent in intents.items():
        if intent.state is not IntentState.EXPIRED:
            continue
        if cid in at_broker:
            verdict.expired_at_broker += 1
        if intent.detail == EXPIRED_BEFORE_SEND:
            verdict.expired_before_send += 1
        elif intent.detail == EXPIRED_AFTER_LOOKUP:
            verdict.expired_after_lookup += 1
        elif intent.detail == EXPIRED_ON_RESEND:
            verdict.expired_on_resend += 1
        else:
            verdict.expired_unexplained += 1
    verdict.phantom = sum(1 for cid in at_broker if cid not in intents)
    verdict.ambiguous = sum(
        verdict.states.get(state.value, 0)
        for state in (IntentState.RECORDED, IntentState.SENDING, IntentState.UNKNOWN)
    )
    fills = [
        fill for fill in await asyncio.to_thread(load_fills, broker_store) if fill.client_id == client_id
    ]
    verdict.fills_at_broker = len(fills)
    broker_net: Counter[str] = Counter()
    for fill in fills:
        broker_net[fill.symbol] += fill.qty if fill.side is Side.BUY else -fill.qty
    book = await replay_positions(journal)
    verdict.fills_at_node = book.fills
    verdict.ghost_fills_quarantined, verdict.ghost_fills_applied = await ghost_fills(journal, intents)
    node_net = {symbol: position.qty for symbol, position in book.positions.items()}
    for symbol in set(node_net) | set(broker_net):
        if node_net.get(symbol, 0) != broker_net.get(symbol, 0):
            verdict.position_mismatches[symbol] = (node_net.get(symbol, 0), broker_net.get(symbol, 0))
    verdict.positions_match = not verdict.position_mismatches and book.fills == len(fills)
    return verdict


def _listed(items: list[str], limit: int = 10) -> str:
    if not items:
        return ""
    more = f", and {len(items) - limit:,} more" if len(items) > limit else ""
    return f" ({', '.join(items[:limit])}{more})"


async def ghost_fills(
    journal: Journal, intents: dict[str, Intent[OrderIntent]]
) -> tuple[list[str], list[str]]:
    """(quarantined, applied ghosts), read from every positions event (not the snapshot, which
    keeps only the latest quarantined): a fill applied is a ghost if its intent would have
    refused it."""
    codec = EventCodec([FillApplied, FillQuarantined])
    quarantined: list[str] = []
    applied: list[str] = []
    filled: Counter[str] = Counter()
    async with aclosing(replay_events(journal, "positions", codec, 0)) as runs:
        async for _, events in runs:
            for event in events:
                if isinstance(event, FillQuarantined):
                    quarantined.append(f"fill {event.fill_seq} of {event.client_order_id!r}: {event.reason}")
                    continue
                cid = event.client_order_id
                intent = intents.get(cid)
                as_fill = Fill(event.fill_seq, cid, "", event.symbol, event.side, event.qty, event.price, 0)
                problem = fill_problem(as_fill, None if intent is None else intent.payload, filled[cid])
                filled[cid] += event.qty
                if problem is not None:
                    applied.append(f"fill {event.fill_seq} of {cid!r}: {problem}")
    return quarantined, applied


async def replay_positions(journal: Journal) -> Book:
    """The positions actor's state, rebuilt from its snapshot and events (as it recovers)."""
    codec = EventCodec([FillApplied, FillQuarantined])
    snapshot = await journal.load_snapshot("positions")
    if snapshot is None:
        seq, book = 0, Book()
    else:
        seq, payload = snapshot
        book = StateCodec(Book).decode(payload, "positions", seq)
    async with aclosing(replay_events(journal, "positions", codec, seq)) as runs:
        async for _, events in runs:
            for event in events:
                book = apply_fill(book, event)
    return book
