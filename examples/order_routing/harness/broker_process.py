"""Running the broker simulator as a separate process for the demo and the chaos run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from examples.order_routing.broker import (
    DedupeMode,
    StoredOrder,
    duplicates,
    load_orders,
    venue_arguments,
    venue_argv,
)

START_TIMEOUT = 15.0


def broker_arguments(parser: argparse.ArgumentParser) -> None:
    """The broker's fault and dedupe options, as the demo and chaos commands take them (the
    broker's own; the dedupe mode defaults to while-open)."""
    venue_arguments(parser, title="broker simulator", dedupe=DedupeMode.WHILE_OPEN)


def broker_command(args: argparse.Namespace, store: Path, seed: int) -> list[str]:
    """The broker simulator's command line, with the options ``broker_arguments`` parsed."""
    return [
        *(sys.executable, "-m", "examples.order_routing.broker"),
        *("--store", str(store), "--port", "0", "--seed", str(seed)),
        *venue_argv(args),
    ]


class BrokerProcess:
    """A broker simulator subprocess: its port, and its store (the ground truth)."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, store: Path) -> None:
        self.process = process
        self.port = port
        self.store = store

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, args: argparse.Namespace, store: Path, seed: int = 11
    ) -> AsyncIterator[BrokerProcess]:
        """Start it, wait (bounded) for its LISTENING line, stop it with SIGTERM at exit."""
        process = await asyncio.create_subprocess_exec(
            *broker_command(args, store, seed), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
            text = line.decode().strip()
            if not text.startswith("BROKER LISTENING"):
                raise RuntimeError(f"the broker simulator did not start (said {text!r})")
            port = int(text.rsplit(":", 1)[1])
            yield cls(process, port, store)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 10.0)
                except TimeoutError:
                    process.kill()
                    await process.wait()

    def orders(self) -> list[StoredOrder]:
        return load_orders(self.store)

    def duplicate_count(self) -> int:
        return len(duplicates(self.store))
