"""Strategies: the template users copy.

A strategy is a plain garrison Actor. Its mailbox conflates ticks per symbol,
so a slow strategy always sees the latest price and never a backlog. It
decides on each tick and proposes an order to risk without waiting: the
answer arrives later as a message (OrderAck with the reason when risk refuses
it; OrdersRecorded, for many at a time, once intents has recorded them
durably). Each proposal's
``client_order_id`` comes from (strategy id, the tick's sequence number), so
proposing again after a crash can never place a second order.

Progress is bounded: intents records at most ``max_unsettled`` unsettled
intents and hands the rest back (BacklogFull). Each strategy then applies its
backlog policy (``backlog_policy``, ``strategy_backlog_policy``):

- ``drop``: forget them (counted);
- ``conflate``: keep only the latest refused proposal per symbol and propose
  it again every ``backlog_retry`` seconds until it is recorded (an older one
  for the symbol it replaces is counted as conflated);
- ``wait``: hold them in order (at most ``max_held``) and propose them again,
  each for at most ``backlog_wait`` seconds after its first refusal.

Every proposal carries its time-to-live (``strategy_ttl``, else
``intent_ttl``); a held one passes what is left of it, counted from its first
refusal, and one whose time ran out while held is dropped, never recorded.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.feed import TICKS_STREAM
from examples.order_routing.node.messages import (
    BacklogFull,
    OrderAck,
    OrderIntent,
    OrdersRecorded,
    ProposeOrder,
    Snapshot,
    Tick,
)
from examples.order_routing.protocol import Side
from garrison import Actor, ChildSpec, MailboxConfig, Overflow
from garrison.persistence import DurableStream, client_order_id

WARM_UP_TICKS = 200
_decode_tick = msgspec.msgpack.Decoder(Tick).decode


class _Retry(msgspec.Struct, frozen=True):
    """Self-message: propose the held proposals again (the backlog may have room now)."""


BACKLOG_COUNTS = ("refused", "dropped", "conflated", "gave_up", "expired_held", "retried")
"""What a strategy counts of its proposals the backlog refused: refused (each refusal),
dropped (policy drop, or beyond max_held), conflated (replaced by a newer one for its
symbol), gave_up (held backlog_wait in vain), expired_held (its ttl ran out while held),
retried (proposed again)."""


def latest_per_symbol(message: Any) -> str | None:
    """Conflation key: one queued tick per symbol; anything else (acks) is never conflated."""
    return message.symbol if isinstance(message, Tick) else None


class Strategy(Actor):
    """Base of the example strategies: warm up, decide per tick, propose, count answers."""

    heartbeat_timeout = 5.0

    # A tick costs about 30 us (a signal, its id, a proposal). At capacity every actor is ready on
    # every loop turn, so a turn lasts as long as all their steps together, and the loop-lag
    # monitor waits about two turns: a strategy yields after 8 ticks (~0.25 ms), whatever the
    # clock says (throughput_deadline=0). With 16 ticks and the default 0.5 ms deadline, the four
    # strategies took ~2 ms of each turn at capacity. Risk keeps its longer steps: what it passes
    # on in one step is what intents records in one batch, and smaller batches cost CPU per order
    # all the way down the pipeline (risk at 16 messages a step: ~8% more per order).
    mailbox = MailboxConfig(
        capacity=256, overflow=Overflow.CONFLATE, key=latest_per_symbol, throughput=8, throughput_deadline=0
    )
    kind: ClassVar[str] = "strategy"

    def __init__(self, strategy_id: str, config: NodeConfig) -> None:
        self.strategy_id = strategy_id
        self.config = config
        self.proposed = 0
        self.accepted = 0
        self.refused: dict[str, int] = {}
        self.bad_ticks = 0
        self.ttl = config.ttl_of(strategy_id)
        self.policy = config.policy_of(strategy_id)
        self.held: dict[str, tuple[OrderIntent, float]] = {}
        """Refused proposals to propose again, by symbol (conflate) or client order id (wait),
        oldest first: (intent, when it was first refused)."""
        self.retrying: dict[str, float] = {}
        """Held proposals proposed again and not answered yet: client order id -> first refused."""
        self.retry_armed = False
        self.backlog = dict.fromkeys(BACKLOG_COUNTS, 0)

    async def on_start(self) -> None:
        metrics = self.ctx.metrics
        self.backlog_counters = {
            name: metrics.counter(f"strategy_backlog_{name}", f"Proposals the full backlog refused: {name}")
            for name in BACKLOG_COUNTS
        }
        # Rebuild indicators from the durable tick stream; signals are not re-sent for them.
        stream = DurableStream(self.ctx.node.journal, TICKS_STREAM)  # type: ignore[arg-type]
        after = max(0, await stream.highest_seq() - WARM_UP_TICKS)
        async for _, payload in self.ctx.node.journal.read(TICKS_STREAM, after):  # type: ignore[union-attr]
            self.observe(_decode_tick(payload))

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Tick() if not (math.isfinite(message.price) and message.price > 0):
                self.bad_ticks += 1
                reason = f"bad tick: price={message.price!r} (must be > 0 and finite)"
                self.ctx.node.dead_letters.publish(message, self.ctx.path, reason, kind="invalid")
            case Tick():
                side = self.decide(message)
                self.observe(message)
                if side is not None:
                    await self.propose(message, side)
            case OrdersRecorded(client_order_ids=recorded):
                self.accepted += len(recorded)
                if self.retrying:
                    for cid in recorded:
                        self.retrying.pop(cid, None)
            case OrderAck(client_order_id=cid, reason=reason):
                self.refused[reason] = self.refused.get(reason, 0) + 1
                self.retrying.pop(cid, None)
            case BacklogFull(intents=intents):
                self.on_backlog_full(intents)
            case _Retry():
                self.retry_armed = False
                await self.retry_held()
            case Snapshot():
                return {
                    "proposed": self.proposed,
                    "accepted": self.accepted,
                    "refused": dict(self.refused),
                    "bad_ticks": self.bad_ticks,
                    "backlog_policy": self.policy,
                    "held": len(self.held),
                    **{f"backlog_{name}": count for name, count in self.backlog.items()},
                }
            case _:
                self.ctx.unhandled(message)
        return None

    async def propose(self, tick: Tick, side: Side) -> None:
        intent = OrderIntent(
            client_order_id=client_order_id(self.strategy_id, tick.seq),
            strategy_id=self.strategy_id,
            signal_seq=tick.seq,
            symbol=tick.symbol,
            side=side,
            qty=self.config.order_qty,
            price=tick.price,
        )
        self.proposed += 1
        if self.policy == "conflate" and self.held.pop(tick.symbol, None) is not None:
            self.count("conflated")  # a newer decision for the symbol replaces the held one
        await self.ctx.node.lookup(paths.RISK).tell(ProposeOrder(intent, self.ctx.self_ref, self.ttl))

    def count(self, name: str, n: int = 1) -> None:
        self.backlog[name] += n
        self.backlog_counters[name].inc(n)

    def on_backlog_full(self, intents: tuple[OrderIntent, ...]) -> None:
        """Apply this strategy's backlog policy to proposals intents could not record."""
        self.count("refused", len(intents))
        if self.policy == "drop":
            self.count("dropped", len(intents))
            return
        now = self.ctx.node.clock.now()
        held = self.held
        for intent in intents:
            since = self.retrying.pop(intent.client_order_id, now)
            if self.policy == "conflate":
                older = held.pop(intent.symbol, None)
                if older is not None and older[0].client_order_id != intent.client_order_id:
                    if older[0].signal_seq > intent.signal_seq:
                        held[intent.symbol] = older  # the newer decision stays
                        self.count("conflated")
                        continue
                    self.count("conflated")
                held[intent.symbol] = (intent, since)
            else:
                held[intent.client_order_id] = (intent, since)
                if len(held) > self.config.max_held:
                    del held[next(iter(held))]
                    self.count("dropped")
        self.arm_retry()

    def arm_retry(self) -> None:
        if self.held and not self.retry_armed:
            self.retry_armed = True
            self.ctx.send_later(self.config.backlog_retry, _Retry())

    async def retry_held(self) -> None:
        """Propose the held proposals again, each with what is left of its ttl; drop those whose
        ttl (or, waiting, backlog_wait) ran out since their first refusal."""
        now = self.ctx.node.clock.now()
        held, self.held = self.held, {}
        # Answers lost with a restarted intents or risk never come: forget them after their ttl.
        self.retrying = {cid: since for cid, since in self.retrying.items() if now - since < self.ttl}
        risk = self.ctx.node.lookup(paths.RISK)
        for intent, since in held.values():
            left = self.ttl - (now - since)
            if left <= 0:
                self.count("expired_held")
                continue
            if self.policy == "wait" and now - since > self.config.backlog_wait:
                self.count("gave_up")
                continue
            self.retrying[intent.client_order_id] = since
            self.count("retried")
            await risk.tell(ProposeOrder(intent, self.ctx.self_ref, left))

    def observe(self, tick: Tick) -> None:
        """Update indicators with a tick (also used to warm up)."""

    def decide(self, tick: Tick) -> Side | None:
        """BUY, SELL or None for this tick, before ``observe`` sees it."""
        raise NotImplementedError


