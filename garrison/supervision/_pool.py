"""Pools: a supervisor of N identical routees, and the ref that routes to them.

A pool is a one-for-one supervisor (``Pool``, run from a ``PoolSpec``) whose
children are the routees ``routee-0`` ... ``routee-{N-1}``. ``PoolRef`` picks
a routee per message on the sender's side, reading the running ``Pool``
instance for the current routees and the routing state they share, so two
refs to one pool route as one.

A routee is *up* while an incarnation of it runs and is not stopping; one
that crashed stays down until its supervisor restarts it, and routing skips
it meanwhile. When no routee is up, the message is queued on the routee the
routing would pick if all were up, for its next incarnation, under that
routee's mailbox policy (Akka keeps a restarting actor's mailbox the same way).
"""

from __future__ import annotations

import asyncio
import bisect
import enum
import hashlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Unpack

from garrison._defaults import DEFAULT_ASK_TIMEOUT
from garrison._errors import ActorStopped, InvalidConfig, InvalidSpec, MessageDropped
from garrison._validate import count_problem
from garrison.actors import Actor, ActorRef, ActorState, SpawnOptions
from garrison.actors._slot import Slot
from garrison.mailbox import MailboxConfig
from garrison.supervision._ref import SupervisorRef
from garrison.supervision._spec import (
    _DEFAULT,
    AutoShutdown,
    Backoff,
    ChildSpec,
    Restart,
    Strategy,
    SupervisorSpec,
)
from garrison.supervision._supervisor import Supervisor, _Call


class Routing(enum.Enum):
    """How a pool picks the routee of each message."""

    ROUND_ROBIN = "round_robin"
    """Each routee in turn, skipping those that are down."""
    SMALLEST_MAILBOX = "smallest_mailbox"
    """The up routee with the fewest queued messages (the one in flight is not queued);
    ties go to the routee started first."""
    CONSISTENT_HASH = "consistent_hash"
    """The owner of ``key(message)`` on a hash ring with virtual nodes: a key goes to the same
    routee while it is up; while it is down its keys go to the next routee on the ring."""
    BROADCAST = "broadcast"
    """Every routee gets every tell (an ``ask`` goes to one, picked round-robin)."""


RouteKey = str | bytes | int
"""What a consistent-hash ``key`` function returns."""

ROUTEE_PREFIX = "routee-"
"""Routees are named ``routee-0``, ``routee-1``, ... in their pool."""


def stable_hash(data: bytes) -> int:
    """A 64-bit hash of ``data``, the same in every process and on every run (blake2b).

    Python's ``hash()`` of str and bytes is salted per process, which would move keys
    between routees whenever the node restarts.
    """
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _key_bytes(key: object) -> bytes:
    # A type tag keeps "1", b"1" and 1 apart.
    if isinstance(key, str):
        return b"s" + key.encode("utf-8", "surrogatepass")
    if isinstance(key, bytes):
        return b"b" + key
    if isinstance(key, int) and not isinstance(key, bool):
        return b"i" + str(key).encode("ascii")
    raise InvalidConfig("key(message)", key, "PoolSpec.key must return a str, bytes or int")


