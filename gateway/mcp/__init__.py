"""The MCP server for the platform's agents: ``log-gateway mcp`` (stdio) and ``run --mcp`` (HTTP).

The server (``gateway.mcp.server``), its NATS side (``backend``) and the HTTP
listener (``http``) need the ``mcp`` extra and are imported only by the command
that serves; this package itself loads only the settings, so ``run`` without
``--mcp`` starts as fast as before.
"""

from gateway.mcp.config import McpHttpSettings, is_loopback

__all__ = ["McpHttpSettings", "is_loopback"]
