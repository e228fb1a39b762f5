"""Small actors the kit's tests drive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from garrison import Actor, ActorRef
from garrison.persistence import EventSourcedActor


@dataclass(frozen=True)
class Ping:
    n: int


@dataclass(frozen=True)
class Pong:
    n: int


@dataclass(frozen=True)
class Boom:
    pass


class Echo(Actor):
    """Answers ``Ping(n)`` with ``Pong(n)`` to ``reply_to`` (a tell) and to an ask."""

    def __init__(self, reply_to: ActorRef) -> None:
        self.reply_to = reply_to

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            await self.reply_to.tell(Pong(message.n))
            return Pong(message.n)
        if isinstance(message, Boom):
            raise RuntimeError("boom")
        return await super().on_receive(message)


class Delayed(Actor):
    """Sends ``Pong(n)`` to ``reply_to`` ``delay`` node-clock seconds after ``Ping(n)``."""

    def __init__(self, reply_to: ActorRef, delay: float) -> None:
        self.reply_to = reply_to
        self.delay = delay

    async def on_receive(self, message: Any) -> Any:
        await self.ctx.node.clock.sleep(self.delay)
        await self.reply_to.tell(Pong(message.n))


class Asker(Actor):
    """Asks ``ask_to`` with each message and tells the answer (or the error) to ``report_to``."""

    def __init__(self, ask_to: ActorRef, report_to: ActorRef) -> None:
        self.ask_to = ask_to
        self.report_to = report_to

    async def on_receive(self, message: Any) -> Any:
        try:
            answer = await self.ask_to.ask(message, timeout=2.0)
        except Exception as error:
            answer = error
        await self.report_to.tell(answer)


class Counter(Actor):
    """Counts ``Ping``s since its last (re)start; an ask returns the count."""

    def __init__(self) -> None:
        self.count = 0

    async def on_receive(self, message: Any) -> Any:
        self.count += 1
        return self.count


class Added(msgspec.Struct, frozen=True, tag=True):
    n: int


@dataclass(frozen=True)
class Add:
    n: int


@dataclass(frozen=True)
class Total:
    pass


class Tally(EventSourcedActor[int]):
    """Persists ``Added(n)`` for ``Add(n)``; its state is the sum. Both messages answer
    ``(total, last_seq)``."""

    events = (Added,)
    persistence_id = "tally"

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: Any) -> int:
        assert isinstance(event, Added)
        return state + event.n

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Add):
            await self.persist(Added(message.n))
        elif not isinstance(message, Total):
            return await super().on_receive(message)
        return self.state, self.last_seq
