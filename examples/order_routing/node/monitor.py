"""The journal owner's watch: the node owns the journal; this actor reports on it."""

from __future__ import annotations

from typing import Any

import msgspec

from examples.order_routing.node.messages import Snapshot
from garrison import Actor


class _Report(msgspec.Struct, frozen=True):
    pass


class JournalMonitor(Actor):
    """Logs the journal's group-commit figures every few seconds (appends per commit)."""

    EVERY = 5.0

    async def on_start(self) -> None:
        self.ctx.send_later(self.EVERY, _Report())

    async def on_receive(self, message: Any) -> Any:
        journal = self.ctx.node.journal
        stats = journal.stats() if journal is not None and hasattr(journal, "stats") else {}
        match message:
            case _Report():
                if stats:
                    self.ctx.logger.info(
                        "journal: {appends} appends in {commits} commits",
                        appends=stats["appends"],
                        commits=stats["commits"],
                    )
                self.ctx.send_later(self.EVERY, _Report())
            case Snapshot():
                return {key: stats[key] for key in ("appends", "commits") if key in stats}
            case _:
                self.ctx.unhandled(message)
        return None
