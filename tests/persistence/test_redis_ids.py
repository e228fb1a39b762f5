"""Entry ids of the Redis journal's streams: a journal seq written as ``<seq>-0`` (by Python and
by the Lua scripts alike) and read back as that seq."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from garrison.persistence._redis_ids import entry_id, entry_seq
from garrison.persistence._redis_scripts import APPEND, DEAD_LETTER

XADD_ID_FORMAT = re.compile(r"'XADD', [^,]+, string\.format\('([^']*)', ")
"""The id format string of a Lua script's XADD (Lua's string.format takes printf formats)."""


def test_an_entry_id_gives_its_millisecond_part_as_bytes_or_text() -> None:
    assert entry_seq(b"42-0") == 42
    assert entry_seq("42-0") == 42
    assert entry_seq(b"0-0") == 0
    assert entry_seq(b"1700000000000-3") == 1700000000000


def test_an_entry_id_holds_the_seq_in_its_millisecond_part() -> None:
    assert entry_id(42) == "42-0"
    assert entry_id(0) == "0-0"


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_every_seq_the_journal_writes_reads_back_as_itself(seq: int) -> None:
    assert entry_seq(entry_id(seq)) == seq
    assert entry_seq(entry_id(seq).encode()) == seq  # as redis-py answers it


def test_a_negative_seq_has_no_entry_id() -> None:
    with pytest.raises(ValueError, match="seq >= 0, not -1"):
        entry_id(-1)


@pytest.mark.parametrize("script", [APPEND, DEAD_LETTER], ids=["append", "dead-letter"])
@pytest.mark.parametrize("seq", [0, 1, 42, 2**53])
def test_the_lua_scripts_write_the_entry_id_python_reads_and_builds(script: str, seq: int) -> None:
    formats = XADD_ID_FORMAT.findall(script)
    assert formats, "the script's XADD no longer formats its id: keep it in step with entry_id"
    for id_format in formats:
        assert id_format % seq == entry_id(seq)


@pytest.mark.parametrize("bad", [b"42", b"-0", b"42-", b"x-0", b"4 2-0", b"+42-0", "42-\u00b2", ""])
def test_a_malformed_entry_id_is_an_error_naming_it(bad: bytes | str) -> None:
    with pytest.raises(ValueError, match="not a Redis stream entry id") as raised:
        entry_seq(bad)
    assert repr(bad) in str(raised.value)
