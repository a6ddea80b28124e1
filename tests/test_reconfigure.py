"""Live reconfiguration (gateway.control.apply) on a running gateway and a real nats-server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from nats.aio.client import Client

from contracts import GatewayConfigured, decode_contract
from gateway.control.apply import ChangeRefused, Reconfigurer
from gateway.core.limits import OverflowPolicy
from gateway.process.metrics import render_metrics
from gateway.process.natsserver import NatsServer
from gateway.process.settings import RUN_OPTIONS, gateway_config
from tests.helpers import collect, entries, log_ids, publish_entries, running_gateway, stored_batches, until


def run_values(**changes: Any) -> dict[str, Any]:
    """``run``'s settings at their defaults, with a stream and queue group of the test's own."""
    token = uuid.uuid4().hex[:12]
    values = {opt.dest: opt.default for opt in RUN_OPTIONS}
    values |= {"stream_name": "T" + token.upper(), "queue_group": "q" + token, "gateway_id": "gw-" + token}
    return values | changes


async def test_changes_under_a_flood_count_every_entry_once(nats_server: NatsServer, nc: Client) -> None:
    values = run_values(max_batch_entries=100, max_buffered_entries=2_000)
    cfg = gateway_config(values)
    changes: list[dict[str, Any]] = [
        {"max_batch_entries": 20, "max_in_flight": 1, "max_batch_delay_ms": 5},
        {"max_batch_entries": 300, "max_publish_rate": 400, "overflow": "block"},
        {"max_batch_bytes": 8192, "max_in_flight": 8, "max_publish_rate": None},
        {"max_batch_entries": "50", "max_batch_bytes": None, "per_source": True},
        {"max_buffered_entries": 500, "max_publish_bytes_rate": 2_000_000, "per_source": False},
    ]
    async with running_gateway(nats_server.url, cfg) as (gateway, gw_nc):
        control = Reconfigurer(gateway, values, gw_nc)

        async def steer() -> None:
            for change in changes * 2:
                await control.apply(change, origin="control:test")
                await asyncio.sleep(0.15)  # a change every few hundred ms, while the flood runs

        steering = asyncio.create_task(steer())
        for start in range(0, 6_000, 500):
            await publish_entries(nc, entries(500, start=start))
            await asyncio.sleep(0.05)
        await steering
        await until(lambda: gateway.stats.published == 6_000, timeout_s=60)
    batches = await stored_batches(nc.jetstream(), cfg.stream.name)
    ids = log_ids(batches)
    assert len(ids) == 6_000
    assert len(set(ids)) == 6_000
    assert [b.batch.sequence for b in batches] == list(range(1, len(batches) + 1))
    assert max(b.batch.count for b in batches) <= 300
    assert all(b.size <= cfg.batch.max_bytes for b in batches)
    assert gateway.stats.total_dropped == 0
    assert gateway.config_changes["control"] == 10


async def test_a_new_delay_shows_in_the_next_batches(nats_server: NatsServer, nc: Client) -> None:
    values = run_values(max_batch_delay_ms=5_000)
    async with running_gateway(nats_server.url, gateway_config(values)) as (gateway, gw_nc):
        control = Reconfigurer(gateway, values, gw_nc)
        await publish_entries(nc, entries(3))
        await until(lambda: gateway.acc.held_entries == 3)
        result = await control.apply({"max_batch_delay_ms": 20}, origin="mcp")
        # The open batch is due under the new delay: published long before the old 5 s.
        await until(lambda: gateway.stats.published == 3, timeout_s=2)
    assert result.applied
    assert result.message == "changed max_batch_delay_ms 5000 -> 20"
    assert gateway.config.batch.max_delay_ms == 20


async def test_a_rejected_change_names_the_setting_and_leaves_the_config(
    nats_server: NatsServer, nc: Client
) -> None:
    values = run_values()
    async with running_gateway(nats_server.url, gateway_config(values)) as (gateway, gw_nc):
        control = Reconfigurer(gateway, values, gw_nc)
        before = gateway.config
        refusals: dict[str, dict[str, Any]] = {
            "max_buffered_bytes": {"max_buffered_bytes": 4096},  # below max_batch_bytes
            "nats_url, stream_name cannot change": {"nats_url": "nats://elsewhere:4222", "stream_name": "X"},
            "did you mean max_batch_delay_ms": {"max_batch_dely_ms": 5},
            "expected an integer": {"max_in_flight": 1.5},
            "max_payload": {"max_batch_bytes": 64 * 1024 * 1024, "max_buffered_bytes": 128 * 1024 * 1024},
        }
        for words, change in refusals.items():
            with pytest.raises(ChangeRefused, match=words):
                await control.apply(change, origin="control:test")
        dry = await control.apply({"overflow": "drop_oldest"}, origin="control:test", dry_run=True)
        assert gateway.config is before
        assert control.values["max_buffered_bytes"] == values["max_buffered_bytes"]
    assert dry.dry_run
    assert not dry.applied
    assert dry.message == "would change overflow 'block' -> 'drop_oldest'"
    assert gateway.config.buffer.overflow is OverflowPolicy.BLOCK
    assert gateway.config_refused["control"] == len(refusals)
    assert gateway.config_changes["control"] == 0


async def test_an_applied_change_is_announced_and_counted(nats_server: NatsServer, nc: Client) -> None:
    values = run_values(alerts=False)
    announced = await collect(nc, "cortex_logging.gateway.configured")
    async with running_gateway(nats_server.url, gateway_config(values)) as (gateway, gw_nc):
        control = Reconfigurer(gateway, values, gw_nc)
        await control.apply({"alerts": True, "alert_threshold": 2, "redact": True}, origin="sighup")
        assert gateway.alerts is not None
        assert gateway.redactor is not None
        await until(lambda: len(announced) == 1)
        metrics = render_metrics(gateway).decode()
    _, event = decode_contract(announced[0].headers, announced[0].data, GatewayConfigured)
    assert event.gatewayId == values["gateway_id"]
    assert event.origin == "sighup"
    assert [(c.setting, c.old, c.new) for c in event.changes] == [
        ("alerts", False, True),
        ("alert_threshold", 5, 2),
        ("redact", False, True),
    ]
    assert 'log_gateway_config_changes_total{origin="sighup"} 1.0' in metrics
    stored = await nc.jetstream().stream_info(values["stream_name"])
    assert stored.state.messages >= 2  # the stream announcement and this one
