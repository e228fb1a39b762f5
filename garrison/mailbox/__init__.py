"""Bounded mailboxes with overflow policies, a system lane and consumer-lag metrics."""

from garrison.mailbox._config import MailboxConfig, Overflow
from garrison.mailbox._mailbox import (
    WAIT_BUCKETS,
    ConflatingMailbox,
    Envelope,
    Mailbox,
    MailboxMetrics,
    make_mailbox,
)

__all__ = [
    "WAIT_BUCKETS",
    "ConflatingMailbox",
    "Envelope",
    "Mailbox",
    "MailboxConfig",
    "MailboxMetrics",
    "Overflow",
    "make_mailbox",
]
