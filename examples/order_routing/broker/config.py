"""What a broker simulator is asked to be: its venue behaviour and its faults."""

from __future__ import annotations

import argparse
import enum
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DedupeMode(enum.Enum):
    """How the venue treats a reused ``client_order_id`` (per client), as real venues differ.

    ``ALWAYS``: any id it has ever accepted from that client is refused (FIX within the day).
    ``WHILE_OPEN``: refused only while the earlier order is still open; once it is filled
    or cancelled a new order with the same id is accepted (Binance, Kraken).
    ``NONE``: never refused (legacy Coinbase).
    """

    ALWAYS = "always"
    WHILE_OPEN = "while-open"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Everything a BrokerServer needs; validated on construction, naming the bad field and value."""

    store_path: Path
    host: str = "127.0.0.1"
    port: int = 0
    broker_id: str = "sim-broker"
    latency_ms: float = 1.0
    """Delay before every request reply (accepts, rejects, statuses, cancels)."""
    reject_rate: float = 0.0
    """Share of valid, non-duplicate orders refused with ``simulated venue reject``."""
    drop_reply_rate: float = 0.0
    """Share of accepted orders whose OrderAccepted is never sent (the dead zone)."""
    reset_rate: float = 0.0
    """Share of NewOrders after which the connection is reset, half before and half after recording."""
    garbage_rate: float = 0.0
    """Share of replies the venue sends a frame that does not decode before (random bytes, an
    unknown tag, a field of the wrong type, in turn): a hostile or broken venue."""
    ghost_fill_rate: float = 0.0
    """Share of fills after which the venue also sends a ghost: a fill, with the same fill_seq,
    for a client order id the client never sent (stored nowhere: the venue's own bug)."""
    lookup_lag: float = 0.2
    """Seconds an accepted order stays invisible to QueryOrder."""
    dedupe: DedupeMode = DedupeMode.ALWAYS
    partial_fills: bool = False
    """Fill each order in 1-3 fills instead of one."""
    fill_delay_ms: float = 5.0
    """Delay from the accept (and between partial fills) to each fill."""
    seed: int | None = None
    venue: str = "native"
    """The protocol clients speak: ``native`` (msgpack frames) or ``fix`` (a FIX 4.4 acceptor)."""
    fix_comp_id: str = "SIMBROKER"
    """The acceptor's CompID: its SenderCompID (49), the TargetCompID clients log on to."""
    fix_gap_rate: float = 0.0
    """Share of outbound application messages that get their MsgSeqNum and are never written: the
    client sees a gap and asks for them again (ResendRequest)."""
    fix_duplicate_rate: float = 0.0
    """Share of outbound application messages written twice, the copy as a PossDup resend."""
    fix_reject_status_requests: bool = False
    """Answer every OrderStatusRequest (35=H) with a BusinessMessageReject (35=j): a venue without
    order look-ups."""

    def __post_init__(self) -> None:
        if not isinstance(self.store_path, Path):
            object.__setattr__(self, "store_path", Path(self.store_path))
        if isinstance(self.dedupe, str):
            object.__setattr__(self, "dedupe", _dedupe_mode(self.dedupe))
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if not self.broker_id:
            raise ValueError("broker_id must not be empty")
        for name in ("latency_ms", "lookup_lag", "fill_delay_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.venue not in ("native", "fix"):
            raise ValueError(f"venue must be 'native' or 'fix', got {self.venue!r}")
        if not self.fix_comp_id or "\x01" in self.fix_comp_id or "=" in self.fix_comp_id:
            raise ValueError(
                f"fix_comp_id must be a non-empty CompID without '=' or SOH, got {self.fix_comp_id!r}"
            )
        rates = ("reject_rate", "drop_reply_rate", "reset_rate", "garbage_rate", "ghost_fill_rate")
        for name in (*rates, "fix_gap_rate", "fix_duplicate_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def _dedupe_mode(name: str) -> DedupeMode:
    try:
        return DedupeMode(name)
    except ValueError:
        choices = ", ".join(mode.value for mode in DedupeMode)
        raise ValueError(f"dedupe must be one of {choices}, got {name!r}") from None


VENUE_OPTIONS: dict[str, dict[str, Any]] = {
    "--latency-ms": {"type": float, "default": 1.0, "help": "delay before each reply (ms)"},
    "--reject-rate": {"type": float, "default": 0.0, "help": "share of orders the venue rejects"},
    "--drop-reply-rate": {
        "type": float,
        "default": 0.0,
        "help": "share of accepted orders whose OrderAccepted is never sent (the dead zone)",
    },
    "--reset-rate": {
        "type": float,
        "default": 0.0,
        "help": "share of NewOrders after which the connection is reset",
    },
    "--garbage-rate": {
        "type": float,
        "default": 0.0,
        "help": "share of replies preceded by a frame that does not decode (a broken venue)",
    },
    "--ghost-fill-rate": {
        "type": float,
        "default": 0.0,
        "help": "share of fills followed by a fill for an order the client never sent",
    },
    "--lookup-lag": {
        "type": float,
        "default": 0.2,
        "help": "seconds an accepted order stays invisible to QueryOrder",
    },
    "--dedupe": {
        "choices": [mode.value for mode in DedupeMode],
        "help": "how the venue treats a reused client order id: refused always, only while the first "
        "order is open, or never (default: %(default)s)",
    },
    "--partial-fills": {"action": "store_true", "help": "fill each order in 1-3 fills"},
    "--venue": {
        "choices": ["native", "fix"],
        "default": "native",
        "help": "the protocol: the example's msgpack frames, or FIX 4.4 (default: %(default)s)",
    },
    "--fix-gap-rate": {
        "type": float,
        "default": 0.0,
        "help": "FIX: share of messages numbered and never written (the client asks for them again)",
    },
    "--fix-duplicate-rate": {
        "type": float,
        "default": 0.0,
        "help": "FIX: share of messages written twice, the copy as a PossDup resend",
    },
    "--fix-reject-status-requests": {
        "action": "store_true",
        "help": "FIX: answer every OrderStatusRequest (35=H) with a BusinessMessageReject (35=j)",
    },
    "--fill-delay-ms": {
        "type": float,
        "default": 5.0,
        "help": "delay from the accept (and between partial fills) to each fill (ms)",
    },
}
"""The options of the venue's behaviour and faults (BrokerConfig's), by flag: declared once, for
the broker's command line (``__main__``) and for those that start the broker with them (the
example's harness)."""


def venue_arguments(parser: argparse.ArgumentParser, *, title: str, dedupe: DedupeMode) -> None:
    """Add VENUE_OPTIONS to ``parser`` as a group named ``title``, the dedupe mode defaulting to
    ``dedupe``."""
    group = parser.add_argument_group(title)
    for flag, spec in VENUE_OPTIONS.items():
        group.add_argument(flag, **spec)
    parser.set_defaults(dedupe=dedupe.value)


def venue_argv(args: argparse.Namespace) -> list[str]:
    """The VENUE_OPTIONS values in ``args`` (parsed with ``venue_arguments``), as the broker's
    command line takes them."""
    argv = []
    for flag, spec in VENUE_OPTIONS.items():
        value = getattr(args, flag.removeprefix("--").replace("-", "_"))
        if spec.get("action") == "store_true":
            argv += [flag] if value else []
        else:
            argv += [flag, str(value)]
    return argv
