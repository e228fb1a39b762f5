"""The broker simulator: a venue that behaves like real ones, faults included.

Run it as a process (``python -m examples.order_routing.broker --port 0
--store PATH``; see ``__main__``) or in-process::

    async with BrokerServer(BrokerConfig(store_path=path, dedupe=DedupeMode.WHILE_OPEN)) as broker:
        ...  # connect to 127.0.0.1:broker.port

It speaks ``examples.order_routing.protocol``. Its store (``store.py``) is the
ground truth of a chaos run: ``load_orders``, ``load_fills`` and
``duplicates`` read it without a running broker.
"""

from __future__ import annotations

from .config import BrokerConfig, DedupeMode, venue_arguments, venue_argv
from .server import BrokerServer
from .store import DuplicateOrder, StoredFill, StoredOrder, duplicates, load_fills, load_orders
from .venue import BrokerStats

__all__ = [
    "BrokerConfig",
    "BrokerServer",
    "BrokerStats",
    "DedupeMode",
    "DuplicateOrder",
    "StoredFill",
    "StoredOrder",
    "duplicates",
    "load_fills",
    "load_orders",
    "venue_arguments",
    "venue_argv",
]
