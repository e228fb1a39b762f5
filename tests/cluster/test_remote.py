"""Remote refs between two nodes on one Redis: tell, ask, errors carried back, dead letters, order."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from garrison import (
    ActorNotFound,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    NameTaken,
    NodeUnreachable,
    RemoteHandlerError,
    UnknownMessageType,
)
from garrison.cluster import Cluster, RemoteRef
from garrison.cluster._keys import cluster_key
from tests.cluster._actors import Blocked, Recorder, Silent, Slow
from tests.cluster.conftest import Ping, Pong, Unregistered, eventually, refresh


async def two(join: Any, **options: Any) -> tuple[Cluster, Cluster]:
    a: Cluster = await join("a", **options)
    b: Cluster = await join("b", **options)
    await refresh(a)
    return a, b


async def test_tell_reaches_the_actor_on_the_other_node(join: Any) -> None:
    a, b = await two(join)
    seen: list[Any] = []
    await b.node.spawn(Recorder, name="recorder", args=(seen,))
    ref = a.ref("b", "/recorder")
    await ref.tell(Ping(1))
    ref.tell_nowait({"plain": [1, 2]})
    await eventually(lambda: len(seen) == 2, "two messages at /recorder")
    assert seen == [Ping(1), {"plain": [1, 2]}]


async def test_ask_returns_the_remote_handlers_reply(join: Any) -> None:
    a, b = await two(join)
    await b.node.spawn(Recorder, name="recorder", args=([],))
    assert await a.ref("b", "/recorder").ask(Ping(7), timeout=5.0) == Pong(7)


async def test_ask_without_a_reply_times_out_on_the_node_clock(join: Any) -> None:
    a, b = await two(join)
    await b.node.spawn(Silent, name="silent")
    asking = asyncio.ensure_future(a.ref("b", "/silent").ask(Ping(1), timeout=2.0))
    await eventually(lambda: b.stats()["received"] == 1, "the ask read by b")
    await a.node.clock.advance(2.0)  # type: ignore[attr-defined]
    with pytest.raises(AskTimeout) as timed_out:
        await asyncio.wait_for(asking, 5.0)
    assert timed_out.value.path == "b:/silent"


async def test_a_full_reject_mailbox_raises_mailbox_full_on_the_asking_node(join: Any) -> None:
    a, b = await two(join)
    release, started = asyncio.Event(), asyncio.Event()
    await b.node.spawn(Blocked, name="blocked", args=(release, started))
    ref = a.ref("b", "/blocked")
    ref.tell_nowait(Ping(1))  # held by the handler
    ref.tell_nowait(Ping(2))  # fills the one slot
    with pytest.raises(MailboxFull) as full:
        await ref.ask(Ping(3), timeout=5.0)
    assert (full.value.path, full.value.capacity, full.value.policy) == ("/blocked", 1, "REJECT")
    release.set()


async def test_a_full_reject_mailbox_dead_letters_a_remote_tell(join: Any) -> None:
    a, b = await two(join)
    release, started = asyncio.Event(), asyncio.Event()
    await b.node.spawn(Blocked, name="blocked", args=(release, started))
    ref = a.ref("b", "/blocked")
    for n in range(3):
        ref.tell_nowait(Ping(n))
    await eventually(lambda: b.node.dead_letters.by_kind["overflow"] == 1, "the third tell refused")
    assert b.node.dead_letters.recent()[-1].message == Ping(2)
    release.set()


async def test_remote_handler_errors_come_back(join: Any) -> None:
    a, b = await two(join)
    await b.node.spawn(Recorder, name="recorder", args=([],))
    with pytest.raises(ActorNotFound) as missing:
        await a.ref("b", "/nobody").ask(Ping(1), timeout=5.0)
    assert missing.value.path == "/nobody"

    class Boom(Recorder):
        async def on_receive(self, message: Any) -> Any:
            raise ValueError(f"no {message.n}")

    await b.node.spawn(Boom, name="boom", args=([],))
    with pytest.raises(RemoteHandlerError) as raised:
        await a.ref("b", "/boom").ask(Ping(4), timeout=5.0)
    assert (raised.value.node, raised.value.error_type, raised.value.text) == ("b", "ValueError", "no 4")


async def test_an_unregistered_type_is_refused_before_sending(join: Any) -> None:
    a, _b = await two(join)
    with pytest.raises(UnknownMessageType) as refused:
        a.ref("b", "/recorder").tell_nowait(Unregistered("x"))
    assert refused.value.message_type.endswith("Unregistered")
    assert a.stats()["sent"] == 0


async def test_a_type_unknown_to_the_receiver_goes_to_its_dead_letters(join: Any) -> None:
    a: Cluster = await join("a", message_types=(Ping, Pong, Unregistered))
    b: Cluster = await join("b")
    await refresh(a)
    seen: list[Any] = []
    await b.node.spawn(Recorder, name="recorder", args=(seen,))
    ref = a.ref("b", "/recorder")
    ref.tell_nowait(Unregistered("x"))
    with pytest.raises(UnknownMessageType) as unknown:
        await ref.ask(Unregistered("y"), timeout=5.0)
    assert unknown.value.node == "b"
    ref.tell_nowait(Ping(1))  # the reader carries on
    await eventually(lambda: seen == [Ping(1)], "the Ping after the unknown types")
    letters = [letter for letter in b.node.dead_letters.recent() if letter.kind == "unknown_type"]
    assert len(letters) == 2
    assert letters[0].recipient == "/recorder"
    assert letters[0].reason.startswith("unknown-type: ")
    assert "Unregistered" in letters[0].reason


async def test_a_malformed_entry_goes_to_dead_letters_and_reading_goes_on(join: Any, redis_url: str) -> None:
    a, b = await two(join)
    seen: list[Any] = []
    await b.node.spawn(Recorder, name="recorder", args=(seen,))
    client = aioredis.Redis.from_url(redis_url)
    try:
        inbox = cluster_key(b.name, "inbox", "b")
        await client.xadd(inbox, {b"f": b"\xc1not msgpack"})
        await client.xadd(inbox, {b"other": b"x"})
    finally:
        await client.aclose()
    a.ref("b", "/recorder").tell_nowait(Ping(1))
    await eventually(lambda: seen == [Ping(1)], "the Ping after the malformed entries")
    malformed = [letter for letter in b.node.dead_letters.recent() if letter.kind == "malformed"]
    assert [letter.reason.split(":")[0] for letter in malformed] == ["malformed", "malformed"]
    assert "does not decode" in malformed[0].reason
    assert "no 'f' field" in malformed[1].reason


async def test_an_ask_read_after_its_deadline_is_dropped_and_counted(join: Any) -> None:
    a: Cluster = await join("a")
    b: Cluster = await join("b", wall_clock=lambda: 4e9)  # b's wall clock is far ahead of a's
    await refresh(a)
    seen: list[Any] = []
    await b.node.spawn(Recorder, name="recorder", args=(seen,))
    asking = asyncio.ensure_future(a.ref("b", "/recorder").ask(Ping(1), timeout=3.0))
    await eventually(lambda: b.expired_asks == 1, "the expired ask counted on b")
    assert seen == []
    assert b.node.dead_letters.by_kind["expired"] == 1
    await a.node.clock.advance(3.0)  # type: ignore[attr-defined]
    with pytest.raises(AskTimeout):
        await asyncio.wait_for(asking, 5.0)


async def test_messages_from_one_node_to_one_actor_arrive_in_the_order_sent(join: Any) -> None:
    a, b = await two(join)
    seen: list[Any] = []
    await b.node.spawn(Recorder, name="recorder", args=(seen,))
    ref = a.ref("b", "/recorder")
    asks = []
    for n in range(300):
        if n % 50 == 25:
            asks.append(asyncio.ensure_future(ref.ask(Ping(n), timeout=10.0)))
            await asyncio.sleep(0)  # the ask is sent when its task starts: before the next tell
        else:
            ref.tell_nowait(Ping(n))
        if n % 7 == 0:
            await asyncio.sleep(0)  # spread over several batches
    await eventually(lambda: len(seen) == 300, "300 messages at /recorder")
    assert seen == [Ping(n) for n in range(300)]
    assert await asyncio.gather(*asks) == [Pong(n) for n in range(25, 300, 50)]


async def test_sending_to_a_node_that_is_not_up(join: Any) -> None:
    a, _b = await two(join)
    ref = a.ref("c", "/recorder")
    ref.tell_nowait(Ping(1))
    letter = a.node.dead_letters.recent()[-1]
    assert (letter.recipient, letter.kind) == ("c:/recorder", "unreachable")
    with pytest.raises(NodeUnreachable) as unreachable:
        await ref.ask(Ping(1), timeout=1.0)
    assert (unreachable.value.node, unreachable.value.path) == ("c", "/recorder")


async def test_register_and_whereis_across_nodes(join: Any) -> None:
    a, b = await two(join)
    recorder = await b.node.spawn(Recorder, name="recorder", args=([],))
    await b.register("orders", recorder)
    found = await a.whereis("orders")
    assert isinstance(found, RemoteRef)
    assert (found.node_id, found.path) == ("b", "/recorder")
    assert await found.ask(Ping(2), timeout=5.0) == Pong(2)
    assert await b.whereis("orders") is recorder  # on its own node: the local ref
    assert await a.registered() == {"orders": "b:/recorder"}
    other = await a.node.spawn(Recorder, name="other", args=([],))
    with pytest.raises(NameTaken):
        await a.register("orders", other)
    await b.node.stop(recorder)
    await eventually(lambda: not b._name_tasks, "the name freed")
    assert await a.whereis("orders") is None


async def test_a_dead_remote_ref_refuses_sends(join: Any) -> None:
    a, b = await two(join)
    ref = a.ref("b", "/recorder")
    await b.node.shutdown()
    await refresh(a)
    assert not ref.is_alive
    with pytest.raises(ActorStopped):
        ref.tell_nowait(Ping(1))
    assert a.ref("b", "/recorder") is not ref


def test_frames_are_msgpack_arrays() -> None:
    from garrison.cluster._wire import Frame, Kind, decode_frame, encode

    frame = Frame(Kind.TELL, "a", "/x", "", msgspec.Raw(encode(1)))
    assert decode_frame(encode(frame)) == frame


async def test_a_full_backpressure_mailbox_holds_only_its_own_messages(join: Any) -> None:
    a, b = await two(join)
    release = asyncio.Event()
    slow_seen: list[Any] = []
    await b.node.spawn(Slow, name="slow", args=(slow_seen, release))
    await b.node.spawn(Recorder, name="recorder", args=([],))
    slow = a.ref("b", "/slow")
    for n in range(4):  # one in the handler, one queued, two waiting for space
        slow.tell_nowait(Ping(n))
    asking = asyncio.ensure_future(slow.ask(Ping(4), timeout=10.0))
    await asyncio.sleep(0)
    slow.tell_nowait(Ping(5))
    # The reader goes on for another actor meanwhile.
    assert await a.ref("b", "/recorder").ask(Ping(9), timeout=5.0) == Pong(9)
    assert slow_seen == []
    release.set()
    assert await asyncio.wait_for(asking, 5.0) == Ping(4)
    await eventually(lambda: len(slow_seen) == 6, "six messages at /slow")
    assert slow_seen == [Ping(n) for n in range(6)]
    assert b.node.dead_letters.count == 0


async def test_delivered_entries_are_acknowledged_and_deleted_while_asks_go_on(
    join: Any, redis_url: str
) -> None:
    a, b = await two(join)
    seen: list[Any] = []
    await b.node.spawn(Recorder, name="recorder", args=(seen,))
    ref = a.ref("b", "/recorder")
    for n in range(150):  # more than one batch of acknowledgements, each ask waiting on the last
        assert await ref.ask(Ping(n), timeout=5.0) == Pong(n)
    client = aioredis.Redis.from_url(redis_url)
    try:
        inbox = cluster_key(b.name, "inbox", "b")

        async def pending() -> int:
            return int((await client.xpending(inbox, "garrison"))["pending"]) + int(await client.xlen(inbox))

        for _ in range(200):  # the last ones go once the reader finds the inbox idle (1 s)
            if await pending() == 0:
                break
            await asyncio.sleep(0.05)
        assert await pending() == 0
    finally:
        await client.aclose()
