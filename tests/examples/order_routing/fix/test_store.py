"""The session's sequence numbers and outbound messages survive a restart on a real SQLite journal."""

from __future__ import annotations

from pathlib import Path

from examples.order_routing.fix.codec import sending_time
from examples.order_routing.fix.messages import Heartbeat, Logon, NewOrderSingle, OrdType, ResendRequest, Side
from examples.order_routing.fix.session import FixSession, SessionConfig, Step
from examples.order_routing.fix.store import FixSessionStore, Retention
from garrison.persistence import SqliteJournal
from tests.examples.order_routing.fix.support import T0, fields, frame, msg_types

CONFIG = SessionConfig("NODE", "VENUE", resend_max_age=600.0)
STREAM = FixSessionStore.stream_for("NODE", "VENUE")


def order(cl_ord_id: str) -> NewOrderSingle:
    return NewOrderSingle(
        cl_ord_id=cl_ord_id,
        symbol="ACME",
        side=Side.SELL,
        order_qty=3,
        ord_type=OrdType.LIMIT,
        transact_time=sending_time(T0),
        price=7.25,
    )


async def run(store: FixSessionStore, step: Step) -> list[bytes]:
    """The caller's order of work: persist, then hand back what may be written."""
    await store.persist(step.records)
    return step.outbound


async def test_a_restarted_session_logs_on_with_its_stored_numbers_and_re_sends_what_it_sent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "node.db"
    async with SqliteJournal(path) as journal:
        store = FixSessionStore(journal, STREAM)
        session = FixSession(CONFIG, await store.load())
        await run(store, session.connected(T0))  # Logon: seq 1
        await run(store, session.receive_bytes(frame(Logon(heart_bt_int=30), 1), T0))
        await run(store, session.receive_bytes(frame(Heartbeat(), 2), T0))
        sent = await run(store, session.send(order("i-1"), T0 + 1))  # seq 2
        await run(store, session.send(order("i-2"), T0 + 2))  # seq 3
        # The process dies here: nothing else is written.

    async with SqliteJournal(path) as journal:
        store = FixSessionStore(journal, STREAM)
        state = await store.load()
        assert (state.next_sender_seq, state.next_target_seq) == (4, 3)
        assert sorted(state.outbound) == [2, 3]
        session = FixSession(CONFIG, state)
        [logon] = await run(store, session.connected(T0 + 60))
        assert (fields(logon)[34], fields(logon).get(141)) == ("4", None)
        await run(store, session.receive_bytes(frame(Logon(heart_bt_int=30), 3, at=T0 + 60), T0 + 60))
        assert session.active
        resend = frame(ResendRequest(begin_seq_no=2, end_seq_no=0), 4, at=T0 + 60)
        out = await run(store, session.receive_bytes(resend, T0 + 60))
        assert msg_types(out) == ["D", "D", "4"]
        assert [fields(raw)[11] for raw in out[:2]] == ["i-1", "i-2"]
        assert fields(out[0])[122] == fields(sent[0])[52] and fields(out[0])[43] == "Y"
        assert (fields(out[2])[34], fields(out[2])[36]) == ("4", "5")  # our Logon, gap-filled

    async with SqliteJournal(path) as journal:
        state = await FixSessionStore(journal, STREAM).load()
        assert (state.next_sender_seq, state.next_target_seq) == (5, 5)


async def test_records_persist_before_the_frames_so_a_seq_is_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    async with SqliteJournal(path) as journal:
        store = FixSessionStore(journal, STREAM)
        session = FixSession(CONFIG, await store.load())
        await run(store, session.connected(T0))
        await run(store, session.receive_bytes(frame(Logon(heart_bt_int=30), 1), T0))
        step = session.send(order("i-1"), T0)
        await store.persist(step.records)
        # Killed between persisting and writing: the frame never left, but its seq is taken.
    async with SqliteJournal(path) as journal:
        store = FixSessionStore(journal, STREAM)
        session = FixSession(CONFIG, await store.load())
        [logon] = await run(store, session.connected(T0 + 5))
        assert fields(logon)[34] == "3"
        assert session.state.outbound[2].frame == step.outbound[0]


async def test_compaction_keeps_the_stream_and_the_stored_messages_bounded(tmp_path: Path) -> None:
    retention = Retention(max_age_seconds=100.0, max_messages=20)
    async with SqliteJournal(tmp_path / "node.db") as journal:
        store = FixSessionStore(journal, STREAM, retention=retention, snapshot_every=50)
        config = SessionConfig("NODE", "VENUE", retention=retention)
        session = FixSession(config, await store.load())
        await run(store, session.connected(T0))
        await run(store, session.receive_bytes(frame(Logon(heart_bt_int=30), 1), T0))
        for index in range(300):
            await run(store, session.send(order(f"i-{index}"), T0 + index))
        stored = [seq async for seq, _ in journal.read(STREAM)]
        assert len(stored) < 50
        assert len(store.state.outbound) == 20
        assert min(store.state.outbound) == session.next_sender_seq - 20

    async with SqliteJournal(tmp_path / "node.db") as journal:
        state = await FixSessionStore(journal, STREAM, retention=retention).load()
        assert state.next_sender_seq == 302
        assert sorted(state.outbound) == sorted(session.state.outbound)


async def test_an_old_message_is_forgotten_by_age(tmp_path: Path) -> None:
    retention = Retention(max_age_seconds=100.0)
    async with SqliteJournal(tmp_path / "node.db") as journal:
        store = FixSessionStore(journal, STREAM, retention=retention)
        session = FixSession(SessionConfig("NODE", "VENUE", retention=retention), await store.load())
        await run(store, session.connected(T0))
        await run(store, session.receive_bytes(frame(Logon(heart_bt_int=30), 1), T0))
        await run(store, session.send(order("i-old"), T0))
        await run(store, session.send(order("i-new"), T0 + 101))
        assert sorted(store.state.outbound) == [3]
        assert sorted(session.state.outbound) == [3]
