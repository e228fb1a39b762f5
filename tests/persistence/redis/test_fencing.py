"""Fencing in the Redis journal: a writer carrying a lower token than its stream has seen is
refused with Fenced, nothing written; the stream keeps the highest token in its fence key."""

from __future__ import annotations

import pytest

from garrison import InvalidConfig
from garrison.persistence import Fenced, Journal, RedisJournal, SequenceConflict


async def test_a_fenced_append_records_its_token_and_a_lower_one_is_refused(
    redis_journal: RedisJournal,
) -> None:
    old: Journal = redis_journal.fenced(1)
    new: Journal = redis_journal.fenced(2)
    assert await old.append("orders", [b"a"], 0) == 1
    assert await redis_journal.fenced_highest("orders") == 1
    assert await new.append("orders", [b"b"], 1) == 2
    with pytest.raises(Fenced) as refused:
        await old.append("orders", [b"stale"], 2)
    assert (refused.value.stream, refused.value.token, refused.value.highest) == ("orders", 1, 2)
    assert "token 1 refused" in str(refused.value) and "token 2" in str(refused.value)
    assert [payload async for _, payload in redis_journal.read("orders")] == [b"a", b"b"]
    assert await redis_journal.fenced_highest("orders") == 2


async def test_a_stale_token_is_fenced_before_its_seq_is_looked_at(redis_journal: RedisJournal) -> None:
    await redis_journal.fenced(5).append("book", [b"x"], 0)
    with pytest.raises(Fenced):
        # Its expected seq is right; the token alone refuses it (no crash loop on SequenceConflict).
        await redis_journal.fenced(4).append("book", [b"y"], 1)
    with pytest.raises(SequenceConflict):
        await redis_journal.fenced(5).append("book", [b"y"], 0)


async def test_fencing_is_per_stream(redis_journal: RedisJournal) -> None:
    await redis_journal.fenced(7).append("a", [b"1"], 0)
    assert await redis_journal.fenced(3).append("b", [b"1"], 0) == 1
    assert await redis_journal.fenced_highest("b") == 3


async def test_group_commit_fails_only_the_fenced_append_of_a_batch(redis_journal: RedisJournal) -> None:
    import asyncio

    await redis_journal.fenced(2).append("s1", [b"x"], 0)
    results = await asyncio.gather(
        redis_journal.fenced(1).append("s1", [b"stale"], 1),
        redis_journal.append("s2", [b"plain"], 0),
        redis_journal.fenced(2).append("s1", [b"y"], 1),
        return_exceptions=True,
    )
    assert isinstance(results[0], Fenced)
    assert results[1:] == [1, 2]


async def test_snapshots_trims_and_acks_of_a_stale_writer_are_refused(redis_journal: RedisJournal) -> None:
    old, new = redis_journal.fenced(1), redis_journal.fenced(2)
    await old.append("st", [b"1", b"2", b"3"], 0)
    await old.save_snapshot("st", 1, b"state-1")
    await new.save_snapshot("st", 2, b"state-2")
    with pytest.raises(Fenced):
        await old.save_snapshot("st", 3, b"stale")
    with pytest.raises(Fenced):
        await old.replace_snapshot("st", 2, 3, b"stale")
    with pytest.raises(Fenced):
        await old.delete_events("st", 2)
    with pytest.raises(Fenced):
        await old.ack("st", "g", 2)
    assert await redis_journal.load_snapshot("st") == (2, b"state-2")
    assert [seq async for seq, _ in redis_journal.read("st")] == [1, 2, 3]
    assert await redis_journal.acked_seq("st", "g") == 0
    assert await new.replace_snapshot("st", 2, 3, b"state-3")
    await new.delete_events("st", 2)
    await new.ack("st", "g", 3)
    assert [seq async for seq, _ in new.read("st")] == [3]
    assert await new.acked_seq("st", "g") == 3


async def test_the_view_reports_each_refusal_to_its_callback(redis_journal: RedisJournal) -> None:
    seen: list[Fenced] = []
    await redis_journal.fenced(9).append("cb", [b"1"], 0)
    with pytest.raises(Fenced):
        await redis_journal.fenced(8, seen.append).append("cb", [b"2"], 1)
    assert [(error.token, error.highest) for error in seen] == [(8, 9)]


@pytest.mark.parametrize("token", [0, -1, True, 1.5, "3"])
async def test_a_token_that_is_not_a_positive_int_is_refused(
    redis_journal: RedisJournal, token: object
) -> None:
    with pytest.raises(InvalidConfig) as refused:
        redis_journal.fenced(token)  # type: ignore[arg-type]
    assert refused.value.field == "token"
