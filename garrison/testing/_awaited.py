"""Expectations that must be awaited: a forgotten ``await`` fails the test instead of passing it.

``probe.expect(Pong)`` without ``await`` asserts nothing; Python only warns
that a coroutine was never awaited, and the test passes. Every expectation
of the kit is an :class:`Expectation`: a coroutine that remembers where it
was made. Until it is awaited (or run as a task) it is listed as pending;
the pytest plugin fails the test that made it when the test body returns,
and ``ActorTestKit`` raises when it is closed, naming the file and line.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from collections.abc import Callable, Coroutine, Generator
from types import CodeType, FrameType
from typing import Any, Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
S = TypeVar("S")
T = TypeVar("T")

_PENDING: dict[Expectation[Any], None] = {}
"""Expectations made and not awaited yet, oldest first (strong references: a forgotten one
is dropped at once by its caller, and must still be found)."""


class Expectation(Coroutine[Any, Any, T]):
    """A coroutine of the test kit (``probe.expect(...)``, ``events.expect(...)``) that knows
    where it was made: ``what`` (``TestProbe.expect(Pong)``) and ``where`` (``file:line in
    function``). Await it, or run it as a task, like any coroutine."""

    __slots__ = ("_coroutine", "what", "where")

    def __init__(self, coroutine: Coroutine[Any, Any, T], what: str, where: str) -> None:
        self._coroutine = coroutine
        self.what = what
        self.where = where
        _PENDING[self] = None

    def _start(self) -> None:
        _PENDING.pop(self, None)

    def send(self, value: Any) -> Any:
        self._start()
        return self._coroutine.send(value)

    def throw(self, *args: Any) -> Any:
        self._start()
        return self._coroutine.throw(*args)

    def close(self) -> None:
        self._start()
        self._coroutine.close()

    def __await__(self) -> Generator[Any, None, T]:
        self._start()
        return self._coroutine.__await__()

    # What asyncio's task reprs and the kit's hang report read of a coroutine.
    @property
    def cr_frame(self) -> FrameType | None:
        return self._coroutine.cr_frame  # type: ignore[attr-defined,no-any-return]

    @property
    def cr_await(self) -> Any:
        return self._coroutine.cr_await  # type: ignore[attr-defined]

    @property
    def cr_running(self) -> bool:
        return bool(self._coroutine.cr_running)  # type: ignore[attr-defined]

    @property
    def cr_code(self) -> CodeType:
        return self._coroutine.cr_code  # type: ignore[attr-defined,no-any-return]

    def __repr__(self) -> str:
        return f"<Expectation {self.what} made at {self.where}>"


def expectation(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Expectation[T]]:
    """Make an async method of the kit return an :class:`Expectation` that must be awaited."""

    @functools.wraps(method)
    def make(self: S, /, *args: P.args, **kwargs: P.kwargs) -> Expectation[T]:
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        where = "an unknown place" if caller is None else _place(caller.f_code, caller.f_lineno)
        shown = ", ".join([*map(_short_repr, args), *(f"{k}={_short_repr(v)}" for k, v in kwargs.items())])
        what = f"{type(self).__name__}.{method.__name__}({shown})"
        return Expectation(method(self, *args, **kwargs), what, where)

    return make


def _place(code: CodeType, line: int) -> str:
    """``file:line in function``, the file relative to the working directory when under it."""
    filename = code.co_filename
    with contextlib.suppress(ValueError):  # another drive (Windows)
        relative = os.path.relpath(filename)
        if not relative.startswith(os.pardir):
            filename = relative
    return f"{filename}:{line} in {code.co_name}"


def _short_repr(value: object, limit: int = 60) -> str:
    text = value.__name__ if isinstance(value, type) else repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def take_unawaited() -> list[Expectation[Any]]:
    """Every expectation made and never awaited since the last call, oldest first; forgotten
    from now on (their coroutines are closed, so Python does not warn about them again)."""
    pending = list(_PENDING)
    _PENDING.clear()
    for forgotten in pending:
        forgotten.close()
    return pending


def unawaited_report(pending: list[Expectation[Any]]) -> str:
    """The failure message for expectations a test made and never awaited."""
    lines = [f"  {expectation.what} made at {expectation.where}" for expectation in pending]
    return (
        f"{len(pending)} expectation(s) of the garrison test kit were never awaited, so they "
        "asserted nothing; add 'await':\n" + "\n".join(lines)
    )
