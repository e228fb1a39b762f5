"""Changing a SQLite journal's rows behind its back, the way tests need to.

``rechain`` recomputes a stream's chained checksums after a test changed its
payloads: the file then looks as if the changed events had been written so by
the journal itself (an event that was valid when written and no longer decodes,
say), so a test can reach the decoding layer past the checksum check.
"""

from __future__ import annotations

import sqlite3
import zlib

from garrison.persistence._checksum import snapshot_checksum, stored_bytes


def rechain(db: sqlite3.Connection, stream: str) -> None:
    """Give every event of ``stream`` the chained checksum of the payloads as they are now."""
    row = db.execute("SELECT crc FROM deletions WHERE stream = ?", (stream,)).fetchone()
    previous = row[0] if row else 0
    rows = db.execute(
        "SELECT position, payload FROM events WHERE stream = ? ORDER BY seq", (stream,)
    ).fetchall()
    for position, payload in rows:
        previous = zlib.crc32(stored_bytes(payload), previous)
        db.execute("UPDATE events SET crc = ? WHERE position = ?", (previous, position))


def resum_snapshot(db: sqlite3.Connection, stream: str) -> None:
    """Give ``stream``'s snapshot the checksum of its state as it is now."""
    seq, state = db.execute("SELECT seq, state FROM snapshots WHERE stream = ?", (stream,)).fetchone()
    db.execute("UPDATE snapshots SET crc = ? WHERE stream = ?", (snapshot_checksum(seq, state), stream))
