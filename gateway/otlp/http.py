"""A small HTTP/1.1 server on asyncio streams, with h11 (in the ``otlp`` extra) reading and
writing the protocol: keep-alive, ``Content-Length`` and chunked bodies, a body limit.

Why h11 and not aiohttp: nats-py imports aiohttp at start whenever it is installed (for its
websocket transport), which added about 0.3 s to every ``log-gateway run`` cold start, with or
without ``--otlp-port``; h11 is imported only by the receiver. Why not the health server of
``gateway.process.http``: it reads one GET per connection, and OTLP exporters keep
connections alive, may send chunked bodies and expect a ``Connection: close`` to be honoured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h11

__all__ = ["HttpRequest", "HttpServer", "Reply"]

log = logging.getLogger("log_gateway")
_READ_CHUNK = 64 * 1024
_IDLE_TIMEOUT_S = 60.0  # a kept-alive connection with no request this long is closed
_MAX_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request's line and headers (names lowercased)."""

    method: str
    path: str
    headers: dict[str, str]

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length", "")
        return int(value) if value.isdigit() else None


@dataclass(frozen=True, slots=True)
class Reply:
    """A response: status, content type, body and any other headers."""

    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


#: Looks at a request before its body is read: a Reply refuses it (the connection then closes).
Refuse = Callable[[HttpRequest], Reply | None]
#: Answers a request whose whole body (at most the limit) was read.
Answer = Callable[[HttpRequest, bytes], Awaitable[Reply]]


class _TooLarge(Exception):
    """The body outgrew the limit while being read."""


class HttpServer:
    """Serves ``answer`` for every request ``refuse`` lets through.

    Args:
        host, port: where to listen (port 0 picks a free one; see :attr:`port`).
        max_body_bytes: a body beyond this gets ``too_large()`` and the connection is closed.
        refuse, answer: the application.
        too_large: the reply to a body over the limit.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        max_body_bytes: int,
        refuse: Refuse,
        answer: Answer,
        too_large: Callable[[], Reply],
    ) -> None:
        self.port = port
        self._host = host
        self._limit = max_body_bytes
        self._refuse = refuse
        self._answer = answer
        self._too_large = too_large
        self._server: asyncio.Server | None = None
        self._idle: set[asyncio.Task[None]] = set()  # connections waiting for their next request
        self._busy: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen.

        Raises:
            OSError: the address cannot be bound.
        """
        self._server = await asyncio.start_server(self._serve, self._host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop listening, close idle connections, let requests being answered finish; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._idle):
            task.cancel()
        if self._busy:
            await asyncio.wait(list(self._busy), timeout=grace_s)
        for task in list(self._idle | self._busy):
            task.cancel()
        await asyncio.gather(*self._idle, *self._busy, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - a stream callback always runs in a task
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD_BYTES)
        try:
            while self._server is not None and await self._one(conn, reader, writer, task):
                conn.start_next_cycle()
        except (ConnectionError, TimeoutError, h11.ProtocolError):
            pass  # the client went away or spoke no HTTP: nothing to answer
        except Exception:  # a bug on one request must not go unseen, nor stop the server
            log.exception("the OTLP receiver failed on a request (the connection was closed)")
        finally:
            self._idle.discard(task)
            self._busy.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[None],
    ) -> bool:
        """Read and answer one request; True when the connection may carry another."""
        self._idle.add(task)
        event = await _next(conn, reader)
        self._idle.discard(task)
        if not isinstance(event, h11.Request):
            return False  # (the client closed the connection)
        self._busy.add(task)
        try:
            request = HttpRequest(
                method=event.method.decode("ascii", "replace"),
                path=event.target.decode("ascii", "replace").split("?", 1)[0],
                headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers},
            )
            reply = self._refuse(request)
            if reply is not None:
                await _send(conn, writer, reply, close=True)
                return False
            try:
                body = await self._body(conn, reader, writer)
            except _TooLarge:
                await _send(conn, writer, self._too_large(), close=True)
                return False
            await _send(conn, writer, await self._answer(request, body), close=False)
            return conn.our_state is h11.DONE and conn.their_state is h11.DONE
        finally:
            self._busy.discard(task)

    async def _body(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes:
        if conn.they_are_waiting_for_100_continue:  # (curl asks so for bodies over 1 KiB)
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
        parts: list[bytes] = []
        size = 0
        while True:
            event = await _next(conn, reader)
            if isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > self._limit:
                    raise _TooLarge
                parts.append(bytes(event.data))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("the client closed the connection mid-body")


async def _next(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
    """The next h11 event, reading from ``reader`` as needed (idle at most a minute)."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await asyncio.wait_for(reader.read(_READ_CHUNK), _IDLE_TIMEOUT_S)
        conn.receive_data(data)  # (b"" tells h11 the client closed its side)


async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, reply: Reply, *, close: bool) -> None:
    headers = [
        ("Content-Type", reply.content_type),
        ("Content-Length", str(len(reply.body))),
        *reply.headers.items(),
    ]
    if close:
        headers.append(("Connection", "close"))
    out = conn.send(h11.Response(status_code=reply.status, headers=headers)) or b""
    out += conn.send(h11.Data(data=reply.body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    writer.write(out)
    await writer.drain()
