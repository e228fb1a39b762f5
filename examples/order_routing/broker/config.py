"""What a broker simulator is asked to be: its venue behaviour and its faults."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from pathlib import Path


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
    lookup_lag: float = 0.2
    """Seconds an accepted order stays invisible to QueryOrder."""
    dedupe: DedupeMode = DedupeMode.ALWAYS
    partial_fills: bool = False
    """Fill each order in 1-3 fills instead of one."""
    fill_delay_ms: float = 5.0
    """Delay from the accept (and between partial fills) to each fill."""
    seed: int | None = None

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
        for name in ("reject_rate", "drop_reply_rate", "reset_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def _dedupe_mode(name: str) -> DedupeMode:
    try:
        return DedupeMode(name)
    except ValueError:
        choices = ", ".join(mode.value for mode in DedupeMode)
        raise ValueError(f"dedupe must be one of {choices}, got {name!r}") from None