class Momentum(Strategy):
    """Follows the move: buys after an up-tick, sells after a down-tick."""

    kind = "momentum"

    def __init__(self, strategy_id: str, config: NodeConfig) -> None:
        super().__init__(strategy_id, config)
        self.last: dict[str, float] = {}

    def observe(self, tick: Tick) -> None:
        self.last[tick.symbol] = tick.price

    def decide(self, tick: Tick) -> Side | None:
        previous = self.last.get(tick.symbol)
        if previous is None or tick.price == previous:
            return None
        return Side.BUY if tick.price > previous else Side.SELL


class MeanReversion(Strategy):
    """Fades the move: sells above its moving average, buys below it."""

    kind = "mean-revert"
    ALPHA = 0.1

    def __init__(self, strategy_id: str, config: NodeConfig) -> None:
        super().__init__(strategy_id, config)
        self.average: dict[str, float] = {}

    def observe(self, tick: Tick) -> None:
        average = self.average.get(tick.symbol, tick.price)
        self.average[tick.symbol] = average + self.ALPHA * (tick.price - average)

    def decide(self, tick: Tick) -> Side | None:
        average = self.average.get(tick.symbol)
        if average is None or tick.price == average:
            return None
        return Side.SELL if tick.price > average else Side.BUY


class Blast(Strategy):
    """A load generator, not a strategy: signals on every tick it sees, alternating buy and
    sell per symbol so that positions stay flat (the benchmark's blast mode)."""

    kind = "blast"

    def __init__(self, strategy_id: str, config: NodeConfig) -> None:
        super().__init__(strategy_id, config)
        self.next_side: dict[str, Side] = {}

    def decide(self, tick: Tick) -> Side | None:
        side = self.next_side.get(tick.symbol, Side.BUY)
        self.next_side[tick.symbol] = Side.SELL if side is Side.BUY else Side.BUY
        return side


STRATEGIES: dict[str, type[Strategy]] = {"momentum": Momentum, "mean-revert": MeanReversion, "blast": Blast}


class StrategyLauncher(Actor):
    """Starts one strategy per configured name in the strategies DynamicSupervisor.

    It sits after that supervisor in a rest_for_one group, so whenever the
    supervisor restarts (and loses its dynamic children, as in OTP), this
    launcher restarts too and starts them again.
    """

    def __init__(self, config: NodeConfig) -> None:
        self.config = config

    async def on_start(self) -> None:
        strategies = self.ctx.node.supervisor(paths.STRATEGIES)
        running = {row.id for row in await strategies.which_children()}
        for name in self.config.strategies:
            if name not in running:
                await strategies.start_child(
                    ChildSpec(name, STRATEGIES[_kind(name)], args=(name, self.config))
                )

    async def on_receive(self, message: Any) -> Any:
        self.ctx.unhandled(message)


def _kind(name: str) -> str:
    for kind in STRATEGIES:
        if name.startswith(kind):
            return kind
    raise ValueError(f"strategy {name!r}: its name must start with one of {sorted(STRATEGIES)}")
