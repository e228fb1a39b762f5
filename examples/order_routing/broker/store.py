"""The broker's durable record: every order it accepted and every fill it sent.

It is the ground truth of a chaos run: what the venue really holds, whatever
the node believes. The server writes it through ``BrokerStore`` (one blocking
SQLite connection, driven from one thread, one transaction per group commit);
verdict code reads it with ``load_orders``, ``load_fills`` and ``duplicates``,
with or without a broker running on the file.

SQLite runs in WAL mode with ``synchronous=FULL``: a batch the server saw
committed survives a kill of the process and a crash of the OS.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from ..protocol import Fill, OrderState, Side

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id        TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL,
    qty             INTEGER NOT NULL,
    price           REAL NOT NULL,
    state           TEXT NOT NULL,
    filled_qty      INTEGER NOT NULL,
    accepted_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_client_order_id ON orders (client_id, client_order_id);
CREATE TABLE IF NOT EXISTS fills (
    fill_seq        INTEGER PRIMARY KEY,
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    client_id       TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL,
    qty             INTEGER NOT NULL,
    price           REAL NOT NULL,
    leaves_qty      INTEGER NOT NULL,
    filled_at       REAL NOT NULL
);
"""


class StoredOrder(msgspec.Struct, frozen=True, array_like=True):
    """An order as the broker recorded it: one row of ``orders``, a column per field. The
    venue's live order (``venue.Order``) is one too, changed in place as it fills."""

    order_id: str
    client_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: int
    price: float
    state: OrderState
    filled_qty: int
    accepted_at: float
    """Wall-clock time (``time.time()``) the order was accepted."""


class StoredFill(Fill, tag=False):
    """A fill as the broker recorded it: one row of ``fills``, a column per field. The fill the
    client was sent (``as_sent``), and whose it was and when."""

    client_id: str
    filled_at: float
    """Wall-clock time (``time.time()``) the fill was made."""

    def as_sent(self) -> Fill:
        """The fill as the client is sent it."""
        return Fill(*msgspec.structs.astuple(self)[:_SENT_FIELDS])


_SENT_FIELDS = len(Fill.__struct_fields__)
_ORDER_WIDTH = len(StoredOrder.__struct_fields__)
_ORDER_COLUMNS = ", ".join(StoredOrder.__struct_fields__)
_FILL_COLUMNS = ", ".join(StoredFill.__struct_fields__)


def order_row(order: StoredOrder) -> tuple[object, ...]:
    """``order`` as a row of ``orders``: its StoredOrder fields, in order (a ``venue.Order``
    has more after them)."""
    return msgspec.structs.astuple(order)[:_ORDER_WIDTH]


def fill_row(fill: Fill, client_id: str, filled_at: float) -> tuple[object, ...]:
    """``fill``, sent to ``client_id`` at ``filled_at``, as a row of ``fills`` (a StoredFill's
    fields, in order)."""
    return (*msgspec.structs.astuple(fill), client_id, filled_at)


class DuplicateOrder(msgspec.Struct, frozen=True):
    """A client order id the broker accepted more than once: each time is a separate order."""

    client_id: str
    client_order_id: str
    times_accepted: int


@dataclass(slots=True)
class WriteBatch:
    """Rows to commit in one transaction: new orders first, then fills, then order state changes."""

    new_orders: list[tuple[object, ...]] = field(default_factory=list)
    fills: list[tuple[object, ...]] = field(default_factory=list)
    order_updates: list[tuple[OrderState, int, str]] = field(default_factory=list)
    """(state, filled_qty, order_id), applied in order: the last one for an order wins."""

    def __bool__(self) -> bool:
        return bool(self.new_orders or self.fills or self.order_updates)


class BrokerStore:
    """The blocking SQLite side of the broker; every method must run on the same single thread."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def load(self) -> tuple[list[StoredOrder], list[StoredFill]]:
        """Everything recorded so far, orders in acceptance order and fills in fill_seq order."""
        return _orders(self._db), _fills(self._db)

    def write(self, batch: WriteBatch) -> None:
        """Commit the batch in one transaction (all of it or none of it); returns once it is durable."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if batch.new_orders:
                db.executemany(
                    f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", batch.new_orders
                )
            if batch.fills:
                db.executemany(
                    f"INSERT INTO fills ({_FILL_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", batch.fills
                )
            if batch.order_updates:
                db.executemany(
                    "UPDATE orders SET state = ?, filled_qty = ? WHERE order_id = ?", batch.order_updates
                )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


def load_orders(path: Path | str) -> list[StoredOrder]:
    """Every order the broker at ``path`` accepted, in acceptance order."""
    with _reader(path) as db:
        return _orders(db)


def load_fills(path: Path | str) -> list[StoredFill]:
    """Every fill the broker at ``path`` recorded (and so sent or will send), in fill_seq order."""
    with _reader(path) as db:
        return _fills(db)


def duplicates(path: Path | str) -> list[DuplicateOrder]:
    """Client order ids accepted more than once by the broker at ``path`` (a correct node makes none)."""
    with _reader(path) as db:
        rows = db.execute(
            "SELECT client_id, client_order_id, COUNT(*) FROM orders"
            " GROUP BY client_id, client_order_id HAVING COUNT(*) > 1 ORDER BY client_id, client_order_id"
        ).fetchall()
    return [DuplicateOrder(client_id, client_order_id, count) for client_id, client_order_id, count in rows]


@contextmanager
def _reader(path: Path | str) -> Iterator[sqlite3.Connection]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no broker store at {path}")
    # mode=rw, not ro: after a kill the WAL may need recovering, which a read-only handle cannot do.
    with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True)) as db:
        yield db


def _orders(db: sqlite3.Connection) -> list[StoredOrder]:
    rows = db.execute(f"SELECT {_ORDER_COLUMNS} FROM orders ORDER BY rowid").fetchall()
    return msgspec.convert(rows, list[StoredOrder])


def _fills(db: sqlite3.Connection) -> list[StoredFill]:
    rows = db.execute(f"SELECT {_FILL_COLUMNS} FROM fills ORDER BY fill_seq").fetchall()
    return msgspec.convert(rows, list[StoredFill])
