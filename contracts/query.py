"""The one query model every front end uses (CLI, Python API, MCP), its page, and its cursor.

A cursor is opaque to callers: base64url of a small versioned JSON naming the
query it came from (a hash of the filters) and a *position* (the last entry
handed over), never an offset into a result, so it stays valid while new
entries arrive. Positions order the whole result: archive segments without a
manifest (or from an earlier life of the stream) first, at ``(0, the segment's
order key, line)``, then every entry by its place in the stream, at ``(1,
stream sequence, index in the batch)``, read from the stream while it still
holds that sequence and from the archive once it no longer does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.errors import GatewayError
from contracts.models import LEVELS, LogEntryCreated, LogLevel, contract_errors
from contracts.timestamps import Timestamp, parse_timestamp

__all__ = [
    "MAX_LIMIT",
    "CursorError",
    "LogQuery",
    "Order",
    "Position",
    "QueryError",
    "QueryPage",
    "decode_cursor",
    "encode_cursor",
    "explain",
]

MAX_LIMIT = 1000
Order = Literal["oldest", "newest"]
Position = tuple[int, int | str, int]
"""``(0, segment's order key, line)`` off the stream's sequences, else ``(1, stream seq, index)``."""
_CURSOR_VERSION = 1


class QueryError(GatewayError, ValueError):
    """A query that cannot be run; the message says what to change."""


class CursorError(QueryError):
    """A cursor that is not one, is of another version, or belongs to a query with other filters."""


class LogQuery(BaseModel):
    """Which entries, in which order, how many per page, from where (``cursor``).

    ``level`` keeps exactly that level; ``min_level`` keeps that level and above
    (give one or neither). ``filter`` is a case-insensitive substring of the
    message (a regular expression, case-insensitive, when ``regex`` is true).
    ``start``/``end`` bound ``createdAt`` (inclusive, RFC 3339). ``traceId``
    matches the entry's ``traceId`` field (or ``metadata.traceId``).
    """

    # Built on first use (a query), not in every gateway's cold start.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    level: LogLevel | None = None
    min_level: LogLevel | None = None
    start: Timestamp | None = None
    end: Timestamp | None = None
    source: Annotated[str, Field(min_length=1)] | None = None
    component: Annotated[str, Field(min_length=1)] | None = None
    traceId: Annotated[str, Field(min_length=1)] | None = None
    filter: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    regex: bool = False
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 100
    cursor: str | None = None
    order: Order = "oldest"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.level is not None and self.min_level is not None:
            raise ValueError(
                "give level or min_level, not both: the first keeps one, the second it and above"
            )
        if self.start and self.end and parse_timestamp(self.start) > parse_timestamp(self.end):
            raise ValueError(f"start {self.start} is after end {self.end}")
        if self.regex:
            if self.filter is None:
                raise ValueError("regex needs a filter (the regular expression)")
            try:
                re.compile(self.filter)
            except re.error as exc:
                raise ValueError(f"filter is not a valid regular expression: {exc}") from None
        return self

    @classmethod
    def parse(cls, data: Any) -> Self:
        """Validate a query from JSON-like data.

        Raises:
            QueryError: naming each bad field and what is wrong with it.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise QueryError(f"invalid query: {explain(exc)}") from None

    @property
    def levels(self) -> frozenset[str] | None:
        """The levels kept, or None for all."""
        if self.level is not None:
            return frozenset({self.level})
        if self.min_level is not None:
            return frozenset(LEVELS[LEVELS.index(self.min_level) :])
        return None

    def fingerprint(self) -> str:
        """A hash of what selects and orders entries (not ``limit`` or ``cursor``)."""
        chosen = self.model_dump(mode="json", exclude={"limit", "cursor"})
        return hashlib.sha256(orjson.dumps(chosen, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class QueryPage(BaseModel):
    """One page of a result; ``nextCursor`` is None on the last page."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    entries: list[LogEntryCreated]
    nextCursor: str | None = None

    def to_data(self) -> dict[str, Any]:
        """The page as JSON-ready data, each entry with exactly the fields it was given."""
        return {"entries": [e.to_data() for e in self.entries], "nextCursor": self.nextCursor}


def explain(exc: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """A query's validation errors in one line, each field under ``names`` (e.g. its CLI flag)."""
    names = names or {}
    problems = []
    for err in contract_errors(exc):
        message = err.message.removeprefix("Value error, ")
        if err.field != "(root)":
            problems.append(f"{names.get(err.field, err.field)}: {message}")
            continue
        for field, name in names.items():  # a rule across fields names them in its message
            message = re.sub(rf"\b{field}\b", name, message)
        problems.append(message)
    return "; ".join(problems)


def encode_cursor(query: LogQuery, position: Position) -> str:
    """The cursor after ``position`` for ``query``."""
    data = {"v": _CURSOR_VERSION, "q": query.fingerprint(), "p": list(position)}
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def decode_cursor(query: LogQuery) -> Position | None:
    """The position ``query.cursor`` names, or None when it has none.

    Raises:
        CursorError: the cursor is malformed, of another version, or was made for other filters.
    """
    if query.cursor is None:
        return None
    try:
        text = query.cursor + "=" * (-len(query.cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(text.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise CursorError("cursor is not one this gateway made (not base64 JSON); start without it") from None
    if not isinstance(data, dict) or data.get("v") != _CURSOR_VERSION:
        raise CursorError("cursor is of an unknown version; start the query again without a cursor")
    if data.get("q") != query.fingerprint():
        raise CursorError(
            "cursor belongs to a query with other filters or order; "
            "reuse it only with the same filters, or start without a cursor"
        )
    return _position(data.get("p"))


def _position(value: Any) -> Position:
    if isinstance(value, list) and len(value) == 3 and isinstance(value[2], int):
        phase, key, index = value
        if phase == 0 and isinstance(key, str) and index >= 0:
            return (0, key, index)
        if phase == 1 and isinstance(key, int) and key >= 0 and index >= -1:
            return (1, key, index)
    raise CursorError("cursor names no position; start the query again without a cursor")
