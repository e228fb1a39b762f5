"""``Kernel``: the actor kernel's state for one node, and the one spawn path.

A node owns one (``node.kernel``). It holds every live slot by path (the
top-level ones in start order), watches heartbeats, times out asks, and
creates slots: the node, ``ctx.spawn`` and supervisors all create theirs
here, validated the same way. Internal: supervisors and the test kit use it;
actors use their context.

It also keeps refs stable. A ref names a path: when a parent's incarnation
ends, its children's slots stop but their refs are *parked* here by path;
the slot the parent's next incarnation creates at the same path takes the
parked ref over (``ActorRef.bind``), so a send costs no look-up. A parked ref
dies when the parent stops for good, or when its next incarnation has
started without re-creating that child. Registered names (``register``)
point at refs and are freed when their ref dies.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from garrison._defaults import DEFAULT_SHUTDOWN
from garrison._errors import (
    ActorNotFound,
    ActorStartError,
    ActorStopped,
    DuplicateActorName,
    HeartbeatTimeout,
    InvalidConfig,
    NameTaken,
    NodeNotRunning,
    NotAnActor,
)
from garrison._validate import check_seconds
from garrison.actors._actor import Actor
from garrison.actors._deadlines import AskDeadlines
from garrison.actors._introspect import ActorSnapshot, activity, snapshot, tree_row, unstarted_row
from garrison.actors._messages import ActorState, ExitReason
from garrison.actors._ref import ActorRef
from garrison.actors._slot import ExitHook, Slot, stop_for_good
from garrison.mailbox import MailboxConfig

if TYPE_CHECKING:
    from garrison._clock import Cancellable
    from garrison.actors._runtime import Runtime


def validate_shutdown(field: str, shutdown: object) -> float | None:
    """A shutdown timeout: seconds >= 0, 0 for immediate cancellation, None for infinity."""
    check_seconds(field, shutdown, allow_minimum=True, allow_none=True)
    return None if shutdown is None else float(shutdown)  # type: ignore[arg-type]  # checked above


def validate_actor_class(field: str, actor_class: object) -> type[Actor]:
    """An Actor subclass; NotAnActor otherwise."""
    if not (isinstance(actor_class, type) and issubclass(actor_class, Actor)):
        raise NotAnActor(field, actor_class)
    return actor_class


def validate_name(field: str, name: object) -> str:
    """A name: a non-empty string without '/' (a path is names joined by '/')."""
    if not isinstance(name, str) or not name or "/" in name:
        raise InvalidConfig(field, name, "a name is a non-empty string without '/'")
    return name


class SpawnOptions(TypedDict, total=False):
    """How to start an actor: the keyword options of ``node.spawn`` and ``ctx.spawn``.

    Every key is optional; what is left out takes the default named here.
    """

    name: str | None
    """The last part of the actor's path; None (default) picks ``<class name>-<n>``."""
    args: tuple[Any, ...]
    """Positional arguments for the actor's ``__init__`` (default: none)."""
    kwargs: dict[str, Any] | None
    """Keyword arguments for the actor's ``__init__`` (default: none)."""
    mailbox: MailboxConfig | None
    """Overrides the class's ``mailbox`` config (default: None, the class's)."""
    shutdown: float | None
    """Seconds its stop may take before what is left is cancelled: 0 for at once, None for
    no limit (default: ``DEFAULT_SHUTDOWN``)."""


