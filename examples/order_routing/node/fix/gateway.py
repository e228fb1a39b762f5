"""The FIX gateway: the node's FIX 4.4 initiator session, owning the TCP connection to the venue.

It is the product's Gateway (same place in the tree, same messages in and out, same reconnects
with jittered backoff, same escalations) speaking FIX instead of the native protocol: the
executor and positions cannot tell the difference. What FIX changes:

- **Durable before the wire.** Every frame comes out of the sans-IO ``FixSession`` as a step
  (events, records, frames). Steps are queued in the order the session made them and one writer
  task persists their records (one journal append for all that queued meanwhile: a batch of
  orders costs one write) *before* it writes their frames, in order. A SIGKILL between the two
  leaves a NewOrderSingle numbered and stored but never sent: the venue sees the gap at the next
  logon and asks for it, and the session re-sends it (PossDupFlag=Y), or gap-fills it when it is
  older than ``fix_resend_max_age`` (``OrdersExpired``: the intent settles as EXPIRED, never sent
  late, never sent blind).
- **Replays by sequence number.** The session's durable inbound sequence number can run ahead
  of what positions made durable (a fill read, the node killed before positions wrote it). Every
  connection therefore starts from the store's state with the next expected MsgSeqNum lowered
  to just after the last fill positions took; the venue's Logon then shows a gap and the session
  asks for everything since (ResendRequest), as the native Hello asks for ``fills_after``.
  Positions drops what it has by ``fill_seq`` (the report's MsgSeqNum in its session day: a
  resend keeps it), and fills that come again as new messages are dropped by ExecID (17).
- **Inbound progress persisted lazily.** Because of that replay point, the durable inbound
  MsgSeqNum is only ever an upper bound on where a connection starts: a lower one asks the venue
  for a few more reports, which come as PossDup resends and are dropped (fills by ``fill_seq``,
  answers are idempotent for the executor). So a read that makes no frame (a run of
  ExecutionReports) is not a journal append of its own: its ``TargetAdvanced`` rides with the
  next step that persists anyway (the next batch of orders, a heartbeat) or with the next tick
  (``TICK_EVERY``), whichever comes first. Only outbound frames are persisted before they are
  written, as before; a record held back when the connection ends is dropped, never appended
  after a later connection's ``SequencesReset``.
- **Look-ups are OrderStatusRequests** (35=H). A venue that refuses them (35=j) gets none again:
  orders in doubt stay UNKNOWN, held, until a resent report or an operator settles them, and a
  WARNING says so. A "not found" is trusted only ``fix_lookup_lag`` (plus the margin) after the
  logon, like the native protocol's Welcome.
- **Faults.** Garbled frames and bad checksums are dropped and counted (the resend brings what
  they carried); a session that ends (Logout, silence, logon timeout) is a reconnect. A Logon the
  venue refuses counts as a failed handshake (``max_handshake_failures`` escalate). A MsgSeqNum
  below the expected one without PossDupFlag means the two sides disagree on the sequence
  numbers: the gateway crashes with ``MsgSeqNumTooLow``; an operator reconciles them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import time
from collections import OrderedDict
from typing import Any

import msgspec

from examples.order_routing.fix.codec import sending_time
from examples.order_routing.fix.errors import FixEncodeError
from examples.order_routing.fix.messages import (
    BusinessMessageReject,
    ExecutionReport,
    FixMessageBase,
    NewOrderSingle,
)
from examples.order_routing.fix.session import (
    BusinessRejected,
    FixSession,
    GapDetected,
    InvalidReceived,
    LoggedOn,
    LogonRejected,
    MsgSeqNumTooLow,
    Received,
    RejectReceived,
    ResendExpired,
    SessionConfig,
    SessionEnded,
    Step,
)
from examples.order_routing.fix.store import (
    FixSessionStore,
    Retention,
    SessionState,
    TargetAdvanced,
    copy_state,
)
from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.delivery import offer
from examples.order_routing.node.faults import StepTimeout, within
from examples.order_routing.node.fix.orders import (
    SEQUENCE_SPACE,
    answer_of,
    fill_number,
    new_order_single,
    status_request,
)
from examples.order_routing.node.gateway import MAX_FRAMES_PER_WRITE, READ_CHUNK, BrokerDisconnected, Gateway
from examples.order_routing.node.messages import (
    BrokerInfo,
    GetIntentLog,
    Lookup,
    OrderClosed,
    OrderIntent,
    OrdersExpired,
    Submit,
)
from examples.order_routing.protocol import Fill, OrderAccepted, OrderRejected, OrderStatus, Welcome
from garrison import ActorNotFound, ActorStopped, AskTimeout
from garrison.persistence import IntentLog

EXEC_IDS_REMEMBERED = 100_000
"""ExecIDs of recent fills kept to drop a fill the venue sends again as a new message."""
RETAINED_MESSAGES = 200_000
"""Outbound messages the session keeps for resends at most (besides fix_resend_max_age)."""
SNAPSHOT_EVERY = 20_000
"""Session records between two snapshots of the session's state."""
BYTES_PER_STEP = 16 * 1024
"""Bytes of a read handed to the session at a time (the loop's other actors run in between)."""
TICK_EVERY = 0.5
"""Seconds between two ticks of the session (heartbeats, test requests, timeouts)."""
DUPLICATE_ORDER_REASON = "duplicate order"


