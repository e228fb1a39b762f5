"""The owner's own messages (timers to itself) at a full mailbox: deferred to the system lane, not refused."""

from __future__ import annotations

from typing import Any

import pytest

from garrison import ActorStopped, MailboxFull, ManualClock, Node, Overflow
from tests.actors._pollers import spawn_busy_poller
from tests.mailbox._support import build, counts_add_up, take_all


def _on_system_lane(message: Any) -> tuple[str, Any]:
    return ("deferred", message)


@pytest.mark.parametrize(
    ("overflow", "key"),
    [
        (Overflow.BACKPRESSURE, None),
        (Overflow.REJECT, None),
        (Overflow.CONFLATE, lambda message: message),  # a new key at a full mailbox
    ],
)
async def test_a_message_that_would_wait_or_be_refused_is_deferred_and_counted_as_deferred_not_rejected(
    overflow: Overflow, key: Any
) -> None:
    mailbox, drops = build(capacity=2, overflow=overflow, key=key)
    mailbox.put_nowait("queued-1")
    mailbox.put_nowait("queued-2")
    assert mailbox.put_or_defer("tick", _on_system_lane) is False
    assert mailbox.take_system() == ("deferred", "tick")
    metrics = mailbox.metrics()
    assert (metrics.deferred, metrics.rejected, metrics.enqueued, metrics.depth) == (1, 0, 2, 2)
    assert take_all(mailbox) == ["queued-1", "queued-2"]
    assert drops.calls == []
    assert counts_add_up(mailbox)


async def test_a_message_with_room_is_queued_as_a_user_message_behind_the_others() -> None:
    mailbox, _ = build(capacity=2)
    mailbox.put_nowait("queued")
    assert mailbox.put_or_defer("tick", _on_system_lane) is True
    assert not mailbox.has_system()
    assert take_all(mailbox) == ["queued", "tick"]
    assert (mailbox.metrics().deferred, mailbox.metrics().enqueued) == (0, 2)


async def test_a_dropping_policy_drops_the_owners_message_as_any_other() -> None:
    mailbox, drops = build(capacity=1, overflow=Overflow.DROP_NEWEST)
    mailbox.put_nowait("queued")
    assert mailbox.put_or_defer("tick", _on_system_lane) is True
    assert drops.messages == ["tick"]
    assert not mailbox.has_system()
    assert (mailbox.metrics().deferred, mailbox.metrics().dropped) == (0, 1)


async def test_a_closed_mailbox_refuses_the_owners_message_without_deferring_it() -> None:
    mailbox, _ = build(capacity=1)
    mailbox.close("stopping")
    with pytest.raises(ActorStopped):
        mailbox.put_or_defer("tick", _on_system_lane)
    assert not mailbox.has_system()
    assert mailbox.metrics().deferred == 0


async def test_a_senders_tell_nowait_at_a_full_mailbox_is_still_counted_as_rejected() -> None:
    mailbox, _ = build(capacity=1)
    mailbox.put_nowait("queued")
    with pytest.raises(MailboxFull):
        mailbox.put_nowait("refused")
    assert (mailbox.metrics().rejected, mailbox.metrics().deferred) == (1, 0)


async def test_a_timer_to_itself_at_a_full_mailbox_is_counted_as_deferred_not_rejected(
    node: Node, clock: ManualClock
) -> None:
    # "block" is in flight until t=5; the mailbox is full when the timer fires at t=1.
    ref, _, ticks = await spawn_busy_poller(node, "block", ["queued-1", "queued-2"])
    await clock.advance(6.0)
    assert ticks == [5.0]
    metrics = ref.mailbox_metrics()
    assert (metrics.deferred, metrics.rejected) == (1, 0)
