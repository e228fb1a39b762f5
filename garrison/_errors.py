"""The exceptions garrison raises. Every one names what happened and what to do."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class GarrisonError(Exception):
    """Base class of every error garrison raises on purpose."""


class InvalidConfig(GarrisonError, ValueError):
    """A configuration value is out of range or inconsistent.

    ``field`` names the setting and ``value`` the rejected value.
    """

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field}={value!r} is invalid: {expected}")


class ConfigProblem(msgspec.Struct, frozen=True):
    """One thing wrong with a setting: its ``key`` (``"journal.url"``, ``"order_routing.seed"``),
    where the value came from (``source``: ``"node.toml"``, ``"GARRISON_NODE_NAME"``,
    ``"--metrics-port"``) and what is wrong, with what to do (``problem``). Never the value of
    a secret."""

    key: str
    source: str
    problem: str

    def __str__(self) -> str:
        return f"{self.key} ({self.source}): {self.problem}"


class ConfigError(GarrisonError, ValueError):
    """Raised by ``Settings.load`` and ``Settings.section`` (and so by ``garrison run`` and
    ``garrison config show``, which exit 78, ``ExitCode.CONFIG``): an unknown key, a bad value, an
    unreadable config or secret file. ``problems`` lists every one found (each names its key and
    where the value came from); the message says them all. A secret's value is never in it."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        lines = "; ".join(str(problem) for problem in self.problems)
        super().__init__(f"configuration: {lines}")

    @property
    def keys(self) -> list[str]:
        """The keys of the problems, in order."""
        return [problem.key for problem in self.problems]


InvalidEventProblem = Literal["unencodable", "invalid", "changed"]
"""Why an event would not read back as written (``InvalidEvent.problem``)."""

_INVALID_EVENT_PROBLEMS: dict[str, str] = {
    "unencodable": "cannot be encoded",
    "invalid": "does not decode as its declared type",
}


class InvalidEvent(InvalidConfig):
    """An event (or snapshot) that would not read back as it was written; nothing was journaled.

    A msgspec Struct does not check its field types when it is constructed, so
    a wrong value would reach the journal and make the stream unreadable. Every
    append path proves the round trip first: ``event_type`` names the type,
    ``field`` the offending field's path inside it (``"qty"``,
    ``"lines[2].qty"``; ``""`` for the whole event), ``value`` its value and
    ``problem`` why: ``"unencodable"`` (msgpack cannot encode it),
    ``"invalid"`` (not a value of the declared type ``expected``, or outside
    its constraints), ``"changed"`` (it decodes, but as another value:
    ``read_back``, which replay would apply instead).
    """

    def __init__(
        self,
        event_type: str,
        field: str,
        value: Any,
        problem: InvalidEventProblem,
        expected: str,
        read_back: Any = None,
    ) -> None:
        self.event_type = event_type
        self.problem: InvalidEventProblem = problem
        self.expected = expected
        self.read_back = read_back
        where = f"{event_type}.{field}" if field and not field.startswith("[") else f"{event_type}{field}"
        what = f"reads back as {read_back!r}" if problem == "changed" else _INVALID_EVENT_PROBLEMS[problem]
        super().__init__(field, value, expected)
        self.args = (
            f"{where}={value!r} {what}: expected {expected}; "
            "nothing was written: build it from values of the declared types "
            "(a msgspec Struct does not check them when it is constructed)",
        )

    def __str__(self) -> str:
        return str(self.args[0])


class NotAnActor(GarrisonError, TypeError):
    """Something that is not an :class:`~garrison.Actor` subclass was given to spawn."""

    def __init__(self, field: str, value: Any) -> None:
        self.field = field
        self.value = value
        super().__init__(
            f"{field}={value!r} is not an Actor subclass: pass a class that subclasses garrison.Actor"
        )


class MailboxFull(GarrisonError):
    """The mailbox is at capacity and its policy refuses the message.

    Raised by ``tell_nowait`` under BACKPRESSURE (use ``await tell`` to wait
    for space) and by both ``tell`` forms under REJECT. The message was not
    enqueued: the sender still owns it.
    """

    def __init__(self, path: str, capacity: int, policy: str) -> None:
        self.path = path
        self.capacity = capacity
        self.policy = policy
        super().__init__(
            f"mailbox of {path} is full (capacity={capacity}, overflow={policy}); "
            "the message was not enqueued"
        )


class ActorStopped(GarrisonError):
    """The actor behind a ref has stopped for good; the message was not delivered."""

    def __init__(self, path: str, reason: str = "stopped") -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"actor {path} is stopped ({reason}); the message was not delivered")


