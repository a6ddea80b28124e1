"""``/healthz``, ``/readyz`` and ``/metrics`` on a small asyncio HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

__all__ = ["HealthServer"]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    """Serves health, readiness and metrics for one gateway.

    Args:
        port: TCP port (0 picks a free one; see :attr:`port` after start).
        ready: is the gateway ready (subscribed, stream in place, connected)?
        metrics: renders the Prometheus text exposition.
        host: address to bind.
        failed: names the gateway's background tasks that died; ``/healthz`` is 503 while any did.
    """

    def __init__(
        self,
        *,
        port: int,
        ready: Callable[[], bool],
        metrics: Callable[[], bytes],
        host: str = "127.0.0.1",
        failed: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        self.port = port
        self._host = host
        self._ready = ready
        self._metrics = metrics
        self._failed = failed
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(self._handle, self._host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    def _route(self, method: str, path: str) -> tuple[int, bytes, str]:
        text = "text/plain; charset=utf-8"
        if method not in ("GET", "HEAD"):
            return 405, b"method not allowed\n", text
        path = path.split("?", 1)[0]
        if path == "/healthz":
            if dead := self._failed():
                return 503, f"unhealthy: background task died: {', '.join(dead)}\n".encode(), text
            return 200, b"ok\n", text
        if path == "/readyz":
            return (200, b"ready\n", text) if self._ready() else (503, b"not ready\n", text)
        if path == "/metrics":
            return 200, self._metrics(), "text/plain; version=0.0.4; charset=utf-8"
        return 404, b"not found\n", text

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            status, body, content_type = self._route(method, path)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
