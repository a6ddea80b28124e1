"""Ask the logs: paging over the real stream and real segments, cursors, time seeks, overlap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from nats.aio.client import Client

from contracts import LogEntryCreated
from contracts.models import LogBatchCreated
from contracts.query import CursorError, LogQuery, Order, QueryError
from contracts.timestamps import format_timestamp, now_timestamp
from gateway.consumers.archiver import ArchiveConfig, Archiver
from gateway.consumers.manifest import manifest_path
from gateway.consumers.match import Matcher
from gateway.consumers.query import QueryStats, query_entries, query_page
from gateway.consumers.segments import Compression, SegmentWriter
from gateway.core.limits import BatchLimits
from gateway.process.natsserver import NatsServer
from gateway.service import Gateway
from tests.helpers import config, entries, log_ids, publish_entries, running_gateway, stored_batches, until


@asynccontextmanager
async def gateway_of(url: str) -> AsyncIterator[tuple[Gateway, str]]:
    """A gateway making batches of 10 into a stream of its own."""
    cfg = config(batch=BatchLimits(max_entries=10, max_delay_ms=5))
    async with running_gateway(url, cfg) as (gateway, _):
        yield gateway, cfg.stream.name


async def send(nc: Client, gateway: Gateway, batch: list[dict[str, Any]]) -> None:
    """Publish entries and wait until the gateway has stored them."""
    want = gateway.stats.published + len(batch)
    await publish_entries(nc, batch)
    await until(lambda: gateway.stats.published >= want)


async def in_stream(nc: Client, stream: str, keep: Any = None) -> list[str]:
    """The logIds of the stream's entries, in stream order (only those ``keep`` passes)."""
    stored = await stored_batches(nc.jetstream(), stream)
    return [e.logId for s in stored for e in s.batch.entries if keep is None or keep(e)]


def warn_up(entry: Any) -> bool:
    return entry.level in ("warn", "error", "fatal")


async def page_all(nc: Client, query: LogQuery, stream: str, between: Any = None, **kw: Any) -> list[str]:
    """Every page of ``query`` to the last, calling ``between()`` after each page."""
    got: list[str] = []
    while True:
        page = await query_page(nc, query, stream=stream, **kw)
        assert len(page.entries) <= query.limit
        got.extend(e.logId for e in page.entries)
        if page.nextCursor is None:
            return got
        assert len(page.entries) == query.limit
        if between is not None:
            await between()
        query = query.model_copy(update={"cursor": page.nextCursor})


@pytest.mark.parametrize("order", ["oldest", "newest"])
async def test_paging_while_entries_arrive_returns_each_once_in_order(
    nats_server: NatsServer, nc: Client, order: Order
) -> None:
    async with gateway_of(nats_server.url) as (gateway, stream):
        await send(nc, gateway, entries(200))
        before = await in_stream(nc, stream, warn_up)
        chunks = [entries(20, start=1000 + 20 * i) for i in range(10)]

        async def more() -> None:  # new entries arrive between every two pages
            if chunks:
                await send(nc, gateway, chunks.pop(0))

        query = LogQuery(min_level="warn", limit=7, order=order)
        got = await page_all(nc, query, stream, more)
        assert not chunks  # entries did arrive while paging
        after = await in_stream(nc, stream, warn_up)
    assert len(got) == len(set(got))
    if order == "oldest":
        assert got == after  # the ones that arrived meanwhile too, in stream order
        assert len(after) == len(before) + 10 * 20 * 3 // 5
    else:
        assert got == before[::-1]  # newest first, from where the first page stood


async def test_a_cursor_with_other_filters_or_garbage_is_refused(nats_server: NatsServer, nc: Client) -> None:
    async with gateway_of(nats_server.url) as (gateway, stream):
        await send(nc, gateway, entries(30))
        page = await query_page(nc, LogQuery(level="error", limit=2), stream=stream)
        assert page.nextCursor is not None
        others: list[dict[str, Any]] = [
            {"level": "warn"},
            {"filter": "x"},
            {"order": "newest"},
            {"source": "s"},
        ]
        for other in others:
            query = LogQuery.parse({"cursor": page.nextCursor, "limit": 2, **other})
            with pytest.raises(CursorError, match="other filters"):
                await query_page(nc, query, stream=stream)
        same = await query_page(nc, LogQuery(level="error", limit=5, cursor=page.nextCursor), stream=stream)
        assert same.entries  # a different limit is the same query
        for garbage in ("nope", "e30", page.nextCursor[:-4]):
            with pytest.raises(CursorError):
                await query_page(nc, LogQuery(level="error", cursor=garbage), stream=stream)
        # Pages that stopped early (a full page) left no consumer behind.
        assert (await nc.jetstream().stream_info(stream)).state.consumer_count == 0


