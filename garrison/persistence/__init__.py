"""Event-sourced persistence: journals, event-sourced actors, the intent log, durable streams."""

from garrison._errors import (
    EventDecodeError,
    FatalError,
    Fenced,
    InvalidEvent,
    JournalClosed,
    JournalCorrupt,
    JournalError,
    JournalWriteError,
    PersistFailed,
    SequenceConflict,
)
from garrison.persistence._codec import EventCodec, StateCodec
from garrison.persistence._eventsourced import EventSourcedActor
from garrison.persistence._ids import client_order_id, deterministic_id
from garrison.persistence._intent_bounds import IntentBacklogFull, IntentLogStats, SendWindowFull
from garrison.persistence._intent_log import IntentHistoryMissing, IntentLog, IntentLogBroken
from garrison.persistence._intent_model import (
    EXPIRES_AFTER_LOOKUP,
    IN_DOUBT,
    Intent,
    IntentEvent,
    IntentMoved,
    IntentRecorded,
    IntentState,
    IntentTransitionError,
)
from garrison.persistence._journal import (
    Ack,
    Journal,
    JournalProblem,
    PackedEvents,
    QuarantinedEvent,
    StreamSummary,
)
from garrison.persistence._redis import FencedJournal, RedisJournal, StreamKeys
from garrison.persistence._redis_connection import RedisConnection
from garrison.persistence._redis_consumer import RedisConsumer
from garrison.persistence._replay import replay_events
from garrison.persistence._retention import trim_to_snapshot
from garrison.persistence._sqlite import SqliteJournal
from garrison.persistence._streams import ConsumerGroup, Delivery, DurableStream
from garrison.persistence._upcast import Upcaster

__all__ = [
    "Ack",
    "ConsumerGroup",
    "Delivery",
    "DurableStream",
    "EventCodec",
    "EventDecodeError",
    "EventSourcedActor",
    "FatalError",
    "Fenced",
    "FencedJournal",
    "EXPIRES_AFTER_LOOKUP",
    "IN_DOUBT",
    "Intent",
    "IntentBacklogFull",
    "IntentEvent",
    "IntentHistoryMissing",
    "IntentLog",
    "IntentLogBroken",
    "IntentLogStats",
    "IntentMoved",
    "IntentRecorded",
    "IntentState",
    "IntentTransitionError",
    "InvalidEvent",
    "Journal",
    "JournalClosed",
    "JournalCorrupt",
    "JournalError",
    "JournalProblem",
    "JournalWriteError",
    "PackedEvents",
    "PersistFailed",
    "QuarantinedEvent",
    "RedisConnection",
    "RedisConsumer",
    "RedisJournal",
    "SendWindowFull",
    "SequenceConflict",
    "SqliteJournal",
    "StateCodec",
    "StreamKeys",
    "StreamSummary",
    "Upcaster",
    "client_order_id",
    "deterministic_id",
    "replay_events",
    "trim_to_snapshot",
]