class AskTimeout(GarrisonError, TimeoutError):
    """No reply to an ``ask`` arrived within its timeout. A late reply is dead-lettered."""

    def __init__(self, path: str, timeout: float, message_type: str) -> None:
        self.path = path
        self.timeout = timeout
        self.message_type = message_type
        super().__init__(f"ask to {path} with {message_type} got no reply within timeout={timeout}s")


class SettleTimeout(GarrisonError, TimeoutError):
    """Raised by ``node.settle()`` when the node is still busy after ``timeout`` real seconds.

    ``busy`` lists each busy actor as ``<path> (<doing>; <n> queued)``.
    """

    SHOWN = 10
    """How many busy actors the message lists (``busy`` has them all)."""

    def __init__(self, node: str, timeout: float, busy: list[str]) -> None:
        self.node = node
        self.timeout = timeout
        self.busy = busy
        shown = "; ".join(busy[: self.SHOWN])
        more = f"; and {len(busy) - self.SHOWN} more" if len(busy) > self.SHOWN else ""
        super().__init__(
            f"node {node!r} did not settle within timeout={timeout}s: still busy: {shown}{more}. "
            "A handler awaiting a later timer needs the clock advanced, not a settle"
        )


class DuplicateActorName(GarrisonError, ValueError):
    """An actor with this path is already registered on the node."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"name={path.rsplit('/', 1)[-1]!r} is taken: an actor at {path} already exists; "
            "choose another name or stop the existing actor first"
        )


class ActorNotFound(GarrisonError, LookupError):
    """No actor is registered at this path."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"path={path!r}: no actor is registered there")


class ActorStartError(GarrisonError):
    """An actor's ``on_start`` raised; the actor was not started."""

    def __init__(self, path: str, cause: BaseException) -> None:
        self.path = path
        self.cause = cause
        super().__init__(f"actor {path} failed to start: {type(cause).__name__}: {cause}")


class NodeNotRunning(GarrisonError):
    """The node has not been entered (``async with Node(...)``) or is shutting down."""

    def __init__(self, name: str, state: str) -> None:
        self.node = name
        self.state = state
        super().__init__(f"node {name!r} is {state}: use it inside 'async with Node(...) as node:'")


class MessageDropped(GarrisonError):
    """An ``ask`` whose message a mailbox policy dropped or conflated away before it ran."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"message to {path} was dropped before it was processed ({reason})")


class StashOverflow(GarrisonError):
    """Raised by ``ctx.stash()`` when the stash already holds ``capacity`` messages.

    The message in flight was not stashed. Uncaught in a handler it is any
    handler error: a tell crashes the actor (its supervisor decides), an ask
    raises it in the asker. A handler may catch it and answer "busy" instead.
    """

    def __init__(self, path: str, capacity: int) -> None:
        self.path = path
        self.capacity = capacity
        super().__init__(
            f"stash of {path} is full (stash_capacity={capacity}); the message was not stashed: "
            "unstash before stashing more, or raise MailboxConfig(stash_capacity=...)"
        )


class StashError(GarrisonError, RuntimeError):
    """Raised by ``ctx.stash()`` when there is no message to stash: called outside a
    handler (``on_start``, a task), or twice for the same message."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"ctx.stash() in {path}: {problem}")


class InvalidSpec(InvalidConfig):
    """A supervision spec is invalid; ``child_id`` names the child (None: the supervisor).

    ``where`` replaces the "child 'id': " / "supervisor: " prefix of the message
    (a ``Backoff`` is built before the child it belongs to: its errors have none).
    """

    def __init__(
        self, child_id: str | None, field: str, value: Any, expected: str, *, where: str | None = None
    ) -> None:
        self.child_id = child_id
        if where is None:
            where = f"child {child_id!r}: " if child_id is not None else "supervisor: "
        super().__init__(field, value, expected)
        self.args = (f"{where}{field}={value!r} is invalid: {expected}",)

    def __str__(self) -> str:
        return str(self.args[0])


class RestartIntensityExceeded(GarrisonError):
    """A supervisor saw more restarts than ``intensity`` within ``period`` seconds and gave up.

    It stopped all its children; its parent handles the exit like OTP's
    ``shutdown``: a PERMANENT child supervisor is restarted, others are not;
    at the root, the node shuts down with a non-zero exit code.
    """

    def __init__(self, path: str, intensity: int, period: float, last_failure: str) -> None:
        self.path = path
        self.intensity = intensity
        self.period = period
        super().__init__(
            f"supervisor {path} gave up: more than intensity={intensity} restarts within "
            f"period={period}s (last: {last_failure}); raise the limits or fix the crashing child"
        )