@pytest.mark.parametrize("order", ["oldest", "newest"])
async def test_a_time_range_query_does_not_read_the_stream_from_its_start(
    nats_server: NatsServer, nc: Client, order: Order
) -> None:
    async with gateway_of(nats_server.url) as (gateway, stream):
        await send(nc, gateway, entries(400))  # 40 batches of entries from 2025
        boundary = format_timestamp(datetime.now(UTC))
        recent = entries(20, start=5000, createdAt=now_timestamp())
        await send(nc, gateway, recent)
        stats = QueryStats()
        query = LogQuery(start=boundary, order=order)
        page = await query_page(nc, query, stream=stream, stats=stats, clock_skew_s=0.0)
        # Paged, the seek happens once: a cursor in the stream is a place already.
        first = await query_page(nc, LogQuery(start=boundary, limit=10), stream=stream, clock_skew_s=0.0)
        assert first.nextCursor is not None
        paged = QueryStats()
        more = LogQuery(start=boundary, limit=10, cursor=first.nextCursor)
        second = await query_page(nc, more, stream=stream, stats=paged, clock_skew_s=0.0)
    want = [e["logId"] for e in recent]
    assert [e.logId for e in page.entries] == (want if order == "oldest" else want[::-1])
    assert page.nextCursor is None
    assert stats.stream_messages <= 4  # the 2-3 recent batches (and one older batch going backwards)
    assert stats.stream_probes <= 7  # a binary search over 42 sequences
    assert stats.entries_scanned <= 40
    assert [e.logId for e in first.entries + second.entries] == want
    assert paged.stream_probes == 0
    assert paged.stream_messages <= 3


async def test_archive_and_stream_overlap_each_entry_once(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    async with gateway_of(nats_server.url) as (gateway, stream):
        await send(nc, gateway, entries(150))
        await archive_all(nc, stream, tmp_path, 150)
        await send(nc, gateway, entries(50, start=500))
        everything = await in_stream(nc, stream)
        for order in ("oldest", "newest"):
            query = LogQuery(limit=13, order=order)
            got = await page_all(nc, query, stream, archive_dir=tmp_path)
            assert got == (everything if order == "oldest" else everything[::-1])
        # The stream forgets its first 8 batches (alerts and announcements share it): the archive has them.
        js = nc.jetstream()
        seq = (await js.stream_info(stream)).state.first_seq
        for _ in range(8):
            msg = await js.get_msg(stream, seq, subject=LogBatchCreated.EVENT_TYPE, next=True)
            seq = (msg.seq or 0) + 1
        assert await js.purge_stream(stream, seq=seq)
        stats = QueryStats()
        got = [
            e.logId
            async for e in query_entries(nc, LogQuery(), stream=stream, archive_dir=tmp_path, stats=stats)
        ]
        assert got == everything
        assert stats.segments_opened >= 1
        newest = await page_all(nc, LogQuery(limit=9, order="newest"), stream, archive_dir=tmp_path)
        assert newest == everything[::-1]
        # The stream made again numbers from 1 anew: the archive of its first life comes first, whole.
        info = await js.stream_info(stream)
        await js.delete_stream(stream)
        await js.add_stream(info.config)
        later = entries(20, start=900)
        await send(nc, gateway, later)
        got = [e.logId async for e in query_entries(nc, LogQuery(), stream=stream, archive_dir=tmp_path)]
        assert got == everything[:150] + [e["logId"] for e in later]


async def archive_all(nc: Client, stream: str, directory: Path, count: int) -> None:
    """Archive the stream's first ``count`` entries into small segments (with manifests)."""
    archiver = Archiver(
        nc, ArchiveConfig(directory=directory, stream=stream, max_segment_bytes=8_000, fsync=False)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(archiver.run(stop))
    await until(lambda: sum(s.entry_count for s in archiver.segments) + archiver.writer.entries >= count)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert len(archiver.segments) > 2


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"level": "loud"}, "level"),
        ({"level": "warn", "min_level": "error"}, "not both"),
        ({"start": "yesterday"}, "RFC 3339"),
        ({"start": "2025-10-13T09:00:00Z", "end": "2025-10-13T08:00:00Z"}, "after end"),
        ({"filter": "(", "regex": True}, "regular expression"),
        ({"order": "sideways"}, "order"),
        ({"levle": "warn"}, "levle"),
    ],
)
def test_bad_queries_are_refused_with_a_reason(data: dict[str, Any], says: str) -> None:
    with pytest.raises(QueryError, match=says):
        LogQuery.parse(data)


def test_limit_defaults_to_100_and_accepts_1_to_1000() -> None:
    assert LogQuery().limit == 100
    assert LogQuery.parse({"limit": 1}).limit == 1
    assert LogQuery.parse({"limit": 1000}).limit == 1000


