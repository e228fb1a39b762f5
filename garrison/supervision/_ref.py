"""``SupervisorRef``: OTP's supervisor API, as calls into a running supervisor's task."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from garrison._errors import ActorStopped, ChildNotFound, InvalidSpec
from garrison.actors import ActorRef, ActorState
from garrison.supervision._spec import ChildSpec, DynamicSupervisorSpec
from garrison.supervision._supervisor import ChildCounts, ChildInfo, Supervisor, _Call

T = TypeVar("T")


class SupervisorRef:
    """Manage a running supervisor: OTP's supervisor API, on asyncio.

    Each call queues on the supervisor's system lane and runs inside its
    task, after any child exit already queued (like ``gen_server:call``).
    All raise ActorStopped if the supervisor has stopped, or is between
    incarnations (its parent restarting it; the ref stays valid).
    """

    __slots__ = ("ref",)

    def __init__(self, ref: ActorRef) -> None:
        self.ref = ref

    @property
    def path(self) -> str:
        return self.ref.path

    async def _call(self, fn: Callable[[Supervisor], Awaitable[T]]) -> T:
        slot = self.ref.slot
        if slot.state is ActorState.STOPPED:
            if self.ref.is_alive:
                raise ActorStopped(self.path, "between incarnations: its parent is restarting it")
            raise ActorStopped(self.path, "supervisor stopped")
        reply: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        # A supervisor that stops for good before serving the call fails ``reply`` with ActorStopped.
        slot.mailbox.put_system(_Call(fn, reply))
        return await reply

    async def which_children(self) -> list[ChildInfo]:
        """Every child spec in start order, with its ref and state."""
        return await self._call(lambda sup: sup.which_children())

    async def count_children(self) -> ChildCounts:
        return await self._call(lambda sup: sup.count_children())

    async def terminate_child(self, child_id: str) -> None:
        """Stop the child per its shutdown spec; keep its spec (TEMPORARY and dynamic: drop it).

        Not counted as a restart; does not trigger auto_shutdown. Raises ChildNotFound.
        """
        await self._call(lambda sup: sup.terminate_child(child_id))

    async def restart_child(self, child_id: str) -> ActorRef:
        """Start a stopped child's spec again (a new slot). Not counted as a restart.

        Raises ChildRunning if it runs, ChildNotFound, ActorStartError.
        """
        return await self._call(lambda sup: sup.restart_child(child_id))

    async def delete_child(self, child_id: str) -> None:
        """Forget a stopped child's spec. Raises ChildRunning if it runs, ChildNotFound."""
        await self._call(lambda sup: sup.delete_child(child_id))

    async def start_child(
        self, spec: ChildSpec | None = None, *, id: str | None = None, args: Sequence[Any] = ()
    ) -> ActorRef:
        """Add and start a child: a full ChildSpec (static supervisors), or for a
        DynamicSupervisor an ``id`` and ``args`` appended to its template's."""
        instance = self.ref.slot.instance
        sup_spec = instance.spec if isinstance(instance, Supervisor) else None
        if spec is None:
            if not isinstance(sup_spec, DynamicSupervisorSpec):
                raise InvalidSpec(None, "spec", None, "a static supervisor's start_child needs a ChildSpec")
            if id is None:
                raise InvalidSpec(None, "id", None, "a dynamic child needs an id (e.g. the symbol)")
            if sup_spec.template is None:
                raise InvalidSpec(id, "spec", None, "no template in this DynamicSupervisor: pass a ChildSpec")
            spec = sup_spec.template.with_args(id, args)
        elif not isinstance(spec, ChildSpec):
            raise InvalidSpec(None, "spec", spec, "must be a garrison.ChildSpec")
        final_spec = spec
        return await self._call(lambda sup: sup.start_child(final_spec))

    async def child(self, child_id: str) -> ActorRef:
        """The running child's ref. Raises ChildNotFound if there is no such child or it is not running."""
        for row in await self.which_children():
            if row.id == child_id:
                if row.ref is None:
                    raise ChildNotFound(self.path, child_id)
                return row.ref
        raise ChildNotFound(self.path, child_id)

    def __repr__(self) -> str:
        return f"SupervisorRef({self.path!r})"
