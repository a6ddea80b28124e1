"""An entry waiting for buffer room (policy block) that a live change makes too big for a batch
is rejected and counted, not lost; on a running gateway and a real nats-server."""

from __future__ import annotations

import uuid
from typing import Any

from nats.aio.client import Client

from contracts.errors import RejectReason
from gateway.control.apply import Reconfigurer
from gateway.core.limits import OverflowPolicy
from gateway.process.natsserver import NatsServer
from gateway.process.settings import RUN_OPTIONS, gateway_config
from tests.helpers import entries, publish_entries, running_gateway, until, until_ingest


def run_values(**changes: Any) -> dict[str, Any]:
    token = uuid.uuid4().hex[:12]
    values = {opt.dest: opt.default for opt in RUN_OPTIONS}
    values |= {"stream_name": "T" + token.upper(), "queue_group": "q" + token, "gateway_id": "gw-" + token}
    return values | changes


async def test_a_waiting_entry_made_oversize_is_rejected(nats_server: NatsServer, nc: Client) -> None:
    values = run_values(
        overflow=OverflowPolicy.BLOCK, max_buffered_entries=3, max_batch_entries=10, max_batch_delay_ms=60_000
    )
    async with running_gateway(nats_server.url, gateway_config(values)) as (gateway, gw_nc):
        control = Reconfigurer(gateway, values, gw_nc)
        await publish_entries(nc, entries(3))
        await until(lambda: gateway.acc.held_entries == 3)
        await publish_entries(nc, entries(1, start=3, message="x" * 6_000))  # waits: the buffer is full
        await until(lambda: gateway.stats.received == 4)
        await control.apply({"max_batch_bytes": 4_096}, origin="control:test")
        await until(lambda: gateway.stats.published == 3)
        await until(lambda: gateway.stats.total_rejected == 1, timeout_s=5)
    assert gateway.stats.rejected[RejectReason.OVERSIZE] == 1
    assert gateway.stats.received == gateway.stats.published + gateway.stats.total_rejected


async def test_a_waiting_durable_entry_made_oversize_is_terminated(
    nats_server: NatsServer, nc: Client
) -> None:
    values = run_values(
        ingest="jetstream",
        ingest_ack_wait_s=30.0,
        overflow=OverflowPolicy.BLOCK,
        max_batch_entries=100,
        max_batch_bytes=16_384,
        max_buffered_bytes=16_384,
        max_batch_delay_ms=20,
        max_publish_rate=0.5,  # a sealed batch waits here, so the buffer fills up by bytes
        publish_timeout_s=0.5,
        publish_retry_deadline_s=1.0,
    )
    cfg = gateway_config(values)
    assert cfg.durable_ingest is not None
    async with running_gateway(nats_server.url, cfg) as (gateway, gw_nc):
        control = Reconfigurer(gateway, values, gw_nc)
        await publish_entries(nc, entries(1))
        await until(lambda: gateway.stats.published == 1)
        await publish_entries(nc, entries(12, start=1, message="y" * 1_000))
        await until(lambda: gateway.stats.received == 13)
        await publish_entries(nc, entries(1, start=13, message="x" * 3_000))  # waits: no byte room
        await until(lambda: gateway.stats.received == 14)
        await control.apply({"max_batch_bytes": 2_048}, origin="control:test")
        await until(lambda: gateway.stats.total_rejected == 1, timeout_s=15)
        await until(lambda: gateway.stats.published == 13, timeout_s=15)
        await until_ingest(nc, cfg.durable_ingest, (0, 0))  # terminated, not left unacknowledged
    assert gateway.stats.rejected[RejectReason.OVERSIZE] == 1
