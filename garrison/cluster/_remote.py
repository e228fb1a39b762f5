"""Remote refs and the transport under them: one inbound stream per node, batched both ways.

Sending: each frame goes into a send buffer; one flusher task wakes on the
next loop turn and sends everything buffered as one pipeline of XADDs (MAXLEN
~ ``max_inbox_length``), in order. Receiving: one reader task reads this
node's inbox with XREADGROUP COUNT ``read_count``, delivers each entry in
stream order into the local mailbox, synchronously (an ask through
``ActorRef.ask_future``, answered from the reply future's callback; what finds
a full BACKPRESSURE mailbox waits in a task of its own, with what follows it
for that actor), lets what an ask or answer woke run before it reads again, and
acknowledges (XACK + XDEL) what was accepted, in batches sent by a task of
their own so that no frame waits behind them. So the frames of one sender to
one receiver arrive in the order sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from garrison._defaults import DEFAULT_ASK_TIMEOUT
from garrison._errors import (
    ActorNotFound,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    NodeUnreachable,
    UnknownMessageType,
)
from garrison._validate import check_seconds
from garrison.actors import ActorRef, ExitKind, ExitReason, Terminated
from garrison.cluster._keys import cluster_key
from garrison.cluster._wire import (
    FRAME_FIELD,
    ErrorInfo,
    ExitInfo,
    Frame,
    Kind,
    MessageTypes,
    decode_error,
    decode_exit,
    decode_frame,
    encode,
    error_info,
    rebuild_error,
)

if TYPE_CHECKING:
    from garrison._node import Node
    from garrison.actors._slot import Slot
    from garrison.cluster._config import RedisClient
    from garrison.cluster._membership import Member

GROUP = "garrison"
"""The consumer group each node reads its own inbox with."""

READ_BLOCK_MS = 1000
"""How long one XREADGROUP waits for entries before it reads again (real milliseconds)."""

CLOSE_TIMEOUT = 2.0
"""Real seconds leaving waits for each step: the last sends, the tasks to end, the inbox's delete."""

RETRY_DELAY = 0.1
"""Real seconds the reader waits after a failed read before it reads again."""

ACKS_WITH_FRAMES = 64
"""Delivered inbox entries are acknowledged (XACK + XDEL) once this many wait, or when a read
finds the inbox idle, in a pipeline sent by a task of its own: a frame someone waits for (an
ask, a reply) never waits behind them."""

ANSWER_PASSES = 3
"""Loop turns the reader yields after delivering an ask or an answer, before it reads again:
an actor's reply to an ask takes three (the handler, the reply future's callback, the sender
task), an asker resuming on an answer one; the next read waits behind them, not they behind it."""

_EMPTY = msgspec.Raw(encode(None))