@dataclass(frozen=True, slots=True, init=False, kw_only=True)
class PoolSpec(SupervisorSpec):
    """A pool of ``size`` identical routees of ``actor_class``, under one one-for-one supervisor.

    Use it where a SupervisorSpec goes: as a child (``ChildSpec("workers",
    PoolSpec(...))``), as a tree's root (``node.start``), or unsupervised with
    ``PoolRef.spawn``. Reach it through a :class:`PoolRef`. ``args``,
    ``kwargs``, ``restart``, ``shutdown``, ``backoff`` and ``mailbox`` are
    each routee's, as in a ChildSpec. ``intensity`` defaults to ``size``
    (each routee may fail once per ``period`` before the pool gives up).
    ``key`` is required with ``Routing.CONSISTENT_HASH`` and refused
    otherwise; ``virtual_nodes`` is the number of ring points per routee.

    Raises InvalidSpec naming the field.
    """

    actor_class: type[Actor]
    size: int
    routing: Routing
    key: Callable[[Any], RouteKey] | None
    virtual_nodes: int
    routee: ChildSpec
    """The spec every routee is built from (its id is the first routee's)."""

    def __init__(
        self,
        actor_class: type[Actor],
        *,
        size: int,
        routing: Routing = Routing.ROUND_ROBIN,
        key: Callable[[Any], RouteKey] | None = None,
        virtual_nodes: int = 100,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        restart: Restart = Restart.PERMANENT,
        shutdown: float | object | None = _DEFAULT,
        backoff: Backoff | None = None,
        mailbox: MailboxConfig | None = None,
        intensity: int | None = None,
        period: float = 5.0,
    ) -> None:
        if not (isinstance(actor_class, type) and issubclass(actor_class, Actor)):
            raise InvalidSpec(None, "actor_class", actor_class, "must be an Actor subclass")
        problem = count_problem(size)
        if problem is not None:
            raise InvalidSpec(None, "size", size, problem)
        if not isinstance(routing, Routing):
            raise InvalidSpec(None, "routing", routing, "must be a garrison.Routing member")
        if routing is Routing.CONSISTENT_HASH and not callable(key):
            raise InvalidSpec(None, "key", key, "Routing.CONSISTENT_HASH needs key=a function of the message")
        if routing is not Routing.CONSISTENT_HASH and key is not None:
            raise InvalidSpec(None, "key", key, "only Routing.CONSISTENT_HASH uses a key; drop it")
        problem = count_problem(virtual_nodes)
        if problem is not None:
            raise InvalidSpec(None, "virtual_nodes", virtual_nodes, problem)
        if intensity is None:
            intensity = size
        routee = ChildSpec(
            f"{ROUTEE_PREFIX}0",
            actor_class,
            args=args,
            kwargs=kwargs,
            restart=restart,
            shutdown=shutdown,
            backoff=backoff,
            mailbox=mailbox,
        )
        object.__setattr__(self, "actor_class", actor_class)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "routing", routing)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "virtual_nodes", virtual_nodes)
        object.__setattr__(self, "routee", routee)
        object.__setattr__(self, "strategy", Strategy.ONE_FOR_ONE)
        object.__setattr__(self, "intensity", intensity)
        object.__setattr__(self, "period", period)
        object.__setattr__(self, "auto_shutdown", AutoShutdown.NEVER)
        object.__setattr__(self, "singleton", False)
        object.__setattr__(self, "children", tuple(self.routee_spec(index) for index in range(size)))
        SupervisorSpec.__post_init__(self)  # intensity, period and the children, checked as usual

    def routee_spec(self, index: int) -> ChildSpec:
        """The ChildSpec of routee number ``index``."""
        return self.routee.with_args(f"{ROUTEE_PREFIX}{index}", ())


class _Ring:
    """A consistent-hash ring: ``virtual_nodes`` points per routee name, sorted."""

    __slots__ = ("names", "owners", "points")

    def __init__(self, names: Sequence[str], virtual_nodes: int) -> None:
        self.names = tuple(names)
        placed = sorted(
            (stable_hash(f"{name}#{vnode}".encode()), name)
            for name in names
            for vnode in range(virtual_nodes)
        )
        self.points = [point for point, _ in placed]
        self.owners = [name for _, name in placed]

    def walk(self, key_hash: int) -> Iterator[str]:
        """Each routee name once, in ring order from the point owning ``key_hash`` (clockwise)."""
        start = bisect.bisect_left(self.points, key_hash)
        count = len(self.owners)
        seen: set[str] = set()
        for step in range(count):
            name = self.owners[(start + step) % count]
            if name not in seen:
                seen.add(name)
                yield name
                if len(seen) == len(self.names):
                    return


def _is_up(slot: Slot) -> bool:
    # ``instance`` is set while an incarnation runs and cleared first thing when it ends.
    return slot.instance is not None and slot.state in (ActorState.STARTING, ActorState.RUNNING)


