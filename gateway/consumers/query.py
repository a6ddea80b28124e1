"""Ask the logs: one query over the gateway's JetStream stream and the archive's segments.

Results are in *position* order (see :mod:`contracts.query`): segments without
a manifest, then every batch by its stream sequence and each entry by its
place in the batch, oldest first or newest first. This is the order entries
were stored, not a sort by ``createdAt`` (producers' clocks differ); a cursor
names the last position handed over, so paging is stable while new entries
arrive. A stream sequence the stream still holds is read from the stream, an
older one from the archive, so an entry in both comes out once; within one
call an entry the same in every field (a non-empty ``logId`` included) as one
already handed over (durable ingest can store a redelivered entry twice) is also
left out; entries that only share a ``logId`` all come out (see
:mod:`gateway.consumers.identity`).

Example::

    page = await query_page(nc, LogQuery(min_level="error", filter="timeout"), stream="CORTEX_LOGGING")
    while page.nextCursor:
        page = await query_page(nc, query.model_copy(update={"cursor": page.nextCursor}), stream=...)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from nats.aio.client import Client

from contracts.errors import ContractError
from contracts.models import LogBatchCreated, LogEntryCreated
from contracts.query import LogQuery, Position, QueryError, QueryPage, decode_cursor, encode_cursor
from contracts.timestamps import parse_timestamp
from gateway.consumers.archivescan import Found, Segment, legacy_entries, list_segments, sequenced_entries
from gateway.consumers.identity import entry_key
from gateway.consumers.match import Matcher, QueryStats, time_key
from gateway.consumers.streamscan import (
    StoredBatch,
    StreamView,
    open_view,
    read_backward,
    read_forward,
    seq_at_time,
)

__all__ = ["QueryStats", "query_entries", "query_page"]

_DEDUP_CAPACITY = 100_000
_NO_SEQ = 1 << 62
CLOCK_SKEW_S = 60.0
"""How far ahead of the server's clock a producer's may run: a batch stored this long before
``start`` can still hold an entry created at ``start``."""


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a query reads and what it counts."""

    stream: str
    archive_dir: Path | None
    subject: str
    stats: QueryStats
    clock_skew_s: float


@dataclass(frozen=True, slots=True)
class _Plan:
    query: LogQuery
    matcher: Matcher
    after: Position | None
    newest: bool
    view: StreamView | None
    legacy: list[Segment]
    placed: list[Segment]
    stats: QueryStats
    clock_skew_s: float

    def wanted(self, position: Position) -> bool:
        """Is ``position`` beyond the cursor, in the query's order?"""
        if self.after is None:
            return True
        return position < self.after if self.newest else position > self.after


async def query_page(
    nc: Client | None,
    query: LogQuery,
    *,
    stream: str,
    archive_dir: Path | None = None,
    subject: str = LogBatchCreated.EVENT_TYPE,
    stats: QueryStats | None = None,
    clock_skew_s: float = CLOCK_SKEW_S,
    max_bytes: int | None = None,
) -> QueryPage:
    """One page of at most ``query.limit`` entries, and the cursor of the next (None on the last).

    ``nc`` None reads the archive alone (``archive_dir`` is then required). With
    ``max_bytes`` the page also ends before its entries' JSON would pass that many
    bytes (at least one entry still comes, so paging always moves on): it may then
    hold fewer than ``limit`` entries and still have a cursor.

    Raises:
        QueryError: there is nothing to ask (no such stream and no archive).
        CursorError: ``query.cursor`` is not a cursor of this query.
    """
    entries: list[LogEntryCreated] = []
    last: Position | None = None
    size, budget = 0, max_bytes if max_bytes is not None else -1
    results = _results(nc, query, _Where(stream, archive_dir, subject, stats or QueryStats(), clock_skew_s))
    try:
        async for position, entry in results:
            size += len(entry.to_json()) + 1 if budget >= 0 else 0  # (and the comma between entries)
            if len(entries) == query.limit or (entries and 0 <= budget < size):  # one more: not the last
                assert last is not None  # noqa: S101 - limit is at least 1
                return QueryPage(entries=entries, nextCursor=encode_cursor(query, last))
            entries.append(entry)
            last = position
    finally:
        await results.aclose()
    return QueryPage(entries=entries, nextCursor=None)


