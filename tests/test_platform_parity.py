"""By default the gateway accepts what the platform's schema accepts; ``--strict`` is the opt-in.

The platform's schema for a log entry takes any string for ``createdAt``, ``logId`` and
``source``, empty ones too. Before, the gateway rejected six of these seven entries.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
import pytest
from nats.aio.client import Client

from contracts import DecodeError, LogBatchCreated, RejectReason
from contracts.timestamps import parse_timestamp
from gateway.ingest.decode import EntryDecoder
from gateway.process.metrics import render_metrics
from gateway.process.natsserver import NatsServer
from gateway.process.settings import RUN_OPTIONS, read_options, run_settings
from tests import samples
from tests.helpers import collect, config, publish_entries, running_gateway, stored_batches, until

RECEIVED = 1_760_400_000.0
OCT_13_0800 = 1_760_342_400.0
# (changes to a valid entry, the time the gateway uses: parsed, or None for the receipt time)
PLATFORM_VALID: list[tuple[dict[str, str], float | None]] = [
    ({"createdAt": "Mon Oct 13 2025 08:00:00 GMT+0000 (Coordinated Universal Time)"}, OCT_13_0800),
    ({"createdAt": "2025-10-13"}, OCT_13_0800 - 8 * 3600),
    ({"createdAt": "2025-10-13T08:00:00"}, OCT_13_0800),
    ({"createdAt": "2025-10-13 08:00:00Z"}, OCT_13_0800),
    ({"logId": ""}, OCT_13_0800),
    ({"source": ""}, OCT_13_0800),
    ({"createdAt": "2025-10-13T08:00:00.000Z"}, OCT_13_0800),
    ({"createdAt": "soon"}, None),
    ({"createdAt": ""}, None),
]


def entry(n: int, changes: dict[str, str]) -> dict[str, Any]:
    return samples.entry(n, createdAt="2025-10-13T08:00:00.000Z") | changes


@pytest.mark.parametrize(("changes", "epoch"), PLATFORM_VALID)
def test_entries_inside_the_platform_contract_are_accepted_with_a_time(
    changes: dict[str, str], epoch: float | None
) -> None:
    decoder = EntryDecoder(max_batch_bytes=64 * 1024, wall_clock=lambda: RECEIVED)
    data = entry(1, changes)
    got = decoder.decode(None, orjson.dumps(data))
    assert orjson.loads(got.data) == data  # the entry as sent, createdAt verbatim
    assert got.created_at == (RECEIVED if epoch is None else epoch)
    assert parse_timestamp(got.created_text).timestamp() == pytest.approx(got.created_at, abs=1e-3)
    assert decoder.stats.time_fallbacks == (1 if epoch is None else 0)


@pytest.mark.parametrize(("changes", "epoch"), PLATFORM_VALID[:6] + PLATFORM_VALID[7:])
def test_strict_rejects_them_and_names_the_field(changes: dict[str, str], epoch: float | None) -> None:
    decoder = EntryDecoder(max_batch_bytes=64 * 1024, strict=True)
    with pytest.raises(DecodeError) as caught:
        decoder.decode(None, orjson.dumps(entry(1, changes)))
    assert caught.value.reason is RejectReason.INVALID_ENTRY
    assert next(iter(changes)) in str(caught.value)


async def test_a_gateway_batches_them_and_counts_the_time_fallback(
    nats_server: NatsServer, nc: Client
) -> None:
    sent = [entry(n, changes) for n, (changes, _) in enumerate(PLATFORM_VALID)]
    cfg = config()
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.published == len(sent))
        metrics = render_metrics(gateway).decode()
    assert gateway.stats.total_rejected == 0
    assert gateway.stats.time_fallbacks == 2
    assert "log_gateway_entry_time_fallbacks_total 2.0" in metrics
    batches = await stored_batches(nc.jetstream(), cfg.stream.name)
    got = [e.to_data() for stored in batches for e in stored.batch.entries]
    assert sorted(got, key=lambda e: e["message"]) == sorted(sent, key=lambda e: e["message"])
    for stored in batches:  # the batch's own times are RFC 3339, whatever the entries held
        LogBatchCreated.parse(stored.batch.to_data())
        parse_timestamp(stored.batch.firstCreatedAt)


async def test_a_strict_gateway_rejects_them(nats_server: NatsServer, nc: Client) -> None:
    rejected = await collect(nc, "cortex_logging.entry.rejected")
    sent = [entry(n, changes) for n, (changes, _) in enumerate(PLATFORM_VALID)]
    async with running_gateway(nats_server.url, config(strict_entries=True)) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.published + gateway.stats.total_rejected == len(sent))
        await until(lambda: len(rejected) == 8)
    assert gateway.stats.rejected == {RejectReason.INVALID_ENTRY: 8}
    assert gateway.stats.published == 1


def test_strict_is_a_run_setting_off_by_default() -> None:
    values = read_options(argparse.Namespace(), RUN_OPTIONS, environ={})
    assert run_settings(values)[0].strict_entries is False
    values = read_options(argparse.Namespace(), RUN_OPTIONS, environ={"LOG_GATEWAY_STRICT": "true"})
    assert run_settings(values)[0].strict_entries is True
