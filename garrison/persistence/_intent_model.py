"""The intent model: where an intent stands, the events that move it, and the one function
that applies them.

An intent is recorded once under a deterministic id (``IntentRecorded``) and then moves
through its lifecycle (``IntentMoved``): RECORDED -> SENDING -> (UNKNOWN <-> SENDING)* ->
ACKED -> DONE, with REJECTED or DONE ending it (``TRANSITIONS`` lists every allowed move).
The two events are what an intent log stores, msgpack-encoded under the tags
``garrison.intent.recorded`` and ``garrison.intent.moved``: a durable format, so a tool
that reads an intent stream decodes it with these types (``IntentEvent``).

``apply_intent_events`` is the only place where an event changes an ``Intent``: the
intent log uses it when it replays a stream and when its own writes become durable.
The pipeline that writes the events (batching, conflicts, a broken log) is
``_intent_log.py``'s.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Generic, TypeAlias, TypeVar, final

import msgspec

from garrison._errors import GarrisonError

P = TypeVar("P")


class IntentState(enum.Enum):
    """Where an intent stands. REJECTED and DONE are terminal."""

    RECORDED = "recorded"
    """Durable; the effect has certainly not been attempted."""
    SENDING = "sending"
    """The effect is being attempted: it may have happened (the dead zone)."""
    UNKNOWN = "unknown"
    """An attempt ended ambiguously (timeout, connection reset): it may have happened."""
    ACKED = "acked"
    """The other side confirmed the effect (an order accepted and live)."""
    REJECTED = "rejected"
    """The other side reliably refused it. Never use this for an ambiguous attempt."""
    DONE = "done"
    """Finished (filled, cancelled, closed)."""

    # Members are singletons compared by identity; Enum hashes them in Python code, and every
    # transition check hashes two (a tenth of a microsecond each, several per order).
    __hash__ = object.__hash__


TERMINAL = frozenset({IntentState.REJECTED, IntentState.DONE})
"""States an intent never leaves."""
MAY_HAVE_HAPPENED = frozenset({IntentState.SENDING, IntentState.UNKNOWN, IntentState.ACKED})
"""States in which the effect may have happened: look it up before attempting it again."""

TRANSITIONS: dict[IntentState, frozenset[IntentState]] = {
    IntentState.RECORDED: frozenset({IntentState.SENDING, IntentState.REJECTED, IntentState.DONE}),
    IntentState.SENDING: frozenset(
        {IntentState.SENDING, IntentState.UNKNOWN, IntentState.ACKED, IntentState.REJECTED, IntentState.DONE}
    ),
    IntentState.UNKNOWN: frozenset(
        {IntentState.SENDING, IntentState.UNKNOWN, IntentState.ACKED, IntentState.REJECTED, IntentState.DONE}
    ),
    IntentState.ACKED: frozenset({IntentState.ACKED, IntentState.DONE}),
    IntentState.REJECTED: frozenset(),
    IntentState.DONE: frozenset(),
}
"""Every move the lifecycle allows: ``TRANSITIONS[current]`` holds the states it may move to."""


class IntentTransitionError(GarrisonError, ValueError):
    """A state change the intent lifecycle does not allow (e.g. out of a terminal state)."""

    def __init__(self, intent_id: str, current: IntentState, target: IntentState) -> None:
        self.intent_id = intent_id
        super().__init__(
            f"intent {intent_id!r}: cannot move from {current.name} to {target.name}; "
            f"allowed: {sorted(state.name for state in TRANSITIONS[current]) or 'none (terminal)'}"
        )


# gc=False: an intent log holds many intents (its open ones and a window of settled ones, up
# to hundreds of thousands), and a full collection walked all of them (pauses of 100 ms and
# more). None of these can be part of a reference cycle: their fields are strings, numbers,
# enum members, and payloads decoded from msgpack bytes (fresh objects no one else refers to).
# final: the log tells the two events apart by exact type (the cheapest check per event).


@final
class IntentRecorded(msgspec.Struct, frozen=True, gc=False, tag="garrison.intent.recorded"):
    """An intent was recorded under ``id``; ``payload`` is its payload, msgpack-encoded."""

    id: str
    payload: bytes


@final
class IntentMoved(msgspec.Struct, frozen=True, gc=False, tag="garrison.intent.moved"):
    """The intent ``id`` moved to ``state``; ``detail`` is the reason given with the move."""

    id: str
    state: IntentState
    detail: str = ""


IntentEvent: TypeAlias = IntentRecorded | IntentMoved
"""An event of an intent stream: ``msgspec.msgpack.Decoder(IntentEvent)`` decodes one."""


class Intent(msgspec.Struct, Generic[P], frozen=True, gc=False):
    """One recorded intent as the log knows it durably.

    Not tracked by the garbage collector (its payload is decoded from the journal's bytes and
    cannot refer back to it), so a log of many intents adds nothing to a full collection. Do not
    make a (mutable) payload refer to its Intent: such a cycle would never be collected."""

    id: str
    payload: P
    state: IntentState
    detail: str = ""
    attempts: int = 0
    """How many times it entered SENDING."""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def may_have_happened(self) -> bool:
        """True in the dead zone: look the effect up before attempting it again."""
        return self.state in MAY_HAVE_HAPPENED


def apply_intent_events(
    intents: dict[str, Intent[P]],
    events: Sequence[IntentEvent],
    payload_of: Callable[[IntentRecorded], P],
    settled: list[str] | None = None,
) -> None:
    """Apply ``events`` in order to ``intents`` (keyed by id). The one place where an event
    changes an intent: replaying a stream and applying the log's own durable writes both
    come here, so a replay ends in the state the live log was in.

    - ``IntentRecorded``: ``payload_of(event)`` gives the payload (called for every
      record); an id not yet known is added, RECORDED, with it. A known id is left as it
      is: the first record wins, with its payload.
    - ``IntentMoved``: the intent is replaced by one in the event's state, with its
      detail, and one more attempt when that state is SENDING. Its id is appended
      to ``settled`` (if given) when that state is terminal.

    Moves are not checked against ``TRANSITIONS`` here: an event is checked before it
    is written, and what is stored is what happened. Raises KeyError for a move of an
    id not in ``intents`` (a move before its record), and whatever ``payload_of``
    raises; the events before the failing one are applied, the rest are not.
    """
    # One loop for every event of a run (hundreds of thousands in a recovery): locals,
    # exact-type checks, no call per event but payload_of's, one per record.
    recorded, sending = IntentState.RECORDED, IntentState.SENDING
    for event in events:
        intent_id = event.id
        if type(event) is IntentRecorded:
            payload = payload_of(event)
            if intent_id not in intents:
                intents[intent_id] = Intent(intent_id, payload, recorded)
            continue
        current = intents[intent_id]
        state = event.state
        attempts = current.attempts + 1 if state is sending else current.attempts
        intents[intent_id] = Intent(intent_id, current.payload, state, event.detail, attempts)
        if settled is not None and state in TERMINAL:
            settled.append(intent_id)
