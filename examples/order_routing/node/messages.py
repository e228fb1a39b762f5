"""Messages between the node's actors. Facts are nouns, commands are imperatives."""

from __future__ import annotations

import math

import msgspec

from examples.order_routing.protocol import Fill, OrderAccepted, OrderRejected, OrderStatus, Side
from garrison import ActorRef


class Tick(msgspec.Struct, frozen=True, array_like=True, tag="tick"):
    """A price for a symbol; ``seq`` is the feed's durable sequence number."""

    seq: int
    symbol: str
    price: float


class Ticks(msgspec.Struct, frozen=True):
    """Feed -> risk: the ticks of one step of the feed, in seq order (risk keeps only the
    latest price per symbol, so it takes them in one message rather than one each)."""

    ticks: tuple[Tick, ...]


class OrderIntent(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What a strategy wants done; the intent log's payload. ``client_order_id`` is
    derived from (strategy_id, signal_seq), so a redelivered signal is the same intent.
    Not tracked by the garbage collector (gc=False: its fields cannot form a cycle), so the
    log's many intents cost a full collection nothing."""

    client_order_id: str
    strategy_id: str
    signal_seq: int
    symbol: str
    side: Side
    qty: int
    price: float


class ProposeOrder(msgspec.Struct, frozen=True):
    """Strategy -> risk: please place this; the answer (OrderAck) goes to ``reply_to``.
    ``ttl``: the intent's time-to-live from when it is recorded (s; None: the log's default);
    a proposal held while the backlog was full passes what is left of it."""

    intent: OrderIntent
    reply_to: ActorRef
    ttl: float | None = None


class RecordIntent(msgspec.Struct, frozen=True):
    """Risk -> intents: record this approved intent durably (with its ``ttl``, as proposed),
    then answer ``reply_to``."""

    intent: OrderIntent
    reply_to: ActorRef
    ttl: float | None = None


class BacklogFull(msgspec.Struct, frozen=True):
    """Intents -> the proposing strategy, and risk: these approved intents were NOT recorded,
    because ``count`` intents are unsettled (``max_unsettled`` is ``bound``). Nothing of them
    is durable; the strategy applies its backlog policy (drop, conflate, wait), risk takes
    their exposure back."""

    intents: tuple[OrderIntent, ...]
    count: int
    bound: int


class OrderAck(msgspec.Struct, frozen=True):
    """The answer to a ProposeOrder: recorded durably (accepted) or refused, with why."""

    client_order_id: str
    accepted: bool
    reason: str = ""


class OrdersRecorded(msgspec.Struct, frozen=True):
    """Intents -> strategy: these proposals of yours are durable intents; their acceptance, one
    notice per durable write (the refusals come from risk, one OrderAck each)."""

    client_order_ids: tuple[str, ...]


class IntentReady(msgspec.Struct, frozen=True):
    """Intents -> executor: these intents are durable and may be sent (one notice per write)."""

    intents: tuple[OrderIntent, ...]


class GetIntentLog(msgspec.Struct, frozen=True):
    """Executor -> intents (ask): the log this incarnation of intents owns."""


class Submit(msgspec.Struct, frozen=True):
    """Executor -> gateway: send these orders to the broker (a batch whose SENDING marks are
    durable), each if the node clock has not passed ``not_after`` when its frame would be
    written (several nodes: the end of this executor's lease on the intents; past it another
    executor may have taken them over)."""

    intents: tuple[OrderIntent, ...]
    not_after: float = math.inf


class Lookup(msgspec.Struct, frozen=True):
    """Executor -> gateway: ask the broker for this client order id."""

    client_order_id: str


class SubscribeFills(msgspec.Struct, frozen=True):
    """Positions -> gateway: connect the fill feed, replaying fills after ``after``. Every
    ``Fills`` sent for this subscription carries its ``subscription`` number, so that the
    subscriber can tell them from fills read for an earlier one (see ``Fills``)."""

    after: int
    to: ActorRef
    subscription: int = 0


class BrokerInfo(msgspec.Struct, frozen=True):
    """Gateway -> executor: what the broker said in Welcome."""

    lookup_lag_seconds: float
    dedupe: str


class GetBrokerInfo(msgspec.Struct, frozen=True):
    """Executor -> gateway (ask): the broker's Welcome facts, or None before Welcome."""


class ConnectionLost(msgspec.Struct, frozen=True):
    """Gateway -> executor: the broker connection is gone and a reconnect is under way; look-ups
    wait for the next BrokerInfo (the Welcome) instead of piling up."""

    reason: str


class LastFillTaken(msgspec.Struct, frozen=True):
    """Gateway -> the fill subscriber (ask): the ``fill_seq`` of the last fill it has taken (applied
    or about to be; quarantined ones do not count). The next Hello asks for the fills after it."""


class BrokerReplies(msgspec.Struct, frozen=True):
    """Gateway -> executor: the broker's answers to orders and look-ups read in one go, in the
    order they arrived (one message for many: a busy node gets hundreds per read)."""

    replies: list[OrderAccepted | OrderRejected | OrderStatus]


class Fills(msgspec.Struct, frozen=True):
    """Gateway -> positions: the fills read in one go, in the order they arrived, for the
    subscription numbered ``subscription``. A restarted positions subscribes again with a new
    number, and until the gateway has handled that, it still forwards what the connection of the
    old subscription reads: fills after a gap (the lost ones come in the replay the new
    subscription asks for, which a fill taken past the gap would make positions drop as old). The
    number is how positions drops those instead."""

    fills: list[Fill]
    subscription: int = 0


class OrderClosed(msgspec.Struct, frozen=True):
    """Gateway -> executor: the venue closed a live order without filling the rest of it (a FIX
    ExecutionReport with ExecType Canceled or Expired): DONE, the fills before it stand."""

    client_order_id: str
    reason: str


class OrdersExpired(msgspec.Struct, frozen=True):
    """Gateway -> executor: order messages the venue asked for again and the FIX session gap-filled
    instead, being older than ``fix_resend_max_age``. The venue asked for them because it never
    got them, and they will never reach it: EXPIRED, never sent again."""

    client_order_ids: tuple[str, ...]
    reason: str


class OrdersDone(msgspec.Struct, frozen=True):
    """Positions -> executor: the orders that one durable write of fills finished."""

    client_order_ids: list[str]


class CheckLiveOrders(msgspec.Struct, frozen=True):
    """Positions -> executor, on every (re)start: an OrdersDone may have died with the last
    incarnation (its fill durable, the notice not sent); look up every ACKED order."""


class Snapshot(msgspec.Struct, frozen=True):
    """Ask any node actor for its counters (the live view and the summary read them)."""
