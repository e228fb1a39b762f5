"""Fixtures for the persistence tests: a real SqliteJournal in a fresh file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from garrison.persistence import SqliteJournal


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
async def journal(journal_path: Path) -> AsyncIterator[SqliteJournal]:
    """An open SqliteJournal (synchronous=FULL, the default) on a new file; closed after the test."""
    async with SqliteJournal(journal_path) as opened:
        yield opened
