"""Intents: record each approved order durably before anything irreversible happens."""

from __future__ import annotations

import asyncio
from typing import Any

from examples.order_routing.node.delivery import offer
from examples.order_routing.node.messages import (
    GetIntentLog,
    IntentReady,
    OrderAck,
    OrderIntent,
    RecordIntent,
    Snapshot,
)
from garrison import Actor, ActorNotFound, ActorRef, MailboxConfig
from garrison.persistence import Intent, IntentLog, IntentLogBroken

INTENTS_STREAM = "intents"


class Intents(Actor):
    """Owns the intent log (an event-sourced log of OrderIntents).

    Contract: a RecordIntent is acknowledged to the strategy only after the
    intent is durable; recording the same client_order_id again writes
    nothing and acknowledges again. Messages queued together are recorded in
    one journal append (it records without waiting while more messages wait,
    then waits once). On every (re)start it reopens the log from the journal.
    """

    heartbeat_timeout = 5.0

    mailbox = MailboxConfig(capacity=8192)

    async def on_start(self) -> None:
        journal = self.ctx.node.journal
        assert journal is not None
        self.log: IntentLog[OrderIntent] = await IntentLog(journal, INTENTS_STREAM, OrderIntent).open()
        self.waiting: list[tuple[asyncio.Future[Intent[OrderIntent]], RecordIntent]] = []
        self.recorded = 0
        self.duplicates = 0

    async def on_receive(self, message: Any) -> Any:
        answer: Any = None
        match message:
            case RecordIntent(intent=intent):
                if intent.client_order_id in self.log:
                    self.duplicates += 1
                self.waiting.append((self.log.record_nowait(intent.client_order_id, intent), message))
                if len(self.waiting) >= 4096:
                    await self.flush()
            case GetIntentLog():
                if _broken(self.log):
                    # A write of the shared log (the executor's SENDING mark) was not confirmed:
                    # read back what is durable, or the asker (a restarting executor) cannot start.
                    await self.log.open()
                answer = self.log
            case Snapshot():
                answer = {"recorded": self.recorded, "duplicates": self.duplicates, "intents": len(self.log)}
            case _:
                self.ctx.unhandled(message)
        # Whatever the last message of a burst was, the records before it are acknowledged now.
        if self.waiting and self.ctx.queued == 0:
            await self.flush()
        return answer

    async def flush(self) -> None:
        waiting, self.waiting = self.waiting, []
        await asyncio.gather(*(future for future, _ in waiting))
        try:
            executor: ActorRef | None = self.ctx.node.lookup("/root/execution/executor")
        except ActorNotFound:
            executor = None  # starting: it finds recorded intents in the log itself
        for future, request in waiting:
            intent = future.result().payload
            self.recorded += 1
            offer(request.reply_to, OrderAck(intent.client_order_id, True))
            if executor is not None:
                offer(executor, IntentReady(intent))


def _broken(log: IntentLog[OrderIntent]) -> bool:
    try:
        log.get("")  # every query raises once a write could not be confirmed
    except IntentLogBroken:
        return True
    return False
