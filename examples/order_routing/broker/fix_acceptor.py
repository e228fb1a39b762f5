"""The broker simulator as a FIX 4.4 acceptor: the same Venue, spoken to over FIX.

Each client is one FIX session, by its SenderCompID, kept in memory for the broker's life across
TCP connections (a ``FixClient``): what the venue says while the client is away is numbered and
stored, and the client's ResendRequest after its next Logon gets it, so a client that was away
misses nothing (the native protocol's ``Hello(fills_after)``, by sequence number). The client is
the venue's ``Peer``: the venue's answers (native messages) become ExecutionReports
(``fix_reports.py``) on the way out.

The faults of the native simulator keep their meaning (rejects, dropped replies, resets before
or after recording, look-up lag, partial fills, ghost fills, dedupe modes; ``garbage_rate`` sends
garbled FIX frames: bad checksums, bytes that are no frame), plus FIX's own:
``fix_gap_rate`` (a message numbered and stored but never written: the client sees a gap and
asks for it again), ``fix_duplicate_rate`` (a message written twice, the copy a PossDup resend),
``fix_reject_status_requests`` (every OrderStatusRequest answered with a BusinessMessageReject).

The sessions are not durable: a restarted simulator starts every session over (its orders and
fills are in its store all the same).
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time

from loguru import logger

from ..fix.codec import FrameReader, Inbound, sending_time, with_resend_header
from ..fix.errors import FixEncodeError
from ..fix.messages import (
    BusinessMessageReject,
    BusinessRejectReason,
    FixMessageBase,
    NewOrderSingle,
    OrderCancelRequest,
    OrderStatusRequest,
)
from ..fix.session import FixSession, Received, Role, SessionConfig, Step
from ..fix.store import Retention
from ..protocol import (
    CancelOrder,
    FrameError,
    FrameSplitter,
    Hello,
    OrderRejected,
    QueryOrder,
    broker_decoder,
)
from .config import BrokerConfig
from .fix_reports import ReportWriter, new_order_of
from .venue import Venue

TICK_EVERY = 0.5
RESEND_WINDOW = 24 * 3600.0
"""The venue re-sends anything of the session day a client asks for again."""
RETAINED_MESSAGES = 5_000_000
GARBLED_FRAMES = (
    b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01",  # a wrong CheckSum
    b"\x00\xff garbage that is no FIX frame \x01\x02",
    b"8=FIX.4.4\x019=999999999\x0135=8\x01",  # a BodyLength past any sane frame
)
_WRITE_HIGH_WATER = 1 << 20
NO_REPLAY = 1 << 62
"""Hello's ``fills_after`` for a FIX client: the session re-sends by sequence number instead."""


class FixClient:
    """One client's FIX session, across its connections; the venue's Peer for that client."""

    def __init__(self, venue: Venue, config: BrokerConfig, comp_id: str, begin_string: str) -> None:
        self.venue = venue
        self.config = config
        self.comp_id = comp_id
        self.session = FixSession(
            SessionConfig(
                sender_comp_id=config.fix_comp_id,
                target_comp_id=comp_id,
                role=Role.ACCEPTOR,
                begin_string=begin_string,
                resend_max_age=RESEND_WINDOW,
                retention=Retention(max_age_seconds=RESEND_WINDOW, max_messages=RETAINED_MESSAGES),
            )
        )
        self.reports = ReportWriter(begin_string)
        self.connection: FixConnection | None = None
        self.waiting: list[FixMessageBase] = []
        """Reports made while no session was active: sent after the next Logon."""
        self.rng = random.Random(config.seed)
        self.hello_said = False
        self.splitter = FrameSplitter()

    # -- the venue's Peer ------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return False  # the session outlives its connections: what the venue says is kept

    def send(self, frame: bytes) -> None:
        """A native frame (or several, or garbage) from the venue, as FIX."""
        try:
            payloads = self.splitter.split(frame)
        except FrameError:
            payloads = []
            self.splitter = FrameSplitter()
        for payload in payloads:
            try:
                answer = broker_decoder.decode(payload)
            except Exception:  # the venue's garbage_rate: a frame that does not decode
                self.write_raw(GARBLED_FRAMES[self.venue.stats.garbage_sent % len(GARBLED_FRAMES)])
                continue
            report = self.reports.report(answer)
            if report is not None:
                self.send_app(report)

    def hold(self) -> None:
        if self.connection is not None:
            self.connection.hold()

    def reset(self) -> None:
        if self.connection is not None:
            self.connection.reset()

    # -- the session -----------------------------------------------------------------------

    def attach(self, connection: FixConnection) -> None:
        """A new connection for this client: the old one (if any) is dropped."""
        old, self.connection = self.connection, connection
        if old is not None and old is not connection:
            old.reset()
        self.session.disconnected()
        self.run(self.session.connected(time.time()))
        if not self.hello_said:
            self.hello_said = True
            self.venue.hello(self, Hello(self.comp_id, NO_REPLAY))

    def detach(self, connection: FixConnection) -> None:
        if self.connection is connection:
            self.connection = None
            self.session.disconnected()

    def receive(self, parsed: Inbound, now: float) -> None:
        step = self.session.receive(parsed, now)
        self.run(step)

    def send_app(self, message: FixMessageBase) -> None:
        session = self.session
        if not session.active or self.connection is None:
            self.waiting.append(message)
            return
        try:
            step = session.send(message, time.time())
        except FixEncodeError as error:
            logger.bind(actor="broker").error(
                "FIX report not sent to {client}: {error}", client=self.comp_id, error=error
            )
            return
        config, rng = self.config, self.rng
        if config.fix_gap_rate and rng.random() < config.fix_gap_rate:
            self.venue.stats.fix_gaps += 1
            step.outbound.clear()  # numbered and stored: the client asks for it again
        elif config.fix_duplicate_rate and rng.random() < config.fix_duplicate_rate:
            self.venue.stats.fix_duplicates += 1
            step.outbound += [with_resend_header(frame, sending_time(time.time())) for frame in step.outbound]
        self.run(step)

    def run(self, step: Step) -> None:
        """Hand the step's requests to the venue and write its frames (the session lives in memory:
        nothing to persist)."""
        connection = self.connection
        if connection is not None and step.outbound:
            connection.write(b"".join(step.outbound))
        for event in step.events:
            if isinstance(event, Received):
                self.request(event.header.msg_seq_num, event.message)
        if step.error is not None:
            logger.bind(actor="broker").info(
                "FIX session of {client}: {error}", client=self.comp_id, error=step.error
            )
        if step.disconnect and connection is not None:
            connection.close()
        if self.session.active and self.waiting and self.connection is not None:
            waiting, self.waiting = self.waiting, []
            for message in waiting:
                self.send_app(message)

    def request(self, seq: int, message: object) -> None:
        venue, client = self.venue, self.comp_id
        match message:
            case NewOrderSingle():
                order = new_order_of(message)
                if isinstance(order, str):
                    report = self.reports.report(OrderRejected(message.cl_ord_id, order))
                    if report is not None:
                        self.send_app(report)
                    return
                self.reports.remember(order)
                venue.new_order(self, client, order)
            case OrderStatusRequest(cl_ord_id=cid, ord_status_req_id=request_id):
                if self.config.fix_reject_status_requests:
                    venue.stats.queries += 1
                    self.send_app(
                        BusinessMessageReject(
                            ref_msg_type="H",
                            business_reject_reason=BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE,
                            ref_seq_num=seq,
                            business_reject_ref_id=request_id,
                            text="OrderStatusRequest is not supported",
                        )
                    )
                    return
                number = int(request_id) if request_id and request_id.isdigit() else 0
                venue.query_order(self, client, QueryOrder(cid, number))
            case OrderCancelRequest(orig_cl_ord_id=cid):
                venue.cancel_order(self, client, CancelOrder(cid))
            case _:
                self.send_app(
                    BusinessMessageReject(
                        ref_msg_type=getattr(message, "MSG_TYPE", "?") or "?",
                        business_reject_reason=BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE,
                        ref_seq_num=seq,
                        text=f"{type(message).__name__} is not supported by this venue",
                    )
                )

    def tick(self) -> None:
        if self.connection is not None:
            self.run(self.session.tick(time.time()))

    def write_raw(self, data: bytes) -> None:
        if self.connection is not None:
            self.connection.write(data)


