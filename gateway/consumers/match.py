"""A query's filters as checks on raw entry data (dicts), cheapest first; what a query counted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts.query import LogQuery
from contracts.timestamps import RFC3339_PATTERN, lenient_epoch, parse_timestamp

__all__ = ["Matcher", "QueryStats", "time_key"]


@dataclass
class QueryStats:
    """What a query read, so a caller (or a test) can see what it cost."""

    stream_messages: int = 0
    """Batch messages fetched from the stream (seek probes included)."""
    stream_probes: int = 0
    """Direct gets made to find where a time range starts."""
    batches_skipped: int = 0
    """Batches whose counts and time range showed they could not match (entries not read)."""
    segments_opened: int = 0
    segments_skipped: int = 0
    """Segments whose manifest showed they could not match (never opened)."""
    entries_scanned: int = 0
    entries_matched: int = 0
    invalid: int = 0
    """Lines or messages that were not entries or batches (skipped)."""
    duplicates: int = 0
    """Entries left out as repeats: the same in every field (a non-empty logId) as one handed over."""


_RFC3339 = re.compile(RFC3339_PATTERN)
_KEY_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def time_key(text: str) -> str:
    """A timestamp as a string that sorts as its instant does (UTC, microseconds).

    The platform's own form (``2025-10-13T08:00:00.000Z``) needs no parsing. Any other form
    is read as the gateway reads ``createdAt`` (:func:`contracts.timestamps.lenient_epoch`:
    JavaScript's ``Date`` forms, ISO 8601 with no zone as UTC).

    Raises:
        ValueError: ``text`` names no moment, or one beyond the years 1 to 9999 in UTC.
    """
    if len(text) == 24 and text[23] == "Z" and text[19] == ".":
        return text[:23] + "000Z"
    try:
        if _RFC3339.fullmatch(text) is not None:
            return parse_timestamp(text).astimezone(UTC).strftime(_KEY_FORMAT)
        epoch = lenient_epoch(text)
        if epoch is not None:
            return datetime.fromtimestamp(epoch, UTC).strftime(_KEY_FORMAT)
    except (OverflowError, OSError):
        pass  # beyond the years 1 to 9999 once in UTC (0001-01-01T00:00:00+01:00)
    raise ValueError(f"names no moment a key can hold: {text[:64]!r}")


class Matcher:
    """Does raw entry data (or a batch's or a segment's summary) match a query?"""

    def __init__(self, query: LogQuery) -> None:
        self.levels = query.levels
        self.source = query.source
        self.component = query.component
        self.trace_id = query.traceId
        self.start = time_key(query.start) if query.start else None
        self.end = time_key(query.end) if query.end else None
        self._needle: str | None = None
        self._raw: bytes | None = None
        self._raw_fields = _raw_fields(self.levels, self.source)
        self._pattern: re.Pattern[str] | None = None
        if query.filter is not None and query.regex:
            self._pattern = re.compile(query.filter, re.IGNORECASE)
        elif query.filter is not None:
            self._needle = query.filter.lower()
            if (
                self._needle.isascii()
                and not any(c in self._needle for c in '"\\')
                and self._needle.isprintable()
            ):
                # An ASCII needle appears, lowered, in the raw JSON line of any entry whose message has it.
                self._raw = self._needle.encode()

    def raw_may_match(self, line: bytes) -> bool:
        """A cheap necessary condition on an entry's JSON line (False: it cannot match).

        Segments hold entries as the contract writes them (compact JSON): where a
        line has the compact ``"level":"`` key, one of the wanted ``"level":"x"``
        must be in it too (a line written otherwise is parsed and checked in full).
        """
        for marker, options in self._raw_fields:
            if marker in line and not any(option in line for option in options):
                return False
        return self._raw is None or self._raw in line.lower()

    def candidates(self, chunk: bytes) -> tuple[int, list[tuple[int, bytes]]]:
        """A segment piece's line count, and ``(line index, line)`` of the lines that may match.

        The wanted ``"level":"x"`` / ``"source":"s"`` pairs and the lowered text are
        searched for in the whole piece (C speed), rather than looking at every line
        in Python. A line without the compact key (not written by the contract's
        encoder) is let through, to be parsed and checked in full; such lines are
        noticed by counting the key in the piece, so a piece where one line lacks
        the key and another holds it twice (in its metadata) would hide one.
        """
        total = chunk.count(b"\n") + (1 if chunk and not chunk.endswith(b"\n") else 0)
        if not self._raw_fields and self._raw is None:
            return total, list(enumerate(_split(chunk)))
        rest = self._raw_fields[1:]
        if not self._raw_fields:
            assert self._raw is not None  # noqa: S101 - checked above
            found = _lines_with(chunk.lower(), [self._raw], chunk)
        else:  # the first pair found in the piece, the rest checked on those lines
            marker, options = self._raw_fields[0]
            if chunk.count(marker) < total:  # some lines were written otherwise: look at each
                rest = self._raw_fields
                found = list(enumerate(_split(chunk)))
            else:
                found = _lines_with(chunk, options, chunk)
        for marker, options in rest:
            found = [(i, line) for i, line in found if any(o in line for o in options) or marker not in line]
        if self._raw is not None and self._raw_fields:
            raw = self._raw
            found = [(i, line) for i, line in found if raw in line.lower()]
        return total, found

    def spans(self, first: str | None, last: str | None) -> bool:
        """Can entries created between ``first`` and ``last`` (time keys) match the time range?"""
        return not (
            (self.start is not None and last is not None and last < self.start)
            or (self.end is not None and first is not None and first > self.end)
        )

    def any_level(self, levels: Any) -> bool:
        """Can a group with these level counts (``{"error": 3}``) match?"""
        if self.levels is None or not isinstance(levels, dict):
            return True
        return any(n and level in self.levels for level, n in levels.items())

    def keep(self, data: Any) -> bool:
        """Does this entry's data match every filter?"""
        return (
            isinstance(data, dict)
            and (self.levels is None or data.get("level") in self.levels)
            and (self.source is None or data.get("source") == self.source)
            and (self.component is None or data.get("component") == self.component)
            and (self.trace_id is None or _trace_id(data) == self.trace_id)
            and self._in_time(data.get("createdAt"))
            and self._text(data.get("message"))
        )

    def _in_time(self, created: Any) -> bool:
        """Is ``created`` within the range? An entry whose ``createdAt`` names no moment has no
        place in time: it matches no time-bounded query."""
        if self.start is None and self.end is None:
            return True
        if not isinstance(created, str):
            return False
        try:
            key = time_key(created)
        except ValueError:
            return False
        return (self.start is None or key >= self.start) and (self.end is None or key <= self.end)

    def _text(self, message: Any) -> bool:
        if self._needle is None and self._pattern is None:
            return True
        if not isinstance(message, str):
            return False
        if self._pattern is not None:
            return self._pattern.search(message) is not None
        return self._needle is not None and self._needle in message.lower()


def _split(chunk: bytes) -> list[bytes]:
    lines = chunk.split(b"\n")
    if chunk.endswith(b"\n"):
        lines.pop()
    return lines


def _lines_with(chunk: bytes, tokens: list[bytes], source: bytes) -> list[tuple[int, bytes]]:
    """``(index, line of source)`` of each line of ``chunk`` holding one of ``tokens``, in order.

    ``source`` is the piece the lines are taken from (``chunk`` may be its lowered copy).
    """
    ends: dict[int, int] = {}
    for token in tokens:
        at = chunk.find(token)
        while at != -1:
            begin = chunk.rfind(b"\n", 0, at) + 1
            end = chunk.find(b"\n", at)
            ends[begin] = len(chunk) if end == -1 else end
            at = chunk.find(token, ends[begin])
    found = []
    index = previous = 0
    for begin in sorted(ends):
        index += chunk.count(b"\n", previous, begin)
        previous = begin
        found.append((index, source[begin : ends[begin]]))
    return found


def _raw_fields(levels: frozenset[str] | None, source: str | None) -> list[tuple[bytes, list[bytes]]]:
    """``(key marker, wanted key-value pairs)`` for the compact-JSON prefilter."""
    fields = []
    if levels is not None:
        fields.append((b'"level":"', [b'"level":"%s"' % level.encode() for level in sorted(levels)]))
    if (
        source is not None
        and source.isascii()
        and source.isprintable()
        and not any(c in source for c in '"\\')
    ):
        fields.append((b'"source":"', [b'"source":"%s"' % source.encode()]))
    return fields


def _trace_id(data: dict[str, Any]) -> Any:
    trace = data.get("traceId")
    if trace is None and isinstance(data.get("metadata"), dict):
        trace = data["metadata"].get("traceId")
    return trace
