"""The MCP tools' arguments and results in the platform's names, and how they map onto the gateway's.

Pure: no NATS, no SDK. The platform's logging tools speak six levels; the entry
contract has five, so the platform's ``trace`` is taken as ``debug``.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.models import LogLevel

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "GatewayReplies",
    "Limit",
    "LogMessageResult",
    "Order",
    "PlatformLevel",
    "QueryLogsResult",
    "TimeRange",
    "entry_level",
    "query_data",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

PlatformLevel = Literal["trace", "debug", "info", "warn", "error", "fatal"]
"""The platform's levels; ``trace`` has no entry level of its own and becomes ``debug``."""

Limit = Annotated[
    int,
    Field(ge=1, le=MAX_LIMIT, description=f"most entries per page, 1..{MAX_LIMIT}"),
]


Order = Literal["oldest", "newest"]


def entry_level(level: PlatformLevel) -> LogLevel:
    """The entry contract's level for the platform's ``level`` (``trace`` -> ``debug``)."""
    return "debug" if level == "trace" else level


class TimeRange(BaseModel):
    """The platform's ``timeRange``: RFC 3339 bounds, either may be left out."""

    model_config = ConfigDict(extra="forbid")

    start: str | None = Field(default=None, description="RFC 3339, inclusive, e.g. 2025-10-13T08:00:00.000Z")
    end: str | None = Field(default=None, description="RFC 3339, inclusive")


def query_data(
    *,
    level: PlatformLevel | None,
    min_level: PlatformLevel | None,
    time_range: TimeRange | None,
    text: str | None,
    limit: int,
    cursor: str | None,
    source: str | None,
    trace_id: str | None,
    order: Order,
) -> dict[str, Any]:
    """The gateway's query (``contracts.query.LogQuery`` fields) for ``query_logs``' arguments."""
    data: dict[str, Any] = {
        "level": None if level is None else entry_level(level),
        "min_level": None if min_level is None else entry_level(min_level),
        "start": None if time_range is None else time_range.start,
        "end": None if time_range is None else time_range.end,
        "filter": text,
        "cursor": cursor,
        "source": source,
        "traceId": trace_id,
    }
    return {key: value for key, value in data.items() if value is not None} | {"limit": limit, "order": order}


class QueryLogsResult(BaseModel):
    """One page of ``query_logs``: the entries, and the cursor of the next page (none on the last)."""

    entries: list[dict[str, Any]]
    nextCursor: str | None = Field(
        default=None, description="give as cursor, with the same filters, for the next page; none at the end"
    )


class GatewayReplies(BaseModel):
    """What each gateway answered (``gateway_status``, ``configure_gateway``), one reply per gateway."""

    gateways: list[dict[str, Any]]


class LogMessageResult(BaseModel):
    """What ``log_message`` published."""

    logId: str
    subject: str
    level: LogLevel = Field(description="the entry's level (the platform's trace is published as debug)")
    createdAt: str
