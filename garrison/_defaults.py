"""garrison's default timeouts, named once: every default that is the same number means the same thing."""

from __future__ import annotations

DEFAULT_SHUTDOWN = 5.0
"""Seconds a worker gets to stop (the message in flight, then ``on_stop``) before it is cancelled:
the default of ``ChildSpec(shutdown=...)``, ``node.spawn`` and ``ctx.spawn`` (OTP's worker default,
in seconds). Supervisors default to None (they wait for their children)."""

DEFAULT_ASK_TIMEOUT = 5.0
"""Seconds ``ref.ask`` waits for the answer, mailbox space included, unless told otherwise."""
