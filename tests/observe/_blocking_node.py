"""A node run as a child process by the loop-guard and health tests: its loop gets blocked for real.

``python _blocking_node.py stall [--exit]``: a node whose watchdog dumps after
0.3 s without a tick (and, with ``--exit``, ends the process). It prints
"ready", asks /sleeper to ``time.sleep(1.5)`` in its handler, then prints
"woke" and exits 0 (unless the watchdog ended it first).

``python _blocking_node.py serve``: a node with metrics on a free port. It
prints "port N" and serves until SIGTERM; each SIGUSR1 makes /sleeper
``time.sleep(2.0)`` in its handler, blocking the loop, and prints "blocking".
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Any

import msgspec

from garrison import Actor, Node
from garrison.observe import LoopGuard

SERVE_BLOCK_SECONDS = 2.0
STALL_BLOCK_SECONDS = 1.5


class Sleep(msgspec.Struct, frozen=True):
    """Block the event loop (not just this actor) for ``seconds`` of real time."""

    seconds: float


class Sleeper(Actor):
    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Sleep):
            time.sleep(message.seconds)  # noqa: ASYNC251 - on purpose: the loop guard must notice
            return "slept"
        return None


async def stall(exit_on_stall: bool) -> int:
    guard = LoopGuard(interval=0.05, stall_timeout=0.3, exit_on_stall=exit_on_stall)
    async with Node("stalling", guard=guard, handle_signals=False) as node:
        sleeper = await node.spawn(Sleeper, name="sleeper")
        print("ready", flush=True)
        await sleeper.ask(Sleep(STALL_BLOCK_SECONDS), timeout=30.0)
        print("woke", flush=True)
        # Let the lag monitor take its sample of the stall before the node shuts down (bounded).
        monitor = node.loop_monitor
        assert monitor is not None
        for _ in range(100):
            if monitor.stats().max_ever >= STALL_BLOCK_SECONDS / 2:
                break
            await asyncio.sleep(guard.interval)
    return 0


async def serve() -> int:
    async with Node("served", guard=LoopGuard(interval=0.05), metrics_port=0) as node:
        sleeper = await node.spawn(Sleeper, name="sleeper")

        def block() -> None:
            print("blocking", flush=True)
            sleeper.tell_nowait(Sleep(SERVE_BLOCK_SECONDS))

        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, block)
        assert node.metrics_address is not None
        print(f"port {node.metrics_address[1]}", flush=True)
        await node.wait_closed()
    return node.exit_code


def main(argv: list[str]) -> int:
    if argv[:1] == ["stall"]:
        return asyncio.run(stall(exit_on_stall="--exit" in argv))
    if argv[:1] == ["serve"]:
        return asyncio.run(serve())
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
