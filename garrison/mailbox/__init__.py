"""Bounded mailboxes with overflow policies, a system lane and consumer-lag metrics."""

from garrison.mailbox._config import MailboxConfig, Overflow
from garrison.mailbox._mailbox import (
    STAMP_ALWAYS_BELOW,
    STAMP_STRIDE_MASK,
    WAIT_BUCKETS,
    ConflatingMailbox,
    Envelope,
    Mailbox,
    MailboxMetrics,
    make_mailbox,
)

__all__ = [
    "STAMP_ALWAYS_BELOW",
    "STAMP_STRIDE_MASK",
    "WAIT_BUCKETS",
    "ConflatingMailbox",
    "Envelope",
    "Mailbox",
    "MailboxConfig",
    "MailboxMetrics",
    "Overflow",
    "make_mailbox",
]
