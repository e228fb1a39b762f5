"""The order-routing example's tests: the ``slow`` marker for the one end-to-end chaos run."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: an end-to-end run of a minute or more (deselect with -m 'not slow')"
    )
