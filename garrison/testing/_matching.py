"""What an expectation accepts: a type, a predicate, a template event, or a value."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeAlias

Matcher: TypeAlias = type | tuple[type, ...] | Callable[[Any], bool] | Any
"""``Tick`` (an instance of it), ``(Fill, Reject)`` (any of them), a predicate
``lambda m: m.qty > 0``, or any other value (equal to it). Where templates are
allowed (lifecycle events), a dataclass instance matches on the fields that
differ from their defaults: ``Restarted(path="/root/feed")``."""


def matches(matcher: Matcher, value: Any, *, template: bool = False) -> bool:
    """Whether ``value`` satisfies ``matcher`` (see :data:`Matcher`)."""
    if isinstance(matcher, type):
        return isinstance(value, matcher)
    if isinstance(matcher, tuple) and matcher and all(isinstance(item, type) for item in matcher):
        return isinstance(value, matcher)
    if template and _is_template(matcher):
        return isinstance(value, type(matcher)) and all(
            getattr(value, name) == expected for name, expected in _given_fields(matcher)
        )
    if callable(matcher):
        return bool(matcher(value))
    return bool(value == matcher)


def describe(matcher: Matcher, *, template: bool = False) -> str:
    """The matcher in words, for a failure message."""
    if isinstance(matcher, type):
        return f"an instance of {matcher.__qualname__}"
    if isinstance(matcher, tuple) and matcher and all(isinstance(item, type) for item in matcher):
        return "an instance of one of " + ", ".join(item.__qualname__ for item in matcher)
    if template and _is_template(matcher):
        fields = ", ".join(f"{name}={value!r}" for name, value in _given_fields(matcher))
        return f"{type(matcher).__qualname__}({fields})"
    if callable(matcher):
        name = getattr(matcher, "__qualname__", None) or repr(matcher)
        return f"a message for which {name} is true"
    return repr(matcher)


def _is_template(matcher: Any) -> bool:
    return dataclasses.is_dataclass(matcher) and not isinstance(matcher, type)


def _given_fields(template: Any) -> list[tuple[str, Any]]:
    """Fields of a dataclass instance that differ from their defaults: the ones a test gave."""
    given = []
    for field in dataclasses.fields(template):
        value = getattr(template, field.name)
        if field.default is not dataclasses.MISSING and value == field.default:
            continue
        if field.default_factory is not dataclasses.MISSING and value == field.default_factory():
            continue
        given.append((field.name, value))
    return given
