"""The gateway: the node's one TCP connection to the broker, and everything that goes wrong with it.

The gateway owns the connection's whole life: connect, Hello, Welcome, read,
and reconnect. A reset, a connection the broker closed, a frame that does
not decode, a handshake that never ends and a peer that falls silent are
*expected* faults of a venue: each is one WARNING line (repeats counted,
not logged), a ``ConnectionLost`` to the executor, and a reconnect after a
jittered backoff. None of them crashes the gateway, so the intent log, the
executor and positions below it keep running: a network blip costs a
reconnect, not a replay of the intent log.

What still escalates (the gateway crashes, and execution restarts as
rest_for_one says), and why:

- ``BrokerUnreachable``: ``max_handshake_failures`` attempts in a row never
  reached Welcome. The broker is down or is not a broker; the supervisor's
  restart intensity makes the outage visible instead of retrying quietly.
- ``BrokerIncompatible``: a Welcome whose terms the node cannot work with (a
  look-up lag that is not a finite number >= 0, an unknown dedupe mode).
  "Not found" could not be trusted, so nothing may be sent.
- Anything unexpected (a bug): a crash, with its traceback, as everywhere.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from typing import Any

import msgspec

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.delivery import offer
from examples.order_routing.node.faults import RepeatLimiter, StepTimeout, within
from examples.order_routing.node.messages import (
    BrokerInfo,
    BrokerReplies,
    ConnectionLost,
    Fills,
    GetBrokerInfo,
    LastFillTaken,
    Lookup,
    Snapshot,
    Submit,
    SubscribeFills,
)
from examples.order_routing.protocol import (
    BrokerMessage,
    Error,
    Fill,
    FrameError,
    FrameSplitter,
    Hello,
    NewOrder,
    OrderAccepted,
    OrderRejected,
    OrderStatus,
    QueryOrder,
    Welcome,
    broker_decoder,
    encode_frame,
)
from garrison import Actor, ActorRef, ActorStopped, AskTimeout, MailboxConfig, UnhandledMessage

FRAMES_PER_YIELD = 128
READ_CHUNK = 64 * 1024
"""Bytes read from the socket at a time: one read for many frames."""
MAX_FRAMES_PER_WRITE = 256
"""Frames of consecutive messages joined into one socket write (one system call, not one per order)."""
KNOWN_DEDUPE_MODES = frozenset({"always", "while-open", "none"})


class _Watch(msgspec.Struct, frozen=True):
    """Self-message: check the connection for silence."""


class BrokerDisconnected(ConnectionError):
    """The broker connection is gone (``kind``: unreachable, handshake, reset, closed, bad_frame,
    silent, resubscribe). An expected fault: the gateway reconnects by itself."""

    def __init__(self, kind: str, cause: str) -> None:
        super().__init__(cause)
        self.kind = kind
        self.cause = cause


def split_frames(frames: FrameSplitter, chunk: bytes) -> list[bytes]:
    """The payloads ``chunk`` completes. A stream whose framing is lost (an oversized length)
    raises BrokerDisconnected("bad_frame"); the splitter never holds more than one frame."""
    try:
        return frames.split(chunk)
    except FrameError as error:
        raise BrokerDisconnected("bad_frame", str(error)) from error


def decode_frame(payload: bytes) -> BrokerMessage:
    """A frame's message. One that does not decode (not msgpack, an unknown tag, a field of the
    wrong type) raises BrokerDisconnected("bad_frame"): the connection ends, and what it carried
    (a fill?) comes again after the next Hello, or the executor looks it up."""
    try:
        return broker_decoder.decode(payload)
    except msgspec.DecodeError as error:
        raise BrokerDisconnected("bad_frame", f"a frame that does not decode ({error})") from error


class BrokerUnreachable(ConnectionError):
    """Raised by the gateway when ``max_handshake_failures`` connection attempts in a row never
    reached the broker's Welcome: it crashes, and its supervisor restarts execution."""


class BrokerIncompatible(ConnectionError):
    """Raised by the gateway for a Welcome whose terms the node cannot work with safely (its
    look-up lag or dedupe mode): it crashes rather than send anything to that broker."""


