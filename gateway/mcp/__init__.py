"""The MCP server for the platform's agents: ``log-gateway mcp`` (stdio) and ``run --mcp`` (HTTP).

Needs the ``mcp`` extra; nothing here is imported unless one of those runs.
"""

from gateway.mcp.backend import Backend, ToolFailed
from gateway.mcp.server import build_server

__all__ = ["Backend", "ToolFailed", "build_server"]
