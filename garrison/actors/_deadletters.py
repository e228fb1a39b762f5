"""The dead-letter sink: every message that was not processed, with its reason."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from garrison.actors._messages import DeadLetter

if TYPE_CHECKING:
    from loguru import Logger

    from garrison._clock import Clock


class DeadLetters:
    """Collects dead letters: counted, kept (the most recent ``keep``), published, logged.

    Logging is rate limited: at most ``log_limit`` records per ``log_interval``
    seconds of node-clock time; the rest are counted and summarised when the
    next window opens.
    """

    def __init__(
        self,
        clock: Clock,
        logger: Logger,
        *,
        keep: int = 1000,
        log_limit: int = 10,
        log_interval: float = 5.0,
    ) -> None:
        self._clock = clock
        self._logger = logger
        self.count = 0
        self.by_reason: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self._recent: deque[DeadLetter] = deque(maxlen=keep)
        # A tuple replaced on every change: publish iterates it without a copy.
        self._subscribers: tuple[Callable[[DeadLetter], None], ...] = ()
        self._log_limit = log_limit
        self._log_interval = log_interval
        self._window_start = float("-inf")
        self._logged_in_window = 0
        self._suppressed = 0

    def publish(
        self,
        message: Any,
        recipient: str,
        reason: str,
        error: BaseException | None = None,
        *,
        kind: str = "other",
    ) -> None:
        """Record one dead letter. Never raises; subscribers that raise are logged.

        ``reason`` is for people (it may name paths and errors); ``kind`` is a
        short category for metrics (overflow, stopped, crashed, ...).
        """
        letter = DeadLetter(message, recipient, reason, error, self._clock.now(), kind)
        self.count += 1
        self.by_reason[reason] += 1
        self.by_kind[kind] += 1
        self._recent.append(letter)
        self._log(letter)
        for subscriber in self._subscribers:
            try:
                subscriber(letter)
            except Exception:
                self._logger.opt(exception=True).error("dead-letter subscriber raised")

    def subscribe(self, subscriber: Callable[[DeadLetter], None]) -> Callable[[], None]:
        """Call ``subscriber`` with every future dead letter; returns an unsubscribe function."""
        self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            subscribers = list(self._subscribers)
            if subscriber in subscribers:
                subscribers.remove(subscriber)
                self._subscribers = tuple(subscribers)

        return unsubscribe

    def recent(self) -> list[DeadLetter]:
        """The most recent dead letters, oldest first."""
        return list(self._recent)

    def _log(self, letter: DeadLetter) -> None:
        now = letter.at
        if now - self._window_start >= self._log_interval:
            if self._suppressed:
                self._logger.warning(
                    "{count} more dead letters were not logged in the last {interval}s",
                    count=self._suppressed,
                    interval=self._log_interval,
                )
            self._window_start = now
            self._logged_in_window = 0
            self._suppressed = 0
        if self._logged_in_window < self._log_limit:
            self._logged_in_window += 1
            self._logger.bind(actor=letter.recipient).warning(
                "dead letter to {recipient}: {message_type} ({reason})",
                recipient=letter.recipient,
                message_type=type(letter.message).__name__,
                reason=letter.reason,
            )
        else:
            self._suppressed += 1
