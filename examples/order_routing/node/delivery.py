"""Sending without ever blocking on a peer that may be waiting on us."""

from __future__ import annotations

from typing import Any

from garrison import ActorRef, ActorStopped, MailboxFull


def offer(ref: ActorRef, message: Any) -> bool:
    """Tell ``message`` if the mailbox takes it now; otherwise dead-letter it and return False.

    For notifications whose loss is covered elsewhere (an ack the strategy only
    counts, an intent the executor also finds in the durable log), where waiting
    for space could deadlock two actors with full mailboxes.
    """
    try:
        ref.tell_nowait(message)
    except (MailboxFull, ActorStopped) as error:
        context = ref._context  # the node is reachable from any ref's slot
        context.node.dead_letters.publish(message, ref.path, f"not offered: {error}", kind="overflow")
        return False
    return True
