"""A TCP proxy in front of a real Redis that loses a connection at a chosen moment.

The journal's hard case is a connection lost mid-append: the command may or
may not have run. This proxy makes both outcomes deterministic:

- ``lose_reply(marker)``: the next request containing ``marker`` reaches the
  server (it runs), but the connection is cut before the reply gets back;
- ``lose_request(marker)``: the next request containing ``marker`` never
  reaches the server; the connection is cut;
- ``refuse()`` / ``accept()``: every open connection is cut, and while
  refusing every new one too (the server looks down), without touching the
  server.
"""

from __future__ import annotations

import asyncio
import contextlib

from ._server import free_port


class FaultyProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.cuts = 0
        self.cut = asyncio.Event()
        """Set at the first cut."""
        self._server: asyncio.Server | None = None
        self._lose_reply: bytes | None = None
        self._lose_request: bytes | None = None
        self._refusing = False
        self._refuse_after_cut = False
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def lose_reply(self, marker: bytes, *, then_refuse: bool = False) -> None:
        """The next request containing ``marker`` runs, its reply is lost; with
        ``then_refuse``, the server looks down from that moment until ``accept()``."""
        self._lose_reply = marker
        self._refuse_after_cut = then_refuse

    def lose_request(self, marker: bytes, *, then_refuse: bool = False) -> None:
        """The next request containing ``marker`` is lost; ``then_refuse`` as for lose_reply."""
        self._lose_request = marker
        self._refuse_after_cut = then_refuse

    def refuse(self) -> None:
        """Cut every connection now, and every new one until ``accept()``."""
        self._refusing = True
        for writer in list(self._writers):
            writer.close()

    def accept(self) -> None:
        self._refusing = False

    def _count_cut(self) -> None:
        self.cuts += 1
        self.cut.set()
        if self._refuse_after_cut:
            self._refuse_after_cut = False
            self.refuse()

    async def __aenter__(self) -> FaultyProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_writer)
        self.connections += 1
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            if self._refusing:
                return
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._writers.add(upstream_writer)
            cut = asyncio.Event()
            replies_lost = asyncio.Event()

            async def requests() -> None:
                while chunk := await client_reader.read(65536):
                    if self._lose_request is not None and self._lose_request in chunk:
                        self._lose_request = None
                        self._count_cut()
                        cut.set()
                        return
                    if self._lose_reply is not None and self._lose_reply in chunk:
                        self._lose_reply = None
                        replies_lost.set()
                    upstream_writer.write(chunk)
                    await upstream_writer.drain()

            async def replies() -> None:
                while chunk := await upstream_reader.read(65536):
                    if replies_lost.is_set():
                        self._count_cut()
                        cut.set()
                        return
                    client_writer.write(chunk)
                    await client_writer.drain()

            pumps = [asyncio.ensure_future(requests()), asyncio.ensure_future(replies())]
            ended = asyncio.ensure_future(cut.wait())
            await asyncio.wait([*pumps, ended], return_when=asyncio.FIRST_COMPLETED)
            for pending in (*pumps, ended):
                pending.cancel()
            await asyncio.gather(*pumps, ended, return_exceptions=True)
        except (ConnectionError, OSError, asyncio.CancelledError):
            # Cancelled only when the proxy closes: end quietly (start_server's callback
            # would report a cancelled handler as an error).
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
            self._tasks.discard(task)
