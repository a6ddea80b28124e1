"""RFC 3339 timestamps kept as the exact strings the platform sent."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, NamedTuple

from pydantic import AfterValidator, Field

__all__ = [
    "RFC3339_PATTERN",
    "EntryTime",
    "Timestamp",
    "entry_time",
    "format_timestamp",
    "lenient_epoch",
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


_RFC3339 = re.compile(RFC3339_PATTERN)
# JavaScript's Date.prototype.toString(): "Mon Oct 13 2025 08:00:00 GMT+0200 (Central European ...)".
_JS_DATE = re.compile(
    r"[A-Z][a-z]{2} [A-Z][a-z]{2} [0-9]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT[+-][0-9]{4}"
)


def lenient_epoch(value: str) -> float | None:
    """``value`` as epoch seconds if it names a moment in a common form, else None.

    Takes RFC 3339, ISO 8601 (a date alone, a space for the ``T``; no time zone is
    read as UTC), JavaScript's ``Date.toString()`` and ``toUTCString()`` forms: what
    producers inside the platform's contract (``createdAt`` is any string) send.
    """
    if _RFC3339.fullmatch(value) is not None:
        try:
            return parse_timestamp(value).timestamp()
        except (ValueError, OverflowError):
            return None
    return _other_form(value.strip())


def _other_form(text: str) -> float | None:
    moment: datetime | None = None
    try:
        if _JS_DATE.match(text) is not None:
            moment = datetime.strptime(text[:33], "%a %b %d %Y %H:%M:%S GMT%z")
        elif text[:1].isascii() and text[:1].isdigit():
            moment = datetime.fromisoformat(text)
        elif "," in text[:5]:
            moment = parsedate_to_datetime(text)
        if moment is None:
            return None
        return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()
    except (ValueError, TypeError, IndexError, OverflowError):
        return None


class EntryTime(NamedTuple):
    """An entry's time as the gateway uses it (first/last times, latency, alerts)."""

    epoch: float
    text: str  # an RFC 3339 timestamp: ``createdAt`` itself when it is one
    fallback: bool  # ``createdAt`` named no moment: the receipt time stands in


def entry_time(created: str, received: float) -> EntryTime:
    """The time of an entry whose ``createdAt`` is ``created`` (any string, as the platform
    allows), received at ``received`` (epoch seconds): the parsed time, else the receipt time."""
    epoch = lenient_epoch(created)
    if epoch is not None and _RFC3339.fullmatch(created) is not None:
        return EntryTime(epoch, created, fallback=False)
    if epoch is not None:
        try:
            return EntryTime(epoch, format_timestamp(datetime.fromtimestamp(epoch, UTC)), fallback=False)
        except (ValueError, OverflowError, OSError):
            pass  # a moment beyond what a platform timestamp can hold
    return EntryTime(received, format_timestamp(datetime.fromtimestamp(received, UTC)), fallback=True)


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
