"""One wording for bad numbers, wherever they are given."""

from __future__ import annotations

import pytest

from garrison import Actor, Backoff, ChildSpec, InvalidConfig, MailboxConfig
from garrison._validate import check_count, check_seconds
from garrison.observe import LoopGuard


@pytest.mark.parametrize("value", [0, -1, True, "1", 1.5, None])
def test_a_count_must_be_an_int_at_or_above_its_minimum(value: object) -> None:
    with pytest.raises(InvalidConfig) as raised:
        check_count("capacity", value)
    assert (raised.value.field, raised.value.value) == ("capacity", value)
    assert str(raised.value) == f"capacity={value!r} is invalid: must be an int >= 1"


@pytest.mark.parametrize("value", [0, -0.5, False, "2", None])
def test_a_duration_must_be_a_number_of_seconds_above_its_minimum(value: object) -> None:
    with pytest.raises(InvalidConfig) as raised:
        check_seconds("interval", value)
    assert str(raised.value) == f"interval={value!r} is invalid: must be a number of seconds > 0"


def test_bounds_and_none_are_said_in_the_message() -> None:
    check_seconds("deadline", 0, allow_minimum=True, below=1.0)
    check_seconds("stall_timeout", None, allow_none=True)
    check_count("times", None, allow_none=True)
    with pytest.raises(InvalidConfig, match=r"must be a number of seconds in \[0, 1\)$"):
        check_seconds("deadline", 1.0, allow_minimum=True, below=1.0)
    with pytest.raises(InvalidConfig, match=r"must be an int >= 0 or None$"):
        check_count("times", -1, minimum=0, allow_none=True)


@pytest.mark.parametrize(
    ("build", "wording"),
    [
        (lambda: MailboxConfig(capacity=0), "capacity=0 is invalid: must be an int >= 1"),
        (lambda: MailboxConfig(throughput_deadline=2), "must be a number of seconds in [0, 1)"),
        (lambda: LoopGuard(interval=-1), "LoopGuard.interval=-1 is invalid: must be a number of seconds > 0"),
        (lambda: ChildSpec("c", Actor, shutdown=-1), "must be a number of seconds >= 0"),
        (lambda: Backoff(initial=0), "must be a number of seconds > 0"),
    ],
)
def test_every_setting_uses_the_same_words(build: object, wording: str) -> None:
    with pytest.raises(ValueError) as raised:
        build()  # type: ignore[operator]
    assert wording in str(raised.value)