class RemoteRef:
    """A ref to an actor on another node of the cluster: ``node.cluster.ref("node-b", "/user/router")``.

    ``tell``, ``tell_nowait`` and ``ask`` take what an ActorRef's take. The
    message is encoded at once (its type must be registered with the cluster:
    ``UnknownMessageType`` otherwise, nothing sent) and sent on the next loop
    turn, batched with the other frames of that turn.

    Guarantees: at most once (a tell may be lost if Redis or the target node
    fails, and is not retried); messages from one node to one actor arrive
    in the order sent; a full remote mailbox applies its own overflow policy
    (a REJECT mailbox's ``MailboxFull`` is raised by ``ask``, a refused tell
    goes to the remote node's dead letters). ``ctx.watch(remote_ref)``
    delivers ``Terminated`` when the remote actor stops for good or its node
    leaves the cluster (its lease expired); the ref is then dead and sends
    raise ``ActorStopped``. A tell to a node that is not up goes to this
    node's dead letters (kind ``unreachable``).
    """

    __slots__ = ("_exit_reason", "_transport", "node_id", "path")

    def __init__(self, transport: Transport, node_id: str, path: str) -> None:
        self._transport = transport
        self.node_id = node_id
        """The id of the node the actor lives on."""
        self.path = path
        """The actor's path on its node (``/user/router``)."""
        self._exit_reason: ExitReason | None = None

    @property
    def address(self) -> str:
        """``node-id:/path``: where the actor lives in the cluster."""
        return f"{self.node_id}:{self.path}"

    @property
    def is_alive(self) -> bool:
        """False once this node learned the actor stopped for good or its node left the cluster."""
        return self._exit_reason is None

    @property
    def exit_reason(self) -> ExitReason | None:
        """Why the actor (or its node) went, once known; None while the ref lives."""
        return self._exit_reason

    def tell(self, message: Any) -> Awaitable[None]:
        """Send ``message`` (at most once). Completes at once: the send is batched and never
        waits for the remote mailbox. Raises UnknownMessageType for an unregistered type,
        ActorStopped once the ref is dead."""
        self._transport.send_message(self, message)
        return self._transport.done

    def tell_nowait(self, message: Any) -> None:
        """Send ``message`` (at most once) without waiting; raises as :meth:`tell` does."""
        self._transport.send_message(self, message)

    async def ask(self, message: Any, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send ``message`` and await the remote handler's return value.

        Raises the remote handler's garrison errors as themselves (``MailboxFull``
        from a full REJECT mailbox, ``UnhandledMessage``, ``ActorStopped``,
        ``ActorNotFound`` for a path with no actor), other remote errors as
        ``RemoteHandlerError``; ``AskTimeout`` after ``timeout`` seconds of node-clock
        time (None waits until the node leaves); ``NodeUnreachable`` when the node is
        not up or leaves meanwhile; ``UnknownMessageType`` for an unregistered message
        or reply type. The remote node drops an ask whose deadline has passed
        when it reads it (``cluster.expired_asks`` counts them there).
        """
        if timeout.__class__ is not float or not timeout > 0:
            check_seconds("timeout", timeout, allow_none=True)
        return await self._transport.ask(self, message, timeout)

    def add_watcher(self, watcher: Slot) -> None:
        """Internal (``ctx.watch``): ``watcher`` hears Terminated when this ref dies."""
        self._transport.watch(self, watcher)

    def remove_watcher(self, watcher: Slot) -> None:
        """Internal (``ctx.unwatch``): ``watcher`` no longer hears of this ref's death."""
        self._transport.unwatch(self, watcher)

    def die(self, reason: ExitReason) -> None:
        """Internal: the actor or its node is gone; sends raise ActorStopped from now on."""
        if self._exit_reason is None:
            self._exit_reason = reason

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteRef) and (other.node_id, other.path) == (self.node_id, self.path)

    def __hash__(self) -> int:
        return hash((self.node_id, self.path))

    def __repr__(self) -> str:
        return f"RemoteRef({self.node_id!r}, {self.path!r})"


class _Pending:
    __slots__ = ("future", "node_id", "path")

    def __init__(self, future: asyncio.Future[Any], node_id: str, path: str) -> None:
        self.future = future
        self.node_id = node_id
        self.path = path


