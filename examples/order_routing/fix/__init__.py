"""FIX 4.4 for the order-routing example: a codec on simplefix, a sans-IO session layer, and
its durable store in the garrison journal. Shared by the node (initiator) and the broker
simulator (acceptor); imports neither. Needs the ``fix`` extra (``pip install garrison[fix]``).

- ``codec``: ``encode``, ``FrameReader`` (bytes in, ``Inbound`` / ``InvalidMessage`` out);
  ``encode_reference`` / ``decode_reference``, the plain pair-by-pair paths the fast ones are
  tested against; ``checksum_of``.
- ``messages``: the typed messages (Logon ... ExecutionReport, BusinessMessageReject).
- ``session``: ``FixSession``, ``SessionConfig``, ``Step`` and the events it hands out.
- ``store``: ``FixSessionStore`` and the records it keeps.
"""

from examples.order_routing.fix.codec import (
    FIX42,
    FIX44,
    FrameReader,
    Inbound,
    InvalidMessage,
    checksum_of,
    decode_reference,
    encode,
    encode_reference,
    sending_time,
)
from examples.order_routing.fix.errors import FixConfigError, FixEncodeError, FixError, SessionNotActive
from examples.order_routing.fix.session import (
    BusinessRejected,
    FixSession,
    GapDetected,
    InvalidReceived,
    LoggedOn,
    LoggedOut,
    LogonRejected,
    MsgSeqNumTooLow,
    Received,
    RejectReceived,
    ResendExpired,
    Role,
    SessionConfig,
    SessionEnded,
    SessionEvent,
    Status,
    Step,
)
from examples.order_routing.fix.store import FixSessionStore, Retention, SessionState

__all__ = [
    "FIX42",
    "FIX44",
    "BusinessRejected",
    "FixConfigError",
    "FixEncodeError",
    "FixError",
    "FixSession",
    "FixSessionStore",
    "FrameReader",
    "GapDetected",
    "Inbound",
    "InvalidMessage",
    "InvalidReceived",
    "LoggedOn",
    "LoggedOut",
    "LogonRejected",
    "MsgSeqNumTooLow",
    "Received",
    "RejectReceived",
    "ResendExpired",
    "Retention",
    "Role",
    "SessionConfig",
    "SessionEnded",
    "SessionEvent",
    "SessionNotActive",
    "SessionState",
    "Status",
    "Step",
    "checksum_of",
    "decode_reference",
    "encode",
    "encode_reference",
    "sending_time",
]
