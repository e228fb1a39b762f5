"""Everything the node can be told, validated once: the ``[order_routing]`` section of the
node's settings (``garrison run --config node.toml``, ``GARRISON_ORDER_ROUTING_<KEY>``)."""

from __future__ import annotations

import datetime
import math
import zoneinfo

import msgspec

VENUES = ("native", "fix")
"""The protocols the gateway speaks to its venue: the example's own (msgpack frames) or FIX 4.4."""
FIX_RESET_POLICIES = ("daily", "never")
"""``daily``: ResetSeqNumFlag on the first logon after each session start; ``never``: never by the node."""
FIX_BEGIN_STRINGS = ("FIX.4.4", "FIX.4.2")
BACKLOG_POLICIES = ("drop", "conflate", "wait")
"""What a strategy does with a proposal intents refused because the backlog is full
(``max_unsettled``): drop it, keep only the latest per symbol and propose it again once
there is room, or hold it (in order) for at most ``backlog_wait`` seconds."""


class NodeConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Settings of one order-routing node; every actor gets it. ``garrison run`` reads it as
    the ``[order_routing]`` section (node/entry.py); the journal is garrison's own setting
    (``[journal] url``, a secret), not one of these."""

    name: str = "router-1"
    """The account the gateway logs in to the broker as."""
    broker_host: str = "127.0.0.1"
    broker_port: int = 0
    symbols: tuple[str, ...] = ("ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI", "STARK")
    strategies: tuple[str, ...] = ("momentum", "mean-revert")
    seed: int = 7
    tick_rate: float = 200.0
    """Ticks per second across all symbols at the steady rate."""
    burst_factor: float = 10.0
    """The market-open burst multiplies the tick rate by this."""
    burst_start: float = 3.0
    burst_seconds: float = 4.0
    tick_period: float = 0.01
    """The feed generates ticks in batches this often (seconds)."""
    order_qty: int = 10
    max_order_qty: int = 1_000
    max_position: int = 1_000_000
    max_notional: float = 1e12
    price_band: float = 0.05
    """Orders priced further than this fraction from the last tick are refused."""
    ack_timeout: float = 2.0
    """A sent order with no answer after this long is UNKNOWN and looked up."""
    lookup_margin: float = 0.5
    """Added to the broker's lookup lag before a 'not found' is trusted."""
    lookup_retry: float = 0.25
    """First wait before an in-doubt order is asked about again; doubles per unanswered ask."""
    lookup_retry_max: float = 5.0
    """The longest wait between two look-ups of one order (its backoff's cap)."""
    lookup_timeout: float = 2.0
    """A look-up with no answer after this long is counted (and logged) as timed out."""
    max_lookups_per_second: float = 500.0
    """Look-ups of all orders together never go out faster than this (the rest wait their turn)."""
    connect_timeout: float = 5.0
    """Opening the TCP connection to the broker: longer is a failed attempt."""
    handshake_timeout: float = 5.0
    """From Hello to the broker's Welcome: longer is a failed attempt (a peer that never answers)."""
    silence_timeout: float = 10.0
    """A connection on which nothing has been read for this long while a request awaits its answer
    is dead (a silent peer): the gateway drops it and reconnects."""
    reconnect_initial: float = 0.05
    """The gateway's first wait before reconnecting; doubles per failed attempt, with jitter."""
    reconnect_max: float = 2.0
    """The longest wait between two connection attempts."""
    max_handshake_failures: int = 20
    """Consecutive attempts that never reach Welcome before the gateway gives up and crashes
    (its supervisor then restarts the execution group): a broker that stays unreachable is
    an outage to report, not a blip to ride out."""
    max_unsettled: int = 4_096
    """Intents recorded and not settled yet (DONE, REJECTED, EXPIRED), at most: beyond it intents
    refuses a proposal as "backlog full" and the strategy applies its ``backlog_policy``. The
    backlog, and what a restart must reconcile, never grows past it."""
    send_window: int = 1_024
    """Intents in SENDING or UNKNOWN (the dead zone), at most: the executor sends more only as
    earlier ones settle, so a crash leaves at most this many to look up."""
    intent_ttl: float = 10.0
    """Seconds an intent may wait to be sent (a signal-driven order that is late is a wrong
    order): past it, one never sent is EXPIRED, one in doubt is looked up and EXPIRED if the
    broker never had it. ``strategy_ttl`` overrides it per strategy."""
    strategy_ttl: tuple[str, ...] = ()
    """Per strategy, ``"name=seconds"``: its intents' time-to-live (default: ``intent_ttl``)."""
    backlog_policy: str = "conflate"
    """What a strategy does when the backlog is full (one of BACKLOG_POLICIES);
    ``strategy_backlog_policy`` overrides it per strategy."""
    strategy_backlog_policy: tuple[str, ...] = ()
    """Per strategy, ``"name=policy"`` (drop, conflate, wait)."""
    backlog_wait: float = 1.0
    """The ``wait`` policy: the longest a refused proposal is held and proposed again (s)."""
    backlog_retry: float = 0.05
    """How soon a strategy proposes a held (conflated or waiting) proposal again (s)."""
    max_held: int = 256
    """The ``wait`` policy: proposals held at most per strategy (the oldest is dropped first)."""
    feed: bool = True
    """False: no new ticks, the node only finishes what is pending (a chaos run's settle phase)."""
    role: str = "single"
    """``single``: one node does everything (its executor sends every intent it records).
    Several nodes on one Redis journal (node/shared_work.py): ``full`` runs everything and owns
    positions; ``executor`` runs only a gateway and an executor. Every executor of either role
    takes its share of the recorded intents from one consumer group."""
    member: str = ""
    """Several nodes: this executor's consumer name in the group (stable across restarts)."""
    claim_idle: float = 2.0
    """Several nodes: an executor silent this long (s) loses its unfinished intents to another."""
    venue: str = "native"
    """What the gateway speaks at ``broker_host:broker_port``: ``native`` (the example's msgpack
    protocol) or ``fix`` (a FIX 4.4 initiator session: the fix_* settings below)."""
    fix_sender_comp_id: str = "ROUTER1"
    """SenderCompID (49) of the node's FIX session."""
    fix_target_comp_id: str = "SIMBROKER"
    """TargetCompID (56): the venue's CompID."""
    fix_begin_string: str = "FIX.4.4"
    """BeginString (8): ``FIX.4.4``, or ``FIX.4.2`` for a venue that needs it."""
    fix_heartbeat_interval: int = 30
    """HeartBtInt (108) in the Logon, seconds."""
    fix_session_start: str = "00:00"
    """When each session day begins (HH:MM, in fix_session_timezone): the first logon after it
    resets sequence numbers when fix_reset_policy is ``daily``; a crash restart never does."""
    fix_session_timezone: str = "UTC"
    """The IANA time zone of fix_session_start (``America/New_York``)."""
    fix_reset_policy: str = "daily"
    """``daily`` (ResetSeqNumFlag at the session start) or ``never`` (the venue resets them)."""
    fix_resend_max_age: float = 60.0
    """An order message older than this (s) is gap-filled instead of re-sent when the venue asks
    for it again, and its intent settles as EXPIRED: never sent late, never sent blind."""
    fix_lookup_lag: float = 0.2
    """How long an accepted order may stay invisible to the venue's OrderStatusRequest (35=H): a
    "not found" is trusted only this long (plus lookup_margin) after the send could have happened."""

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("symbols: give at least one symbol")
        if not self.strategies:
            raise ValueError("strategies: give at least one strategy")
        if self.role not in ("single", "full", "executor"):
            raise ValueError(f"role={self.role!r}: must be 'single', 'full' or 'executor'")
        if self.role != "single" and not self.member:
            raise ValueError(f"member: a {self.role} node needs its consumer name in the executors' group")
        fields = (
            "tick_rate", "burst_factor", "tick_period", "ack_timeout", "lookup_retry", "claim_idle",
            "lookup_retry_max", "lookup_timeout", "max_lookups_per_second", "connect_timeout",
            "handshake_timeout", "silence_timeout", "reconnect_initial", "reconnect_max",
            "intent_ttl", "backlog_wait", "backlog_retry",
        )  # fmt: skip
        for field in fields:
            value = getattr(self, field)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{field}={value!r}: must be a finite number > 0")
        if self.lookup_retry_max < self.lookup_retry:
            raise ValueError(
                f"lookup_retry_max={self.lookup_retry_max!r}: must be >= lookup_retry={self.lookup_retry!r}"
            )
        if self.reconnect_max < self.reconnect_initial:
            raise ValueError(
                f"reconnect_max={self.reconnect_max!r}: "
                f"must be >= reconnect_initial={self.reconnect_initial!r}"
            )
        for field in ("max_unsettled", "send_window", "max_held"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field}={getattr(self, field)!r}: must be >= 1")
        if self.send_window > self.max_unsettled:
            raise ValueError(
                f"send_window={self.send_window}: must be <= max_unsettled={self.max_unsettled} "
                "(an intent in doubt is unsettled too)"
            )
        if self.backlog_policy not in BACKLOG_POLICIES:
            raise ValueError(
                f"backlog_policy={self.backlog_policy!r}: must be one of {', '.join(BACKLOG_POLICIES)}"
            )
        for name, policy in _pairs("strategy_backlog_policy", self.strategy_backlog_policy).items():
            if policy not in BACKLOG_POLICIES:
                choices = ", ".join(BACKLOG_POLICIES)
                raise ValueError(f"strategy_backlog_policy: {name}={policy!r}: must be one of {choices}")
        for name, text in _pairs("strategy_ttl", self.strategy_ttl).items():
            ttl = _seconds(text)
            if ttl is None or not math.isfinite(ttl) or ttl <= 0:
                raise ValueError(f"strategy_ttl: {name}={text!r}: must be a finite number of seconds > 0")
        if self.max_handshake_failures < 1:
            raise ValueError(f"max_handshake_failures={self.max_handshake_failures}: must be >= 1")
        self.check_fix()
        if self.order_qty <= 0 or self.order_qty > self.max_order_qty:
            raise ValueError(f"order_qty={self.order_qty}: must be in 1..max_order_qty={self.max_order_qty}")

    def check_fix(self) -> None:
        """The venue and FIX settings, each error naming the field, the value and what to give."""
        if self.venue not in VENUES:
            raise ValueError(f"venue={self.venue!r}: must be one of {', '.join(VENUES)}")
        if self.venue == "fix" and self.role != "single":
            raise ValueError(
                f"role={self.role!r} with venue='fix': the FIX gateway runs on a single node; "
                "use role='single'"
            )
        for field in ("fix_sender_comp_id", "fix_target_comp_id"):
            value = getattr(self, field)
            if not value or any(c in value for c in "\x01=") or not value.isprintable():
                raise ValueError(f"{field}={value!r}: give a non-empty printable CompID without '=' or SOH")
        if self.fix_begin_string not in FIX_BEGIN_STRINGS:
            raise ValueError(
                f"fix_begin_string={self.fix_begin_string!r}: must be one of {', '.join(FIX_BEGIN_STRINGS)}"
            )
        if not 1 <= self.fix_heartbeat_interval <= 3600:
            raise ValueError(f"fix_heartbeat_interval={self.fix_heartbeat_interval}: give seconds in 1..3600")
        try:
            datetime.time.fromisoformat(self.fix_session_start)
        except ValueError:
            raise ValueError(
                f"fix_session_start={self.fix_session_start!r}: give a time of day as HH:MM (e.g. '17:00')"
            ) from None
        try:
            zoneinfo.ZoneInfo(self.fix_session_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"fix_session_timezone={self.fix_session_timezone!r}: give an IANA time zone "
                "(e.g. 'UTC', 'America/New_York')"
            ) from None
        if self.fix_reset_policy not in FIX_RESET_POLICIES:
            raise ValueError(
                f"fix_reset_policy={self.fix_reset_policy!r}: must be one of {', '.join(FIX_RESET_POLICIES)}"
            )
        for field in ("fix_resend_max_age", "fix_lookup_lag"):
            value = getattr(self, field)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{field}={value!r}: must be a finite number >= 0 (seconds)")

    def ttl_of(self, strategy: str) -> float:
        """The time-to-live of ``strategy``'s intents (s): its ``strategy_ttl``, else ``intent_ttl``."""
        text = _pairs("strategy_ttl", self.strategy_ttl).get(strategy)
        ttl = None if text is None else _seconds(text)
        return self.intent_ttl if ttl is None else ttl

    def policy_of(self, strategy: str) -> str:
        """What ``strategy`` does when the backlog is full: its ``strategy_backlog_policy``, else
        ``backlog_policy``."""
        return _pairs("strategy_backlog_policy", self.strategy_backlog_policy).get(
            strategy, self.backlog_policy
        )


def _pairs(field: str, entries: tuple[str, ...]) -> dict[str, str]:
    """``("a=1", "b=2")`` as ``{"a": "1", "b": "2"}``; ValueError naming ``field`` for an entry
    without ``=`` or a name given twice."""
    pairs: dict[str, str] = {}
    for entry in entries:
        name, equals, value = entry.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name or not value:
            raise ValueError(f"{field}: {entry!r}: must be 'strategy=value', e.g. 'momentum=5'")
        if name in pairs:
            raise ValueError(f"{field}: {name!r} is given twice")
        pairs[name] = value
    return pairs


def _seconds(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
