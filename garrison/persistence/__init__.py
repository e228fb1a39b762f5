"""Event-sourced persistence: journals, event-sourced actors, the intent log, durable streams."""

from garrison.persistence._codec import EventCodec, StateCodec
from garrison.persistence._eventsourced import EventSourcedActor
from garrison.persistence._journal import Ack, Journal
from garrison.persistence._sqlite import SqliteJournal

__all__ = ["Ack", "EventCodec", "EventSourcedActor", "Journal", "SqliteJournal", "StateCodec"]