class Pool(Supervisor):
    """Runs a :class:`PoolSpec`: supervises the routees and holds the routing state its refs share.

    Internal: users reach a pool through :class:`PoolRef`.
    """

    def __init__(self, spec: PoolSpec) -> None:
        super().__init__(spec)
        self.pool_spec = spec
        self.routees: list[Slot] = []
        """The routees' slots in start order (stopped ones are skipped when routing)."""
        self._cursor = 0
        self._ring: _Ring | None = None

    async def on_start(self) -> None:
        await super().on_start()
        self._refresh()

    def _refresh(self) -> None:
        """Read the routees again from our children (after a start, a resize or a management call)."""
        self.routees = list(self.ctx.self_ref.slot.children.values())
        names = [slot.name for slot in self.routees]
        if self.pool_spec.routing is Routing.CONSISTENT_HASH and (
            self._ring is None or list(self._ring.names) != names
        ):
            self._ring = _Ring(names, self.pool_spec.virtual_nodes)

    # -- routing (called by PoolRef on the sender's side; never awaits) --------------

    def route(self, message: Any) -> Slot | None:
        """The routee for one message: an up routee if any, else the one to queue it on.

        None when the pool has no routee at all. Raises whatever ``key`` raises, and
        InvalidConfig when it returns something other than str, bytes or int.
        """
        live = [slot for slot in self.routees if slot.state is not ActorState.STOPPED]
        if not live:
            return None
        routing = self.pool_spec.routing
        if routing is Routing.SMALLEST_MAILBOX:
            return self._smallest_mailbox(live)
        if routing is Routing.CONSISTENT_HASH:
            return self._consistent_hash(message, live)
        return self._round_robin(live)

    def route_one(self) -> Slot | None:
        """A routee picked round-robin whatever the routing (an ask under BROADCAST)."""
        live = self.live_routees()
        return self._round_robin(live) if live else None

    def _round_robin(self, live: list[Slot]) -> Slot:
        count = len(live)
        start = self._cursor % count
        for step in range(count):
            slot = live[(start + step) % count]
            if _is_up(slot):
                self._cursor = start + step + 1
                return slot
        self._cursor = start + 1
        return live[start]

    @staticmethod
    def _smallest_mailbox(live: list[Slot]) -> Slot:
        # Up before down, then by queued messages; min keeps the first of equals (start order).
        return min(live, key=lambda slot: (not _is_up(slot), len(slot.mailbox)))

    def _consistent_hash(self, message: Any, live: list[Slot]) -> Slot:
        key = self.pool_spec.key
        assert key is not None and self._ring is not None  # checked by PoolSpec; built on start
        by_name = {slot.name: slot for slot in live}
        owner: Slot | None = None
        for name in self._ring.walk(stable_hash(_key_bytes(key(message)))):
            slot = by_name.get(name)
            if slot is None:
                continue  # no longer a routee
            if _is_up(slot):
                return slot
            if owner is None:
                owner = slot  # the key's owner while it is down: where the message waits if all are
        assert owner is not None  # every live routee is on the ring
        return owner

    def live_routees(self) -> list[Slot]:
        """Every routee not stopped for good, in start order (broadcast's recipients)."""
        return [slot for slot in self.routees if slot.state is not ActorState.STOPPED]

    # -- management calls (inside our task) ------------------------------------------

    async def resize(self, size: int) -> None:
        """Grow by starting new routees after the last, or shrink by stopping the last ones."""
        names = [slot.name for slot in self.routees]
        try:
            while len(names) < size:
                index = _next_index(names)
                await self.start_child(self.pool_spec.routee_spec(index))
                names.append(f"{ROUTEE_PREFIX}{index}")
            while len(names) > size:
                name = names.pop()
                await self.terminate_child(name)
                if name in {row.id for row in await self.which_children()}:
                    await self.delete_child(name)
        finally:
            self._refresh()

    async def terminate_child(self, child_id: str) -> None:
        try:
            await super().terminate_child(child_id)
        finally:
            self._refresh()

    async def restart_child(self, child_id: str) -> ActorRef:
        try:
            return await super().restart_child(child_id)
        finally:
            self._refresh()

    async def start_child(self, spec: ChildSpec) -> ActorRef:
        try:
            return await super().start_child(spec)
        finally:
            self._refresh()


