"""Entry ids of the Redis journal's streams: ``<seq>-0`` read back as the journal seq."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from garrison.persistence._redis_ids import entry_seq


def test_an_entry_id_gives_its_millisecond_part_as_bytes_or_text() -> None:
    assert entry_seq(b"42-0") == 42
    assert entry_seq("42-0") == 42
    assert entry_seq(b"0-0") == 0
    assert entry_seq(b"1700000000000-3") == 1700000000000


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_every_seq_the_journal_writes_reads_back_as_itself(seq: int) -> None:
    assert entry_seq(f"{seq}-0".encode()) == seq


@pytest.mark.parametrize("bad", [b"42", b"-0", b"42-", b"x-0", b"4 2-0", b"+42-0", "42-\u00b2", ""])
def test_a_malformed_entry_id_is_an_error_naming_it(bad: bytes | str) -> None:
    with pytest.raises(ValueError, match="not a Redis stream entry id") as raised:
        entry_seq(bad)
    assert repr(bad) in str(raised.value)