class Gateway(Actor):
    """Writes orders and look-ups to the broker; routes what comes back; keeps the connection up.

    Answers to orders and look-ups go to the executor, fills to positions
    (which asked for them with SubscribeFills, naming the last fill it
    applied). Frames wait in a backlog while there is no Welcome (before the
    first, and between a lost connection and the next). Writing never waits
    on the socket, so the executor can always hand over work; the reader
    waits for room in its peers' mailboxes, so the broker slows down rather
    than anything being dropped.

    Each new connection's Hello asks for the fills after the last one handed
    to positions, so a reconnect misses none (positions drops what it has
    already seen by ``fill_seq``).
    """

    heartbeat_timeout = 5.0

    mailbox = MailboxConfig(capacity=65536)

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.peer = f"{config.broker_host}:{config.broker_port}"
        self.welcome: Welcome | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.backlog: list[tuple[bytes, float, bool]] = []
        """Frames waiting for a Welcome: (frame, the node-clock time after which it must not go
        out, is an order)."""
        self.fills_to: ActorRef | None = None
        self.fills_after = 0
        self.subscription = 0
        """The subscriber's number for its subscription, carried by every Fills sent for it."""
        """The Hello of the next connection asks for the fills after this one: what positions
        asked for, raised by every fill handed to it since."""
        self.subscribed = asyncio.Event()
        self.generation = 0
        """Bumped when positions subscribes again: fills read on an older connection are dropped."""
        self.request_ids = itertools.count(1)
        self.counts = {
            "orders": 0,
            "lookups": 0,
            "fills": 0,
            "expired": 0,
            "connects": 0,
            "disconnects": 0,
            "handshake_timeouts": 0,
            "silences": 0,
            "bad_frames": 0,
            "broker_errors": 0,
        }
        self.outgoing: list[tuple[bytes, float, bool]] = []
        """Frames of the messages handled since the last write: (frame, not_after, is an order)."""
        self.awaiting_since: float | None = None
        """When the first request since the last read was written (None: nothing awaits an answer,
        so a quiet connection is idle, not dead)."""
        self.last_read = 0.0
        self.silent = False
        """The watch cut the current connection for its silence."""
        self.failures = 0
        """Connection attempts in a row that never reached Welcome."""
        self.welcome_seen = False
        """The current (or last) connection reached Welcome."""
        self.jitter = random.Random()
        self.session_generation = 0

    async def on_start(self) -> None:
        self.faults = RepeatLimiter(self.ctx.logger, self.ctx.node.clock)
        metrics = self.ctx.metrics
        self.connected_gauge = metrics.gauge(
            "broker_connected", "1 while the gateway has the broker's Welcome"
        )
        self.lost_counter = metrics.counter(
            "broker_connections_lost", "Broker connections lost (reconnected)"
        )
        self.fault_counters = {
            "handshake": metrics.counter(
                "broker_handshake_failures", "Connections that never reached Welcome"
            ),
            "silent": metrics.counter("broker_silences", "Connections dropped for silence_timeout"),
            "bad_frame": metrics.counter(
                "broker_bad_frames", "Connections dropped for a frame that does not decode"
            ),
        }
        self.ctx.run_task(self.stay_connected(), name="broker-connection")
        self.watch()

    async def on_stop(self) -> None:
        self.close_connection()

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Submit(intents=intents, not_after=not_after):
                self.counts["orders"] += len(intents)
                for i in intents:
                    self.send(NewOrder(i.client_order_id, i.symbol, i.side, i.qty, i.price), not_after)
            case Lookup(client_order_id=cid):
                self.counts["lookups"] += 1
                self.send(QueryOrder(cid, next(self.request_ids)))
            case SubscribeFills(after=after, to=to, subscription=subscription):
                self.subscribe(after, to, subscription)
            case GetBrokerInfo():
                welcome = self.welcome
                return BrokerInfo(welcome.lookup_lag_seconds, welcome.dedupe) if welcome else None
            case _Watch():
                self.watch()
            case Snapshot():
                return dict(self.counts, connected=self.welcome is not None)
            case _:
                self.ctx.unhandled(message)
        if self.outgoing and (self.ctx.queued == 0 or len(self.outgoing) >= MAX_FRAMES_PER_WRITE):
            self.write_outgoing()
        return None

    def subscribe(self, after: int, to: ActorRef, subscription: int) -> None:
        """Positions (re)subscribes: the next Hello asks for the fills after ``after``. A restarted
        positions lost the fills it had not written yet, and the broker replays only on a new
        connection's Hello, so a subscription while connected reconnects at once."""
        again = self.fills_to is not None
        self.fills_to = to
        self.fills_after = after
        self.subscription = subscription
        self.subscribed.set()
        if again:
            self.generation += 1
            if self.writer is not None:
                self.writer.transport.abort()

    # -- writing --------------------------------------------------------------------------------

    def send(self, request: NewOrder | QueryOrder, not_after: float = math.inf) -> None:
        entry = (encode_frame(request), not_after, type(request) is NewOrder)
        if self.welcome is None:
            self.backlog.append(entry)
            return
        self.outgoing.append(entry)

    def write_outgoing(self) -> None:
        """Write the frames gathered since the last write in one go, leaving out those whose time
        is past: each frame's check and the write are one step (no await between them). With no
        live connection they wait in the backlog for the next Welcome."""
        outgoing, self.outgoing = self.outgoing, []
        writer = self.writer
        if self.welcome is None or writer is None or writer.is_closing():
            self.backlog.extend(outgoing)
            return
        now = self.ctx.node.clock.now()
        # Past its not_after, an order's time-to-live has run out (it would go out late), or (several
        # nodes) its executor's lease has, and another executor may own it now; or this node's lease
        # on the whole tree did (a cluster singleton, frozen past it). Its intent stays SENDING, so
        # whoever owns it looks it up first (and expires it if the broker never had it).
        singletons = self.ctx.node.singletons
        held_until = math.inf if singletons is None else singletons.valid_until(self.ctx.path)
        live = [entry for entry in outgoing if now <= entry[1] and now <= held_until]
        if live:
            if self.awaiting_since is None:
                self.awaiting_since = now
            self.write_frames(live)
        expired = len(outgoing) - len(live)
        if expired:
            self.counts["expired"] += expired
            self.ctx.logger.warning(
                "{n} orders not sent: past their not-after time (time-to-live or lease); "
                "their intents are looked up",
                n=expired,
            )

    def write_frames(self, frames: list[tuple[bytes, float, bool]]) -> None:
        """Write ``frames`` (frame, not_after, is an order), in order, in one socket write; they
        are on the wire (in the socket's buffer) when this returns. A harness overrides it to
        fail at the socket (the chaos run's kills in the dead zone)."""
        assert self.writer is not None
        self.writer.write(b"".join([frame for frame, _, _ in frames]))

    # -- the connection's life ------------------------------------------------------------------

    async def stay_connected(self) -> None:
        """Connect, serve, and reconnect after every expected fault, forever. Linked to the
        incarnation: it ends only by raising what escalates (BrokerUnreachable,
        BrokerIncompatible, or a bug), which crashes the gateway."""
        node = self.ctx.node
        while True:
            try:
                await self.session()
            except BrokerDisconnected as fault:
                kind, cause = fault.kind, fault.cause
                if self.session_generation != self.generation:
                    # Positions subscribed again while this connection was being set up.
                    kind, cause = "resubscribe", "positions subscribed again: reconnecting for a replay"
                self.counts[f"lost_{kind}"] = self.counts.get(f"lost_{kind}", 0) + 1
                self.ctx.logger.opt(exception=fault).debug("broker {peer}: {kind}", peer=self.peer, kind=kind)
            finally:
                self.close_connection()
            self.counts["disconnects"] += 1
            self.lost_counter.inc()
            self.connected_gauge.set(0)
            if kind in self.fault_counters:
                self.fault_counters[kind].inc()
            if kind == "resubscribe":
                self.ctx.logger.info("broker {peer}: {cause}; reconnecting now", peer=self.peer, cause=cause)
                continue
            if self.welcome_seen:
                self.failures = 0
            else:
                self.failures += 1
                if self.failures >= self.config.max_handshake_failures:
                    raise BrokerUnreachable(
                        f"broker {self.peer}: {self.failures} connection attempts in a row failed "
                        f"(max_handshake_failures={self.config.max_handshake_failures}); last: {cause}"
                    )
            delay = self.backoff()
            offer(node.lookup(paths.EXECUTOR), ConnectionLost(cause), node)
            self.faults.warning(
                kind,
                "broker {peer}: {cause}; reconnecting in {delay:.2f}s",
                peer=self.peer,
                cause=cause,
                delay=delay,
            )
            await node.clock.sleep(delay)

    def backoff(self) -> float:
        """The wait before the next attempt: doubling per failed attempt, capped, jittered (half to
        all of it) so that many nodes cut off together do not come back together."""
        ceiling = min(self.config.reconnect_max, self.config.reconnect_initial * 2**self.failures)
        return self.jitter.uniform(ceiling / 2, ceiling)

    def close_connection(self) -> None:
        self.welcome = None
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
        # Frames gathered for the connection that died wait for the next one.
        self.backlog[:0] = self.outgoing
        self.outgoing = []

    async def connect(self) -> asyncio.StreamReader:
        """The start of every session, whatever the protocol: connect, wait for positions'
        subscription (it says which fills to replay) and ask which fills it took. Raises
        BrokerDisconnected."""
        config, clock = self.config, self.ctx.node.clock
        self.welcome_seen = False
        generation = self.session_generation = self.generation
        try:
            reader, self.writer = await within(
                clock,
                config.connect_timeout,
                "connect",
                asyncio.open_connection(config.broker_host, config.broker_port),
            )
        except (OSError, StepTimeout) as error:
            raise BrokerDisconnected("unreachable", f"cannot connect: {error}") from error
        self.counts["connects"] += 1
        await self.subscribed.wait()
        if generation != self.generation:
            raise BrokerDisconnected("resubscribe", "positions subscribed again: reconnecting for a replay")
        await self.ask_fills_taken()
        return reader

    async def session(self) -> None:
        """One connection, from connect to the fault that ends it (raised as BrokerDisconnected)."""
        config, clock = self.config, self.ctx.node.clock
        reader = await self.connect()
        generation = self.session_generation
        self.silent = False
        self.last_read = clock.now()
        self.awaiting_since = None
        self.writer.write(encode_frame(Hello(config.name, self.fills_after)))
        frames = FrameSplitter()
        try:
            welcome, rest = await within(
                clock, config.handshake_timeout, "handshake (no Welcome)", self.handshake(reader, frames)
            )
        except StepTimeout as timeout:
            self.counts["handshake_timeouts"] += 1
            raise BrokerDisconnected("handshake", str(timeout)) from timeout
        self.on_welcome(welcome)
        await self.route(rest, generation)
        while True:
            await self.route(frames.split(await self.read(reader, frames, generation)), generation)

    async def ask_fills_taken(self) -> None:
        """Ask positions for the last fill it has taken (applied or about to be): the next Hello
        asks for the ones after it. Fills it quarantined do not count, so a forged ``fill_seq``
        cannot make the broker skip real fills. Positions answers after whatever is queued before
        the question, so fills of the connection that died are counted; without an answer in
        handshake_timeout, the last fill handed to it is used."""
        subscriber, generation = self.fills_to, self.generation
        assert subscriber is not None
        try:
            taken = await subscriber.ask(LastFillTaken(), timeout=self.config.handshake_timeout)
        except (AskTimeout, ActorStopped, UnhandledMessage):
            return
        if generation == self.generation:
            # Else positions subscribed again meanwhile, from what it has written: the answer of
            # the incarnation before (fills taken, perhaps never written) would skip fills.
            self.fills_after = taken

    async def read(self, reader: asyncio.StreamReader, frames: FrameSplitter, generation: int) -> bytes:
        """The next chunk from the broker. Raises BrokerDisconnected for a reset, a closed
        connection, a stream cut inside a frame, or silence while a request awaits its answer
        (the watch aborts the connection, and the read ends here)."""
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
        try:
            frames.end()
        except FrameError as error:
            self.counts["bad_frames"] += 1
            raise BrokerDisconnected("bad_frame", str(error)) from error
        raise BrokerDisconnected("closed", "the broker closed the connection")

    def ended(self, generation: int, cause: str) -> BrokerDisconnected:
        """Why the connection ended: this node cut it (silence, a new subscription), or the broker."""
        if generation != self.generation:
            return BrokerDisconnected("resubscribe", "positions subscribed again: reconnecting for a replay")
        if self.silent:
            return BrokerDisconnected(
                "silent", f"nothing read for {self.config.silence_timeout:g}s while requests awaited answers"
            )
        return BrokerDisconnected("reset", cause)

    def watch(self) -> None:
        """Every quarter of silence_timeout: a connection on which nothing was read for
        silence_timeout while a request awaited its answer is dead (there are no heartbeats in
        this protocol): abort it, and the reader reconnects."""
        self.ctx.send_later(self.config.silence_timeout / 4, _Watch())
        writer, since = self.writer, self.awaiting_since
        if writer is None or self.welcome is None or since is None or self.silent:
            return
        now = self.ctx.node.clock.now()
        if now - max(since, self.last_read) >= self.config.silence_timeout:
            self.silent = True
            self.counts["silences"] += 1
            writer.transport.abort()

    async def handshake(
        self, reader: asyncio.StreamReader, frames: FrameSplitter
    ) -> tuple[Welcome, list[bytes]]:
        """Read until the first frame, which must be Welcome; the frames that came with it."""
        while True:
            try:
                chunk = await reader.read(READ_CHUNK)
            except OSError as error:
                raise BrokerDisconnected(
                    "reset", f"connection failed during the handshake: {error}"
                ) from error
            if not chunk:
                raise BrokerDisconnected("handshake", "the broker closed the connection before its Welcome")
            payloads = self.split(frames, chunk)
            if not payloads:
                continue
            first = self.decode(payloads[0])
            if isinstance(first, Error):
                raise BrokerDisconnected("handshake", f"the broker refused the Hello: {first.reason}")
            if not isinstance(first, Welcome):
                raise BrokerDisconnected("handshake", f"expected a Welcome first, got {type(first).__name__}")
            return first, payloads[1:]

    def on_welcome(self, welcome: Welcome) -> None:
        lag = welcome.lookup_lag_seconds
        if not (math.isfinite(lag) and lag >= 0) or welcome.dedupe not in KNOWN_DEDUPE_MODES:
            raise BrokerIncompatible(
                f"broker {self.peer} welcomed with lookup_lag_seconds={lag!r}, dedupe={welcome.dedupe!r}: "
                f"the node needs a finite lag >= 0 and a dedupe mode of {sorted(KNOWN_DEDUPE_MODES)}"
            )
        self.welcome_seen = True
        self.failures = 0
        self.welcome = welcome
        self.connected_gauge.set(1)
        backlog, self.backlog = self.backlog, []
        self.outgoing[:0] = backlog
        self.write_outgoing()
        node = self.ctx.node
        offer(node.lookup(paths.EXECUTOR), BrokerInfo(lag, welcome.dedupe), node)

    def split(self, frames: FrameSplitter, chunk: bytes) -> list[bytes]:
        try:
            return split_frames(frames, chunk)
        except BrokerDisconnected:
            self.counts["bad_frames"] += 1
            raise

    def decode(self, payload: bytes) -> BrokerMessage:
        try:
            return decode_frame(payload)
        except BrokerDisconnected:
            self.counts["bad_frames"] += 1
            raise

    async def route(self, payloads: list[bytes], generation: int) -> None:
        """Route the frames of one read: answers to the executor and fills to positions, one
        message each per slice, in arrival order (a message per frame was most of what a busy
        node's loop spent on replies)."""
        for start in range(0, len(payloads), FRAMES_PER_YIELD):
            if start:
                # A tell with room does not suspend: without this, a chunk full of replies
                # and fills is routed in one go, holding the loop for tens of ms.
                await asyncio.sleep(0)
            replies: list[OrderAccepted | OrderRejected | OrderStatus] = []
            fills: list[Fill] = []
            for payload in payloads[start : start + FRAMES_PER_YIELD]:
                try:
                    message = self.decode(payload)
                except BrokerDisconnected:
                    await self.forward(replies, fills, generation)  # what came before it is good
                    raise
                match message:
                    case Fill():
                        fills.append(message)
                    case OrderAccepted() | OrderRejected() | OrderStatus():
                        replies.append(message)
                    case Error(reason=reason):
                        self.counts["broker_errors"] += 1
                        self.faults.warning(
                            "broker_error",
                            "broker {peer} refused a request: {reason}",
                            peer=self.peer,
                            reason=reason,
                        )
                    case _:
                        await self.forward(replies, fills, generation)
                        replies, fills = [], []
                        raise BrokerDisconnected(
                            "bad_frame", f"unexpected {type(message).__name__} after the Welcome"
                        )
            await self.forward(replies, fills, generation)

    async def forward(
        self, replies: list[OrderAccepted | OrderRejected | OrderStatus], fills: list[Fill], generation: int
    ) -> None:
        """Fills to positions and answers to the executor, one message each (none if empty)."""
        if fills and generation == self.generation and self.fills_to is not None:
            self.counts["fills"] += len(fills)
            await self.fills_to.tell(Fills(fills, self.subscription))
            if generation == self.generation:  # not if positions subscribed again during the tell
                self.fills_after = max(self.fills_after, *(fill.fill_seq for fill in fills))
        if replies:
            await self.ctx.node.lookup(paths.EXECUTOR).tell(BrokerReplies(replies))
