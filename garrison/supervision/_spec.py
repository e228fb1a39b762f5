"""Supervision specs, validated once when they are built.

A spec is data: nothing starts until ``await node.start(spec)``. Every bad
value is reported here, naming the child id, the field and the value.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from garrison._defaults import DEFAULT_SHUTDOWN
from garrison._errors import InvalidSpec
from garrison._validate import count_problem, number_problem
from garrison.actors import Actor
from garrison.mailbox import MailboxConfig


class Strategy(enum.Enum):
    """Which children a supervisor restarts when one must be restarted (OTP)."""

    ONE_FOR_ONE = "one_for_one"
    """Only the failed child."""
    REST_FOR_ONE = "rest_for_one"
    """The failed child and every child started after it."""
    ONE_FOR_ALL = "one_for_all"
    """Every child."""


class Restart(enum.Enum):
    """When a child is restarted (OTP restart types)."""

    PERMANENT = "permanent"
    """Always, whatever the exit reason."""
    TRANSIENT = "transient"
    """Only after an abnormal exit (an exception, a failed start, a heartbeat timeout)."""
    TEMPORARY = "temporary"
    """Never; its spec is dropped when it exits."""


class AutoShutdown(enum.Enum):
    """Whether a supervisor stops itself when significant children exit on their own."""

    NEVER = "never"
    ANY_SIGNIFICANT = "any_significant"
    ALL_SIGNIFICANT = "all_significant"


def _number(
    child_id: str | None,
    name: str,
    value: object,
    *,
    positive: bool = False,
    where: str | None = None,
    what: str = "a number of seconds",
) -> float:
    problem = number_problem(value, allow_minimum=not positive, what=what)
    if problem is not None:
        raise InvalidSpec(child_id, name, value, problem, where=where)
    return float(value)  # type: ignore[arg-type]  # a number: checked above


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay restarts of one child exponentially, with jitter (beyond OTP; like Akka).

    The n-th consecutive restart waits ``min(max, initial * multiplier**n) *
    (1 + jitter * U[0, 1))`` seconds of node-clock time (so jitter can exceed
    ``max`` by up to ``jitter``, as in Akka). The count resets when the child
    has run ``reset_after`` seconds (default ``(initial + max) / 2``) without
    failing. Jitter draws from ``node.random`` (seeded with ``Node(seed=...)``).
    """

    initial: float = 0.1
    max: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2
    reset_after: float | None = None

    def __post_init__(self) -> None:
        # Built before the ChildSpec it goes into: the field name alone says where it is.
        _number(None, "backoff.initial", self.initial, positive=True, where="")
        _number(None, "backoff.max", self.max, positive=True, where="")
        if self.max < self.initial:
            raise InvalidSpec(None, "backoff.max", self.max, f"must be >= initial={self.initial}", where="")
        if _number(None, "backoff.multiplier", self.multiplier, where="", what="a number") < 1:
            raise InvalidSpec(None, "backoff.multiplier", self.multiplier, "must be >= 1", where="")
        _number(None, "backoff.jitter", self.jitter, where="", what="a number")
        if self.reset_after is not None:
            _number(None, "backoff.reset_after", self.reset_after, positive=True, where="")

    @property
    def quiet_period(self) -> float:
        return self.reset_after if self.reset_after is not None else (self.initial + self.max) / 2

    def delay(self, attempt: int, unit_random: float) -> float:
        """The delay before restart number ``attempt`` (0-based); ``unit_random`` in [0, 1)."""
        base = min(self.max, self.initial * self.multiplier**attempt)
        return base * (1.0 + self.jitter * unit_random)


_DEFAULT = object()


