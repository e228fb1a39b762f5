"""Kills aimed at the dead zone: the node SIGKILLs itself right after an order reached the wire.

That is the worst moment for exactly-once: the broker may accept the order
while the node's intent is still SENDING, and no reply will ever come. The
chaos and multinode runs arm it (``processes.arm_dead_zone``) before they kill
a node; its next process takes the order once (``harness.entry``) and starts
a ``DeadZoneGateway`` through the tree's ``gateway`` hook.
"""

from __future__ import annotations

import os
import signal
from typing import ClassVar

from examples.order_routing.node.config import NodeConfig
from examples.order_routing.node.gateway import Gateway


class DeadZoneGateway(Gateway):
    """The product's Gateway, except that the process dies with SIGKILL right after the socket
    write that put its ``die_after_sends``-th order frame on the wire (counted per incarnation),
    with that order's intent still SENDING. Take a subclass with the count from ``armed``."""

    die_after_sends: ClassVar[int] = 0

    @classmethod
    def armed(cls, sends: int) -> type[DeadZoneGateway]:
        """The gateway class to start: one that dies after its ``sends``-th order frame."""
        return type(cls.__name__, (cls,), {"die_after_sends": sends})

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.sends = 0
        """Order frames written by this incarnation."""

    def write_frames(self, frames: list[tuple[bytes, float, bool]]) -> None:
        for index, (_, _, order) in enumerate(frames):
            if order:
                self.sends += 1
                if self.sends >= self.die_after_sends:
                    super().write_frames(frames[: index + 1])
                    os.kill(os.getpid(), signal.SIGKILL)
        super().write_frames(frames)
