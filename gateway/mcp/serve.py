"""Serving the MCP server: over stdio for a host that starts ``log-gateway mcp``, or over HTTP in ``run``."""

import asyncio
import contextlib
from pathlib import Path

from nats.aio.client import Client

from gateway.mcp.backend import Backend
from gateway.mcp.config import McpHttpSettings
from gateway.mcp.http import McpHttp
from gateway.mcp.server import build_server
from gateway.tasks import OnDeath

__all__ = ["serve_stdio", "start_http"]


async def serve_stdio(
    nc: Client, stop: asyncio.Event, *, stream: str, subject_prefix: str = "", archive_dir: Path | None = None
) -> None:
    """Serve MCP on stdin/stdout until the host closes stdin or ``stop`` is set."""
    server = build_server(
        Backend(nc=nc, stream=stream, subject_prefix=subject_prefix, archive_dir=archive_dir)
    )
    serving = asyncio.create_task(server.run_stdio_async(), name="mcp-stdio")
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for task in (serving, stopped):
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving  # (raises what serving raised, if it failed)
    await asyncio.gather(stopped, return_exceptions=True)


async def start_http(
    nc: Client, settings: McpHttpSettings, *, stream: str, subject_prefix: str, on_death: OnDeath
) -> McpHttp:
    """The ``/mcp`` listener, started, acting on ``nc``; stop it with ``McpHttp.stop``.

    Raises:
        OSError: the address cannot be bound.
    """
    backend = Backend(nc=nc, stream=stream, subject_prefix=subject_prefix, archive_dir=settings.archive_dir)
    http = McpHttp(build_server(backend), settings)
    await http.start(on_death)
    return http
