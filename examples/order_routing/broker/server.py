"""BrokerServer: the broker simulator as an object, for in-process use and for ``__main__``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING

from loguru import logger

from .config import BrokerConfig
from .connection import BrokerConnection
from .store import BrokerStore
from .venue import BrokerStats, Venue

if TYPE_CHECKING:
    from .fix_acceptor import FixClient, FixConnection, FixSessions


class BrokerServer:
    """A broker simulator listening on TCP; ``async with BrokerServer(config) as broker: broker.port``.

    Starting opens (or creates) the store and takes back every order and fill
    in it, so a broker restarted on the same file keeps its dedupe memory, its
    fill sequence and its open orders. Stopping closes every connection and
    commits whatever was staged.
    """

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self._executor: ThreadPoolExecutor | None = None
        self._store: BrokerStore | None = None
        self._venue: Venue | None = None
        self._server: asyncio.Server | None = None
        self._writer: asyncio.Task[None] | None = None
        self._connections: set[BrokerConnection] | set[FixConnection] = set()
        self._fix_sessions: FixSessions | None = None
        self._port: int | None = None
        self._stats = BrokerStats()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the broker is not started")
        return self._port

    @property
    def stats(self) -> BrokerStats:
        """What this broker did since it started (still readable after it stopped)."""
        return self._stats

    @property
    def fix_clients(self) -> dict[str, FixClient]:
        """The FIX sessions by client SenderCompID (``venue="fix"``; empty otherwise)."""
        return {} if self._fix_sessions is None else dict(self._fix_sessions.clients)

    async def start(self) -> None:
        """Open the store and start listening; returns once connections are accepted."""
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker-store")
        try:
            self._store = store = await loop.run_in_executor(
                self._executor, BrokerStore, self.config.store_path
            )
            orders, fills = await loop.run_in_executor(self._executor, store.load)
            self._venue = venue = Venue(self.config, store, self._executor, self._stats)
            venue.restore(orders, fills)
            self._writer = venue.start()
            self._writer.add_done_callback(self._writer_done)
            self._server = await loop.create_server(
                self._protocol_factory(venue), self.config.host, self.config.port
            )
        except BaseException:
            await self.stop()
            raise
        self._port = self._server.sockets[0].getsockname()[1]
        logger.bind(actor="broker").info(
            "broker {id} on {host}:{port}: {orders} orders, {fills} fills in {store}",
            id=self.config.broker_id,
            host=self.config.host,
            port=self._port,
            orders=len(orders),
            fills=len(fills),
            store=self.config.store_path,
        )

    def _protocol_factory(self, venue: Venue) -> Callable[[], asyncio.Protocol]:
        """Connections speak the native protocol, or FIX 4.4 (``venue="fix"``: the codec and its
        simplefix dependency are imported only then)."""
        if self.config.venue == "fix":
            from .fix_acceptor import FixConnection, FixSessions

            sessions = self._fix_sessions = FixSessions(venue, self.config)
            fix_connections: set[FixConnection] = set()
            self._connections = fix_connections
            return lambda: FixConnection(sessions, fix_connections)
        connections: set[BrokerConnection] = set()
        self._connections = connections
        return lambda: BrokerConnection(venue, connections)

    async def stop(self) -> None:
        """Stop listening, close every connection, commit what is staged, close the store."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.close()
        if self._fix_sessions is not None:
            self._fix_sessions.close()
        if self._venue is not None:
            with contextlib.suppress(Exception):  # a store failure was logged; stopping either way
                await self._venue.close()
        if self._server is not None:
            await self._server.wait_closed()
        loop = asyncio.get_running_loop()
        if self._store is not None and self._executor is not None:
            await loop.run_in_executor(self._executor, self._store.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._server = self._venue = self._store = self._executor = None

    async def wait_failed(self) -> BaseException:
        """Wait until the store fails (the broker can then no longer accept anything); returns the error."""
        assert self._writer is not None, "the broker is not started"
        try:
            await asyncio.shield(self._writer)
        except Exception as error:
            return error
        raise RuntimeError("the broker stopped without failing")

    def _writer_done(self, writer: asyncio.Task[None]) -> None:
        if writer.cancelled() or writer.exception() is None:
            return
        # Without a working store nothing more may be acknowledged: cut every client off now.
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.reset()

    async def __aenter__(self) -> BrokerServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()
