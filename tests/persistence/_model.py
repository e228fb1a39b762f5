"""A small event-sourced bank account, and a journal with faults injected into a real one."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from garrison import EventDecodeError, LifecycleEvent, Node, Started
from garrison._errors import JournalWriteError
from garrison.persistence import Ack, EventSourcedActor, Journal, QuarantinedEvent, SqliteJournal
from garrison.persistence._journal import ReadsInBatches

# garrison's own words for why a stored event does not decode (EventDecodeError.problem).
DECODE_WORDING = {
    "not-bytes": "the stored value is not bytes",
    "malformed": "the bytes are not one whole msgpack value",
    "schema": "not a registered event type, or a field of the wrong type",
    "inconsistent": "it does not follow from the events before it",
}


def assert_decode_error(error: BaseException, stream: str, seq: int, problem: str) -> None:
    """``error`` is garrison's EventDecodeError for ``stream``/``seq``, for ``problem``, in its own words."""
    assert isinstance(error, EventDecodeError)
    assert (error.stream, error.seq, error.problem) == (stream, seq, problem)
    wording = f"stream {stream!r} seq {seq}: event does not decode ({DECODE_WORDING[problem]})"
    assert str(error).startswith(wording)


# -- events, state, commands ------------------------------------------------------------


class Deposited(msgspec.Struct, frozen=True, tag=True):
    amount: int


class Withdrawn(msgspec.Struct, frozen=True, tag=True):
    amount: int


class Renamed(msgspec.Struct, frozen=True, tag=True):
    owner: str


class Balance(msgspec.Struct, frozen=True):
    balance: int = 0
    operations: int = 0
    owner: str = ""


class Deposit(msgspec.Struct, frozen=True):
    amount: int


class Withdraw(msgspec.Struct, frozen=True):
    amount: int


class Batch(msgspec.Struct, frozen=True):
    """Persist several events with one ``persist`` call."""

    events: tuple[Any, ...]


class Crash(msgspec.Struct, frozen=True):
    """Raise in the handler (an ordinary bug, not a journal failure)."""


class Get(msgspec.Struct, frozen=True):
    """Reply with ``(state, last_seq)``."""


def fold(state: Balance, event: Any) -> Balance:
    """The account's pure event handler, shared by the actor and the tests' own replays."""
    if isinstance(event, Deposited):
        return Balance(state.balance + event.amount, state.operations + 1, state.owner)
    if isinstance(event, Withdrawn):
        return Balance(state.balance - event.amount, state.operations + 1, state.owner)
    if isinstance(event, Renamed):
        return Balance(state.balance, state.operations + 1, event.owner)
    raise TypeError(f"not an account event: {event!r}")


class Account(EventSourcedActor[Balance]):
    """Deposits and withdrawals as events.

    ``seen`` records the balance each message found; ``instances`` every
    incarnation (so a test can look at one's state from outside).
    """

    events = (Deposited, Withdrawn, Renamed)
    persistence_id = "account-1"

    def __init__(
        self,
        persistence_id: str = "account-1",
        seen: list[tuple[int, Any]] | None = None,
        instances: list[Account] | None = None,
    ) -> None:
        self.persistence_id = persistence_id
        self.seen = seen
        if instances is not None:
            instances.append(self)

    def initial_state(self) -> Balance:
        return Balance()

    def apply(self, state: Balance, event: Any) -> Balance:
        return fold(state, event)

    async def on_receive(self, message: Any) -> Any:
        if self.seen is not None:
            self.seen.append((self.state.balance, message))
        if isinstance(message, Deposit):
            await self.persist(Deposited(message.amount))
        elif isinstance(message, Withdraw):
            await self.persist(Withdrawn(message.amount))
        elif isinstance(message, Batch):
            await self.persist(*message.events)
        elif isinstance(message, Crash):
            raise RuntimeError("handler bug")
        elif not isinstance(message, Get):
            return self.ctx.unhandled(message)
        return self.state, self.last_seq


class SnapshottingAccount(Account):
    snapshot_every = 3


# -- a real journal with faults injected -------------------------------------------------