class HeartbeatTimeout(GarrisonError):
    """An actor ran one message longer than ``heartbeat_timeout`` without ``ctx.heartbeat()``."""

    def __init__(self, path: str, timeout: float, busy_for: float) -> None:
        self.path = path
        self.timeout = timeout
        self.busy_for = busy_for
        super().__init__(
            f"actor {path} is hung: one message ran {busy_for:.3f}s without ctx.heartbeat() "
            f"(heartbeat_timeout={timeout}s); it was cancelled"
        )


class ChildNotFound(GarrisonError, LookupError):
    """A supervisor has no child spec with this id."""

    def __init__(self, supervisor: str, child_id: str) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        super().__init__(f"supervisor {supervisor} has no child with id={child_id!r}")


class ChildRunning(GarrisonError):
    """The operation needs the child stopped (OTP's ``{error, running}``)."""

    def __init__(self, supervisor: str, child_id: str, operation: str) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        super().__init__(
            f"{operation} on supervisor {supervisor}: child id={child_id!r} is running or restarting; "
            "terminate_child it first"
        )


class ChildExists(GarrisonError, ValueError):
    """``start_child`` with an id the supervisor already has (OTP's already_present/started)."""

    def __init__(self, supervisor: str, child_id: str) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        super().__init__(
            f"start_child on supervisor {supervisor}: id={child_id!r} already exists; "
            "use another id, or restart_child / delete_child the existing one"
        )


class JournalError(GarrisonError):
    """Base of journal failures. A failed append may or may not be durable unless the
    subclass says otherwise; an event-sourced actor stops rather than guess."""


class SequenceConflict(JournalError):
    """Another writer appended to the stream first: ``expected_seq`` is stale.

    Nothing of this append was written. Reload the stream (or stop: a
    persistent actor must have a single writer) and try again.
    """

    def __init__(self, stream: str, expected_seq: int, actual_seq: int) -> None:
        self.stream = stream
        self.expected_seq = expected_seq
        self.actual_seq = actual_seq
        super().__init__(
            f"stream {stream!r}: append expected_seq={expected_seq} but the stream is at "
            f"seq {actual_seq}; another writer got there first, nothing was written"
        )


class Fenced(JournalError):
    """Raised by a fenced journal write (``RedisJournal.fenced(token)``) whose fencing token
    is lower than the highest the stream has seen: a newer owner of the cluster singleton
    writes to it now.

    Nothing of the write was stored. The writer lost its lease (it was frozen, partitioned
    or too slow to refresh it) and must stop: its singleton runs elsewhere. Retrying with the
    same token can never succeed.
    """

    def __init__(self, stream: str, token: int, highest: int) -> None:
        self.stream = stream
        self.token = token
        self.highest = highest
        super().__init__(
            f"stream {stream!r}: write with fencing token {token} refused, the stream has seen token "
            f"{highest}; another node owns this singleton now, nothing was written: stop this writer"
        )


class JournalWriteError(JournalError):
    """The journal could not confirm an append; whether it is durable is unknown until read back."""

    def __init__(self, stream: str, cause: BaseException) -> None:
        self.stream = stream
        self.cause = cause
        super().__init__(f"append to stream {stream!r} failed: {type(cause).__name__}: {cause}")


class JournalCorrupt(JournalError):
    """The journal file is not a garrison journal, is damaged, or has a newer schema; or a
    stored event or snapshot is not what was written (its checksum does not match).

    For a damaged event or snapshot, ``stream`` and ``seq`` name it, and ``expected``
    and ``found`` are the checksum stored with it and the one its bytes have now.
    ``garrison journal verify`` lists every such problem; ``garrison journal
    quarantine`` sets an event aside so its actor can start.
    """

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        stream: str | None = None,
        seq: int | None = None,
        expected: int | None = None,
        found: int | None = None,
    ) -> None:
        self.path = path
        self.problem = problem
        self.stream = stream
        self.seq = seq
        self.expected = expected
        self.found = found
        super().__init__(f"journal {path}: {problem}")


DecodeProblem = Literal["not-bytes", "malformed", "schema", "inconsistent"]
"""Why a stored event does not decode (``EventDecodeError.problem``)."""

_DECODE_PROBLEMS: dict[str, str] = {
    "not-bytes": "the stored value is not bytes",
    "malformed": "the bytes are not one whole msgpack value",
    "schema": "not a registered event type, or a field of the wrong type",
    "inconsistent": "it does not follow from the events before it",
}


def _decode_problem(cause: BaseException) -> DecodeProblem:
    if isinstance(cause, TypeError):  # a TEXT or INTEGER value where the journal writes bytes
        return "not-bytes"
    if isinstance(cause, msgspec.ValidationError):  # before DecodeError: it is a subclass
        return "schema"
    if isinstance(cause, LookupError):
        return "inconsistent"
    return "malformed"  # not msgpack, cut off, trailing bytes, a string that is not UTF-8


