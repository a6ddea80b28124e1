"""Streamable HTTP at ``/mcp``: the SDK's ASGI app under uvicorn, on a listener of its own.

It is not mounted on the gateway's ``--http-port``: that server is a few lines
of asyncio for probes and metrics, with no ASGI and no streaming, and it is
often bound to every interface for a kubelet, while MCP stays on loopback
unless told otherwise. The listener is driven through uvicorn's ``startup`` /
``main_loop`` / ``shutdown`` rather than ``serve()``, which would take over the
process's SIGTERM and SIGINT from the gateway.
"""

import asyncio
import hmac
import socket
from typing import Any

import uvicorn
from mcp.server import MCPServer
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.mcp.config import McpHttpSettings
from gateway.tasks import OnDeath, watched

__all__ = ["PATH", "McpHttp"]

PATH = "/mcp"
_SHUTDOWN_S = 2  # open event streams are cut after this long


class _BearerToken:
    """Refuses every HTTP request without ``Authorization: Bearer <token>`` (401)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                detail = "missing or wrong bearer token: send Authorization: Bearer <the --mcp-token>"
                response = JSONResponse(
                    {"error": "unauthorized", "detail": detail},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="log-gateway"'},
                )
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)


class McpHttp:
    """The ``/mcp`` listener of one MCP server; :meth:`start`, then :meth:`stop` (idempotent)."""

    def __init__(self, server: MCPServer[Any], settings: McpHttpSettings) -> None:
        app: ASGIApp = server.streamable_http_app(streamable_http_path=PATH, host=settings.host)
        if settings.token is not None:
            app = _BearerToken(app, settings.token)
        self.settings = settings
        self.port = settings.port
        config = uvicorn.Config(
            app, log_config=None, access_log=False, timeout_graceful_shutdown=_SHUTDOWN_S, lifespan="on"
        )
        self._uvicorn = uvicorn.Server(config)
        self._socket: socket.socket | None = None
        self._loop: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        return f"http://{host}:{self.port}{PATH}"

    async def start(self, on_death: OnDeath) -> None:
        """Listen and serve; ``on_death`` hears of the listener ending by itself.

        Raises:
            OSError: the address cannot be bound.
            RuntimeError: the app did not start.
        """
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.host, self.settings.port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.port = sock.getsockname()[1]
        server = self._uvicorn
        server.config.load()
        server.lifespan = server.config.lifespan_class(server.config)
        try:
            await server.startup(sockets=[sock])
        except SystemExit:  # uvicorn's answer to a lifespan that failed (it logged why)
            sock.close()
            raise RuntimeError("the MCP HTTP app did not start (see the log above)") from None
        self._loop = watched(server.main_loop(), name="mcp-http", on_death=on_death)

    async def stop(self) -> None:
        """Stop listening, close open streams within a few seconds, shut the app down."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.cancel()  # (only ticks; cancelled, it is not reported as a death)
        await asyncio.gather(loop, return_exceptions=True)
        await self._uvicorn.shutdown(sockets=[self._socket] if self._socket else None)