@dataclass(frozen=True, slots=True, init=False)
class ChildSpec:
    """One child of a supervisor: an Actor class, or a nested SupervisorSpec.

    ``shutdown`` is seconds the child gets to stop (the message in flight,
    then ``on_stop``) before it is cancelled; 0 cancels at once (OTP's
    brutal_kill); None waits forever. Default: 5.0 for workers, None for
    supervisors (as in OTP).

    ``register`` is a name the child's ref is registered under
    (``node.whereis(name)``) each time the supervisor starts it. Restarts
    keep the ref, so the name stays; it is freed when the child stops for good.

    ``singleton=True``: exactly one node of the cluster runs this child (a
    lease with a fencing token, ``Node(singletons=...)``); on every other
    node its slot stands by (``standby`` in ``node.tree()``) and takes over
    when the owner's lease expires. The persistent actors under it write
    through a journal fenced with the lease's token (``ctx.node.journal_for``),
    so a stale owner's writes are refused with Fenced, and it stops. On a node
    without a cluster the child simply runs (a cluster of one).
    """

    id: str
    start: type[Actor] | SupervisorSpec
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    restart: Restart
    shutdown: float | None
    significant: bool
    backoff: Backoff | None
    mailbox: MailboxConfig | None
    register: str | None
    singleton: bool

    def __init__(
        self,
        id: str,
        start: type[Actor] | SupervisorSpec,
        *,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        restart: Restart = Restart.PERMANENT,
        shutdown: float | object | None = _DEFAULT,
        significant: bool = False,
        backoff: Backoff | None = None,
        mailbox: MailboxConfig | None = None,
        register: str | None = None,
        singleton: bool = False,
    ) -> None:
        if not isinstance(id, str) or not id or "/" in id:
            raise InvalidSpec(
                None, "id", id, "a child id is a non-empty string without '/'", where="ChildSpec: "
            )
        is_supervisor = isinstance(start, SupervisorSpec)
        if not is_supervisor and not (isinstance(start, type) and issubclass(start, Actor)):
            raise InvalidSpec(
                id, "start", start, "must be an Actor subclass or a SupervisorSpec/DynamicSupervisorSpec"
            )
        if not isinstance(args, tuple | list):
            raise InvalidSpec(id, "args", args, "must be a tuple of positional arguments")
        if kwargs is not None and (
            not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs)
        ):
            raise InvalidSpec(id, "kwargs", kwargs, "must be a dict of keyword arguments (str keys) or None")
        if is_supervisor and (args or kwargs):
            raise InvalidSpec(id, "args", args, "a nested SupervisorSpec takes no args")
        if not isinstance(restart, Restart):
            raise InvalidSpec(id, "restart", restart, "must be a garrison.Restart member")
        if shutdown is _DEFAULT:
            shutdown = None if is_supervisor else DEFAULT_SHUTDOWN
        elif shutdown is not None:
            shutdown = _number(id, "shutdown", shutdown)
        if not isinstance(significant, bool):
            raise InvalidSpec(id, "significant", significant, "must be True or False")
        if significant and restart is Restart.PERMANENT:
            raise InvalidSpec(
                id, "significant", significant, "a PERMANENT child cannot be significant (OTP rule)"
            )
        if backoff is not None and not isinstance(backoff, Backoff):
            raise InvalidSpec(id, "backoff", backoff, "must be a garrison.Backoff or None")
        if mailbox is not None and not isinstance(mailbox, MailboxConfig):
            raise InvalidSpec(id, "mailbox", mailbox, "must be a garrison.MailboxConfig or None")
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "args", tuple(args))
        object.__setattr__(self, "kwargs", dict(kwargs or {}))
        object.__setattr__(self, "restart", restart)
        object.__setattr__(self, "shutdown", shutdown)
        object.__setattr__(self, "significant", significant)
        object.__setattr__(self, "backoff", backoff)
        if register is not None and (not isinstance(register, str) or not register or "/" in register):
            raise InvalidSpec(id, "register", register, "a name is a non-empty string without '/', or None")
        object.__setattr__(self, "mailbox", mailbox)
        object.__setattr__(self, "register", register)
        if not isinstance(singleton, bool):
            raise InvalidSpec(id, "singleton", singleton, "must be True or False")
        if singleton and restart is Restart.TEMPORARY:
            raise InvalidSpec(
                id,
                "singleton",
                singleton,
                "a TEMPORARY child cannot be a singleton (it would never take over)",
            )
        object.__setattr__(self, "singleton", singleton)

    @property
    def is_supervisor(self) -> bool:
        return isinstance(self.start, SupervisorSpec)

    def with_args(self, id: str, extra_args: Sequence[Any]) -> ChildSpec:
        """This template with another id and ``extra_args`` appended (DynamicSupervisor)."""
        return ChildSpec(
            id,
            self.start,
            args=(*self.args, *extra_args),
            kwargs=self.kwargs,
            restart=self.restart,
            shutdown=self.shutdown,
            significant=self.significant,
            backoff=self.backoff,
            mailbox=self.mailbox,
        )