class Kernel:
    """Internal: every slot of one node, and what they share. The node builds one.

    Everything here runs on the node's loop.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.ask_deadlines = AskDeadlines(runtime.clock)
        """Fails each pending ask with AskTimeout when its timeout passes (refs add to it)."""
        self.completed: asyncio.Future[None]
        """A future already done, on the node's loop: what ``tell`` returns when the mailbox took
        the message at once (awaiting it costs less than a coroutine). Set by ``open``."""
        self._slots: dict[str, Slot] = {}
        self._top: dict[str, Slot] = {}
        self._anonymous = itertools.count(1)
        # A dict, not a set: hung actors are cancelled in start order, the same on every run.
        self._heartbeats: dict[Slot, None] = {}
        self._heartbeat_timer: Cancellable | None = None
        self._parked: dict[str, tuple[ActorRef, ExitReason]] = {}
        """Refs whose slot stopped because the parent's incarnation ended, by path, with
        that slot's exit reason: what they die with if no later slot takes them over."""
        self._names: dict[str, ActorRef] = {}
        self._names_of: dict[ActorRef, list[str]] = {}

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """The node starts running on ``loop``."""
        self.completed = loop.create_future()
        self.completed.set_result(None)

    # -- creating slots ------------------------------------------------------------

    def unique_name(self, prefix: str) -> str:
        """``<prefix>-<n>``, n counting up for the whole node: a name for an anonymous slot."""
        return f"{prefix}-{next(self._anonymous)}"

    async def spawn(
        self,
        actor_class: type[Actor],
        *,
        parent: Slot | None,
        on_exit: ExitHook = stop_for_good,
        **options: Unpack[SpawnOptions],
    ) -> ActorRef:
        """The one spawn path: validate, register, start, await ``on_start``.

        By default an exit stops the new slot for good (an unsupervised
        actor). Raises what ``prepare`` raises, and ActorStartError when
        ``on_start`` fails (the slot is gone by then).
        """
        slot = self.prepare(actor_class, parent, on_exit, **options)
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slot.launch(started)
        try:
            await started
        except ActorStartError:
            slot.finalize(ExitReason.shutdown("failed to start"))
            raise
        return slot.self_ref

    def prepare(
        self,
        actor_class: type[Actor],
        parent: Slot | None,
        on_exit: ExitHook,
        *,
        name: str | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        mailbox: MailboxConfig | None = None,
        shutdown: float | None = DEFAULT_SHUTDOWN,
    ) -> Slot:
        """Validate and register a new slot at ``<parent path>/<name>`` without starting it.

        The keywords are :class:`SpawnOptions`, with their defaults applied
        here, once. ``on_exit`` decides what happens after an exit the slot
        did not ask for. Raises NodeNotRunning, NotAnActor, InvalidConfig,
        DuplicateActorName.
        """
        runtime = self.runtime
        if runtime.state != "running":
            raise NodeNotRunning(runtime.name, runtime.state)
        validate_actor_class("actor_class", actor_class)
        if name is None:
            name = self.unique_name(actor_class.__name__.lower())
        validate_name("name", name)
        if mailbox is not None and not isinstance(mailbox, MailboxConfig):
            raise InvalidConfig("mailbox", mailbox, "must be a garrison.MailboxConfig or None")
        if not isinstance(args, tuple):
            raise InvalidConfig("args", args, "must be a tuple of positional arguments")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise InvalidConfig("kwargs", kwargs, "must be a dict of keyword arguments or None")
        shutdown = validate_shutdown("shutdown", shutdown)
        path = f"{parent.path if parent is not None else ''}/{name}"
        if path in self._slots:
            raise DuplicateActorName(path)
        parked = self._parked.pop(path, None) if self._parked else None
        slot = Slot(
            runtime,
            parent,
            name,
            actor_class,
            args,
            dict(kwargs or {}),
            mailbox if mailbox is not None else actor_class.mailbox,
            shutdown,
            on_exit,
            parked[0] if parked is not None else None,
        )
        self._slots[path] = slot
        if parent is None:
            self._top[name] = slot
        else:
            parent.children[name] = slot
        return slot

    def forget(self, slot: Slot, reason: ExitReason) -> None:
        """A slot stopped for good: its path is free again.

        A parked slot's ref waits for the next slot at its path; any other's
        ref dies with ``reason``, and so do the parked refs under its path.
        """
        path = slot.path
        if self._slots.get(path) is slot:
            del self._slots[path]
        if slot.parent is None and self._top.get(slot.name) is slot:
            del self._top[slot.name]
        self._heartbeats.pop(slot, None)
        ref = slot.self_ref
        if slot.parked:
            ref.park(
                self.runtime.dead_letters,
                f"{path} is between incarnations: its parent {slot.parent.path if slot.parent else ''} "
                "is restarting",
            )
            self._parked[path] = (ref, reason)
            return
        self._bury(ref, reason)
        if self._parked:
            self._release_under(f"{path}/")

    def release_unclaimed(self, parent: Slot) -> None:
        """``parent``'s incarnation has started: refs parked under it that it did not re-create die."""
        if self._parked:
            self._release_under(f"{parent.path}/")

    def _release_under(self, prefix: str) -> None:
        for path in [path for path in self._parked if path.startswith(prefix)]:
            ref, reason = self._parked.pop(path)
            self._bury(ref, reason)

    def _bury(self, ref: ActorRef, reason: ExitReason) -> None:
        """``ref`` dies: its names are freed, its watchers hear Terminated."""
        names = self._names_of.pop(ref, None)
        if names is not None:
            for name in names:
                del self._names[name]
        ref.die(reason)

    # -- registered names -----------------------------------------------------------------

    def register(self, name: str, ref: ActorRef) -> None:
        """Register ``ref`` under ``name`` until it dies (Erlang's ``register/2``).

        A ref may carry several names. Raises InvalidConfig for a bad name or
        something that is not an ActorRef, ActorStopped for a dead ref,
        NameTaken when another ref holds the name.
        """
        validate_name("name", name)
        if not isinstance(ref, ActorRef):
            raise InvalidConfig("ref", ref, "must be a garrison.ActorRef")
        if not ref.is_alive:
            raise ActorStopped(ref.path, f"cannot register a dead ref as {name!r}")
        holder = self._names.get(name)
        if holder is ref:
            return
        if holder is not None:
            raise NameTaken(name, holder.path, ref.path)
        self._names[name] = ref
        self._names_of.setdefault(ref, []).append(name)

    def unregister(self, name: str) -> None:
        """Free ``name``; nothing happens if no ref holds it."""
        ref = self._names.pop(name, None)
        if ref is None:
            return
        names = self._names_of[ref]
        names.remove(name)
        if not names:
            del self._names_of[ref]

    def whereis(self, name: str) -> ActorRef | None:
        """The ref registered under ``name``; None if there is none."""
        return self._names.get(name)

    def registered(self) -> dict[str, str]:
        """Every registered name and the path of its ref, in registration order."""
        return {name: ref.path for name, ref in self._names.items()}

    # -- heartbeats ----------------------------------------------------------------

    def launched(self, slot: Slot) -> None:
        """A slot starts an incarnation: watch its heartbeat if it has a timeout."""
        if slot.actor_class.heartbeat_timeout is None:
            return
        self._heartbeats[slot] = None
        if self._heartbeat_timer is None:
            self._heartbeat_timer = self.runtime.clock.call_later(
                self.runtime.heartbeat_interval, self._check_heartbeats
            )

    def stop_heartbeats(self) -> None:
        """Look for hung actors no more (the node is shutting down)."""
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
            self._heartbeat_timer = None

    def _check_heartbeats(self) -> None:
        """Cancel every actor whose message in flight outran its heartbeat_timeout."""
        self._heartbeat_timer = None
        runtime = self.runtime
        now = runtime.clock.now()
        for slot in list(self._heartbeats):
            timeout = slot.actor_class.heartbeat_timeout
            if slot.state is ActorState.STOPPED or timeout is None:
                self._heartbeats.pop(slot, None)
                continue
            since = slot.busy_since
            if since is not None and now - since >= timeout:
                slot.busy_since = None
                error = HeartbeatTimeout(slot.path, timeout, now - since)
                slot.kill(ExitReason.failure(error, "heartbeat timeout"))
        if self._heartbeats and runtime.state == "running":
            self._heartbeat_timer = runtime.clock.call_later(
                runtime.heartbeat_interval, self._check_heartbeats
            )

    # -- finding slots ------------------------------------------------------------------

    def lookup(self, path: str) -> ActorRef:
        """The ref of the actor at ``path`` (e.g. ``/root/feed``), also while an ancestor
        restarts it. Raises ActorNotFound."""
        slot = self._slots.get(path)
        if slot is None or slot.state is ActorState.STOPPED:
            parked = self._parked.get(path)
            if parked is None:
                raise ActorNotFound(path)
            return parked[0]
        return slot.self_ref

    def paths(self) -> list[str]:
        """Every registered actor path, in registration order."""
        return list(self._slots)

    def top_level(self) -> list[Slot]:
        """The top-level slots, in start order (the node stops them in the reverse)."""
        return list(self._top.values())

    # -- looking (the read-only introspection view) ---------------------------------------

    def actors(self) -> list[ActorSnapshot]:
        """Every registered actor as it is now, in registration order."""
        return [snapshot(slot) for slot in self._slots.values()]

    def tree(self) -> list[dict[str, Any]]:
        """Every actor as a tree (``node.tree()``): path, kind, state, restarts, mailbox, children."""
        return [tree_row(slot) for slot in self._top.values()]

    def busy(self) -> list[str]:
        """What keeps the node from being idle (``node.settle()``): one line per busy actor,
        ``<path> (<doing>; <n> queued)``, in registration order; empty when idle."""
        return [line for slot in self._slots.values() if (line := activity(slot)) is not None]

    def describe_unstarted(
        self, parent: Slot, name: str, actor_class: type[Actor], mailbox: MailboxConfig
    ) -> dict[str, Any]:
        """The tree row of a child ``name`` of ``parent`` that has no slot (a supervisor's kept
        spec): what its slot would show, stopped."""
        return unstarted_row(parent.path, name, actor_class, mailbox, self.runtime.clock.now)

    def __len__(self) -> int:
        return len(self._slots)
