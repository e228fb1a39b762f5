"""MailboxConfig is validated up front, with errors naming the field and the value."""

from __future__ import annotations

from typing import Any

import pytest

from garrison import InvalidConfig, MailboxConfig, Overflow


@pytest.mark.parametrize("capacity", [0, -1, -1000])
def test_capacity_must_be_positive(capacity: int) -> None:
    with pytest.raises(InvalidConfig) as raised:
        MailboxConfig(capacity=capacity)
    assert raised.value.field == "capacity"
    assert raised.value.value == capacity
    assert f"capacity={capacity}" in str(raised.value)


@pytest.mark.parametrize("capacity", [1.5, "10", True, None])
def test_capacity_must_be_an_int(capacity: Any) -> None:
    with pytest.raises(InvalidConfig) as raised:
        MailboxConfig(capacity=capacity)
    assert raised.value.field == "capacity"
    assert f"capacity={capacity!r}" in str(raised.value)


def test_conflate_without_a_key_function_is_rejected_naming_the_key() -> None:
    with pytest.raises(InvalidConfig) as raised:
        MailboxConfig(overflow=Overflow.CONFLATE)
    assert raised.value.field == "key"
    assert "key=None" in str(raised.value)
    assert "CONFLATE" in str(raised.value)


def test_a_key_without_conflate_is_rejected() -> None:
    with pytest.raises(InvalidConfig) as raised:
        MailboxConfig(overflow=Overflow.DROP_OLDEST, key=lambda message: message)
    assert raised.value.field == "key"


def test_a_key_that_is_not_callable_is_rejected() -> None:
    with pytest.raises(InvalidConfig) as raised:
        MailboxConfig(overflow=Overflow.CONFLATE, key="symbol")  # type: ignore[arg-type]
    assert raised.value.field == "key"
    assert "key='symbol'" in str(raised.value)


def test_overflow_must_be_an_overflow_member() -> None:
    with pytest.raises(InvalidConfig) as raised:
        MailboxConfig(overflow="drop_oldest")  # type: ignore[arg-type]
    assert raised.value.field == "overflow"
    assert "overflow='drop_oldest'" in str(raised.value)


@pytest.mark.parametrize("throughput", [0, -3, 2.0])
def test_throughput_must_be_a_positive_int(throughput: Any) -> None:
    with pytest.raises(InvalidConfig) as raised:
        MailboxConfig(throughput=throughput)
    assert raised.value.field == "throughput"


def test_default_config_is_bounded_backpressure() -> None:
    config = MailboxConfig()
    assert config.overflow is Overflow.BACKPRESSURE
    assert config.capacity > 0
    assert config.key is None


def test_invalid_config_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        MailboxConfig(capacity=0)