class FaultyJournal(ReadsInBatches):
    """Delegates every call to a real SqliteJournal, with faults the test switches on.

    - ``fail_append_before``: the next append raises JournalWriteError without
      writing (definitely not stored);
    - ``fail_append_after``: the next append is written, then raises (stored,
      but the writer was not told: a lost acknowledgement);
    - ``fail_snapshots``: save_snapshot raises;
    - ``recovery_gate``: when set, ``read_batches`` waits for it (and sets
      ``recovering``) before yielding anything;
    - ``before_append``: called as each append starts (to look at the actor then).

    ``appends`` records ``(stream, count, expected_seq)`` and ``batches`` the
    sizes ``read_batches`` yielded. Recovery reads through ``read_batches``
    too: ``read_packed`` is ReadsInBatches' default, built on it.
    """

    def __init__(self, inner: SqliteJournal) -> None:
        self.inner = inner
        self.fail_append_before = False
        self.fail_append_after = False
        self.fail_snapshots = False
        self.recovery_gate: asyncio.Event | None = None
        self.before_append: Callable[[], None] | None = None
        self.recovering = asyncio.Event()
        self.appends: list[tuple[str, int, int]] = []
        self.batches: list[int] = []
        self.reads_after: list[int] = []

    async def append(
        self, stream: str, events: Sequence[bytes], expected_seq: int, *, acks: Sequence[Ack] = ()
    ) -> int:
        self.appends.append((stream, len(events), expected_seq))
        if self.before_append is not None:
            self.before_append()
        if self.fail_append_before:
            self.fail_append_before = False
            raise JournalWriteError(stream, OSError(5, "injected I/O error before the write"))
        highest = await self.inner.append(stream, events, expected_seq, acks=acks)
        if self.fail_append_after:
            self.fail_append_after = False
            raise JournalWriteError(stream, OSError(5, "injected I/O error after the write"))
        return highest

    def read(self, stream: str, after_seq: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        return self.inner.read(stream, after_seq)

    async def read_batches(self, stream: str, after_seq: int = 0) -> AsyncIterator[list[tuple[int, bytes]]]:
        self.reads_after.append(after_seq)
        if self.recovery_gate is not None:
            self.recovering.set()
            await self.recovery_gate.wait()
        async for rows in self.inner.read_batches(stream, after_seq):
            self.batches.append(len(rows))
            yield rows

    async def highest_seq(self, stream: str) -> int:
        return await self.inner.highest_seq(stream)

    async def save_snapshot(self, stream: str, seq: int, state: bytes) -> None:
        if self.fail_snapshots:
            raise JournalWriteError(stream, OSError(28, "injected: no space left on device"))
        await self.inner.save_snapshot(stream, seq, state)

    async def load_snapshot(self, stream: str) -> tuple[int, bytes] | None:
        return await self.inner.load_snapshot(stream)

    async def delete_events(self, stream: str, up_to_seq: int) -> None:
        await self.inner.delete_events(stream, up_to_seq)

    async def ack(self, stream: str, group: str, seq: int) -> None:
        await self.inner.ack(stream, group, seq)

    async def acked_seq(self, stream: str, group: str) -> int:
        return await self.inner.acked_seq(stream, group)

    async def replace_snapshot(self, stream: str, expected_seq: int | None, seq: int, state: bytes) -> bool:
        if self.fail_snapshots:
            raise JournalWriteError(stream, RuntimeError("injected snapshot failure"))
        return await self.inner.replace_snapshot(stream, expected_seq, seq, state)

    async def quarantined(self, stream: str) -> list[QuarantinedEvent]:
        return await self.inner.quarantined(stream)

    async def open(self) -> Journal:
        await self.inner.open()
        return self

    async def close(self) -> None:
        await self.inner.close()


# -- waiting on lifecycle events, bounded -------------------------------------------------


class Lifecycle:
    """Collects a node's lifecycle events; ``wait_for`` waits (bounded) for a matching one."""

    def __init__(self, node: Node) -> None:
        self.seen: list[LifecycleEvent] = []
        self._changed = asyncio.Event()
        self._unsubscribe = node.events.subscribe(self._record)

    def _record(self, event: LifecycleEvent) -> None:
        self.seen.append(event)
        self._changed.set()

    async def wait_for(
        self, kind: type[LifecycleEvent], path: str, *, count: int = 1, within: float = 5.0
    ) -> LifecycleEvent:
        """The ``count``-th event of ``kind`` at ``path``; TimeoutError after ``within`` seconds."""

        async def matching() -> LifecycleEvent:
            while True:
                found = [e for e in self.seen if isinstance(e, kind) and e.path == path]
                if len(found) >= count:
                    return found[count - 1]
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(matching(), within)

    def started(self, path: str) -> int:
        return sum(1 for e in self.seen if isinstance(e, Started) and e.path == path)


def stored_events(rows: Sequence[tuple[int, bytes]]) -> list[Any]:
    """Decode raw rows with the account's codec (tests read the journal back themselves)."""
    codec = Account._codec
    assert codec is not None
    return [codec.decode(payload, "test", seq) for seq, payload in rows]


async def read_all(journal: Any, stream: str, after_seq: int = 0) -> list[tuple[int, bytes]]:
    return [row async for row in journal.read(stream, after_seq)]


def in_fresh_file(body: Any) -> Any:
    """Run ``body(path)`` on a journal path in a new temporary folder (one per hypothesis example)."""
    with tempfile.TemporaryDirectory() as directory:
        return asyncio.run(body(Path(directory) / "journal.db"))