class FixSessions:
    """The broker's FIX clients by SenderCompID (one server's)."""

    def __init__(self, venue: Venue, config: BrokerConfig) -> None:
        self.venue = venue
        self.config = config
        self.clients: dict[str, FixClient] = {}
        self.timer: asyncio.TimerHandle | None = None

    def client(self, comp_id: str, begin_string: str) -> FixClient:
        client = self.clients.get(comp_id)
        if client is None:
            client = self.clients[comp_id] = FixClient(self.venue, self.config, comp_id, begin_string)
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(TICK_EVERY, self.tick)
        return client

    def tick(self) -> None:
        self.timer = asyncio.get_running_loop().call_later(TICK_EVERY, self.tick)
        for client in self.clients.values():
            client.tick()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class FixConnection(asyncio.Protocol):
    """One TCP connection of a FIX client; its first message (a Logon) names the client."""

    def __init__(self, sessions: FixSessions, connections: set[FixConnection]) -> None:
        self.sessions = sessions
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.reader = FrameReader()
        self.client: FixClient | None = None
        self.taking = True
        self.closed = False
        self.out: list[bytes] = []
        self.flush_pending = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.out.clear()
        self.connections.discard(self)
        if self.client is not None:
            self.client.detach(self)

    def data_received(self, data: bytes) -> None:
        if not self.taking:
            return
        stats = self.sessions.venue.stats
        dropped = self.reader.dropped
        parsed_messages = self.reader.feed(data)
        stats.bad_frames += self.reader.dropped - dropped
        now = time.time()
        for parsed in parsed_messages:
            if not self.taking:
                return
            if not isinstance(parsed, Inbound):
                if self.client is not None:
                    self.client.session.receive(parsed, now)
                continue
            if self.client is None:
                header = parsed.header
                if header.target_comp_id != self.sessions.config.fix_comp_id or not header.sender_comp_id:
                    logger.bind(actor="broker").info(
                        "FIX logon for {target} from {sender} refused: this venue is {me}",
                        target=header.target_comp_id, sender=header.sender_comp_id,
                        me=self.sessions.config.fix_comp_id,
                    )  # fmt: skip
                    self.close()
                    return
                self.client = self.sessions.client(header.sender_comp_id, header.begin_string)
                self.client.attach(self)
            self.client.receive(parsed, now)

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        """Queue bytes; everything queued in one loop turn goes out in one write."""
        if self.closed:
            return
        self.out.append(data)
        if not self.flush_pending:
            self.flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_pending = False
        transport = self.transport
        if self.out and not self.closed and transport is not None and not transport.is_closing():
            transport.write(b"".join(self.out))
        self.out.clear()

    def hold(self) -> None:
        self.taking = False

    def reset(self) -> None:
        """Abort with a TCP RST: nothing queued is sent."""
        self.taking = False
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.out.clear()
        transport.abort()

    def close(self) -> None:
        self.taking = False
        self.flush()
        if self.transport is not None:
            self.transport.close()
