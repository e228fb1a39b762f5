"""The FIX 4.4 session layer as a sans-IO state machine, for initiators and acceptors alike.

``FixSession`` owns no socket and reads no clock. The caller feeds it what happened (connected,
a parsed message, the time, disconnected) and gets back a ``Step``: frames to write, records to
persist, events for the application, and whether to close the connection. The caller's one rule,
which makes every sequence number and every outbound message durable before a peer can see it:

    1. hand ``step.events`` to the application (an inbound message is handled before its
       MsgSeqNum is recorded as received, so a crash re-asks for it rather than loses it);
    2. ``await store.persist(step.records)``;
    3. write ``step.outbound`` to the socket, in order;
    4. close the connection if ``step.disconnect``.

If persisting fails, the session's in-memory state may be ahead of the journal: drop the session
and the connection and start again from ``store.load()``.

What the session does, per the FIX 4.4 session rules: Logon with HeartBtInt (ResetSeqNumFlag=Y
only at the configured session start, never on a restart), Heartbeat and TestRequest on silence,
Logout both ways, ResendRequest both ways, SequenceReset (GapFill and Reset), PossDupFlag with
OrigSendingTime on resends, a MsgSeqNum too low without PossDupFlag → Logout and
``MsgSeqNumTooLow``, too high → ResendRequest with the early messages queued, a malformed
message → Reject (35=3), Reject and BusinessMessageReject received → typed events. On a
ResendRequest, admin messages are always gap-filled, and application messages older than
``resend_max_age`` are gap-filled too, with a ``ResendExpired`` event so the application settles
that intent as expired instead of sending it blind.
"""

from __future__ import annotations

import datetime
import enum
import itertools
import zoneinfo
from dataclasses import dataclass, field
from typing import Final, Union, cast

import msgspec

from examples.order_routing.fix.codec import (
    FIX42,
    FIX44,
    FrameReader,
    Inbound,
    InvalidMessage,
    Parsed,
    decode,
    encode,
    sending_time,
    with_resend_header,
)
from examples.order_routing.fix.errors import FixConfigError, FixError, SessionNotActive
from examples.order_routing.fix.messages import (
    ApplicationMessage,
    BusinessMessageReject,
    BusinessRejectReason,
    FixMessageBase,
    Header,
    Heartbeat,
    Logon,
    Logout,
    Reject,
    ResendRequest,
    SequenceReset,
    SessionRejectReason,
    TestRequest,
    UnknownMessage,
)
from examples.order_routing.fix.store import (
    AppSent,
    Record,
    Retention,
    SeqSent,
    SequencesReset,
    SessionState,
    TargetAdvanced,
    apply_record,
)

MAX_QUEUED_INBOUND: Final = 10_000
"""Out-of-order messages kept while a gap is being filled; beyond it they are dropped (the
resend brings them again)."""


class Role(enum.StrEnum):
    INITIATOR = "initiator"
    ACCEPTOR = "acceptor"


class Status(enum.StrEnum):
    DISCONNECTED = "disconnected"
    AWAITING_LOGON = "awaiting_logon"
    """Acceptor: connected, waiting for the initiator's Logon."""
    LOGON_SENT = "logon_sent"
    """Initiator: Logon sent, waiting for the acceptor's."""
    ACTIVE = "active"
    LOGOUT_SENT = "logout_sent"


