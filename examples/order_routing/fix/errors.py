"""The FIX layer's errors: each names the field or the number at fault and what to do."""

from __future__ import annotations


class FixError(Exception):
    """Base of the FIX layer's errors."""


class FixEncodeError(FixError, ValueError):
    """Raised by ``encode`` for a message a strict acceptor would refuse: a field value that is
    empty, holds the SOH delimiter, or is not a finite number. Nothing is sent."""

    def __init__(self, msg_type: str, field: str, value: object, problem: str) -> None:
        super().__init__(
            f"cannot encode 35={msg_type}: field {field}={value!r} {problem}; fix the value or leave it None"
        )
        self.msg_type = msg_type
        self.field = field
        self.value = value


class FixConfigError(FixError, ValueError):
    """Raised by ``SessionConfig`` for a setting the session cannot run with, naming it."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        super().__init__(f"FIX session setting {field}={value!r}: {expected}")
        self.field = field
        self.value = value


class SessionNotActive(FixError):
    """Raised by ``FixSession.send`` when no logon has completed (or the session is logging out):
    an application message may only be sent on an active session. Wait for ``LoggedOn``."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the FIX session is {status}, not active: wait for LoggedOn before sending")
        self.status = status