class _Tick(msgspec.Struct, frozen=True):
    """Self-message: let the session's time pass."""


def session_config(config: NodeConfig) -> SessionConfig:
    """The node's FIX settings as the session takes them."""
    return SessionConfig(
        sender_comp_id=config.fix_sender_comp_id,
        target_comp_id=config.fix_target_comp_id,
        begin_string=config.fix_begin_string,
        heartbeat_interval=config.fix_heartbeat_interval,
        session_start=(
            datetime.time.fromisoformat(config.fix_session_start)
            if config.fix_reset_policy == "daily"
            else None
        ),
        session_timezone=config.fix_session_timezone,
        resend_max_age=config.fix_resend_max_age,
        retention=Retention(
            max_age_seconds=max(config.fix_resend_max_age, 1.0), max_messages=RETAINED_MESSAGES
        ),
        logon_timeout=config.handshake_timeout,
    )


def replay_from(state: SessionState, fills_after: int) -> SessionState:
    """The state a connection starts from: ``state`` with the next expected inbound MsgSeqNum no
    later than just after fill ``fills_after`` (positions' last), so the venue re-sends what
    positions may not have made durable."""
    start = copy_state(state)
    epoch = session_epoch(start)
    fill_epoch, fill_seq = divmod(fills_after, SEQUENCE_SPACE)
    if fills_after == 0 or fill_epoch < epoch:
        first = 1  # nothing of this session day taken yet
    elif fill_epoch == epoch:
        first = fill_seq + 1
    else:
        return start  # a fill from a later day than the store's: the store was reset; keep it
    start.next_target_seq = min(start.next_target_seq, first)
    return start


