"""RFC 3339 timestamps kept as the exact strings the platform sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

__all__ = [
    "RFC3339_PATTERN",
    "Timestamp",
    "format_timestamp",
    "now_timestamp",
    "parse_timestamp",
]

RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (already matching the pattern) to an aware datetime.

    Raises:
        ValueError: the calendar date or time does not exist (e.g. February 30).
    """
    if len(value) == 24 and value[23] == "Z" and value[19] == ".":
        # The platform's own form (2025-10-13T08:00:00.000Z): parsed directly.
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not a valid RFC 3339 timestamp: {value!r}") from None
    text = value.upper()
    dot = text.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        # datetime keeps microseconds; nanosecond digits beyond six are truncated.
        text = text[: min(end, dot + 7)] + text[end:]
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a valid RFC 3339 timestamp: {value[:64]!r}") from None


def _check(value: str) -> str:
    parse_timestamp(value)
    return value


def format_timestamp(moment: datetime) -> str:
    """Format an aware datetime the way the platform does: ``2025-10-13T08:00:00.000Z``.

    Raises:
        ValueError: ``moment`` has no time zone.
    """
    if moment.tzinfo is None:
        raise ValueError("timestamp needs a time zone")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def now_timestamp() -> str:
    """The current time as a platform timestamp."""
    return format_timestamp(datetime.now(UTC))


Timestamp = Annotated[
    str,
    Field(pattern=RFC3339_PATTERN, json_schema_extra={"format": "date-time"}),
    AfterValidator(_check),
]
"""An RFC 3339 timestamp string; kept verbatim so JSON round-trips unchanged."""