async def query_entries(
    nc: Client | None,
    query: LogQuery,
    *,
    stream: str,
    archive_dir: Path | None = None,
    subject: str = LogBatchCreated.EVENT_TYPE,
    stats: QueryStats | None = None,
    clock_skew_s: float = CLOCK_SKEW_S,
) -> AsyncIterator[LogEntryCreated]:
    """Every matching entry from ``query.cursor`` on (``limit`` does not apply), as it is read.

    Memory stays bounded: a chunk of batches or one segment's matches at a time.

    Raises:
        QueryError, CursorError: as :func:`query_page`.
    """
    results = _results(nc, query, _Where(stream, archive_dir, subject, stats or QueryStats(), clock_skew_s))
    try:
        async for _, entry in results:
            yield entry
    finally:
        await results.aclose()


async def _results(
    nc: Client | None, query: LogQuery, where: _Where
) -> AsyncGenerator[tuple[Position, LogEntryCreated], None]:
    plan = await _plan(nc, query, where)
    stats = where.stats
    seen: OrderedDict[bytes, None] = OrderedDict()
    async with contextlib.aclosing(_found(nc, plan)) as found:
        async for position, data in found:
            entry = _accept(data, seen, stats)
            if entry is not None:
                yield position, entry


def _accept(
    data: dict[str, Any], seen: OrderedDict[bytes, None], stats: QueryStats
) -> LogEntryCreated | None:
    """The entry, unless it is no entry or the same entry was handed over already in this call."""
    try:
        entry = LogEntryCreated.parse(data)
    except ContractError:
        stats.invalid += 1
        return None
    key = entry_key(entry)
    if key is not None:
        if key in seen:
            stats.duplicates += 1
            return None
        seen[key] = None
        if len(seen) > _DEDUP_CAPACITY:
            seen.popitem(last=False)
    stats.entries_matched += 1
    return entry


async def _plan(nc: Client | None, query: LogQuery, where: _Where) -> _Plan:
    after = decode_cursor(query)
    stream, archive_dir = where.stream, where.archive_dir
    view = None if nc is None else await open_view(nc, stream, where.subject)
    if view is None and archive_dir is None:
        raise QueryError(f"there is no stream {stream!r} to query (and no archive directory was given)")
    segments = await asyncio.to_thread(list_segments, archive_dir) if archive_dir is not None else []
    created = None if view is None else view.created
    return _Plan(
        query=query,
        matcher=Matcher(query),
        after=after,
        newest=query.order == "newest",
        view=view,
        legacy=[s for s in segments if not s.sequenced(stream, created)],
        placed=[s for s in segments if s.sequenced(stream, created)],
        stats=where.stats,
        clock_skew_s=where.clock_skew_s,
    )


async def _found(nc: Client | None, plan: _Plan) -> AsyncGenerator[Found, None]:
    """Matching entries' data at their positions, in the query's order, after the cursor.

    Each part is closed as soon as it is left (its file, or its consumer deleted).
    """
    parts: list[Callable[[], AsyncGenerator[Found, None]]] = [
        lambda: _from_sync(legacy_entries(plan.legacy, plan.matcher, plan.stats, newest=plan.newest)),
        lambda: _from_archive(plan),
        lambda: _from_stream(nc, plan),
    ]
    for part in reversed(parts) if plan.newest else parts:
        async with contextlib.aclosing(part()) as found:
            async for position, data in found:
                if plan.wanted(position):
                    yield position, data


