"""The gateway's MCP server: the platform's logging tools, on the official SDK's ``MCPServer``.

Each tool's input schema comes from its signature (pydantic), in the platform's
camelCase names; the SDK validates arguments against it and answers a bad one
with a tool error naming the field. A failure the caller can fix is a tool
error (``is_error``) with a message saying what to change; a cursor that does
not belong to the query is a JSON-RPC invalid-params error, as the issue asks.
"""

from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Annotated, Any, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from gateway.mcp.backend import Backend, ToolFailed
from gateway.mcp.tools import LogMessageResult, PlatformLevel

__all__ = ["build_server"]

_T = TypeVar("_T")
_INSTRUCTIONS = (
    "Tools of a cortex-log-gateway: query_logs pages through stored log entries (pass nextCursor back "
    "with the same filters for the next page), log_message publishes one entry, gateway_status and "
    "configure_gateway read and change the running gateways' settings."
)


async def _tool_errors(work: Awaitable[_T]) -> _T:
    """Run ``work``; a failure the caller can act on becomes a tool error with its message."""
    try:
        return await work
    except ToolFailed as exc:
        raise ToolError(str(exc)) from None


def build_server(backend: Backend) -> MCPServer[Any]:
    """An ``MCPServer`` whose tools act through ``backend``; serve it over stdio or streamable HTTP."""
    server: MCPServer[Any] = MCPServer(
        "cortex-log-gateway", version=version("cortex-log-gateway"), instructions=_INSTRUCTIONS
    )
    server.add_tool(
        _log_message(backend),
        name="log_message",
        title="Log a message",
        description="Publish one log entry (a LogEntryCreated CloudEvent) for the gateway to batch. "
        "The level 'trace' is published as 'debug': the entry contract has no trace level.",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False),
    )
    return server


def _log_message(backend: Backend) -> Callable[..., Awaitable[LogMessageResult]]:
    async def log_message(
        logger: Annotated[str, Field(min_length=1, description="the emitting logger; the entry's source")],
        level: Annotated[PlatformLevel, Field(description="trace is published as debug")],
        message: Annotated[str, Field(description="the log message")],
        metadata: Annotated[dict[str, Any] | None, Field(description="structured context")] = None,
        traceId: Annotated[str | None, Field(min_length=1, description="trace to correlate with")] = None,
    ) -> LogMessageResult:
        return await _tool_errors(
            backend.log(logger=logger, level=level, message=message, metadata=metadata, trace_id=traceId)
        )

    return log_message
