"""Serving the MCP server: over stdio for a host that starts ``log-gateway mcp``, or over HTTP in ``run``."""

from pathlib import Path

from nats.aio.client import Client

from gateway.mcp.backend import Backend
from gateway.mcp.config import McpHttpSettings
from gateway.mcp.http import McpHttp
from gateway.mcp.server import build_server
from gateway.tasks import OnDeath

__all__ = ["serve_stdio", "start_http"]


async def serve_stdio(
    nc: Client, *, stream: str, subject_prefix: str = "", archive_dir: Path | None = None
) -> None:
    """Serve MCP on stdin/stdout until the host closes stdin."""
    backend = Backend(nc=nc, stream=stream, subject_prefix=subject_prefix, archive_dir=archive_dir)
    await build_server(backend).run_stdio_async()


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
