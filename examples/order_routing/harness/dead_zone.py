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


def dead_zone_gateway(config: NodeConfig, sends: int) -> type[Gateway]:
    """The gateway class armed to die after its ``sends``-th order: over FIX, a DeadZoneFixGateway."""
    if config.venue != "fix":
        return DeadZoneGateway.armed(sends)
    from examples.order_routing.node.fix.gateway import FixGateway

    class DeadZoneFixGateway(DeadZoneGateway, FixGateway):
        """The FIX gateway armed for the dead zone. An odd count dies *before* writing the frame of
        its Nth order, which the session has numbered and persisted: the venue finds the gap at the
        next logon and asks for it (re-sent as PossDup, or gap-filled and EXPIRED if too old). An
        even count dies right after the write, as the native one does."""

        def write_frames(self, frames: list[tuple[bytes, float, bool]]) -> None:
            if self.die_after_sends % 2 == 0:
                super().write_frames(frames)
                return
            for index, (_, _, order) in enumerate(frames):
                if order:
                    self.sends += 1
                    if self.sends >= self.die_after_sends:
                        FixGateway.write_frames(self, frames[:index])
                        os.kill(os.getpid(), signal.SIGKILL)
            FixGateway.write_frames(self, frames)

    return DeadZoneFixGateway.armed(sends)