class SessionConfig(msgspec.Struct, frozen=True):
    """One FIX session's settings. Validated on construction (``FixConfigError`` names the field).

    ``session_start`` (local time in ``session_timezone``): sequence numbers reset (Logon with
    ResetSeqNumFlag=Y) at the first logon of each daily period starting then; None: never.
    ``resend_max_age``: an application message sent longer ago than this is gap-filled, not
    re-sent. ``test_request_delay``: silence beyond ``heartbeat_interval * (1 + delay)`` sends a
    TestRequest; no answer within another interval disconnects.
    """

    sender_comp_id: str
    target_comp_id: str
    role: Role = Role.INITIATOR
    begin_string: str = FIX44
    heartbeat_interval: int = 30
    session_start: datetime.time | None = None
    session_timezone: str = "UTC"
    resend_max_age: float = 60.0
    retention: Retention = Retention()
    logon_timeout: float = 10.0
    logout_timeout: float = 5.0
    test_request_delay: float = 0.2

    def __post_init__(self) -> None:
        for name in ("sender_comp_id", "target_comp_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or "\x01" in value or "=" in value:
                raise FixConfigError(name, value, "must be a non-empty CompID without SOH or '='")
        if self.begin_string not in (FIX44, FIX42):
            raise FixConfigError("begin_string", self.begin_string, f"must be {FIX44!r} or {FIX42!r}")
        if not isinstance(self.heartbeat_interval, int) or self.heartbeat_interval < 1:
            raise FixConfigError(
                "heartbeat_interval", self.heartbeat_interval, "must be an int >= 1 (seconds)"
            )
        for name in ("resend_max_age", "logon_timeout", "logout_timeout", "test_request_delay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
                raise FixConfigError(name, value, "must be a finite number of seconds >= 0")
        if self.retention.max_age_seconds < self.resend_max_age:
            raise FixConfigError(
                "retention.max_age_seconds",
                self.retention.max_age_seconds,
                f"must be >= resend_max_age ({self.resend_max_age}), or a message still young enough to "
                "re-send would be forgotten and gap-filled without a ResendExpired event",
            )
        try:
            zoneinfo.ZoneInfo(self.session_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
            raise FixConfigError(
                "session_timezone", self.session_timezone, "must be an IANA time zone such as 'UTC'"
            ) from error

    def period_start(self, now: float) -> float:
        """Start (epoch seconds) of the session period holding ``now``; 0 without ``session_start``."""
        if self.session_start is None:
            return 0.0
        zone = zoneinfo.ZoneInfo(self.session_timezone)
        local = datetime.datetime.fromtimestamp(now, zone)
        start = datetime.datetime.combine(local.date(), self.session_start, tzinfo=zone)
        if start > local:
            start = datetime.datetime.combine(
                local.date() - datetime.timedelta(days=1), self.session_start, zone
            )
        return start.timestamp()


# ---- errors carried by steps ----------------------------------------------------------------


class MsgSeqNumTooLow(FixError):
    """The peer sent MsgSeqNum ``received`` below the ``expected`` one, without PossDupFlag: its
    sequence numbers or ours are wrong (a reset on one side only, a restored journal). The
    session logged out; an operator must reconcile the sequence numbers before the next logon."""

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(
            f"MsgSeqNum too low, expecting {expected} but received {received}: logged out; "
            "reconcile the sequence numbers with the venue before logging on again"
        )
        self.expected = expected
        self.received = received


class LogonRejected(FixError):
    """The peer's first message was not a valid Logon (wrong BeginString or CompIDs, not a
    Logon at all), or it answered our Logon with a Logout. ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"FIX logon failed: {reason}")
        self.reason = reason


# ---- events for the application -------------------------------------------------------------


class LoggedOn(msgspec.Struct, frozen=True):
    """The session is active; ``reset``: sequence numbers started over at 1."""

    heartbeat_interval: int
    reset: bool


class LoggedOut(msgspec.Struct, frozen=True):
    """The session ended with a Logout exchange (``by_peer``: the peer started it)."""

    text: str
    by_peer: bool


class Received(msgspec.Struct, frozen=True):
    """An application message, in MsgSeqNum order. ``possible_duplicate`` (PossDupFlag=Y): a
    resend the application may have handled already: deduplicate (fills by ExecID)."""

    header: Header
    message: ApplicationMessage
    possible_duplicate: bool


class RejectReceived(msgspec.Struct, frozen=True):
    """The peer refused our message ``reject.ref_seq_num`` at the session level (35=3)."""

    reject: Reject


class BusinessRejected(msgspec.Struct, frozen=True):
    """The peer refused an application message (35=j), e.g. an unsupported OrderStatusRequest."""

    reject: BusinessMessageReject
    possible_duplicate: bool


class ResendExpired(msgspec.Struct, frozen=True):
    """The peer asked again for application message ``seq``, sent longer ago than
    ``resend_max_age``: it was gap-filled, not re-sent. Settle its intent as expired."""

    seq: int
    message: ApplicationMessage | None
    """The message as first sent (None only if its stored frame no longer parses)."""
    sent_at: float


class GapDetected(msgspec.Struct, frozen=True):
    """Messages ``expected`` .. ``received - 1`` are missing: a ResendRequest was sent."""

    expected: int
    received: int


class InvalidReceived(msgspec.Struct, frozen=True):
    """A malformed message was answered with a Reject (35=3) and skipped."""

    seq: int
    reason: str


class SessionEnded(msgspec.Struct, frozen=True):
    """The session wants the connection closed: ``reason`` says why (logout, silence, logon
    timeout, sequence too low, session period over)."""

    reason: str


SessionEvent = Union[  # noqa: UP007
    LoggedOn,
    LoggedOut,
    Received,
    RejectReceived,
    BusinessRejected,
    ResendExpired,
    GapDetected,
    InvalidReceived,
    SessionEnded,
]


@dataclass
class Step:
    """What the caller does next, in this order: events to the application, ``records``
    persisted, ``outbound`` written, then close if ``disconnect``. ``error``: a named failure
    (``MsgSeqNumTooLow``, ``LogonRejected``) to log or raise."""

    outbound: list[bytes] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    events: list[SessionEvent] = field(default_factory=list)
    disconnect: bool = False
    error: FixError | None = None

    def extend(self, other: Step) -> Step:
        """This step followed by ``other`` (one persist and one write for both)."""
        self.outbound += other.outbound
        self.records += other.records
        self.events += other.events
        self.disconnect = self.disconnect or other.disconnect
        self.error = self.error or other.error
        return self


_NOT_PLAIN_APPLICATION: Final = frozenset({BusinessMessageReject, UnknownMessage})
"""Non-admin messages the session answers or turns into events of their own."""


def _original(frame: bytes) -> ApplicationMessage | None:
    parsed = decode(frame)
    if (
        isinstance(parsed, Inbound)
        and not isinstance(parsed.message, UnknownMessage)
        and not parsed.message.ADMIN
    ):
        return parsed.message  # type: ignore[return-value]
    return None


class FixSession:
    """One FIX session (initiator or acceptor), sans-IO. See the module docstring for the
    caller's order of work. ``now`` is always epoch seconds (UTC wall time): it stamps
    SendingTime and drives heartbeats and timeouts.

    Methods: ``connected``, ``receive`` (or ``receive_bytes``), ``send``, ``tick``, ``logout``,
    ``disconnected``. Raises only ``SessionNotActive`` (``send`` before logon) and
    ``FixEncodeError`` (an application message with a bad field).
    """

    def __init__(self, config: SessionConfig, state: SessionState | None = None) -> None:
        self.config = config
        self.state = state if state is not None else SessionState()
        self.status = Status.DISCONNECTED
        self.reader = FrameReader()
        self._test_request_ids = itertools.count(1)
        self._reset_pending = False
        self._peer_heartbeat = config.heartbeat_interval
        self._connected_at = 0.0
        self._logon_sent_at = 0.0
        self._logout_sent_at = 0.0
        self._last_sent_at = 0.0
        self._last_received_at = 0.0
        self._test_request: str | None = None
        self._test_request_sent_at = 0.0
        self._resend_requested_through = 0
        self._queued: dict[int, tuple[Parsed, bool]] = {}
        self._durable_target = self.state.next_target_seq
        self.duplicates_ignored = 0
        """PossDup messages with a MsgSeqNum already handled, ignored."""

    # ---- what the caller reads ----------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.status is Status.ACTIVE

    @property
    def next_sender_seq(self) -> int:
        return self.state.next_sender_seq

    @property
    def next_target_seq(self) -> int:
        return self.state.next_target_seq

    @property
    def garbled_frames(self) -> int:
        """Frames dropped by ``receive_bytes`` (garbled, wrong BodyLength or CheckSum)."""
        return self.reader.dropped

    # ---- lifecycle ----------------------------------------------------------------------

    def connected(self, now: float) -> Step:
        """The transport is up. An initiator sends its Logon (with ResetSeqNumFlag=Y only when
        a new session period has begun since the last reset); an acceptor waits for one."""
        self.reader = FrameReader()
        self._connected_at = self._last_received_at = self._last_sent_at = now
        self._queued.clear()
        self._resend_requested_through = 0
        self._test_request = None
        step = Step()
        if self.config.role is Role.ACCEPTOR:
            self.status = Status.AWAITING_LOGON
            return step
        reset = self._reset_due(now)
        if reset:
            self._record(step, SequencesReset(self.config.period_start(now)))
        self._reset_pending = reset
        self._send_admin(
            step,
            Logon(heart_bt_int=self.config.heartbeat_interval, reset_seq_num_flag=True if reset else None),
            now,
        )
        self.status = Status.LOGON_SENT
        self._logon_sent_at = now
        return step

    def disconnected(self) -> None:
        """The transport is gone (for any reason). Durable state is untouched."""
        self.status = Status.DISCONNECTED
        self._queued.clear()
        self._test_request = None
        self._resend_requested_through = 0

    def logout(self, now: float, text: str | None = None) -> Step:
        """Start a Logout; the session disconnects on the peer's answer or after ``logout_timeout``."""
        step = Step()
        if self.status in (Status.ACTIVE, Status.LOGON_SENT):
            self._send_admin(step, Logout(text=text or None), now)
            self.status = Status.LOGOUT_SENT
            self._logout_sent_at = now
        elif self.status is not Status.LOGOUT_SENT:
            step.disconnect = True
        return step

    def send(self, message: FixMessageBase, now: float) -> Step:
        """Send an application message with the next MsgSeqNum. Its ``AppSent`` record (the
        frame, kept for resends) is in ``step.records``: persist it before writing the frame.

        Raises SessionNotActive before logon or while logging out, and FixEncodeError for a
        field a strict acceptor would refuse (nothing is sent, no seq is taken)."""
        if self.status is not Status.ACTIVE:
            raise SessionNotActive(self.status.value)
        step = Step()
        seq = self.state.next_sender_seq
        frame = self._encode(message, seq, now)
        self._record(step, AppSent(seq, message.MSG_TYPE, frame, now))
        step.outbound.append(frame)
        self._last_sent_at = now
        return step

    def send_many(self, messages: list[FixMessageBase], now: float) -> Step:
        """``send`` for each message, as one step: one persist (one journal append) for them all.
        Raises as ``send`` does, before taking any seq, if any message cannot be encoded."""
        if self.status is not Status.ACTIVE:
            raise SessionNotActive(self.status.value)
        seq = self.state.next_sender_seq
        stamp = sending_time(now)  # one SendingTime for the batch, formatted once
        frames = [self._frame(message, seq + offset, stamp) for offset, message in enumerate(messages)]
        step = Step()
        for offset, (message, frame) in enumerate(zip(messages, frames, strict=True)):
            self._record(step, AppSent(seq + offset, message.MSG_TYPE, frame, now))
            step.outbound.append(frame)
        self._last_sent_at = now
        return step

    def tick(self, now: float) -> Step:
        """Let time pass: heartbeats, test requests, logon/logout timeouts, the end of the
        session period. Call it at least once a second while connected."""
        step = Step()
        config = self.config
        status = self.status
        if status is Status.LOGON_SENT or status is Status.AWAITING_LOGON:
            started = self._logon_sent_at if status is Status.LOGON_SENT else self._connected_at
            if now - started >= config.logon_timeout:
                self._end(step, "no Logon answer within logon_timeout")
        elif status is Status.LOGOUT_SENT:
            if now - self._logout_sent_at >= config.logout_timeout:
                self._end(step, "no Logout answer within logout_timeout")
        elif status is Status.ACTIVE:
            interval = self._peer_heartbeat
            if config.session_start is not None and config.period_start(now) > self.state.period_start:
                step.extend(self.logout(now, "end of session period"))
                return step
            if self._test_request is not None:
                if now - self._test_request_sent_at >= interval:
                    self._end(step, f"peer silent: no answer to TestRequest {self._test_request}")
                    return step
            elif now - self._last_received_at >= interval * (1 + config.test_request_delay):
                test_id = f"T{next(self._test_request_ids)}"
                self._test_request = test_id
                self._test_request_sent_at = now
                self._send_admin(step, TestRequest(test_req_id=test_id), now)
            if now - self._last_sent_at >= interval:
                self._send_admin(step, Heartbeat(), now)
        return step

    # ---- inbound ------------------------------------------------------------------------

    def receive_bytes(self, chunk: bytes, now: float) -> Step:
        """Bytes read from the socket: frames them (``garbled_frames`` counts what is dropped)
        and handles every whole message. Never raises for anything the peer sends."""
        step = Step()
        for parsed in self.reader.feed(chunk):
            self._receive(step, parsed, now)
            if step.disconnect:
                break
        return self._finish(step)

    def receive(self, parsed: Parsed, now: float) -> Step:
        """One parsed message (from ``FrameReader.feed``)."""
        step = Step()
        self._receive(step, parsed, now)
        return self._finish(step)

    def _receive(self, step: Step, parsed: Parsed, now: float) -> None:
        if self.status is Status.DISCONNECTED:
            return
        self._last_received_at = now
        header = parsed.header
        if header.begin_string != self.config.begin_string:
            self._refuse(
                step, f"BeginString {header.begin_string!r}, expected {self.config.begin_string!r}", now
            )
            return
        if (
            header.sender_comp_id != self.config.target_comp_id
            or header.target_comp_id != self.config.sender_comp_id
        ):
            self._refuse(
                step,
                f"CompIDs {header.sender_comp_id!r}->{header.target_comp_id!r}, expected "
                f"{self.config.target_comp_id!r}->{self.config.sender_comp_id!r}",
                now,
            )
            return
        message = parsed.message if isinstance(parsed, Inbound) else None
        seq = header.msg_seq_num
        state = self.state
        if (
            seq == state.next_target_seq
            and self.status is Status.ACTIVE
            and not header.poss_dup
            and not self._queued
            and message is not None
            and not message.ADMIN
            and type(message) not in _NOT_PLAIN_APPLICATION
        ):
            # The common case, what _sequence and _handle do for it in short: the expected
            # MsgSeqNum carrying an application message (every ExecutionReport of a busy session).
            state.next_target_seq = seq + 1
            if self._resend_requested_through <= seq:
                self._resend_requested_through = 0
            step.events.append(Received(header, cast(ApplicationMessage, message), False))
            return
        if self.status in (Status.AWAITING_LOGON, Status.LOGON_SENT):
            if isinstance(message, Logout) and self.status is Status.LOGON_SENT:
                step.error = LogonRejected(f"the peer answered Logon with Logout: {message.text or ''}")
                self._end(step, step.error.reason)
                return
            if not isinstance(message, Logon):
                self._refuse(step, f"first message is 35={header.msg_type}, not a Logon", now)
                return
            self._on_logon(step, header, message, now)
            if step.disconnect:
                return
        elif isinstance(message, SequenceReset) and not message.gap_fill_flag:
            self._on_sequence_reset(step, header, message, now)
            return
        self._sequence(step, parsed, now, handled_early=False)

    def _finish(self, step: Step) -> Step:
        """Record the target seq once per step (after the application's events, per the caller's
        order of work) and hand back ``step``."""
        next_target_seq = self.state.next_target_seq
        if next_target_seq > self._durable_target:
            step.records.append(TargetAdvanced(next_target_seq))
            self._durable_target = next_target_seq
        return step

    def _sequence(self, step: Step, parsed: Parsed, now: float, *, handled_early: bool) -> None:
        """The MsgSeqNum check, then the message (and any queued ones it lets through)."""
        header = parsed.header
        seq = header.msg_seq_num
        expected = self.state.next_target_seq
        message = parsed.message if isinstance(parsed, Inbound) else None
        if seq > expected:
            if not handled_early and isinstance(message, ResendRequest):
                self._on_resend_request(step, message, now)
                handled_early = True
            if isinstance(message, Logout):
                self._on_logout(step, message, now)
                return
            # A Logon is queued too (handled already): once the gap is filled, its seq is passed.
            if len(self._queued) < MAX_QUEUED_INBOUND:
                self._queued[seq] = (parsed, handled_early)
            if seq > self._resend_requested_through:
                if self._resend_requested_through < expected:
                    step.events.append(GapDetected(expected, seq))
                    self._send_admin(step, ResendRequest(begin_seq_no=expected, end_seq_no=0), now)
                self._resend_requested_through = seq
            return
        if seq < expected:
            if header.poss_dup:
                self.duplicates_ignored += 1
                return
            self._too_low(step, expected, seq, now)
            return
        self._handle(step, parsed, now, handled_early)
        while not step.disconnect and self.status is not Status.DISCONNECTED:
            queued = self._queued.pop(self.state.next_target_seq, None)
            if queued is None:
                break
            self._handle(step, queued[0], now, queued[1])
        if self._queued and min(self._queued) < self.state.next_target_seq:
            for stale in [s for s in self._queued if s < self.state.next_target_seq]:
                del self._queued[stale]

    def _handle(self, step: Step, parsed: Parsed, now: float, handled_early: bool) -> None:
        """A message whose MsgSeqNum is the expected one."""
        header = parsed.header
        seq = header.msg_seq_num
        if isinstance(parsed, InvalidMessage):
            self._advance_target(seq + 1)
            self._reject(step, header, parsed.reason, parsed.ref_tag_id, parsed.session_reject_reason, now)
            step.events.append(InvalidReceived(seq, parsed.reason))
            return
        message = parsed.message
        if header.poss_dup and header.orig_sending_time is None and self.config.begin_string == FIX44:
            self._advance_target(seq + 1)
            self._reject(
                step,
                header,
                "PossDupFlag=Y without OrigSendingTime",
                122,
                SessionRejectReason.REQUIRED_TAG_MISSING,
                now,
            )
            step.events.append(InvalidReceived(seq, "PossDupFlag=Y without OrigSendingTime"))
            return
        if isinstance(message, SequenceReset):
            # A GapFill: the seqs up to new_seq_no carried admin messages or expired ones.
            if message.new_seq_no <= seq:
                self._advance_target(seq + 1)
                self._reject(
                    step,
                    header,
                    f"NewSeqNo {message.new_seq_no} is not above MsgSeqNum {seq}",
                    36,
                    SessionRejectReason.VALUE_INCORRECT,
                    now,
                )
                return
            self._advance_target(message.new_seq_no)
            return
        self._advance_target(seq + 1)
        match message:
            case Logon():
                pass
            case Heartbeat(test_req_id):
                if test_req_id is not None and test_req_id == self._test_request:
                    self._test_request = None
            case TestRequest(test_req_id):
                self._send_admin(step, Heartbeat(test_req_id=test_req_id), now)
            case ResendRequest():
                if not handled_early:
                    self._on_resend_request(step, message, now)
            case Reject():
                step.events.append(RejectReceived(message))
            case Logout():
                self._on_logout(step, message, now)
            case BusinessMessageReject():
                step.events.append(BusinessRejected(message, header.poss_dup))
            case UnknownMessage():
                self._send_admin(
                    step,
                    BusinessMessageReject(
                        ref_seq_num=seq,
                        ref_msg_type=message.msg_type,
                        business_reject_reason=BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE,
                        text=f"MsgType {message.msg_type!r} is not supported",
                    ),
                    now,
                )
            case _:
                if not isinstance(message, BusinessMessageReject):
                    step.events.append(Received(header, message, header.poss_dup))

    def _on_logon(self, step: Step, header: Header, logon: Logon, now: float) -> None:
        if logon.heart_bt_int < 1:
            self._refuse(step, f"HeartBtInt {logon.heart_bt_int} is not a positive number of seconds", now)
            return
        reset = bool(logon.reset_seq_num_flag)
        if self.config.role is Role.ACCEPTOR:
            self._peer_heartbeat = logon.heart_bt_int
            if reset or self._reset_due(now):
                self._record(step, SequencesReset(self.config.period_start(now)))
                reset = True
        expected = self.state.next_target_seq
        if header.msg_seq_num < expected and not header.poss_dup:
            self._too_low(step, expected, header.msg_seq_num, now)  # before any LoggedOn
            return
        if self.config.role is Role.ACCEPTOR:
            self._send_admin(
                step, Logon(heart_bt_int=logon.heart_bt_int, reset_seq_num_flag=True if reset else None), now
            )
        self._reset_pending = False
        self.status = Status.ACTIVE
        step.events.append(LoggedOn(self._peer_heartbeat, reset))

    def _too_low(self, step: Step, expected: int, seq: int, now: float) -> None:
        error = MsgSeqNumTooLow(expected, seq)
        step.error = error
        self._send_admin(
            step, Logout(text=f"MsgSeqNum too low, expecting {expected} but received {seq}"), now
        )
        self._end(step, str(error))

    def _on_sequence_reset(self, step: Step, header: Header, message: SequenceReset, now: float) -> None:
        """SequenceReset-Reset: the expected seq jumps, whatever this message's MsgSeqNum."""
        expected = self.state.next_target_seq
        if message.new_seq_no < expected:
            self._reject(
                step,
                header,
                f"NewSeqNo {message.new_seq_no} is below the expected {expected}",
                36,
                SessionRejectReason.VALUE_INCORRECT,
                now,
            )
            return
        self._advance_target(message.new_seq_no)
        for stale in [s for s in self._queued if s < message.new_seq_no]:
            del self._queued[stale]
        queued = self._queued.pop(self.state.next_target_seq, None)
        if queued is not None:
            self._sequence(step, queued[0], now, handled_early=queued[1])

    def _on_resend_request(self, step: Step, request: ResendRequest, now: float) -> None:
        """Re-send what the peer asks for: application messages within ``resend_max_age`` again
        (PossDupFlag=Y, OrigSendingTime), everything else as GapFill runs."""
        last = self.state.next_sender_seq - 1
        begin = max(1, request.begin_seq_no)
        end = last if request.end_seq_no == 0 or request.end_seq_no > last else request.end_seq_no
        gap_start: int | None = None
        stamp = sending_time(now)
        outbound = self.state.outbound
        for seq in range(begin, end + 1):
            stored = outbound.get(seq)
            if stored is not None and now - stored.sent_at <= self.config.resend_max_age:
                if gap_start is not None:
                    self._gap_fill(step, gap_start, seq, stamp)
                    gap_start = None
                step.outbound.append(with_resend_header(stored.frame, stamp))
                continue
            if stored is not None:
                step.events.append(ResendExpired(seq, _original(stored.frame), stored.sent_at))
            if gap_start is None:
                gap_start = seq
        if gap_start is not None:
            self._gap_fill(step, gap_start, end + 1, stamp)
        self._last_sent_at = now

    def _gap_fill(self, step: Step, first: int, new_seq_no: int, stamp: str) -> None:
        step.outbound.append(
            self._frame(
                SequenceReset(new_seq_no=new_seq_no, gap_fill_flag=True),
                first,
                stamp,
                poss_dup=True,
                orig_sending_time=stamp,
            )
        )

    def _on_logout(self, step: Step, message: Logout, now: float) -> None:
        if self.status is Status.LOGOUT_SENT:
            step.events.append(LoggedOut(message.text or "", by_peer=False))
            self._end(step, "logout complete")
            return
        self._send_admin(step, Logout(), now)
        step.events.append(LoggedOut(message.text or "", by_peer=True))
        self._end(step, "logged out by the peer")

    # ---- helpers ------------------------------------------------------------------------

    def _reset_due(self, now: float) -> bool:
        config = self.config
        return config.session_start is not None and config.period_start(now) > self.state.period_start

    def _refuse(self, step: Step, reason: str, now: float) -> None:
        """A peer we will not talk to: Logout with the reason, then disconnect."""
        step.error = LogonRejected(reason) if self.status is not Status.ACTIVE else FixError(reason)
        self._send_admin(step, Logout(text=reason[:200]), now)
        self._end(step, reason)

    def _reject(
        self, step: Step, header: Header, reason: str, ref_tag: int | None, code: int, now: float
    ) -> None:
        self._send_admin(
            step,
            Reject(
                ref_seq_num=header.msg_seq_num,
                text=reason[:200],
                ref_tag_id=ref_tag,
                ref_msg_type=header.msg_type,
                session_reject_reason=code,
            ),
            now,
        )

    def _end(self, step: Step, reason: str) -> None:
        step.events.append(SessionEnded(reason))
        step.disconnect = True
        self.disconnected()

    def _advance_target(self, next_target_seq: int) -> None:
        state = self.state
        if next_target_seq > state.next_target_seq:
            state.next_target_seq = next_target_seq
        if self._resend_requested_through < state.next_target_seq:
            self._resend_requested_through = 0

    def _record(self, step: Step, record: Record) -> None:
        apply_record(self.state, record, self.config.retention)
        if isinstance(record, SequencesReset):
            self._durable_target = 0
        step.records.append(record)

    def _encode(self, message: FixMessageBase, seq: int, now: float) -> bytes:
        return self._frame(message, seq, sending_time(now))

    def _frame(
        self,
        message: FixMessageBase,
        seq: int,
        stamp: str,
        *,
        poss_dup: bool = False,
        orig_sending_time: str | None = None,
    ) -> bytes:
        config = self.config
        return encode(
            message,
            begin_string=config.begin_string,
            sender_comp_id=config.sender_comp_id,
            target_comp_id=config.target_comp_id,
            msg_seq_num=seq,
            sending_time_text=stamp,
            poss_dup=poss_dup,
            orig_sending_time=orig_sending_time,
        )

    def _send_admin(self, step: Step, message: FixMessageBase, now: float) -> None:
        seq = self.state.next_sender_seq
        step.outbound.append(self._encode(message, seq, now))
        self._record(step, SeqSent(seq))
        self._last_sent_at = now