def _seq_bounds(plan: _Plan) -> tuple[int, int]:
    """The stream sequences still to read given the cursor: ``(lowest, highest)``."""
    low, high = 0, _NO_SEQ
    if plan.after is not None:
        phase, key, _ = plan.after
        if phase == 1 and isinstance(key, int):
            low, high = (0, key) if plan.newest else (key, _NO_SEQ)
        elif plan.newest:  # past every sequenced entry already
            low, high = 1, 0
    return low, high


async def _from_archive(plan: _Plan) -> AsyncGenerator[Found, None]:
    low, high = _seq_bounds(plan)
    if plan.view is not None:
        high = min(high, plan.view.first_seq - 1)  # the stream still holds the rest
    if low > high or not plan.placed:
        return
    found = sequenced_entries(plan.placed, plan.matcher, plan.stats, lo=low, hi=high, newest=plan.newest)
    async with contextlib.aclosing(_from_sync(found)) as items:
        async for item in items:
            yield item


async def _from_sync(found: Generator[Found, None, None]) -> AsyncGenerator[Found, None]:
    """A file scan as an async iterator, advanced in a worker thread so the event loop runs on.

    It is taken in growing steps (a first page needs few matches, a long scan few hops),
    and closed (its file with it) when the caller stops early.
    """
    step = 32
    try:
        while True:
            taken = await asyncio.to_thread(_take, found, step)
            for item in taken:
                yield item
            if len(taken) < step:
                return
            step = min(step * 2, 1024)
    finally:
        found.close()


def _take(found: Iterator[Found], count: int) -> list[Found]:
    return list(itertools.islice(found, count))


async def _from_stream(nc: Client | None, plan: _Plan) -> AsyncGenerator[Found, None]:
    view = plan.view
    if nc is None or view is None or view.empty:
        return
    low, high = _seq_bounds(plan)
    low, high = max(low, view.first_seq), min(high, view.last_seq)
    floor = None
    if plan.query.start is not None:
        floor = parse_timestamp(plan.query.start) - timedelta(seconds=plan.clock_skew_s)
    if plan.newest:
        batches = read_backward(nc, view, high, low, plan.stats)
    else:
        if floor is not None and (plan.after is None or plan.after[0] == 0):
            # (a cursor in the stream already stands past where the first page sought)
            low = max(low, await seq_at_time(nc, view, floor, plan.stats))
        batches = read_forward(nc, view, low, high, plan.stats)
    try:
        async for batch in batches:
            if plan.newest and floor is not None and batch.stored < floor:
                return  # every older batch holds only entries created before start
            found = _batch_entries(batch, plan.matcher, plan.stats)
            for item in reversed(found) if plan.newest else found:
                yield item
    finally:
        await batches.aclose()


def _batch_entries(batch: StoredBatch, matcher: Matcher, stats: QueryStats) -> list[Found]:
    """The matching entries of a stored batch, at ``(1, seq, index)``."""
    try:
        event: Any = orjson.loads(batch.body)
        data = event["data"] if "specversion" in event else event
        entries = data["entries"]
        if not _batch_may_match(data, matcher):
            stats.batches_skipped += 1
            return []
    except (ValueError, KeyError, TypeError):
        stats.invalid += 1
        return []
    stats.entries_scanned += len(entries)
    return [((1, batch.seq, i), e) for i, e in enumerate(entries) if matcher.keep(e)]


def _batch_may_match(data: dict[str, Any], matcher: Matcher) -> bool:
    source = data.get("source")
    if matcher.source is not None and source is not None and source != matcher.source:
        return False
    if not matcher.any_level(data.get("levelCounts")):
        return False
    first, last = data.get("firstCreatedAt"), data.get("lastCreatedAt")
    try:
        if isinstance(first, str) and isinstance(last, str):
            return matcher.spans(time_key(first), time_key(last))
    except ValueError:
        pass  # a time no key holds (an entry's own, year 1 with an offset): its entries are looked at
    return True
