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
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, ToolAnnotations
from pydantic import Field, JsonValue

from gateway.mcp.backend import Backend, BadCursor, ToolFailed
from gateway.mcp.tools import (
    DEFAULT_LIMIT,
    GatewayReplies,
    Limit,
    LogMessageResult,
    Order,
    PlatformLevel,
    QueryLogsResult,
    TimeRange,
    query_data,
)

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
    except BadCursor as exc:
        raise MCPError(code=INVALID_PARAMS, message=f"invalid cursor: {exc}") from None
    except ToolFailed as exc:
        raise ToolError(str(exc)) from None


def build_server(backend: Backend) -> MCPServer[Any]:
    """An ``MCPServer`` whose tools act through ``backend``; serve it over stdio or streamable HTTP."""
    server: MCPServer[Any] = MCPServer(
        "cortex-log-gateway", version=version("cortex-log-gateway"), instructions=_INSTRUCTIONS
    )
    server.add_tool(
        _query_logs(backend),
        name="query_logs",
        title="Query logs",
        description="Stored log entries matching the filters, a page at a time (oldest first unless "
        "order is 'newest'). Give the returned nextCursor back as cursor, with the same filters, for the "
        "next page; there is none on the last page. level keeps exactly that level, minLevel that level and "
        "above; trace is taken as debug.",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    server.add_tool(
        _log_message(backend),
        name="log_message",
        title="Log a message",
        description="Publish one log entry (a LogEntryCreated CloudEvent) for the gateway to batch. "
        "The level 'trace' is published as 'debug': the entry contract has no trace level.",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False),
    )
    _add_control_tools(server, backend)
    return server


def _add_control_tools(server: MCPServer[Any], backend: Backend) -> None:
    server.add_tool(
        _gateway_status(backend),
        name="gateway_status",
        title="Gateway status",
        description="What each running gateway holds and has done: counts received, published, dropped "
        "and rejected by reason, buffered, in flight, spooled, its NATS connection, uptime, version. "
        "includeConfig adds its effective settings and which of them configure_gateway may change.",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    server.add_tool(
        _configure_gateway(backend),
        name="configure_gateway",
        title="Configure the gateway",
        description="Change settings of the running gateways (this gateway's configure_logger): names "
        "as in the config file (max_batch_entries, overflow, max_publish_rate, ...), values as JSON "
        "(null restores the default). The change is validated as a whole by the rules of 'log-gateway "
        "run' and applied from the next batch, or refused with the reason; dryRun only checks it.",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
    )


_GATEWAY = Field(min_length=1, description="one gateway's id (gatewayId); every gateway when left out")


def _gateway_status(backend: Backend) -> Callable[..., Awaitable[GatewayReplies]]:
    async def gateway_status(
        *,
        gateway: Annotated[str | None, _GATEWAY] = None,
        includeConfig: Annotated[bool, Field(description="add each gateway's settings")] = False,
    ) -> GatewayReplies:
        return await _tool_errors(backend.status(gateway=gateway, include_config=includeConfig))

    return gateway_status


def _configure_gateway(backend: Backend) -> Callable[..., Awaitable[GatewayReplies]]:
    async def configure_gateway(
        *,
        changes: Annotated[
            dict[str, JsonValue],
            Field(min_length=1, description='setting name -> new value, e.g. {"max_batch_entries": 200}'),
        ],
        gateway: Annotated[str | None, _GATEWAY] = None,
        dryRun: Annotated[bool, Field(description="validate only, apply nothing")] = False,
    ) -> GatewayReplies:
        return await _tool_errors(backend.configure(changes, gateway=gateway, dry_run=dryRun))

    return configure_gateway


def _query_logs(backend: Backend) -> Callable[..., Awaitable[QueryLogsResult]]:
    async def query_logs(
        *,
        level: Annotated[PlatformLevel | None, Field(description="exactly this level")] = None,
        timeRange: TimeRange | None = None,
        filter: Annotated[
            str | None, Field(min_length=1, description="text in the message, case-insensitive")
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Annotated[str | None, Field(description="nextCursor of the previous page")] = None,
        source: Annotated[str | None, Field(min_length=1, description="only this source")] = None,
        traceId: Annotated[str | None, Field(min_length=1, description="only this trace")] = None,
        minLevel: Annotated[PlatformLevel | None, Field(description="this level and above")] = None,
        order: Annotated[Order, Field(description="oldest or newest first")] = "oldest",
    ) -> QueryLogsResult:
        data = query_data(
            level=level,
            min_level=minLevel,
            time_range=timeRange,
            text=filter,
            limit=limit,
            cursor=cursor,
            source=source,
            trace_id=traceId,
            order=order,
        )
        return await _tool_errors(backend.query(data))

    return query_logs


def _log_message(backend: Backend) -> Callable[..., Awaitable[LogMessageResult]]:
    async def log_message(
        *,
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