class EventDecodeError(JournalError):
    """A stored event or snapshot does not decode.

    Names the ``stream`` and sequence number ``seq``; nothing is skipped.
    ``problem`` says why, in garrison's own terms: ``"not-bytes"`` (another
    program wrote a TEXT or INTEGER value), ``"malformed"`` (not one whole
    msgpack value: not msgpack, cut off, trailing bytes, invalid UTF-8),
    ``"schema"`` (an unknown type tag, a missing field or a field of the
    wrong type), ``"inconsistent"`` (an event that cannot follow the ones
    before it). ``cause`` is the decoder's own error, for humans.
    """

    def __init__(
        self, stream: str, seq: int, cause: BaseException, problem: DecodeProblem | None = None
    ) -> None:
        self.stream = stream
        self.seq = seq
        self.cause = cause
        self.problem: DecodeProblem = problem if problem is not None else _decode_problem(cause)
        super().__init__(
            f"stream {stream!r} seq {seq}: event does not decode ({_DECODE_PROBLEMS[self.problem]}): {cause}"
        )


class JournalClosed(JournalError):
    """The journal is not open (``await journal.open()`` or ``async with journal``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"journal {name} is closed; open it first ('async with journal:')")


class FatalError(GarrisonError):
    """Raised in a handler, it ends the incarnation even when the message was an ``ask``
    (the asker gets the error too): the actor's state can no longer be trusted."""


class PersistFailed(FatalError):
    """``persist`` could not confirm its events: the actor stops and recovers from the journal.

    In-memory state never runs ahead of what is durable; the supervisor's
    restart (with backoff) replays the journal, which says whether the
    events were written.
    """

    def __init__(self, persistence_id: str, cause: BaseException) -> None:
        self.persistence_id = persistence_id
        self.cause = cause
        super().__init__(
            f"persist to {persistence_id!r} failed ({type(cause).__name__}: {cause}); "
            "the actor stops and recovers from the journal"
        )


class UnhandledMessage(GarrisonError):
    """Raised by ``ask`` when the actor does not handle the message (its handler called
    ``ctx.unhandled``, as the default ``on_receive`` does). The actor carries on."""

    def __init__(self, path: str, message_type: str, actor_class: str) -> None:
        self.path = path
        self.message_type = message_type
        self.actor_class = actor_class
        super().__init__(
            f"{path} ({actor_class}) does not handle {message_type}: "
            "add a case for it to on_receive, or ask another actor"
        )


class NameTaken(GarrisonError, ValueError):
    """Raised by ``node.register`` (and a ChildSpec's ``register``) when the name is already
    registered to another live actor."""

    def __init__(self, name: str, holder: str, wanted_by: str) -> None:
        self.name = name
        self.holder = holder
        self.wanted_by = wanted_by
        super().__init__(
            f"name {name!r} is registered to {holder}, not free for {wanted_by}: "
            "unregister it first, or pick another name"
        )


class UnknownMessageType(GarrisonError, TypeError):
    """Raised by a remote ref's ``tell`` and ``ask`` (``garrison.cluster``) when the message's
    type is not in the cluster's message registry: nothing was sent. Register the type on
    every node (``cluster.message_types(...)``); plain msgpack values (None, bool, int, float,
    str, bytes, lists and dicts of them) need no registration."""

    def __init__(self, message_type: str, node: str) -> None:
        self.message_type = message_type
        self.node = node
        super().__init__(
            f"message type {message_type} is not registered with the cluster on node {node!r}: "
            "register it on every node with cluster.message_types(...) before sending it"
        )


class NodeUnreachable(GarrisonError):
    """Raised by a remote ``ask`` (``garrison.cluster``) when the target node is not a member
    of the cluster (never joined, left, or its lease expired), or leaves while the ask waits.
    The message may or may not have been handled."""

    def __init__(self, node: str, cluster: str, path: str) -> None:
        self.node = node
        self.cluster = cluster
        self.path = path
        super().__init__(
            f"node {node!r} is not up in cluster {cluster!r}; the ask to {path} got no reply "
            "(check node.cluster.members(), and watch the ref to hear when it goes)"
        )


class RemoteHandlerError(GarrisonError):
    """Raised by a remote ``ask`` (``garrison.cluster``) when the remote handler raised an error
    that is not a garrison error (garrison errors are raised as themselves). ``error_type`` and
    ``text`` are the remote exception's class name and message."""

    def __init__(self, node: str, path: str, error_type: str, text: str) -> None:
        self.node = node
        self.path = path
        self.error_type = error_type
        self.text = text
        super().__init__(f"{path} on node {node!r} raised {error_type}: {text}")
