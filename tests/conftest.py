"""Fixtures shared by every test directory.

``clock`` and ``node`` are deliberately not defined here: the garrison pytest
plugin (garrison.testing) provides them to the whole suite, and a root
conftest would shadow them. tests/actors/ defines its own plain versions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger


@pytest.fixture
def log_records() -> Iterator[list[dict[str, Any]]]:
    """Every loguru record emitted during the test (the record dicts, with ``extra``)."""
    records: list[dict[str, Any]] = []
    sink_id = logger.add(lambda message: records.append(message.record), level="DEBUG")
    try:
        yield records
    finally:
        logger.remove(sink_id)
