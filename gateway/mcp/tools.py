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
    "Limit",
    "LogMessageResult",
    "PlatformLevel",
    "QueryLogsResult",
    "TimeRange",
    "entry_level",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

PlatformLevel = Literal["trace", "debug", "info", "warn", "error", "fatal"]
"""The platform's levels; ``trace`` has no entry level of its own and becomes ``debug``."""

Limit = Annotated[
    int,
    Field(ge=1, le=MAX_LIMIT, description=f"most entries per page, 1..{MAX_LIMIT}"),
]


def entry_level(level: PlatformLevel) -> LogLevel:
    """The entry contract's level for the platform's ``level`` (``trace`` -> ``debug``)."""
    return "debug" if level == "trace" else level


class TimeRange(BaseModel):
    """The platform's ``timeRange``: RFC 3339 bounds, either may be left out."""

    model_config = ConfigDict(extra="forbid")

    start: str | None = Field(default=None, description="RFC 3339, inclusive, e.g. 2025-10-13T08:00:00Z")
    end: str | None = Field(default=None, description="RFC 3339, exclusive")


class QueryLogsResult(BaseModel):
    """One page of ``query_logs``: the entries, and the cursor of the next page (none on the last)."""

    entries: list[dict[str, Any]]
    nextCursor: str | None = Field(
        default=None, description="give as cursor, with the same filters, for the next page; none at the end"
    )


class LogMessageResult(BaseModel):
    """What ``log_message`` published."""

    logId: str
    subject: str
    level: LogLevel = Field(description="the entry's level (the platform's trace is published as debug)")
    createdAt: str
