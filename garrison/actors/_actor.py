"""``Actor``: what users subclass."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar

from garrison._errors import InvalidConfig
from garrison._validate import check_seconds
from garrison.mailbox import MailboxConfig

if TYPE_CHECKING:
    from garrison.actors._context import ActorContext

constructing: ContextVar[ActorContext] = ContextVar("garrison_constructing_actor")
"""The context of the actor being built: ``Actor.__new__`` sets ``ctx`` from it, so that
``self.ctx`` works inside ``__init__`` (its slot sets it around the constructor call)."""


class Actor:
    """Base class of every actor.

    Class attributes configure the slot: ``mailbox`` (a :class:`MailboxConfig`)
    and ``heartbeat_timeout`` (seconds one message may run without
    ``self.ctx.heartbeat()``, or None for no limit).

    The runtime builds a fresh instance for every start and restart, so
    instance attributes are the actor's private state; ``self.ctx`` is
    already set inside ``__init__``. Handlers run one message at a time on
    the node's event loop: they must not block it (use
    ``self.ctx.run_in_thread`` / ``run_in_process``).
    """

    mailbox: ClassVar[MailboxConfig] = MailboxConfig()
    heartbeat_timeout: ClassVar[float | None] = None
    is_supervisor: ClassVar[bool] = False
    """True for supervisors (tree introspection tells workers from supervisors)."""

    ctx: ActorContext

    def __new__(cls, *args: Any, **kwargs: Any) -> Actor:
        instance = super().__new__(cls)
        context = constructing.get(None)
        if context is not None:
            instance.ctx = context
        return instance

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config = cls.__dict__.get("mailbox")
        if config is not None and not isinstance(config, MailboxConfig):
            raise InvalidConfig(f"{cls.__qualname__}.mailbox", config, "must be a garrison.MailboxConfig")
        check_seconds(
            f"{cls.__qualname__}.heartbeat_timeout", cls.__dict__.get("heartbeat_timeout"), allow_none=True
        )

    async def on_recover(self) -> None:
        """Runs first on every (re)start, before ``on_start``: restore state kept outside memory.

        The base does nothing. ``EventSourcedActor`` replays its journal here,
        so a subclass of it must not override this. Raising fails the start.
        """

    async def on_start(self) -> None:
        """Runs after every (re)start, before the first message. Raising fails the start."""

    async def on_receive(self, message: Any) -> Any:
        """Handle one message. The return value answers an ``ask``.

        An exception raised here for a ``tell`` crashes this incarnation (the
        message goes to dead letters with the exception); for an ``ask`` it
        is raised in the asker and the actor carries on.
        """
        self.ctx.unhandled(message)
        return None

    async def on_stop(self) -> None:
        """Runs on an orderly stop only, after the message in flight, within the shutdown timeout."""