def _check_limits(intensity: object, period: object) -> None:
    problem = count_problem(intensity, minimum=0)
    if problem is not None:
        raise InvalidSpec(None, "intensity", intensity, problem)
    _number(None, "period", period, positive=True)


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    """A supervisor: its strategy, restart intensity, and children in start order.

    More than ``intensity`` restarts within any ``period`` seconds (a sliding
    window over all children, node clock) and the supervisor gives up. The
    defaults are OTP's: at most 1 restart in 5 seconds.

    ``singleton=True``: the supervisor's children run on exactly one node of the
    cluster, together (one lease, named by the supervisor's path), and stand by on
    the others; the supervisor itself runs everywhere. ``node.start(spec)`` of
    such a spec makes a whole tree a cluster singleton with its paths unchanged.
    See ``ChildSpec``'s ``singleton`` for the rest.
    """

    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 1
    period: float = 5.0
    children: Sequence[ChildSpec] = field(default_factory=tuple)
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER
    singleton: bool = False
    runner: ClassVar[type[Actor] | None] = None
    """Internal: the Supervisor subclass that runs this kind of spec (None: ``Supervisor``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.strategy, Strategy):
            raise InvalidSpec(None, "strategy", self.strategy, "must be a garrison.Strategy member")
        _check_limits(self.intensity, self.period)
        if not isinstance(self.auto_shutdown, AutoShutdown):
            raise InvalidSpec(None, "auto_shutdown", self.auto_shutdown, "must be an AutoShutdown member")
        if not isinstance(self.singleton, bool):
            raise InvalidSpec(None, "singleton", self.singleton, "must be True or False")
        if isinstance(self.children, ChildSpec):
            raise InvalidSpec(
                None,
                "children",
                self.children,
                "must be a list of garrison.ChildSpec; "
                "wrap a single child in a list: children=[ChildSpec(...)]",
            )
        if not isinstance(self.children, list | tuple):
            raise InvalidSpec(None, "children", self.children, "must be a list of garrison.ChildSpec")
        children = tuple(self.children)
        seen: set[str] = set()
        names: set[str] = set()
        for child in children:
            if not isinstance(child, ChildSpec):
                raise InvalidSpec(None, "children", child, "every child must be a garrison.ChildSpec")
            if child.id in seen:
                raise InvalidSpec(child.id, "id", child.id, "duplicate child id")
            seen.add(child.id)
            if child.register is not None:
                if child.register in names:
                    raise InvalidSpec(child.id, "register", child.register, "another child registers it")
                names.add(child.register)
            if child.significant and self.auto_shutdown is AutoShutdown.NEVER:
                raise InvalidSpec(
                    child.id,
                    "significant",
                    True,
                    "needs the supervisor's auto_shutdown to be ANY_SIGNIFICANT or ALL_SIGNIFICANT",
                )
        object.__setattr__(self, "children", children)


@dataclass(frozen=True, slots=True, init=False, kw_only=True)
class DynamicSupervisorSpec(SupervisorSpec):
    """OTP's simple_one_for_one: children of one template, started on demand.

    ``start_child(id=..., args=...)`` appends ``args`` to the template's. As
    with Elixir's DynamicSupervisor, ``start_child(spec)`` also takes a full
    ChildSpec, and the template may be omitted (children of several kinds).
    Children are restarted one for one under the same intensity rules and
    stopped together (concurrently) when the supervisor stops.
    """

    template: ChildSpec | None
    max_children: int | None

    def __init__(
        self,
        template: ChildSpec | None = None,
        *,
        intensity: int = 1,
        period: float = 5.0,
        max_children: int | None = None,
    ) -> None:
        if template is not None and not isinstance(template, ChildSpec):
            raise InvalidSpec(None, "template", template, "must be a garrison.ChildSpec or None")
        if template is not None and template.register is not None:
            raise InvalidSpec(
                template.id, "register", template.register, "a template's children cannot share one name"
            )
        if template is not None and template.significant:
            raise InvalidSpec(template.id, "significant", True, "dynamic children cannot be significant")
        if template is not None and template.singleton:
            raise InvalidSpec(
                template.id, "singleton", True, "dynamic children cannot be singletons: give it a fixed place"
            )
        problem = count_problem(max_children, allow_none=True)
        if problem is not None:
            raise InvalidSpec(None, "max_children", max_children, problem)
        object.__setattr__(self, "template", template)
        object.__setattr__(self, "max_children", max_children)
        object.__setattr__(self, "strategy", Strategy.ONE_FOR_ONE)
        object.__setattr__(self, "intensity", intensity)
        object.__setattr__(self, "period", period)
        object.__setattr__(self, "children", ())
        object.__setattr__(self, "auto_shutdown", AutoShutdown.NEVER)
        object.__setattr__(self, "singleton", False)
        _check_limits(intensity, period)
