"""Faults on real processes: each test states its counts (in, stored, duplicates, dropped)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import nats

from gateway.config import ThrottleLimits
from gateway.core.limits import BatchLimits
from gateway.natsserver import NatsServer
from publishers import PublishPolicy
from tests.helpers import config, entries, log_ids, publish_entries, running_gateway, stored_batches, until


async def test_server_paused_longer_than_the_publish_timeout(tmp_path: Path) -> None:
    """SIGSTOP the server for three publish timeouts while batches are in flight."""
    with NatsServer(store_dir=tmp_path) as server:
        cfg = config(
            batch=BatchLimits(max_entries=50, max_delay_ms=20),
            throttle=ThrottleLimits(
                max_publish_rate=10, max_in_flight=2
            ),  # batches still going out during the pause
            publish=PublishPolicy(timeout_s=0.5, retry_deadline_s=30.0, backoff_max_s=0.5),
        )
        producer = await nats.connect(server.url)
        async with running_gateway(server.url, cfg) as (gateway, _):
            await publish_entries(producer, entries(1000))
            await until(lambda: gateway.stats.received == 1000)
            held_at_pause = gateway.acc.held_entries
            server.signal(signal.SIGSTOP)
            await asyncio.sleep(1.5)  # the fault itself: three publish timeouts of silence
            server.signal(signal.SIGCONT)
            await until(lambda: gateway.acc.held_entries == 0)
            report = await gateway.stop()
        stored = log_ids(await stored_batches(producer.jetstream(), cfg.stream.name))
        await producer.close()
    stats = gateway.stats
    # in: 1000; stored: 1000, each once; dropped: none.
    assert len(stored) == len(set(stored)) == 1000
    assert sorted(stored) == sorted(e["logId"] for e in entries(1000))
    assert held_at_pause > 0
    assert stats.total_dropped == 0
    assert report.unpublished == 0
    assert stats.published == 1000
    assert stats.retries > 0  # publishes timed out during the pause and were retried