class Transport:
    """Internal: the send buffer, the inbox reader, pending asks and watches of one node."""

    def __init__(
        self,
        node: Node,
        client: RedisClient,
        *,
        cluster: str,
        member: Member,
        types: MessageTypes,
        is_up: Callable[[str], bool],
        wall_clock: Callable[[], float],
        max_inbox_length: int,
        read_count: int,
    ) -> None:
        self._node = node
        self._client = client
        self.cluster = cluster
        self.node_id = member.node_id
        self._consumer = member.uid
        self.types = types
        self._is_up = is_up
        self._wall = wall_clock
        self.max_inbox_length = max_inbox_length
        # XADD's arguments after the key, but the frame: built once, not per frame by redis-py's xadd.
        self._xadd_options = (b"MAXLEN", b"~", str(max_inbox_length).encode(), b"*", FRAME_FIELD)
        self._inboxes: dict[str, str] = {}
        """The inbox key of each node this one sent to."""
        self.read_count = read_count
        self.inbox = cluster_key(cluster, "inbox", member.node_id)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        self.done.set_result(None)
        self._buffer: list[tuple[str, bytes]] = []
        self._acks: list[Any] = []
        """Entry ids of the inbox delivered and not yet acknowledged (XACK + XDEL)."""
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._ack_wakeup = asyncio.Event()
        self._acks_idle = asyncio.Event()
        self._acks_idle.set()
        self._ask_ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._refs: dict[tuple[str, str], RemoteRef] = {}
        self._watchers: dict[RemoteRef, dict[Slot, None]] = {}
        self._held: dict[str, deque[tuple[Any, Frame, Any]]] = {}
        """Per actor path whose BACKPRESSURE mailbox is full: the entries queued behind it."""
        self._served: dict[tuple[str, str], asyncio.Task[None]] = {}
        """Watches other nodes asked of this one, by (watcher node, path)."""
        self._answers: set[asyncio.Task[None]] = set()
        self._awaited = False
        """Whether the entries being delivered include an ask or an answer someone waits for."""
        self._reader: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._acker: asyncio.Task[None] | None = None
        self.sent = 0
        """Frames sent to Redis so far."""
        self.received = 0
        """Stream entries read from this node's inbox so far."""
        self.expired_asks = 0
        """Asks read after their deadline and dropped unanswered."""
        self.send_failures = 0
        """Frames lost because a pipeline of XADDs failed (at most once: never re-sent)."""

    # -- start and stop ------------------------------------------------------------------

    async def open(self) -> None:
        """Make a fresh inbox (what an earlier incarnation left is dropped) and start the tasks."""
        await self._client.delete(self.inbox)
        await self._client.xgroup_create(self.inbox, GROUP, id="$", mkstream=True)
        self._flusher = self._loop.create_task(self._flush_loop(), name="garrison-cluster-send")
        self._acker = self._loop.create_task(self._ack_loop(), name="garrison-cluster-ack")
        self._reader = self._loop.create_task(self._read_loop(), name="garrison-cluster-read")

    async def close(self) -> None:
        """Send what is buffered, stop reading, fail what waits, delete the inbox. Never raises."""
        if self._buffer:
            self._wakeup.set()
        if self._acks:
            self._ack_wakeup.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                while self._buffer or self._acks or not (self._idle.is_set() and self._acks_idle.is_set()):
                    await self._idle.wait()
                    await self._acks_idle.wait()
                    await asyncio.sleep(0)
        tasks = [
            task
            for task in (self._reader, self._flusher, self._acker, *self._served.values(), *self._answers)
            if task is not None
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a read cancelled inside redis-py can take a while to let go of its socket.
            _done, stuck = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
            if stuck:
                self._node.logger.warning(
                    "cluster {cluster}: {count} task(s) did not stop within {timeout}s of leaving",
                    cluster=self.cluster,
                    count=len(stuck),
                    timeout=CLOSE_TIMEOUT,
                )
        self._served.clear()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(NodeUnreachable(self.node_id, self.cluster, pending.path))
        self._pending.clear()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._client.delete(self.inbox)

    # -- refs ----------------------------------------------------------------------------

    def ref(self, node_id: str, path: str) -> RemoteRef:
        """The ref of ``path`` on ``node_id`` (one live ref per pair: the same object)."""
        key = (node_id, path)
        ref = self._refs.get(key)
        if ref is None or not ref.is_alive:
            ref = self._refs[key] = RemoteRef(self, node_id, path)
        return ref

    # -- sending -------------------------------------------------------------------------

    def _send(self, node_id: str, frame: Frame) -> None:
        inbox = self._inboxes.get(node_id)
        if inbox is None:
            inbox = self._inboxes[node_id] = cluster_key(self.cluster, "inbox", node_id)
        self._buffer.append((inbox, encode(frame)))
        if not self._wakeup.is_set():
            self._wakeup.set()

    def send_message(self, ref: RemoteRef, message: Any) -> None:
        reason = ref.exit_reason
        if reason is not None:
            raise ActorStopped(ref.address, str(reason))
        name, body = self.types.encode_body(message, self.node_id)
        if not self._is_up(ref.node_id):
            self._node.dead_letters.publish(
                message,
                ref.address,
                f"node {ref.node_id!r} is not up in cluster {self.cluster!r}",
                kind="unreachable",
            )
            return
        self._send(ref.node_id, Frame(Kind.TELL, self.node_id, ref.path, name, msgspec.Raw(body)))

    async def ask(self, ref: RemoteRef, message: Any, timeout: float | None) -> Any:
        reason = ref.exit_reason
        if reason is not None:
            raise ActorStopped(ref.address, str(reason))
        name, body = self.types.encode_body(message, self.node_id)
        if not self._is_up(ref.node_id):
            raise NodeUnreachable(ref.node_id, self.cluster, ref.path)
        reply: asyncio.Future[Any] = self._loop.create_future()
        ask_id = next(self._ask_ids)
        self._pending[ask_id] = _Pending(reply, ref.node_id, ref.path)
        deadline = 0.0
        if timeout is not None:
            self._node.kernel.ask_deadlines.add(reply, timeout, ref.address, message)
            deadline = self._wall() + timeout
        self._send(
            ref.node_id, Frame(Kind.ASK, self.node_id, ref.path, name, msgspec.Raw(body), ask_id, deadline)
        )
        try:
            return await reply
        finally:
            self._pending.pop(ask_id, None)

    async def _flush_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._buffer = self._buffer, []
            if not batch:
                continue
            self._idle.clear()
            if len(batch) == 1:  # a lone frame (an ask, its reply): no pipeline's cost
                key, data = batch[0]
                await self._send_one(key, data)
                continue
            pipe = self._client.pipeline(transaction=False)
            add = pipe.execute_command
            options = self._xadd_options
            for key, data in batch:
                add("XADD", key, *options, data)
            try:
                await pipe.execute()
                self.sent += len(batch)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.send_failures += len(batch)
                self._node.logger.warning(
                    "cluster {cluster}: {count} frame(s) lost, sending failed: {error}",
                    cluster=self.cluster,
                    count=len(batch),
                    error=f"{type(error).__name__}: {error}",
                )
            finally:
                if not self._buffer:
                    self._idle.set()

    async def _ack_loop(self) -> None:
        """Acknowledge delivered inbox entries (XACK + XDEL), batched, apart from the frames."""
        while True:
            await self._ack_wakeup.wait()
            self._ack_wakeup.clear()
            acks, self._acks = self._acks, []
            if not acks:
                continue
            self._acks_idle.clear()
            pipe = self._client.pipeline(transaction=False)
            pipe.xack(self.inbox, GROUP, *acks)
            pipe.xdel(self.inbox, *acks)
            try:
                await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # They stay pending in the group, never read again; deleted with the inbox.
                self._node.logger.warning(
                    "cluster {cluster}: acknowledging {count} inbox entries failed: {error}",
                    cluster=self.cluster,
                    count=len(acks),
                    error=f"{type(error).__name__}: {error}",
                )
            finally:
                if not self._acks:
                    self._acks_idle.set()

    async def _send_one(self, key: str, data: bytes) -> None:
        try:
            await self._client.execute_command("XADD", key, *self._xadd_options, data)
            self.sent += 1
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.send_failures += 1
            self._node.logger.warning(
                "cluster {cluster}: a frame was lost, sending failed: {error}",
                cluster=self.cluster,
                error=f"{type(error).__name__}: {error}",
            )
        finally:
            if not self._buffer:
                self._idle.set()

    # -- receiving -----------------------------------------------------------------------

    async def _read_loop(self) -> None:
        client = self._client
        streams: dict[Any, Any] = {self.inbox: ">"}
        while True:
            try:
                response: Any = await client.xreadgroup(
                    GROUP, self._consumer, streams, count=self.read_count, block=READ_BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if "NOGROUP" in str(error):
                    with contextlib.suppress(Exception):
                        await client.xgroup_create(self.inbox, GROUP, id="$", mkstream=True)
                else:
                    self._node.logger.warning(
                        "cluster {cluster}: reading the inbox failed: {error}",
                        cluster=self.cluster,
                        error=f"{type(error).__name__}: {error}",
                    )
                await asyncio.sleep(RETRY_DELAY)
                continue
            if not response:
                if self._acks and not self._ack_wakeup.is_set():
                    self._ack_wakeup.set()  # the inbox is idle: acknowledge what was delivered
                continue
            for _stream, entries in response:
                ids = []
                for entry_id, fields in entries:
                    self.received += 1
                    try:
                        if not self._deliver(entry_id, fields):
                            continue  # acknowledged once its mailbox accepts it
                    except asyncio.CancelledError:
                        raise
                    except Exception as error:  # never the reader's end
                        self._node.dead_letters.publish(
                            fields,
                            self.inbox,
                            f"delivery failed: {type(error).__name__}: {error}",
                            error,
                            kind="malformed",
                        )
                    ids.append(entry_id)
                if ids:
                    self._acks.extend(ids)
                    if len(self._acks) >= ACKS_WITH_FRAMES and not self._ack_wakeup.is_set():
                        self._ack_wakeup.set()
            if self._awaited:
                # Someone waits for what was delivered: let the actors answer, the answers go
                # out and the askers resume before this reader's next read is sent.
                self._awaited = False
                for _ in range(ANSWER_PASSES):
                    await asyncio.sleep(0)

    def _deliver(self, entry_id: Any, fields: dict[Any, Any]) -> bool:
        """Deliver one inbox entry; True when it can be acknowledged now."""
        data = fields.get(FRAME_FIELD)
        if data is None:
            self._malformed(
                fields, f"no {FRAME_FIELD.decode()!r} field (fields: {sorted(map(repr, fields))})"
            )
            return True
        try:
            frame = decode_frame(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            self._malformed(data, f"the frame does not decode: {error}")
            return True
        kind = frame.kind
        if kind is Kind.TELL or kind is Kind.ASK:
            return self._deliver_message(frame, entry_id)
        if kind is Kind.REPLY or kind is Kind.FAILURE:
            self._awaited = True
            self._answer(frame)
        elif kind is Kind.WATCH:
            self._serve_watch(frame)
        else:
            self._terminated(frame)
        return True

    def _malformed(self, message: Any, why: str) -> None:
        self._node.dead_letters.publish(message, self.inbox, f"malformed: {why}", kind="malformed")

    def _decode(self, frame: Frame) -> tuple[bool, Any]:
        """(decoded, message); a frame that does not decode is dead-lettered (and an ask answered)."""
        try:
            return True, self.types.decode_body(frame.type, frame.body)
        except KeyError:
            self._node.dead_letters.publish(
                bytes(frame.body),
                frame.to,
                f"unknown-type: {frame.type!r} from node {frame.sender!r} is not registered here",
                kind="unknown_type",
            )
            if frame.kind is Kind.ASK:
                self._fail(frame, UnknownMessageType(frame.type, self.node_id))
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            self._node.dead_letters.publish(
                bytes(frame.body),
                frame.to,
                f"malformed: {frame.type!r} from node {frame.sender!r} does not decode: {error}",
                error,
                kind="malformed",
            )
            if frame.kind is Kind.ASK:
                self._fail(frame, UnknownMessageType(f"{frame.type} ({error})", self.node_id))
        return False, None

    def _deliver_message(self, frame: Frame, entry_id: Any) -> bool:
        """Hand a tell or ask to its actor; True when the entry can be acknowledged now, False
        when it waits behind a full BACKPRESSURE mailbox (acknowledged once accepted)."""
        decoded, message = self._decode(frame)
        if not decoded:
            return True
        held = self._held.get(frame.to)
        if held is not None:  # behind earlier messages still waiting for space: keep the order
            held.append((entry_id, frame, message))
            return False
        try:
            target = self._node.lookup(frame.to)
        except ActorNotFound as missing:
            self._node.dead_letters.publish(message, frame.to, str(missing), missing, kind="stopped")
            if frame.kind is Kind.ASK:
                self._fail(frame, missing)
            return True
        if frame.kind is Kind.ASK:
            self._awaited = True
            self._start_ask(target, frame, message)  # in the mailbox (or waiting for space) now
            return True
        try:
            waiting = target.tell(message)
        except (MailboxFull, ActorStopped) as refused:
            self._refused(frame, message, refused)
            return True
        if isinstance(waiting, asyncio.Future) and waiting.done():
            return True
        # A full BACKPRESSURE mailbox: wait for space in a task of its own, so that the reader
        # goes on for every other actor (a reply this node waits for among them).
        self._held[frame.to] = deque()
        task = self._loop.create_task(self._wait_for_space(target, waiting, entry_id, frame, message))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)
        return False

    async def _wait_for_space(
        self, target: ActorRef, waiting: Awaitable[None], entry_id: Any, frame: Frame, message: Any
    ) -> None:
        """Deliver the tell that found the mailbox full, then what queued up behind it, in order."""
        path = frame.to
        held = self._held[path]
        try:
            while True:
                try:
                    await waiting
                except (MailboxFull, ActorStopped) as refused:
                    self._refused(frame, message, refused)
                self._acknowledge(entry_id)
                while held and held[0][1].kind is Kind.ASK:
                    entry_id, frame, message = held.popleft()
                    self._start_ask(target, frame, message)
                    self._acknowledge(entry_id)
                if not held:
                    return
                entry_id, frame, message = held.popleft()
                try:
                    waiting = target.tell(message)
                except (MailboxFull, ActorStopped) as refused:
                    self._refused(frame, message, refused)
                    waiting = self.done
        finally:
            del self._held[path]  # cancelled (leaving): what is left is dropped, at most once

    def _refused(self, frame: Frame, message: Any, refused: MailboxFull | ActorStopped) -> None:
        kind = "overflow" if isinstance(refused, MailboxFull) else "stopped"
        self._node.dead_letters.publish(
            message, frame.to, f"remote tell from node {frame.sender!r}: {refused}", refused, kind=kind
        )

    def _acknowledge(self, entry_id: Any) -> None:
        self._acks.append(entry_id)
        if len(self._acks) >= ACKS_WITH_FRAMES and not self._ack_wakeup.is_set():
            self._ack_wakeup.set()

    def _start_ask(self, target: ActorRef, frame: Frame, message: Any) -> None:
        """Put the ask in ``target``'s mailbox; its answer is sent back from the reply future's
        callback (no task per ask)."""
        timeout = None
        if frame.deadline:
            timeout = frame.deadline - self._wall()
        if timeout is not None and timeout <= 0:
            self.expired_asks += 1
            self._node.dead_letters.publish(
                message,
                frame.to,
                f"ask from node {frame.sender!r} expired before it was read",
                kind="expired",
            )
            return
        reply = target.ask_future(message, timeout)
        reply.add_done_callback(lambda done: self._reply(frame, done))

    def _reply(self, frame: Frame, reply: asyncio.Future[Any]) -> None:
        """Send the answer of a remote ask back to the asking node."""
        if reply.cancelled():
            return
        error = reply.exception()
        if error is not None:
            if not isinstance(error, AskTimeout):  # else the asker's own deadline has passed too
                self._fail(frame, error)
            return
        result = reply.result()
        try:
            name, body = self.types.encode_body(result, self.node_id)
        except UnknownMessageType as unknown:
            self._fail(frame, unknown)
            return
        # Not gated on this node's view: the asker may have joined since its last refresh.
        self._send(frame.sender, Frame(Kind.REPLY, self.node_id, "", name, msgspec.Raw(body), frame.ask_id))

    def _fail(self, frame: Frame, error: BaseException) -> None:
        body = msgspec.Raw(encode(error_info(error)))
        self._send(frame.sender, Frame(Kind.FAILURE, self.node_id, "", "", body, frame.ask_id))

    def _answer(self, frame: Frame) -> None:
        pending = self._pending.get(frame.ask_id)
        if pending is None or pending.future.done():
            self._node.dead_letters.publish(
                bytes(frame.body),
                f"{frame.sender}:ask#{frame.ask_id}",
                "reply after the ask ended",
                kind="late_reply",
            )
            return
        if frame.kind is Kind.FAILURE:
            info: ErrorInfo = decode_error(frame.body)
            pending.future.set_exception(rebuild_error(info, frame.sender, pending.path))
            return
        try:
            pending.future.set_result(self.types.decode_body(frame.type, frame.body))
        except KeyError:
            pending.future.set_exception(UnknownMessageType(frame.type, self.node_id))
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            pending.future.set_exception(UnknownMessageType(f"{frame.type} ({error})", self.node_id))

    # -- death watch ---------------------------------------------------------------------

    def watch(self, ref: RemoteRef, watcher: Slot) -> None:
        reason = ref.exit_reason
        if reason is not None:
            watcher.mailbox.put_system(Terminated(ref, reason))
            return
        if not self._is_up(ref.node_id):
            self._ref_gone(ref, ExitReason.failure(NodeUnreachable(ref.node_id, self.cluster, ref.path)))
            watcher.mailbox.put_system(Terminated(ref, ref.exit_reason or ExitReason.shutdown()))
            return
        watchers = self._watchers.get(ref)
        if watchers is None:
            watchers = self._watchers[ref] = {}
            self._send(ref.node_id, Frame(Kind.WATCH, self.node_id, ref.path, "", _EMPTY))
        for stopped in [each for each in watchers if each.mailbox.closed]:
            del watchers[stopped]  # watchers that stopped meanwhile: not kept until the ref dies
        watchers[watcher] = None

    def unwatch(self, ref: RemoteRef, watcher: Slot) -> None:
        watchers = self._watchers.get(ref)
        if watchers is not None:
            watchers.pop(watcher, None)

    def _serve_watch(self, frame: Frame) -> None:
        key = (frame.sender, frame.to)
        if key in self._served:
            return
        try:
            target = self._node.lookup(frame.to)
        except ActorNotFound as missing:
            self._send_terminated(frame.sender, frame.to, ExitKind.SHUTDOWN.value, str(missing))
            return
        self._served[key] = self._loop.create_task(self._await_end(frame.sender, target))

    async def _await_end(self, watcher_node: str, target: ActorRef) -> None:
        reason = await target.wait_terminated()
        self._served.pop((watcher_node, target.path), None)
        self._send_terminated(watcher_node, target.path, reason.kind.value, str(reason))

    def _send_terminated(self, node_id: str, path: str, kind: str, text: str) -> None:
        body = msgspec.Raw(encode(ExitInfo(kind, text)))
        self._send(node_id, Frame(Kind.TERMINATED, self.node_id, path, "", body))

    def _terminated(self, frame: Frame) -> None:
        ref = self._refs.get((frame.sender, frame.to))
        if ref is None:
            return
        info = decode_exit(frame.body)
        try:
            kind = ExitKind(info.kind)
        except ValueError:
            kind = ExitKind.FAILURE
        self._ref_gone(ref, ExitReason(kind, f"on node {frame.sender}: {info.text}"))

    def _ref_gone(self, ref: RemoteRef, reason: ExitReason) -> None:
        ref.die(reason)
        if self._refs.get((ref.node_id, ref.path)) is ref:
            del self._refs[(ref.node_id, ref.path)]
        for watcher in self._watchers.pop(ref, {}):
            if not watcher.mailbox.closed:
                watcher.mailbox.put_system(Terminated(ref, reason))

    # -- membership changes --------------------------------------------------------------

    def member_down(self, node_id: str, why: str) -> None:
        """``node_id`` left: its refs die (watchers hear Terminated), asks to it fail, and the
        watches it asked of this node end."""
        gone = NodeUnreachable(node_id, self.cluster, "")
        for ref in [ref for ref in self._refs.values() if ref.node_id == node_id]:
            self._ref_gone(ref, ExitReason.failure(gone, f"node {node_id} left the cluster: {why}"))
        for ask_id, pending in list(self._pending.items()):
            if pending.node_id == node_id and not pending.future.done():
                pending.future.set_exception(NodeUnreachable(node_id, self.cluster, pending.path))
                del self._pending[ask_id]
        for key in [key for key in self._served if key[0] == node_id]:
            self._served.pop(key).cancel()
