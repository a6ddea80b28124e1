"""Faults on real processes: each test states its counts (in, stored, duplicates, dropped)."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import nats
import nats.aio.client

from contracts import LogEntryCreated
from gateway.config import DurableIngest, ThrottleLimits
from gateway.consumers.subscribe import BatchSubscriber, SubscriberConfig
from gateway.core.limits import BatchLimits, BufferLimits
from gateway.ingest.durable_intake import ensure_ingest
from gateway.process.natsserver import NatsServer
from publishers import PublishPolicy
from tests.helpers import (
    config,
    entries,
    log_ids,
    publish_entries,
    running_gateway,
    stored_batches,
    until,
    until_ingest,
)


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


async def test_server_killed_and_restarted_under_durable_ingest_loses_nothing(tmp_path: Path) -> None:
    """Entries in the ingest stream survive a SIGKILLed server mid-run: every one ends up stored."""
    server = NatsServer(store_dir=tmp_path).start()
    spec = DurableIngest(ack_wait_s=5.0, fetch_timeout_s=0.2)
    fast = PublishPolicy(timeout_s=0.5, retry_deadline_s=2.0, backoff_max_s=0.2)
    slow = ThrottleLimits(max_publish_rate=20, max_in_flight=1)  # so the kill lands mid-run
    cfg = config(durable_ingest=spec, publish=fast, throttle=slow, batch=BatchLimits(max_entries=100))
    sent = entries(3000)
    try:
        producer = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        js = producer.jetstream()
        await ensure_ingest(js, spec, (LogEntryCreated.EVENT_TYPE, LogEntryCreated.EVENT_TYPE + ".>"))
        await publish_entries(producer, sent)
        await until_ingest(producer, spec, (len(sent), 0))
        async with running_gateway(server.url, cfg) as (gateway, _):
            await until(lambda: gateway.stats.published > 0)
            published_at_kill, received_at_kill = gateway.stats.published, gateway.stats.received
            server.kill()
            server.start()
            await until(lambda: producer.is_connected)
            await until_ingest(producer, spec, (0, 0), timeout_s=90)
            await until(lambda: gateway.acc.held_entries == 0)
        stored = log_ids(await stored_batches(js, cfg.stream.name))
        handed = await entries_handed_over(producer, cfg.stream.name, len(set(stored)))
        await producer.close()
    finally:
        server.close()
    copies = Counter(stored)
    # What a subscriber sees: each entry exactly once, the duplicates recognised by logId.
    assert sorted(handed) == sorted(copies)
    # in: 3000, in the ingest stream before the gateway started; stored: every one; dropped: none.
    assert set(copies) == {e["logId"] for e in sent}
    assert 0 < published_at_kill < len(sent)
    assert gateway.stats.total_dropped == 0
    # Duplicates: a killed server forgets the consumer state it had not yet written, and
    # delivers those entries again as new (their delivery count restarts at 1), so only
    # entries delivered before the kill (received, or in the fetch under way) can appear
    # twice. Subscribers drop them by logId.
    assert sum(copies.values()) - len(copies) <= received_at_kill + spec.fetch_batch


async def entries_handed_over(nc: nats.aio.client.Client, stream: str, unique: int) -> list[str]:
    """The logIds a BatchSubscriber hands over from ``stream``, once ``unique`` of them arrived."""
    handed: list[str] = []

    async def keep(entry: LogEntryCreated) -> None:
        handed.append(entry.logId)

    async with BatchSubscriber(nc, SubscriberConfig(stream=stream, durable="fault-reader")) as sub:
        task = asyncio.create_task(sub.run_entries(keep))
        await until(lambda: len(handed) >= unique)
        task.cancel()
    return handed


async def test_a_slow_gateway_under_durable_ingest_drops_nothing(nats_server: NatsServer) -> None:
    """The slow-consumer case that costs core ingest entries (see test_gateway) costs durable ingest none."""
    spec = DurableIngest(ack_wait_s=10.0, fetch_timeout_s=0.2)
    cfg = config(
        durable_ingest=spec,
        publish=PublishPolicy(timeout_s=0.5, retry_deadline_s=2.0),
        batch=BatchLimits(max_entries=10, max_delay_ms=10),
        buffer=BufferLimits(max_entries=10),
        throttle=ThrottleLimits(max_publish_rate=50, max_in_flight=1),
        pending_msgs_limit=20,
    )
    sent = entries(300)
    producer = await nats.connect(nats_server.url)
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(producer, sent)
        await until(lambda: gateway.stats.published == len(sent))
    stored = log_ids(await stored_batches(producer.jetstream(), cfg.stream.name))
    await producer.close()
    # in: 300 as fast as the producer can; stored: 300 once each at 500/s; dropped: none.
    assert sorted(stored) == sorted(e["logId"] for e in sent)
    assert gateway.stats.total_dropped == 0
    assert gateway.stats.redelivered == 0
