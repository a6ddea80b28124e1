"""CoreIntake.on_frames on bare entries without a server: every entry counted, a drop warned of."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import cast

import orjson
import pytest
from nats.aio.client import Client

from gateway.bench.payloads import entry
from gateway.core.encode import BatchEncoder
from gateway.core.limits import BatchLimits, BufferLimits, DropReason, OverflowPolicy
from gateway.core.pipeline import BatchPipeline
from gateway.core.stats import Stats
from gateway.ingest.admission import Gate
from gateway.ingest.core_intake import CoreIntake
from gateway.ingest.decode import EntryDecoder
from gateway.ingest.reject import Rejects
from gateway.ingest.wire import Frame
from gateway.logs import RateLimitedLog
from gateway.tasks import Spawn


def _intake(buffer: BufferLimits, stats: Stats) -> tuple[CoreIntake, BatchPipeline]:
    encoder = BatchEncoder(gateway_id="g", ce_source="//log-gateway/g", max_entries=500)
    pipeline = BatchPipeline(BatchLimits(), buffer, encoder, stats)
    gate = Gate(pipeline, asyncio.Event(), RateLimitedLog(logging.getLogger("log_gateway.test_intake")))
    intake = CoreIntake(
        cast(Client, None),
        ("s",),
        queue="q",
        decoder=EntryDecoder(max_batch_bytes=256 * 1024),
        gate=gate,
        rejects=cast(Rejects, None),
        stats=stats,
        pending_msgs_limit=0,
        pending_bytes_limit=0,
        spawn=cast(Spawn, None),
    )
    return intake, pipeline


def _frames(count: int) -> list[Frame]:
    rng = random.Random(3)
    return [(b"s", 1, b"", None, orjson.dumps(entry(n, rng))) for n in range(count)]


def test_a_run_of_bare_entries_is_admitted_whole_and_each_kept_as_sent() -> None:
    stats = Stats()
    intake, pipeline = _intake(BufferLimits(), stats)
    frames = _frames(7)
    assert intake.on_frames(frames, 1, 7) is None
    assert stats.received == 6
    batch = pipeline.take(1e18, "2026-12-01T00:00:00.000Z")
    assert batch is not None
    assert [e.data for e in batch.sealed.entries] == [f[4] for f in frames[1:]]  # the bodies themselves
    assert [e.level for e in batch.sealed.entries] == [orjson.loads(f[4])["level"] for f in frames[1:]]


def test_entries_dropped_at_a_full_buffer_are_counted_and_warned_of(caplog: pytest.LogCaptureFixture) -> None:
    stats = Stats()
    intake, pipeline = _intake(BufferLimits(max_entries=2, overflow=OverflowPolicy.DROP_NEWEST), stats)
    with caplog.at_level(logging.WARNING, logger="log_gateway.test_intake"):
        assert intake.on_frames(_frames(5), 0, 5) is None
    assert stats.received == 5
    assert stats.dropped[str(DropReason.OVERFLOW_NEWEST)] == 3
    assert pipeline.acc.held_entries == 2
    assert [r.getMessage() for r in caplog.records] == ["buffer full: dropped the newest entry"]
