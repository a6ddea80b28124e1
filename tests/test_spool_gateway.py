"""The spool in the gateway, on real servers: the bus away past the retry deadline loses nothing.

Each test states its counts: entries in, stored, duplicates, dropped with reason, spooled.
"""

from __future__ import annotations

from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from gateway.config import AlertConfig, DurableIngest, GatewayConfig, SpoolConfig
from gateway.core.limits import BatchLimits, BufferLimits, DropReason, OverflowPolicy
from gateway.process.metrics import render_metrics
from gateway.process.natsserver import NatsServer
from gateway.service import Gateway
from gateway.spool.store import FsyncPolicy, SpoolLockedError
from publishers import PublishPolicy
from tests.helpers import config, entries, log_ids, publish_entries, running_gateway, stored_batches, until

QUIET = AlertConfig(enabled=False)  # alerts are not spooled; they would retry while the stream is away
FAST = PublishPolicy(timeout_s=0.3, retry_deadline_s=1.0, backoff_max_s=0.1)
SMALL = BatchLimits(max_entries=50, max_delay_ms=20)


def spooled_config(directory: Path, **changes: object) -> GatewayConfig:
    spool = SpoolConfig(directory=directory, fsync=FsyncPolicy.ALWAYS, replay_backoff_max_s=0.2)
    return config(spool=spool, publish=FAST, batch=SMALL, alerts=QUIET, **changes)


def held_everywhere(gateway: Gateway) -> int:
    spooled = gateway.spooler.spool.entries if gateway.spooler else 0
    return gateway.acc.held_entries + spooled


def counts_add_up(gateway: Gateway) -> bool:
    stats = gateway.stats
    accounted = stats.published + stats.total_rejected + stats.total_dropped + stats.returned
    return stats.received + stats.recovered == accounted + held_everywhere(gateway)


async def test_stream_away_past_the_deadline_spools_and_replays_in_order(
    tmp_path: Path, nats_server: NatsServer, nc: Client
) -> None:
    cfg = spooled_config(tmp_path / "spool")
    js = nc.jetstream()
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, entries(200))
        await until(lambda: gateway.stats.published == 200)
        stream = await js.stream_info(cfg.stream.name)
        await js.delete_stream(cfg.stream.name)  # JetStream answers no more: publishes time out
        await publish_entries(nc, entries(600, start=200))
        await until(lambda: gateway.stats.received == 800 and gateway.acc.held_entries == 0)
        assert gateway.spooler is not None
        spooled_while_away = gateway.spooler.spool.entries
        metrics = render_metrics(gateway).decode()
        assert counts_add_up(gateway)
        await js.add_stream(stream.config)
        await until(lambda: gateway.spooler is not None and not gateway.spooler.backlog)
        assert counts_add_up(gateway)
    batches = await stored_batches(js, cfg.stream.name)
    # in: 800; stored: 200 before the stream went, 600 replayed from the spool, each once; dropped: 0.
    assert sorted(log_ids(batches)) == sorted(e["logId"] for e in entries(600, start=200))
    assert spooled_while_away == 600
    assert gateway.stats.spooled == gateway.stats.replayed == 600
    assert gateway.stats.total_dropped == 0
    # Replayed with the headers they were made with: the stream dedups them by Nats-Msg-Id.
    assert all(b.headers["Nats-Msg-Id"] == b.batch.batchId for b in batches)
    # Replayed in the order the batches were made.
    sequences = [b.batch.sequence for b in batches]
    assert sequences == sorted(sequences)
    assert "log_gateway_spool_entries 600.0" in metrics
    assert "log_gateway_spool_oldest_age_seconds" in metrics


async def test_bus_gone_then_gateway_restarted_replays_the_spool(tmp_path: Path) -> None:
    """Kill the server with entries held, shut the gateway down, bring both back: all stored once."""
    spool_dir = tmp_path / "spool"
    server = NatsServer(store_dir=tmp_path / "nats").start()
    cfg = spooled_config(spool_dir)
    sent = entries(1000)
    try:
        producer = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
        first = Gateway(cfg)
        gw_nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
        await first.start(gw_nc)
        await publish_entries(producer, sent)
        await until(lambda: first.stats.received == len(sent))
        server.kill()  # the bus is gone for longer than the retry deadline
        report = await first.stop(timeout_s=5)
        server.start()
        await until(lambda: producer.is_connected and gw_nc.is_connected)
        await gw_nc.close()  # (closing while reconnecting breaks nats-py's pipe)
        async with running_gateway(server.url, spooled_config(spool_dir, stream=cfg.stream)) as (second, _):
            await until(lambda: second.spooler is not None and not second.spooler.backlog)
        stored = log_ids(await stored_batches(producer.jetstream(), cfg.stream.name))
        await producer.close()
    finally:
        server.close()
    # in: 1000; stored: each once (before the kill, or replayed by the next gateway); dropped: 0.
    assert sorted(stored) == sorted(e["logId"] for e in sent)
    assert report.unpublished == 0
    assert report.spooled == first.stats.spooled > 0  # all of it still in the spool at exit
    assert first.stats.total_dropped == 0
    assert second.stats.recovered == second.stats.replayed == first.stats.spooled


@pytest.mark.parametrize("policy", [OverflowPolicy.DROP_NEWEST, OverflowPolicy.DROP_OLDEST])
async def test_a_full_spool_applies_the_overflow_policy_and_counts(
    tmp_path: Path, nats_server: NatsServer, nc: Client, policy: OverflowPolicy
) -> None:
    spool = SpoolConfig(directory=tmp_path / "spool", max_bytes=64 * 1024, fsync=FsyncPolicy.NEVER)
    cfg = config(spool=spool, publish=FAST, batch=SMALL, buffer=BufferLimits(overflow=policy), alerts=QUIET)
    js = nc.jetstream()
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await js.delete_stream(cfg.stream.name)
        await publish_entries(nc, entries(1000))  # ~500 KB of batches for a 64 KiB spool
        await until(lambda: gateway.stats.received == 1000 and gateway.acc.held_entries == 0)
        assert gateway.spooler is not None
        in_spool = gateway.spooler.spool.entries
        assert counts_add_up(gateway)
    # in: 1000; spooled and kept: in_spool; dropped as spool_full: the rest; published: 0.
    assert gateway.stats.dropped[DropReason.SPOOL_FULL] == 1000 - in_spool
    assert 0 < in_spool < 1000
    assert gateway.stats.published == 0


def test_spool_and_durable_ingest_are_not_combined(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spool_dir is for core ingest"):
        config(spool=SpoolConfig(directory=tmp_path), durable_ingest=DurableIngest())


async def test_two_gateways_cannot_share_a_spool(tmp_path: Path, nats_server: NatsServer) -> None:
    cfg = spooled_config(tmp_path / "spool")
    async with running_gateway(nats_server.url, cfg):
        with pytest.raises(SpoolLockedError):
            async with running_gateway(nats_server.url, spooled_config(tmp_path / "spool")):
                pass
