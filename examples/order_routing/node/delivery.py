"""Sending without ever blocking on a peer that may be waiting on us."""

from __future__ import annotations

from typing import Any

from garrison import ActorRef, ActorStopped, MailboxFull, Node


def offer(ref: ActorRef, message: Any, node: Node) -> bool:
    """Tell ``message`` if ``ref``'s mailbox takes it now; otherwise publish it to ``node``'s
    dead letters (the sender's node, which is the receiver's) and return False. Never waits.

    For notifications whose loss is covered elsewhere (an ack the strategy only
    counts, an intent the executor also finds in the durable log), where waiting
    for space could deadlock two actors with full mailboxes.
    """
    try:
        ref.tell_nowait(message)
    except (MailboxFull, ActorStopped) as error:
        node.dead_letters.publish(message, ref.path, f"not offered: {error}", kind="overflow")
        return False
    return True
