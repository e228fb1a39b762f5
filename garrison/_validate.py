"""Validation of configuration numbers, in one place, with one wording.

Every setting that is a duration or a count is checked by one of these, so
a bad value gets the same kind of message wherever it is given:
``capacity=0 is invalid: must be an int >= 1``,
``LoopGuard.interval=-1 is invalid: must be a number of seconds > 0``.
``bool`` is refused where a number is expected (``True`` is an int in Python,
but never a meant duration or count).

The ``*_problem`` functions return what is wrong (None when the value is
good), for callers that raise their own error type (a supervision spec names
its child); the others raise InvalidConfig.
"""

from __future__ import annotations

from garrison._errors import InvalidConfig


def number_problem(
    value: object,
    *,
    minimum: float = 0.0,
    allow_minimum: bool = False,
    below: float | None = None,
    allow_none: bool = False,
    what: str = "a number",
) -> str | None:
    """What is wrong with ``value`` as a number, or None if nothing is.

    Good values are numbers > ``minimum`` (>= with ``allow_minimum``), < ``below``
    if given, and None if ``allow_none``. ``what`` names the kind of number in
    the message ("a number of seconds").
    """
    if value is None and allow_none:
        return None
    good = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and (value >= minimum if allow_minimum else value > minimum)
        and (below is None or value < below)
    )
    if good:
        return None
    if below is not None:
        interval = f"in {'[' if allow_minimum else '('}{minimum:g}, {below:g})"
    else:
        interval = f"{'>=' if allow_minimum else '>'} {minimum:g}"
    return f"must be {what} {interval}{' or None' if allow_none else ''}"


def count_problem(value: object, *, minimum: int = 1, allow_none: bool = False) -> str | None:
    """What is wrong with ``value`` as a whole count >= ``minimum``, or None if nothing is."""
    if value is None and allow_none:
        return None
    if not isinstance(value, bool) and isinstance(value, int) and value >= minimum:
        return None
    return f"must be an int >= {minimum}{' or None' if allow_none else ''}"


def check_seconds(
    field: str,
    value: object,
    *,
    allow_minimum: bool = False,
    below: float | None = None,
    allow_none: bool = False,
) -> None:
    """Raise InvalidConfig naming ``field`` unless ``value`` is a good number of seconds:
    > 0 (>= 0 with ``allow_minimum``), < ``below`` if given, None if ``allow_none``
    (see :func:`number_problem`)."""
    problem = number_problem(
        value, allow_minimum=allow_minimum, below=below, allow_none=allow_none, what="a number of seconds"
    )
    if problem is not None:
        raise InvalidConfig(field, value, problem)


def check_count(field: str, value: object, *, minimum: int = 1, allow_none: bool = False) -> None:
    """Raise InvalidConfig naming ``field`` unless ``value`` is an int >= ``minimum``
    (or None with ``allow_none``)."""
    problem = count_problem(value, minimum=minimum, allow_none=allow_none)
    if problem is not None:
        raise InvalidConfig(field, value, problem)
