"""``NodeGuard``: fails a test when an actor crashed, or a message was dead-lettered, unexpectedly."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from garrison._node import Node
from garrison.actors import DeadLetter, Failed, LifecycleEvent
from garrison.testing._matching import Matcher, matches


@dataclass(frozen=True, slots=True)
class _CrashRule:
    path: str | None
    error: str | None

    def allows(self, failed: Failed) -> bool:
        return (self.path is None or self.path == failed.path) and (
            self.error is None or self.error == failed.error_type
        )


@dataclass(frozen=True, slots=True)
class _DeadLetterRule:
    recipient: str | None
    message: Matcher | None
    reason: str | None

    def allows(self, letter: DeadLetter) -> bool:
        return (
            (self.recipient is None or self.recipient == letter.recipient)
            and (self.message is None or matches(self.message, letter.message))
            and (self.reason is None or self.reason in letter.reason)
        )


class NodeGuard:
    """Watches a node's lifecycle events and dead letters during a test.

    An actor failure (a ``Failed`` event: a crash, a failed start, a heartbeat
    timeout) or a dead letter counts as *unexpected* unless a rule allows it
    or a fault from :class:`~garrison.testing.Faults` linked to this guard
    caused it. The dead letter of the message a crash was handling belongs
    to the crash and is judged with it. :meth:`check` raises AssertionError
    listing what was unexpected; the pytest plugin calls it when the test
    body returns.
    """

    def __init__(self, node: Node, *, allow_crashes: bool = False, allow_dead_letters: bool = False) -> None:
        self.node = node
        self._findings: list[tuple[DeadLetter | Failed, str]] = []
        self._crash_rules: list[_CrashRule] = []
        self._dead_letter_rules: list[_DeadLetterRule] = []
        if allow_crashes:
            self.allow_crashes()
        if allow_dead_letters:
            self.allow_dead_letters()
        self._injected_errors: list[BaseException] = []
        self._injected_failures: Counter[str] = Counter()
        self._unsubscribe: list[Callable[[], None]] = [
            node.events.subscribe(self._on_event),
            node.dead_letters.subscribe(self._on_dead_letter),
        ]

    # -- what a test allows ------------------------------------------------

    def allow_crashes(self, path: str | None = None, error: type[BaseException] | str | None = None) -> None:
        """Expect failures at ``path`` (None: anywhere) of type ``error`` (None: any).

        Applies to what happens from now on, and to what happened already.
        """
        name = error if error is None or isinstance(error, str) else error.__name__
        self._crash_rules.append(_CrashRule(path, name))
        self._forgive()

    def allow_dead_letters(
        self, recipient: str | None = None, message: Matcher | None = None, reason: str | None = None
    ) -> None:
        """Expect dead letters to ``recipient`` (None: any) whose message matches ``message``
        (a type, predicate or value; None: any) and whose reason contains ``reason``."""
        self._dead_letter_rules.append(_DeadLetterRule(recipient, message, reason))
        self._forgive()

    # -- what faults report ----------------------------------------------

    def injected_error(self, path: str, error: BaseException) -> None:
        """A fault is about to raise ``error`` at ``path`` (an actor's handler, or a journal
        stream): the crash it causes is expected, also when the handler's error only has
        ``error`` as its cause (PersistFailed from a failed journal append)."""
        self._injected_errors.append(error)

    def injected_kill(self, path: str) -> None:
        """A hanging fault at ``path`` is being killed abnormally (a heartbeat timeout)."""
        self._injected_failures[path] += 1

    # -- checking ----------------------------------------------------------

    @property
    def unexpected(self) -> list[str]:
        """What went wrong and is not allowed, one line each, in the order it happened."""
        return [line for _, line in self._findings]

    def check(self) -> None:
        """Raise AssertionError if anything unexpected happened so far."""
        __tracebackhide__ = True
        if not self.unexpected:
            return
        lines = "\n".join(f"  - {line}" for line in self.unexpected)
        raise AssertionError(
            f"{len(self.unexpected)} unexpected failure(s) on node {self.node.name!r}:\n{lines}\n"
            "If the test expects them, allow them: @pytest.mark.garrison(allow_crashes=True, "
            "allow_dead_letters=True), or node_guard.allow_crashes(path, error) / "
            "node_guard.allow_dead_letters(recipient, message)."
        )

    def close(self) -> None:
        """Stop watching the node (idempotent)."""
        unsubscribe, self._unsubscribe = self._unsubscribe, []
        for remove in unsubscribe:
            remove()

    # -- inside ----------------------------------------------------------------

    def _on_dead_letter(self, letter: DeadLetter) -> None:
        error = letter.error
        if error is not None:
            causes = _causes(error)
            for index, injected in enumerate(self._injected_errors):
                if any(injected is cause for cause in causes):
                    del self._injected_errors[index]
                    self._injected_failures[letter.recipient] += 1
                    return
            return  # the letter of a crash: the Failed event that follows is judged instead
        if not self._allowed(letter):
            self._record(letter, _describe_letter(letter))

    def _on_event(self, event: LifecycleEvent) -> None:
        if not isinstance(event, Failed):
            return
        if self._injected_failures[event.path] > 0:
            self._injected_failures[event.path] -= 1
            return
        if not self._allowed(event):
            self._record(event, _describe_failure(event))

    def _record(self, what: DeadLetter | Failed, line: str) -> None:
        self._findings.append((what, line))

    def _forgive(self) -> None:
        """Re-judge what was recorded against the rules as they are now."""
        self._findings = [(what, line) for what, line in self._findings if not self._allowed(what)]

    def _allowed(self, what: DeadLetter | Failed) -> bool:
        if isinstance(what, Failed):
            return any(rule.allows(what) for rule in self._crash_rules)
        return any(rule.allows(what) for rule in self._dead_letter_rules)


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it was raised from or while handling, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ if current.__cause__ is not None else current.__context__
    return chain


def _describe_failure(event: Failed) -> str:
    handling = f" handling {event.message_type}" if event.message_type else ""
    return f"actor {event.path} failed{handling} at t={event.at:g}: {event.reason}"


def _describe_letter(letter: DeadLetter) -> str:
    return (
        f"dead letter to {letter.recipient} at t={letter.at:g}: "
        f"{type(letter.message).__name__} {letter.message!r} ({letter.reason})"
    )
