"""The gateway: the node's one TCP connection to the broker."""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import Any

from examples.order_routing.node import paths
from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.delivery import offer
from examples.order_routing.node.messages import (
    BrokerInfo,
    BrokerReplies,
    Fills,
    GetBrokerInfo,
    Lookup,
    Snapshot,
    Submit,
    SubscribeFills,
)
from examples.order_routing.protocol import (
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
from garrison import Actor, ActorRef, MailboxConfig

CONNECT_TIMEOUT = 5.0
FRAMES_PER_YIELD = 128
READ_CHUNK = 64 * 1024
"""Bytes read from the socket at a time: one read for many frames."""
MAX_FRAMES_PER_WRITE = 256
"""Frames of consecutive messages joined into one socket write (one system call, not one per order)."""


class BrokerDisconnected(ConnectionError):
    """The broker connection is gone: the gateway crashes so its supervisor reconnects
    (with backoff) and restarts what depends on it."""


class Gateway(Actor):
    """Writes orders and look-ups to the broker; routes what comes back.

    Answers to orders and look-ups go to the executor, fills to positions
    (which asked for them with SubscribeFills, naming the last fill it
    applied). Frames wait in a backlog until the broker's Welcome. Writing
    never waits on the socket, so the executor can always hand over work;
    the reader waits for room in its peers' mailboxes, so the broker slows
    down rather than anything being dropped.
    """

    heartbeat_timeout = 5.0

    mailbox = MailboxConfig(capacity=65536)

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.welcome: Welcome | None = None
        self.backlog: list[tuple[bytes, float]] = []
        """Frames waiting for Welcome, each with the node-clock time after which it must not go out."""
        self.fills_to: ActorRef | None = None
        self.request_ids = itertools.count(1)
        self.counts = {"orders": 0, "lookups": 0, "fills": 0, "expired": 0}
        self.outgoing: list[tuple[bytes, float, bool]] = []
        """Frames of the messages handled since the last write: (frame, not_after, is an order)."""

    async def on_start(self) -> None:
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.config.broker_host, self.config.broker_port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as error:
            raise BrokerDisconnected(
                f"cannot reach the broker at {self.config.broker_host}:{self.config.broker_port}: {error}"
            ) from error
        self.ctx.run_task(self.read_loop(), name="broker-reader")

    async def on_stop(self) -> None:
        self.writer.close()

    async def on_receive(self, message: Any) -> Any:
        match message:
            case Submit(intents=intents, not_after=not_after):
                self.counts["orders"] += len(intents)
                for i in intents:
                    self.send(NewOrder(i.client_order_id, i.symbol, i.side, i.qty, i.price), not_after)
            case Lookup(client_order_id=cid):
                self.counts["lookups"] += 1
                self.send(QueryOrder(cid, next(self.request_ids)))
            case SubscribeFills(after=after, to=to):
                if self.fills_to is not None:
                    # A restarted positions lost fills it had not written yet; the broker
                    # replays only on a new connection's Hello, so reconnect.
                    raise BrokerDisconnected("positions subscribed again: reconnecting for a replay")
                self.fills_to = to
                self.writer.write(encode_frame(Hello(self.config.name, after)))
            case GetBrokerInfo():
                welcome = self.welcome
                return BrokerInfo(welcome.lookup_lag_seconds, welcome.dedupe) if welcome else None
            case Snapshot():
                return dict(self.counts, connected=self.welcome is not None)
            case _:
                self.ctx.unhandled(message)
        if self.outgoing and (self.ctx.queued == 0 or len(self.outgoing) >= MAX_FRAMES_PER_WRITE):
            self.write_outgoing()
        return None

    def send(self, request: NewOrder | QueryOrder, not_after: float = math.inf) -> None:
        frame = encode_frame(request)
        if self.welcome is None:
            self.backlog.append((frame, not_after))
            return
        self.outgoing.append((frame, not_after, type(request) is NewOrder))

    def write_outgoing(self) -> None:
        """Write the frames gathered since the last write in one go, leaving out those whose time
        is past: each frame's check and the write are one step (no await between them)."""
        outgoing, self.outgoing = self.outgoing, []
        now = self.ctx.node.clock.now()
        # The executor's lease on an order past its not_after ran out (several nodes): another
        # executor may own it now. Its intent stays SENDING, so whoever owns it looks it up first.
        live = [entry for entry in outgoing if now <= entry[1]]
        self.write_frames(live)
        expired = len(outgoing) - len(live)
        if expired:
            self.counts["expired"] += expired
            self.ctx.logger.warning("{n} orders not sent: their executor's lease had run out", n=expired)

    def write_frames(self, frames: list[tuple[bytes, float, bool]]) -> None:
        """Write ``frames`` (frame, not_after, is an order), in order, in one socket write; they
        are on the wire (in the socket's buffer) when this returns. A harness overrides it to
        fail at the socket (the chaos run's kills in the dead zone)."""
        self.writer.write(b"".join([frame for frame, _, _ in frames]))

    async def read_loop(self) -> None:
        """Linked to the incarnation: when it ends, the gateway crashes and is restarted; when
        the incarnation ends (a crash too, where on_stop does not run), it closes the connection."""
        try:
            await self.route_replies()
        finally:
            self.writer.close()

    async def route_replies(self) -> None:
        frames = FrameSplitter()
        while True:
            try:
                chunk = await self.reader.read(READ_CHUNK)
                if not chunk:
                    frames.end()
                    raise BrokerDisconnected("the broker closed the connection")
                payloads = frames.split(chunk)
            except (OSError, FrameError) as error:
                raise BrokerDisconnected(f"broker connection failed: {error}") from error
            for start in range(0, len(payloads), FRAMES_PER_YIELD):
                if start:
                    # A tell with room does not suspend: without this, a chunk full of replies
                    # and fills is routed in one go, holding the loop for tens of ms.
                    await asyncio.sleep(0)
                node = self.ctx.node
                # Answers and fills go on in one message each per slice, in arrival order:
                # a message per frame was most of what a busy node's loop spent on replies.
                replies: list[OrderAccepted | OrderRejected | OrderStatus] = []
                fills: list[Fill] = []
                for payload in payloads[start : start + FRAMES_PER_YIELD]:
                    message = broker_decoder.decode(payload)
                    match message:
                        case Fill():
                            fills.append(message)
                        case OrderAccepted() | OrderRejected() | OrderStatus():
                            replies.append(message)
                        case Welcome():
                            await self.forward(replies, fills)
                            replies, fills = [], []
                            self.welcome = message
                            self.outgoing.extend(
                                (frame, not_after, False) for frame, not_after in self.backlog
                            )
                            self.backlog.clear()
                            self.write_outgoing()
                            offer(
                                node.lookup(paths.EXECUTOR),
                                BrokerInfo(message.lookup_lag_seconds, message.dedupe),
                                node,
                            )
                        case Error(reason=reason):
                            self.ctx.logger.warning("broker refused a request: {reason}", reason=reason)
                await self.forward(replies, fills)

    async def forward(
        self, replies: list[OrderAccepted | OrderRejected | OrderStatus], fills: list[Fill]
    ) -> None:
        """Fills to positions and answers to the executor, one message each (none if empty)."""
        if fills:
            self.counts["fills"] += len(fills)
            assert self.fills_to is not None
            await self.fills_to.tell(Fills(fills))
        if replies:
            await self.ctx.node.lookup(paths.EXECUTOR).tell(BrokerReplies(replies))