PoolSpec.runner = Pool


def _next_index(names: Sequence[str]) -> int:
    """One past the highest routee index in use: a new routee never takes an old one's name."""
    used = [int(name[len(ROUTEE_PREFIX) :]) for name in names if name[len(ROUTEE_PREFIX) :].isdigit()]
    return max(used, default=-1) + 1


class _Spawner(Protocol):
    async def spawn(self, actor_class: type[Actor], **options: Unpack[SpawnOptions]) -> ActorRef: ...


class PoolRef:
    """Send to a pool as to one actor: each message goes to one routee (``broadcast``: to all).

    Build it from the pool's supervisor ref: ``PoolRef(await node.start(spec))``,
    ``PoolRef(node.lookup("/root/workers"))``, or get one from ``PoolRef.spawn``.
    Routing state lives in the running pool, so every PoolRef to it routes alike.

    When every routee is down (between incarnations), a message is queued on the
    routee the routing would pick if all were up, for its next incarnation, under
    that routee's mailbox policy. When the pool has no routee at all (it is between
    its own incarnations, or its TEMPORARY routees have all exited), a tell goes to
    dead letters (kind ``unroutable``) and an ask raises MessageDropped. Once the
    pool has stopped for good, both raise ActorStopped.
    """

    __slots__ = ("ref",)

    def __init__(self, ref: ActorRef | SupervisorRef) -> None:
        if isinstance(ref, SupervisorRef):
            ref = ref.ref
        if not isinstance(ref, ActorRef) or not issubclass(ref.slot.actor_class, Pool):
            raise InvalidConfig("ref", ref, "must be the ref of a pool (an actor started from a PoolSpec)")
        self.ref = ref
        """The pool supervisor's own ref."""

    @classmethod
    async def spawn(cls, spawner: _Spawner, spec: PoolSpec, *, name: str) -> PoolRef:
        """Start an unsupervised pool at ``name`` under ``spawner`` (a Node: top level; an
        ActorContext: a child of that actor). Awaits every routee's start.

        The pool itself is not restarted if it exits (it gives up when its routees
        fail more than ``spec.intensity`` times per ``spec.period``). Raises
        InvalidSpec for something other than a PoolSpec, and what ``spawn`` raises.
        """
        if not isinstance(spec, PoolSpec):
            raise InvalidSpec(None, "spec", spec, "must be a garrison.PoolSpec")
        return cls(await spawner.spawn(Pool, name=name, args=(spec,), shutdown=None))

    @property
    def path(self) -> str:
        return self.ref.path

    @property
    def is_alive(self) -> bool:
        """False once the pool has stopped for good."""
        return self.ref.is_alive

    def routees(self) -> list[ActorRef]:
        """The current routees' refs, in start order (empty between the pool's incarnations).

        Raises ActorStopped once the pool has stopped for good.
        """
        pool = self._pool()
        return [slot.self_ref for slot in pool.live_routees()] if pool is not None else []

    def _pool(self) -> Pool | None:
        slot = self.ref.slot
        if slot.state is ActorState.STOPPED:
            raise ActorStopped(self.path, "pool stopped")
        instance = slot.instance
        return instance if isinstance(instance, Pool) else None

    def _target(self, message: Any) -> ActorRef | None:
        pool = self._pool()
        routee = pool.route(message) if pool is not None else None
        if routee is None:
            return None
        return routee.self_ref

    def _unroutable(self, message: Any) -> str:
        reason = f"pool {self.path} has no routee (it is restarting, or all its routees exited)"
        self.ref.slot.node.dead_letters.publish(message, self.path, reason, kind="unroutable")
        return reason

    def tell(self, message: Any) -> Awaitable[None]:
        """Send ``message`` to one routee (every routee under BROADCAST); await the result.

        Waits and raises as the chosen routee's ``ActorRef.tell`` does (MailboxFull,
        a wait for space under BACKPRESSURE). Raises what ``key`` raises under
        CONSISTENT_HASH, InvalidConfig if it returns another type than str, bytes
        or int, and ActorStopped once the pool has stopped for good.
        """
        if _routing(self.ref) is Routing.BROADCAST:
            return self.broadcast(message)
        target = self._target(message)
        if target is None:
            self._unroutable(message)
            return self.ref.slot.node.kernel.completed
        return target.tell(message)

    def tell_nowait(self, message: Any) -> None:
        """Send without waiting, to one routee (every routee under BROADCAST).

        Raises as the chosen routee's ``ActorRef.tell_nowait`` does (MailboxFull); under
        BROADCAST every routee is tried first, then the first refusal is raised.
        """
        if _routing(self.ref) is Routing.BROADCAST:
            first_error: Exception | None = None
            for routee in self.routees():
                try:
                    routee.tell_nowait(message)
                except ActorStopped:
                    continue  # stopped for good after we listed it: no longer a routee
                except Exception as error:
                    first_error = first_error or error
            if first_error is not None:
                raise first_error
            return
        target = self._target(message)
        if target is None:
            self._unroutable(message)
            return
        target.tell_nowait(message)

    async def ask(self, message: Any, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send ``message`` to one routee and await its handler's return value.

        Under BROADCAST the routee is picked round-robin. Raises as
        ``ActorRef.ask`` does; MessageDropped when the pool has no routee.
        """
        pool = self._pool()
        routee: Slot | None = None
        if pool is not None:
            broadcast = pool.pool_spec.routing is Routing.BROADCAST
            routee = pool.route_one() if broadcast else pool.route(message)
        if routee is None:
            raise MessageDropped(self.path, self._unroutable(message))
        return await routee.self_ref.ask(message, timeout)

    def broadcast(self, message: Any) -> Awaitable[None]:
        """Send ``message`` to every routee not stopped for good, in start order (any routing).

        As with ``ActorRef.tell``, each routee's mailbox takes it at once when it has
        room; the await waits only for routees whose full BACKPRESSURE mailbox makes
        it wait. A routee that is down keeps it for its next incarnation. Every
        routee is tried, then the first error a routee raised (MailboxFull) is raised.
        """
        completed = self.ref.slot.node.kernel.completed
        waiting: list[Awaitable[None]] = []
        first_error: Exception | None = None
        for routee in self.routees():
            try:
                sent = routee.tell(message)
            except ActorStopped:
                continue  # stopped for good after we listed it: no longer a routee
            except Exception as error:
                first_error = first_error or error
                continue
            if sent is not completed:
                waiting.append(sent)
        if not waiting and first_error is None:
            return completed
        return _finish_broadcast(waiting, first_error)

    async def resize(self, size: int) -> None:
        """Grow or shrink the pool to ``size`` routees; awaits the new routees' starts.

        New routees are named after the highest index in use; shrinking stops the
        last-started routees (each within its shutdown; their queued messages go to
        dead letters). Consistent-hash keys move only to or from the routees added
        or removed. A restart of the pool itself brings it back to ``spec.size``.
        Raises InvalidConfig for a size that is not an int >= 1, ActorStopped if
        the pool has stopped, and ActorStartError if a new routee fails to start.
        """
        problem = count_problem(size)
        if problem is not None:
            raise InvalidConfig("size", size, problem)
        slot = self.ref.slot
        if slot.state is ActorState.STOPPED:
            raise ActorStopped(self.path, "pool stopped")
        reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def run(pool: Supervisor) -> None:
            assert isinstance(pool, Pool)
            await pool.resize(size)

        slot.mailbox.put_system(_Call(run, reply))
        await reply

    def __repr__(self) -> str:
        return f"PoolRef({self.path!r})"


async def _finish_broadcast(waiting: list[Awaitable[None]], first_error: Exception | None) -> None:
    """Wait for the routees that had no room yet; then raise the first error of all."""
    for sent in waiting:
        try:
            await sent
        except ActorStopped:
            continue
        except Exception as error:
            first_error = first_error or error
    if first_error is not None:
        raise first_error


def _routing(ref: ActorRef) -> Routing:
    spec = ref.slot.args[0]
    assert isinstance(spec, PoolSpec)
    return spec.routing