def session_epoch(state: SessionState) -> int:
    """The session day of ``state``'s sequence numbers, in minutes since 1970 (0: never reset)."""
    return int(state.period_start // 60)


class FixGateway(Gateway):
    """The Gateway over FIX 4.4: Submit -> NewOrderSingle, Lookup -> OrderStatusRequest,
    ExecutionReports -> the executor's answers and positions' fills (``node/fix/orders.py``)."""

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.session_config = session_config(config)
        self.fix: FixSession | None = None
        """The session of the current connection (None between connections)."""
        self.store: FixSessionStore | None = None
        self.requests: list[tuple[FixMessageBase, float, bool]] = []
        """Application messages handled since the last write: (message, not_after, is an order)."""
        self.waiting: list[tuple[FixMessageBase, float, bool]] = []
        """Application messages waiting for a logon."""
        self.steps: list[tuple[Step, list[tuple[float, bool]]]] = []
        """Steps made and not yet persisted and written, in the order the session made them, each
        with (not_after, is an order) for the frames of its application messages."""
        self.steps_ready = asyncio.Event()
        self.inbound_progress: Step | None = None
        """A read's step that only advanced the inbound MsgSeqNum, held back until the next step
        that persists anyway or the next tick (see "Inbound progress persisted lazily")."""
        self.exec_ids: OrderedDict[str, None] = OrderedDict()
        self.lookups_refused = False
        """The venue answered an OrderStatusRequest with a BusinessMessageReject: none is sent again."""
        self.garbled_seen = 0
        self.intent_log: IntentLog[OrderIntent] | None = None
        """The intent log intents owns (the orders' symbol and side for look-ups)."""
        self.counts.update(
            {
                "garbled_frames": 0,
                "gaps": 0,
                "resends_expired": 0,
                "session_rejects": 0,
                "business_rejects": 0,
                "duplicate_exec_ids": 0,
                "lookups_refused": 0,
                "possible_duplicates": 0,
            }
        )

    async def on_start(self) -> None:
        journal = self.ctx.node.journal
        assert journal is not None, "the FIX gateway keeps its session in the node's journal"
        self.store = FixSessionStore(
            journal,
            FixSessionStore.stream_for(self.config.fix_sender_comp_id, self.config.fix_target_comp_id),
            retention=self.session_config.retention,
            snapshot_every=SNAPSHOT_EVERY,
        )
        await self.store.load()
        await super().on_start()
        self.ctx.send_later(TICK_EVERY, _Tick())

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Submit(intents=intents, not_after=not_after):
                self.counts["orders"] += len(intents)
                stamp = sending_time(time.time())
                for intent in intents:
                    self.requests.append((new_order_single(intent, stamp), not_after, True))
            case Lookup(client_order_id=cid):
                order = None if self.lookups_refused else await self.order_of(cid)
                if order is None:
                    # Held: the executor keeps the order in doubt and asks again on its backoff.
                    self.counts["lookups_refused"] += 1
                else:
                    self.counts["lookups"] += 1
                    request = status_request(cid, order.symbol, order.side, next(self.request_ids))
                    self.requests.append((request, math.inf, False))
            case _Tick():
                self.ctx.send_later(TICK_EVERY, _Tick())
                session = self.fix
                if session is not None:
                    self.take(session.tick(time.time()), flush=True)
            case _:
                return await super().on_receive(message)
        if self.requests and (self.ctx.queued == 0 or len(self.requests) >= MAX_FRAMES_PER_WRITE):
            self.write_outgoing()
        return None

    # -- writing --------------------------------------------------------------------------------

    def write_outgoing(self) -> None:
        """Number and encode the requests gathered since the last write as one step (one
        persist, one socket write), leaving out those whose time is past. Before a logon they
        wait for it."""
        requests, self.requests = self.requests, []
        session = self.fix
        if session is None or not session.active or self.welcome is None:
            self.waiting.extend(requests)
            return
        now, wall = self.ctx.node.clock.now(), time.time()
        # As the native gateway: past its not_after (time-to-live, executor's lease) or past this
        # node's lease on the tree (a cluster singleton frozen past it), an order is not written.
        singletons = self.ctx.node.singletons
        held_until = math.inf if singletons is None else singletons.valid_until(self.ctx.path)
        live = [request for request in requests if now <= request[1] and now <= held_until]
        if len(live) < len(requests):
            self.counts["expired"] += len(requests) - len(live)
            self.ctx.logger.warning(
                "{n} orders not sent: their time-to-live or their executor's or node's lease had run out",
                n=len(requests) - len(live),
            )
        if not live:
            return
        try:
            # The common case: the whole batch numbered and encoded as one step.
            step = session.send_many([message for message, _, _ in live], wall)
            sent = [(not_after, order) for _, not_after, order in live]
        except FixEncodeError:
            step, sent = self.send_each(session, live, wall)
        if self.awaiting_since is None:
            self.awaiting_since = now
        self.take(step, sent)

    def send_each(
        self, session: FixSession, requests: list[tuple[FixMessageBase, float, bool]], wall: float
    ) -> tuple[Step, list[tuple[float, bool]]]:
        """``requests`` one by one, leaving out those that cannot be encoded."""
        step = Step()
        sent: list[tuple[float, bool]] = []
        for message, not_after, order in requests:
            try:
                step.extend(session.send(message, wall))
            except FixEncodeError as error:
                # A bad field (the risk checks should have refused it): never on the wire. The
                # executor finds it unanswered, looks it up, and the venue has never seen it.
                self.ctx.logger.error("not sent: {error}", error=error)
                continue
            sent.append((not_after, order))
        return step, sent

    def take(self, step: Step, sends: list[tuple[float, bool]] | None = None, *, flush: bool = False) -> None:
        """Queue ``step`` for the writer (its events were handled already). A step that only
        advances the inbound MsgSeqNum is held back (``inbound_progress``) and goes with the next
        step queued, or at once with ``flush``."""
        if not (step.outbound or step.disconnect) and all(
            type(record) is TargetAdvanced for record in step.records
        ):
            if step.records:
                self.inbound_progress = step  # its TargetAdvanced holds every earlier one's seq
            if flush and self.inbound_progress is not None:
                self.steps.append((self.inbound_progress, []))
                self.inbound_progress = None
                self.steps_ready.set()
            return
        held = self.inbound_progress
        if held is not None:
            self.inbound_progress = None
            self.steps.append((held, []))
        self.steps.append((step, sends or []))
        self.steps_ready.set()

    async def write_steps(self) -> None:
        """The connection's writer: persist every queued step's records (one append for all),
        then write their frames in order (one socket write). Ends by raising BrokerDisconnected
        when a step asks to disconnect."""
        store = self.store
        assert store is not None
        while True:
            await self.steps_ready.wait()
            self.steps_ready.clear()
            steps, self.steps = self.steps, []
            if not steps:
                continue
            await store.persist([record for step, _ in steps for record in step.records])
            frames: list[tuple[bytes, float, bool]] = []
            for step, sends in steps:
                # The application messages' frames come first in a send step, in request order.
                meta = sends + [(math.inf, False)] * (len(step.outbound) - len(sends))
                frames += [
                    (frame, not_after, order)
                    for frame, (not_after, order) in zip(step.outbound, meta, strict=True)
                ]
            if frames and self.writer is not None and not self.writer.is_closing():
                self.write_frames(frames)
            ending = next((step for step, _ in steps if step.disconnect), None)
            if ending is not None:
                error = ending.error
                if isinstance(error, MsgSeqNumTooLow):
                    raise error
                reason = next(
                    (e.reason for e in ending.events if isinstance(e, SessionEnded)), "session ended"
                )
                kind = "handshake" if isinstance(error, LogonRejected) else "closed"
                raise BrokerDisconnected(kind, f"FIX session ended: {reason}")

    # -- the connection's life ------------------------------------------------------------------

    def close_connection(self) -> None:
        session = self.fix
        if session is not None:
            session.disconnected()
        self.fix = None
        self.steps = []
        self.inbound_progress = None
        super().close_connection()
        self.waiting[:0] = self.requests
        self.requests = []

    async def session(self) -> None:  # type: ignore[override]
        """One connection: connect, log on with the durable sequence numbers, then read, hand
        over and write until the session or the socket ends (raised as BrokerDisconnected)."""
        clock = self.ctx.node.clock
        reader = await self.connect()  # positions' subscription names the first MsgSeqNum to ask again
        generation = self.session_generation
        store = self.store
        assert store is not None
        session = self.fix = FixSession(self.session_config, replay_from(store.state, self.fills_after))
        self.silent = False
        self.last_read = clock.now()
        self.awaiting_since = None
        self.steps = []
        self.inbound_progress = None
        self.steps_ready.clear()
        writing = asyncio.ensure_future(self.write_steps())
        reading = asyncio.ensure_future(self.read_session(session, reader, generation))
        try:
            self.take(session.connected(time.time()))
            done, _ = await asyncio.wait({writing, reading}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise BrokerDisconnected("closed", "the FIX session ended")
        finally:
            for task in (writing, reading):
                task.cancel()
            await asyncio.gather(writing, reading, return_exceptions=True)

    async def read_session(self, session: FixSession, reader: asyncio.StreamReader, generation: int) -> None:
        """Read until the connection ends; each read's messages go through the session and their
        events to the executor and positions before the step is queued for the writer."""
        config, clock = self.config, self.ctx.node.clock

        async def logged_on() -> None:
            while not session.active:
                await self.receive(session, await self.read(reader, generation), generation)

        try:
            await within(clock, config.handshake_timeout, "FIX logon (no Logon answer)", logged_on())
        except StepTimeout as timeout:
            self.counts["handshake_timeouts"] += 1
            raise BrokerDisconnected("handshake", str(timeout)) from timeout
        while True:
            await self.receive(session, await self.read(reader, generation), generation)

    async def read(self, reader: asyncio.StreamReader, generation: int) -> bytes:  # type: ignore[override]
        try:
            chunk = await reader.read(READ_CHUNK)
        except OSError as error:
            raise self.ended(generation, f"connection failed: {error}") from error
        if chunk:
            self.awaiting_since = None
            self.last_read = self.ctx.node.clock.now()
            return chunk
        if self.silent or generation != self.generation:
            raise self.ended(generation, "")
        raise BrokerDisconnected("closed", "the venue closed the connection")

    async def receive(self, session: FixSession, chunk: bytes, generation: int) -> None:
        """One read, through the session a slice at a time: a full read holds some 300 reports,
        too long a step for the loop's other actors to wait on."""
        for start in range(0, len(chunk), BYTES_PER_STEP):
            if start:
                await asyncio.sleep(0)
            await self.receive_slice(session, chunk[start : start + BYTES_PER_STEP], generation)

    async def receive_slice(self, session: FixSession, chunk: bytes, generation: int) -> None:
        step = session.receive_bytes(chunk, time.time())
        garbled = session.garbled_frames - self.garbled_seen
        if garbled > 0:
            self.garbled_seen = session.garbled_frames
            self.counts["garbled_frames"] += garbled
            self.counts["bad_frames"] += garbled
            self.faults.warning(
                "garbled",
                "venue {peer}: {n} garbled frame(s) dropped ({reason}); a resend recovers what they held",
                peer=self.peer,
                n=garbled,
                reason=session.reader.last_drop_reason,
            )
        # Queued at once, so that its frames keep their MsgSeqNums' order among the steps the
        # handler makes meanwhile. Its events may reach the executor and positions after its
        # records are durable: what they lose in a crash, the next connection asks for again
        # (replay_from) or the executor looks up.
        self.take(step)
        await self.handle(step, session, generation)

    async def handle(self, step: Step, session: FixSession, generation: int) -> None:
        """The step's events: answers to the executor, fills to positions, in arrival order."""
        replies: list[OrderAccepted | OrderRejected | OrderStatus] = []
        fills: list[Fill] = []
        expired: list[str] = []
        epoch = session_epoch(session.state)
        executor = self.ctx.node.lookup(paths.EXECUTOR)
        counts = self.counts
        for event in step.events:
            # ExecutionReports are nearly every event: tested by exact type before the match.
            if type(event) is Received and type(event.message) is ExecutionReport:
                report, dup = event.message, event.possible_duplicate
                if dup:
                    counts["possible_duplicates"] += 1
                answer = answer_of(report, fill_number(epoch, event.header.msg_seq_num))
                if isinstance(answer, Fill):
                    if not dup and self.seen_exec_id(report.exec_id):
                        counts["duplicate_exec_ids"] += 1
                        continue
                    fills.append(answer)
                elif isinstance(answer, (OrderAccepted, OrderRejected, OrderStatus)):
                    replies.append(answer)
                elif isinstance(answer, OrderClosed):
                    await self.forward(replies, fills, generation)
                    replies, fills = [], []
                    await executor.tell(answer)
                continue
            match event:
                case Received(message=message):
                    self.ctx.logger.info(
                        "venue {peer} sent {kind}: ignored", peer=self.peer, kind=type(message).__name__
                    )
                case LoggedOn():
                    self.on_logged_on()
                case BusinessRejected(reject=reject):
                    self.business_reject(reject)
                case RejectReceived(reject=reject):
                    self.counts["session_rejects"] += 1
                    self.faults.warning(
                        "session_reject",
                        "venue {peer} rejected our message {seq} (35={msg_type}) at the session level: "
                        "{why}; an order it carried stays in doubt and is looked up",
                        peer=self.peer,
                        seq=reject.ref_seq_num,
                        msg_type=reject.ref_msg_type,
                        why=reject.text,
                    )
                case ResendExpired(message=NewOrderSingle(cl_ord_id=cid)):
                    expired.append(cid)
                case ResendExpired():
                    pass
                case GapDetected():
                    self.counts["gaps"] += 1
                case InvalidReceived(reason=reason):
                    self.counts["bad_frames"] += 1
                    self.faults.warning(
                        "invalid",
                        "venue {peer} sent a malformed message: {reason}",
                        peer=self.peer,
                        reason=reason,
                    )
        await self.forward(replies, fills, generation)
        if expired:
            self.counts["resends_expired"] += len(expired)
            age = self.config.fix_resend_max_age
            reason = f"older than fix_resend_max_age={age:g}s when the venue asked for it"
            self.faults.warning(
                "resend_expired",
                "venue {peer} asked again for {n} order(s) it never got (e.g. {cid}): gap-filled, "
                "settled as expired",
                peer=self.peer,
                n=len(expired),
                cid=expired[0],
            )
            await executor.tell(OrdersExpired(tuple(expired), reason))

    async def order_of(self, cid: str) -> OrderIntent | None:
        """The intent ``cid`` names (a 35=H names the order's symbol and side too), read from the
        intent log intents owns; asked for again when this copy does not know it (intents may
        have restarted since, with a new log)."""
        intent = self.intent_log.get(cid) if self.intent_log is not None else None
        if intent is None:
            with contextlib.suppress(AskTimeout, ActorStopped, ActorNotFound):
                self.intent_log = await self.ctx.node.lookup(paths.INTENTS).ask(
                    GetIntentLog(), timeout=self.config.handshake_timeout
                )
            intent = self.intent_log.get(cid) if self.intent_log is not None else None
        return intent.payload if intent is not None else None

    def seen_exec_id(self, exec_id: str) -> bool:
        """Whether a fill with ``exec_id`` came already (remembering it if not)."""
        seen = self.exec_ids
        if exec_id in seen:
            return True
        seen[exec_id] = None
        if len(seen) > EXEC_IDS_REMEMBERED:
            seen.popitem(last=False)
        return False

    def business_reject(self, reject: BusinessMessageReject) -> None:
        self.counts["business_rejects"] += 1
        if reject.ref_msg_type == "H" and not self.lookups_refused:
            self.lookups_refused = True
            self.ctx.logger.warning(
                "venue {peer} refuses OrderStatusRequest (35=j: {why}): no look-up is sent again; orders "
                "in doubt stay UNKNOWN until the session's resend recovery or an operator settles them",
                peer=self.peer,
                why=reject.text or reject.business_reject_reason,
            )
            return
        self.faults.warning(
            "business_reject",
            "venue {peer} refused a 35={msg_type} (35=j, reason {reason}): {why}",
            peer=self.peer,
            msg_type=reject.ref_msg_type,
            reason=reject.business_reject_reason,
            why=reject.text,
        )

    def on_logged_on(self) -> None:
        """The session is active: what waited goes out, and the executor may look orders up."""
        welcome = Welcome(self.config.fix_target_comp_id, self.config.fix_lookup_lag, "none")
        self.welcome_seen = True
        self.failures = 0
        self.welcome = welcome
        self.connected_gauge.set(1)
        self.requests[:0] = self.waiting
        self.waiting = []
        self.write_outgoing()
        node = self.ctx.node
        offer(node.lookup(paths.EXECUTOR), BrokerInfo(welcome.lookup_lag_seconds, welcome.dedupe), node)