async def test_no_stream_and_no_archive_is_a_clear_error(nc: Client) -> None:
    with pytest.raises(QueryError, match="no stream 'NOPE'"):
        await query_page(nc, LogQuery(), stream="NOPE")
    with pytest.raises(QueryError, match="does not exist"):
        await query_page(nc, LogQuery(), stream="NOPE", archive_dir=Path("/nonexistent/archive"))


async def test_filters_select_entries(nats_server: NatsServer, nc: Client) -> None:
    sent = entries(60, component="charge") + entries(5, start=100, traceId="t-1", message="Card DECLINED x")
    async with gateway_of(nats_server.url) as (gateway, stream):
        await send(nc, gateway, sent)

        async def ids(**q: Any) -> list[str]:
            return [e.logId for e in (await query_page(nc, LogQuery(**q), stream=stream)).entries]

        assert await ids(filter="declined") == [e["logId"] for e in sent[60:]]
        assert await ids(filter=r"card\s+dec", regex=True) == [e["logId"] for e in sent[60:]]
        assert await ids(traceId="t-1", level="error") == [
            e["logId"] for e in sent[60:] if e["level"] == "error"
        ]
        assert await ids(source="svc-1", component="charge") == [
            e["logId"] for e in sent[:60] if e["source"] == "svc-1"
        ]
        assert await ids(end="2025-10-13T08:00:09.999Z") == [e["logId"] for e in sent[:10]]
        assert log_ids(await stored_batches(nc.jetstream(), stream))


async def test_manifests_let_a_query_skip_segments_and_old_segments_still_count(tmp_path: Path) -> None:
    def segment(batch: list[dict[str, Any]], seq: int | None) -> None:
        writer = SegmentWriter(tmp_path, compression=Compression.ZSTD, fsync=False, stream="S")
        writer.write_batch([LogEntryCreated.parse(e) for e in batch], 0.0, seq=seq)
        info = writer.finish()
        assert info is not None
        if seq is None:  # a segment from before manifests
            manifest_path(info.path).unlink()

    segment(entries(10, source="old"), None)
    for i in range(4):
        segment(entries(10, start=100 + 10 * i, source=f"svc-{i}", level="error"), seq=i + 1)
    stats = QueryStats()
    page = await query_page(None, LogQuery(source="svc-2"), stream="S", archive_dir=tmp_path, stats=stats)
    assert [e.logId for e in page.entries] == [e["logId"] for e in entries(10, start=120)]
    assert (stats.segments_opened, stats.segments_skipped) == (2, 3)  # the one of svc-2 and the old one
    old = await query_page(None, LogQuery(source="old", order="newest"), stream="S", archive_dir=tmp_path)
    assert [e.logId for e in old.entries] == [e["logId"] for e in entries(10)][::-1]
    stats = QueryStats()
    await query_page(None, LogQuery(level="warn"), stream="S", archive_dir=tmp_path, stats=stats)
    assert stats.segments_skipped == 4  # every sequenced segment holds errors only
    everything = await query_page(None, LogQuery(), stream="S", archive_dir=tmp_path)
    assert [e.logId for e in everything.entries] == [e["logId"] for e in entries(10) + entries(40, start=100)]


def test_the_raw_prefilter_never_hides_a_match() -> None:
    compact = [
        b'{"logId":"a","level":"error","message":"Card TIMEOUT","source":"s1","createdAt":"x"}',
        b'{"logId":"b","level":"info","message":"timeout","source":"s1","createdAt":"x"}',
        b'{"logId":"c","level":"error","message":"ok","source":"s1","createdAt":"x"}',
        b'{"logId":"d","level":"error","message":"timeout","source":"s2","createdAt":"x"}',
    ]
    spaced = b'{"logId": "e", "level": "error", "message": "timeout", "source": "s1", "createdAt": "x"}'
    matcher = Matcher(LogQuery(level="error", source="s1", filter="timeout"))
    count, found = matcher.candidates(b"\n".join([*compact, spaced]) + b"\n")
    assert count == 5
    assert [i for i, _ in found] == [0, 4]  # the spaced line is let through to be parsed and checked
    assert [i for i, line in found if matcher.keep(orjson.loads(line))] == [0, 4]
    count, found = Matcher(LogQuery(filter="TimeOut")).candidates(b"\n".join(compact))
    assert count == 4
    assert found == [(0, compact[0]), (1, compact[1]), (3, compact[3])]
    count, found = Matcher(LogQuery(min_level="error", source="s1")).candidates(b"\n".join(compact))
    assert [i for i, _ in found] == [0, 2]


def test_the_readme_example_compiles_and_names_the_real_api() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("### Ask the logs", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    names = set(compile(block, "README example", "exec").co_names)
    assert {"LogQuery", "query_page", "query_entries"} <= names
