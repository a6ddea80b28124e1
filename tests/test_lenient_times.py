"""Entries whose ``createdAt`` is any string (the platform's contract, the gateway's default) go
through the tools downstream of the gateway too: archived once, exported with OTLP's "unknown"
time where they name no moment, found by time-bounded queries where they name one."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from contracts import LogArchived
from contracts.query import LogQuery
from contracts.timestamps import parse_timestamp
from gateway.config import Subjects, ThrottleLimits
from gateway.consumers.archiver import ArchiveConfig, Archiver
from gateway.consumers.manifest import read_manifest
from gateway.consumers.query import query_page
from gateway.consumers.segments import read_segment
from gateway.core.limits import BatchLimits, BufferLimits, OverflowPolicy
from gateway.otlp.config import OtlpConfig
from gateway.otlp.receiver import OtlpReceiver
from gateway.process.natsserver import NatsServer
from tests import samples
from tests.helpers import collect, config, publish_entries, running_gateway, until
from tests.test_otlp_export import entries_on, export_config, exporting

OCT_13_0800 = "2025-10-13T08:00:00.000Z"
# createdAt values the gateway accepts by default, and the instant each names (None: none).
LENIENT: list[tuple[str, str | None]] = [
    ("Mon Oct 13 2025 10:00:00 GMT+0200 (Central European Summer Time)", OCT_13_0800),
    ("2025-10-13 08:00:00", OCT_13_0800),
    ("2025-10-13", "2025-10-13T00:00:00.000Z"),
    ("", None),
    ("soon", None),
    ("2025-10-13T09:00:00.000Z", "2025-10-13T09:00:00.000Z"),
]


def lenient_entries() -> list[dict[str, Any]]:
    return [samples.entry(i, createdAt=created) for i, (created, _) in enumerate(LENIENT)]


async def test_the_archiver_archives_every_lenient_entry_once(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    sent = lenient_entries()
    archived = await collect(nc, LogArchived.EVENT_TYPE)
    cfg = config(batch=BatchLimits(max_entries=100, max_delay_ms=10))
    before = time.time()
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.published == len(sent))
    archiver = Archiver(nc, ArchiveConfig(directory=tmp_path, stream=cfg.stream.name, fsync=False))
    stop = asyncio.Event()
    task = asyncio.create_task(archiver.run(stop))
    await until(lambda: archiver.writer.entries == len(sent) or task.done())
    stop.set()
    await asyncio.wait_for(task, 10)  # (it raised ValueError on the JavaScript form before)
    await until(lambda: len(archived) == 1)
    (segment,) = archiver.segments
    assert sorted(e.logId for e in read_segment(segment.path)) == sorted(e["logId"] for e in sent)
    event = LogArchived.parse(json.loads(archived[0].data)["data"])
    assert event.entryCount == len(sent)
    # The earliest named instant; the latest is the archiver's clock for the two with no time.
    assert event.timeRange.start == "2025-10-13T00:00:00.000Z"
    assert parse_timestamp(event.timeRange.end).timestamp() >= before - 1
    manifest = read_manifest(segment.path)
    assert manifest is not None
    assert (manifest.start, manifest.end) == (event.timeRange.start, event.timeRange.end)
    consumer = await nc.jetstream().consumer_info(cfg.stream.name, "log-archive")
    assert consumer.num_ack_pending == 0


async def test_otlp_export_forwards_lenient_entries_with_their_time_or_unknown(
    nats_server: NatsServer, nc: Client
) -> None:
    sent = lenient_entries()
    async with (
        running_gateway(nats_server.url, config()) as (source, _),
        running_gateway(nats_server.url, config(subjects=Subjects(prefix="lt"))) as (sink, _),
    ):
        receiver = OtlpReceiver.for_gateway(OtlpConfig(port=0, host="127.0.0.1"), sink)
        await receiver.start()
        await publish_entries(nc, sent)
        await until(lambda: source.stats.published == len(sent), 30)
        before = time.time()
        endpoint = f"http://127.0.0.1:{receiver.port}/v1/logs"
        async with exporting(nc, export_config(source, endpoint)) as exporter:
            await until(lambda: sink.stats.published == len(sent) or exporter.stats.failed > 0, 30)
        await receiver.stop()
    assert exporter.stats.records == len(sent)
    got = {e.logId: e for e in await entries_on(nc, sink.config.stream.name, sink.config.subjects.batch)}
    for data, (_, instant) in zip(sent, LENIENT, strict=True):
        created = got[data["logId"]].createdAt
        if instant is not None:
            assert created == instant
        else:  # time 0 (unknown): the receiver took the observed time, the exporter's clock
            assert parse_timestamp(created).timestamp() >= before - 1


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is not UTC (a zone-less time must not be read as local)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()  # (TZ as it was)
    time.tzset()


@pytest.mark.usefixtures("new_york")
async def test_a_time_bounded_query_reads_created_at_as_the_gateway_does(
    nats_server: NatsServer, nc: Client
) -> None:
    sent = lenient_entries()
    cfg = config(batch=BatchLimits(max_entries=100, max_delay_ms=10))
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.published == len(sent))

    async def messages(start: str, end: str) -> list[str]:
        query = LogQuery(start=start, end=end, limit=100)
        return sorted(e.message for e in (await query_page(nc, query, stream=cfg.stream.name)).entries)

    at_eight = sorted(
        e["message"] for e, (_, instant) in zip(sent, LENIENT, strict=True) if instant == OCT_13_0800
    )
    assert len(at_eight) == 2  # the JavaScript form and the zone-less one, both 08:00 UTC
    assert await messages("2025-10-13T07:59:59Z", "2025-10-13T08:00:01Z") == at_eight
    # The whole day: every entry naming a moment in it; those naming none match no time range.
    named = sorted(e["message"] for e, (_, instant) in zip(sent, LENIENT, strict=True) if instant)
    assert await messages("2025-10-13T00:00:00Z", "2025-10-13T23:59:59Z") == named
    everything = await query_page(nc, LogQuery(limit=100), stream=cfg.stream.name)
    assert len(everything.entries) == len(sent)  # (without a time range, all come out)


@pytest.mark.parametrize(
    ("overflow", "shed_by"),
    [(OverflowPolicy.BLOCK, "slow_consumer"), (OverflowPolicy.DROP_NEWEST, "overflow_newest")],
)
async def test_time_fallbacks_count_accepted_entries_only(
    nats_server: NatsServer, nc: Client, overflow: OverflowPolicy, shed_by: str
) -> None:
    """Error entries shed at the pending limit are decoded for alerts, and entries dropped
    at a full buffer or rejected as oversize were decoded too: none of them is counted."""
    cfg = config(
        batch=BatchLimits(max_entries=10, max_delay_ms=10, max_bytes=64 * 1024),
        buffer=BufferLimits(max_entries=10, overflow=overflow),
        throttle=ThrottleLimits(max_publish_rate=5, max_in_flight=1),
        pending_msgs_limit=20,
    )
    # First (before any shedding) an entry over the batch limit, its body within the bound.
    sent = [samples.entry(300, createdAt="", message="x" * (64 * 1024))]
    sent += [samples.entry(i, createdAt="soon") for i in range(300)]
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.received == len(sent))
        await gateway.stop()
    stats = gateway.stats
    assert stats.dropped[shed_by] > 0
    assert stats.rejected == {"oversize": 1}
    assert stats.published + stats.total_dropped + 1 == len(sent)
    assert stats.time_fallbacks == stats.published  # every accepted one was published


async def test_a_time_bounded_query_over_a_batch_from_year_one_still_answers(
    nats_server: NatsServer, nc: Client
) -> None:
    """0001-01-01T00:00:00+01:00 is valid RFC 3339 but before year 1 in UTC: a batch holding
    it has it as firstCreatedAt, which the query could not turn into a key (OverflowError)."""
    sent = [samples.entry(0, createdAt="0001-01-01T00:00:00+01:00"), samples.entry(1)]
    cfg = config(batch=BatchLimits(max_entries=2, max_delay_ms=1000))
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.published == len(sent))
    query = LogQuery(start="2025-10-13T07:00:00Z", end="2025-10-13T09:00:00Z", limit=10)
    page = await query_page(nc, query, stream=cfg.stream.name)
    assert [e.logId for e in page.entries] == [sent[1]["logId"]]
