"""A node run as a child process by test_signals: it waits for SIGTERM/SIGINT with work queued.

Prints "ready" once the mailbox of /stuck holds queued messages behind one that never
finishes, the stop order of the other actors, then the dead letters of /stuck.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from garrison import Actor, Node


class Stuck(Actor):
    async def on_receive(self, message: Any) -> Any:
        await asyncio.Event().wait()  # never returns: shutdown must cut it off


class Noted(Actor):
    async def on_stop(self) -> None:
        print(f"stopped {self.ctx.path}", flush=True)


async def main() -> int:
    async with Node("signalled") as node:
        await node.spawn(Noted, name="first")
        stuck = await node.spawn(Stuck, name="stuck", shutdown=0.2)
        await node.spawn(Noted, name="last")
        for index in range(5):
            stuck.tell_nowait(index)
        await asyncio.sleep(0)
        print("ready", flush=True)
        await node.wait_closed()
        print("closing", flush=True)
    letters = sorted(letter.message for letter in node.dead_letters.recent() if letter.recipient == "/stuck")
    print(f"dead letters {letters}", flush=True)
    return node.exit_code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
