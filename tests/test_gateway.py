"""The gateway against a real nats-server and JetStream: counts, not impressions."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import nats
import orjson
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts import EntryRejected, LogBatchCreated, RejectReason
from gateway.config import ThrottleLimits
from gateway.core.limits import BatchLimits, BufferLimits, OverflowPolicy
from gateway.process.natsserver import NatsServer
from tests import samples
from tests.helpers import (
    config,
    entries,
    fail_decoding,
    log_ids,
    publish_entries,
    running_gateway,
    stored_batches,
    until,
)


async def test_every_entry_arrives_exactly_once_in_bounded_batches(
    nats_server: NatsServer, nc: Client
) -> None:
    cfg = config(batch=BatchLimits(max_entries=100, max_bytes=20_000, max_delay_ms=50))
    sent = entries(1200)
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.received == len(sent))
        report = await gateway.stop()
    batches = await stored_batches(nc.jetstream(), cfg.stream.name)
    assert sorted(log_ids(batches)) == sorted(e["logId"] for e in sent)
    assert all(b.batch.count <= 100 and b.size <= 20_000 for b in batches)
    assert [b.batch.sequence for b in batches] == list(range(1, len(batches) + 1))
    assert all(b.headers["Nats-Msg-Id"] == b.batch.batchId for b in batches)
    assert gateway.stats.published == len(sent)
    assert report.unpublished == 0
    assert gateway.stats.total_dropped == 0
    assert gateway.stats.total_rejected == 0
    by_id = {e["logId"]: e for e in sent}
    assert all(entry.to_data() == by_id[entry.logId] for b in batches for entry in b.batch.entries)


async def test_entries_on_sub_subjects_are_ingested(nats_server: NatsServer, nc: Client) -> None:
    cfg = config()
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, entries(30), subject="cortex_logging.entry.created.payments")
        await until(lambda: gateway.stats.received == 30)
    assert gateway.stats.published == 30


async def test_time_threshold_flushes_a_lone_entry(nats_server: NatsServer, nc: Client) -> None:
    delay_s = 0.3
    cfg = config(batch=BatchLimits(max_delay_ms=int(delay_s * 1000)))
    arrived: asyncio.Queue[tuple[float, Msg]] = asyncio.Queue()

    async def on_batch(msg: Msg) -> None:
        await arrived.put((time.monotonic(), msg))

    await nc.subscribe(LogBatchCreated.EVENT_TYPE, cb=on_batch)
    async with running_gateway(nats_server.url, cfg):
        sent_at = time.monotonic()
        await publish_entries(nc, entries(1))
        at, msg = await asyncio.wait_for(arrived.get(), 10)
    batch = LogBatchCreated.parse(json.loads(msg.data)["data"])
    assert batch.count == 1
    assert at - sent_at >= delay_s  # not before the delay ...
    assert at - sent_at < delay_s + 1.0  # ... and within it plus a margin for a loaded machine


async def test_byte_limit_holds_against_a_small_max_payload(tmp_path: Path) -> None:
    with NatsServer(store_dir=tmp_path, config="max_payload: 4096") as server:
        nc = await nats.connect(server.url)
        cfg = config()  # default 256 KiB must shrink to the server's 4 KiB
        rejected: asyncio.Queue[Msg] = asyncio.Queue()
        await nc.subscribe("cortex_logging.entry.rejected", cb=rejected.put)
        sent = entries(300, metadata={"blob": "x" * 400})
        huge = samples.entry(99_999, message="y" * 3300)
        async with running_gateway(server.url, cfg) as (gateway, _):
            await publish_entries(nc, [*sent, huge])
            await until(lambda: gateway.stats.received == len(sent) + 1)
        batches = await stored_batches(nc.jetstream(), cfg.stream.name)
        forwarded = await asyncio.wait_for(rejected.get(), 5)
        await nc.close()
    assert max(b.size for b in batches) <= 4096
    assert sorted(log_ids(batches)) == sorted(e["logId"] for e in sent)
    assert gateway.stats.rejected == {"oversize": 1}
    assert json.loads(forwarded.data)["data"]["reason"] == "oversize"


BAD_INPUTS: list[tuple[dict[str, str] | None, bytes, RejectReason]] = [
    (None, b"{not json", RejectReason.INVALID_JSON),
    (None, b'{"a": "\xff"}', RejectReason.INVALID_JSON),
    (None, orjson.dumps(samples.entry(1, level="loud")), RejectReason.INVALID_ENTRY),
    (
        None,
        orjson.dumps({k: v for k, v in samples.ENTRY.items() if k != "logId"}),
        RejectReason.INVALID_ENTRY,
    ),
    (None, b'{"logId": "1", "logId": "2"}', RejectReason.DUPLICATE_KEY),
    (None, b"[" * 100 + b"]" * 100, RejectReason.TOO_DEEP),
    (None, b'{"n": 123456789012345678901234567890}', RejectReason.NUMBER_OUT_OF_RANGE),
    ({"content-type": "text/plain"}, b"hello", RejectReason.UNSUPPORTED_CONTENT_TYPE),
    ({"ce-specversion": "1.0", "ce-id": "1"}, orjson.dumps(samples.ENTRY), RejectReason.INVALID_ENVELOPE),
    (
        {"content-type": "application/cloudevents+json"},
        orjson.dumps(
            {"specversion": "1.0", "id": "1", "source": "/s", "type": "other.type", "data": samples.ENTRY}
        ),
        RejectReason.UNEXPECTED_TYPE,
    ),
    (None, b"z" * 400_000, RejectReason.OVERSIZE),
]


async def test_bad_input_is_counted_forwarded_and_does_not_stop_the_gateway(
    nats_server: NatsServer, nc: Client
) -> None:
    cfg = config()
    forwarded: list[Msg] = []

    async def on_rejected(msg: Msg) -> None:
        forwarded.append(msg)

    await nc.subscribe("cortex_logging.entry.rejected", cb=on_rejected)
    good = entries(len(BAD_INPUTS) + 1)
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        for i, (headers, body, _reason) in enumerate(BAD_INPUTS):
            await publish_entries(nc, [good[i]])
            await nc.publish("cortex_logging.entry.created.bad", body, headers=headers)
        await publish_entries(nc, [good[-1]])
        await until(lambda: gateway.stats.received == len(BAD_INPUTS) + len(good))
        await until(lambda: len(forwarded) == len(BAD_INPUTS))
    expected = Counter(str(reason) for _, _, reason in BAD_INPUTS)
    assert gateway.stats.rejected == expected
    events = [EntryRejected.parse(json.loads(m.data)["data"]) for m in forwarded]
    assert Counter(e.reason for e in events) == expected
    assert {e.subject for e in events} == {"cortex_logging.entry.created.bad"}
    oversize = next(e for e in events if e.reason == "oversize")
    assert oversize.truncated
    assert oversize.payloadBytes == 400_000
    assert gateway.stats.published == len(good)
    batches = await stored_batches(nc.jetstream(), cfg.stream.name)
    assert sorted(log_ids(batches)) == sorted(e["logId"] for e in good)


@pytest.mark.parametrize("policy", list(OverflowPolicy))
async def test_overflow_policy_under_hard_throttle(
    nats_server: NatsServer, nc: Client, policy: OverflowPolicy
) -> None:
    cfg = config(
        batch=BatchLimits(max_entries=10, max_delay_ms=20),
        buffer=BufferLimits(max_entries=20, overflow=policy),
        throttle=ThrottleLimits(max_publish_rate=4, max_in_flight=1),
    )
    sent = entries(80)
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.received == len(sent))
        await gateway.stop()
    stats = gateway.stats
    batches = await stored_batches(nc.jetstream(), cfg.stream.name)
    stored = log_ids(batches)
    assert len(stored) == len(set(stored)) == stats.published
    assert stats.published + stats.total_dropped + stats.total_rejected == stats.received == len(sent)
    reported = sum(b.batch.droppedSinceLast for b in batches)
    assert reported + sum(stats.take_unreported().values()) == stats.total_dropped
    if policy is OverflowPolicy.BLOCK:
        assert stats.total_dropped == 0
        assert stats.published == len(sent)
    elif policy is OverflowPolicy.DROP_NEWEST:
        assert set(stats.dropped) == {"overflow_newest"}
        assert stats.total_dropped > 0
        assert sent[0]["logId"] in stored
        assert sent[-1]["logId"] not in stored
    else:
        assert set(stats.dropped) == {"overflow_oldest"}
        assert stats.total_dropped > 0
        assert sent[-1]["logId"] in stored


async def test_throttled_gateway_sends_fewer_fuller_batches(nats_server: NatsServer, nc: Client) -> None:
    cfg = config(
        batch=BatchLimits(max_entries=500, max_delay_ms=5),
        throttle=ThrottleLimits(max_publish_rate=2, max_in_flight=1),
    )
    sent = entries(400)
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.received == len(sent))
    batches = await stored_batches(nc.jetstream(), cfg.stream.name)
    assert sorted(log_ids(batches)) == sorted(e["logId"] for e in sent)
    # Unthrottled, a 5 ms delay would cut many small batches; throttled to 2/s they fill up instead.
    assert len(batches) <= 5


async def test_nats_server_killed_and_restarted_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    server = NatsServer(store_dir=tmp_path).start()
    try:
        cfg = config()  # default settings
        reconnected = asyncio.Event()

        async def on_reconnect() -> None:
            reconnected.set()

        producer = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        async with running_gateway(server.url, cfg) as (gateway, gw_nc):
            gw_nc._reconnected_cb = on_reconnect
            await publish_entries(producer, entries(2000))
            await until(lambda: gateway.acc.held_entries > 0)
            held_at_kill = gateway.acc.held_entries
            server.kill()
            server.start()
            await asyncio.wait_for(reconnected.wait(), 30)
            await gw_nc.flush()
            await until(lambda: producer.is_connected)
            before = gateway.stats.received
            await publish_entries(producer, entries(1000, start=2000))
            # (>=: entries sent before the kill may still be counted after ``before`` was read)
            await until(lambda: gateway.stats.received >= before + 1000 and gateway.acc.held_entries == 0, 60)
            report = await gateway.stop()
        js = producer.jetstream()
        stored = log_ids(await stored_batches(js, cfg.stream.name))
        await producer.close()
    finally:
        server.close()
    stats = gateway.stats
    assert held_at_kill > 0
    assert len(stored) == len(set(stored)), "an entry was stored twice"
    assert stats.total_dropped == 0
    assert stats.total_rejected == 0
    assert report.unpublished == 0
    assert len(stored) == stats.published == stats.received
    assert {f"log-{n:08d}" for n in range(2000, 3000)} <= set(stored)


async def test_per_source_batches_hold_one_source_each(nats_server: NatsServer, nc: Client) -> None:
    cfg = config(batch=BatchLimits(max_entries=50, max_delay_ms=50, per_source=True, max_open_sources=2))
    sent = [samples.entry(i, source=f"svc.{i % 5} a.>") for i in range(300)]
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.received == len(sent))
    batches = await stored_batches(nc.jetstream(), cfg.stream.name)
    assert sorted(log_ids(batches)) == sorted(e["logId"] for e in sent)
    for stored in batches:
        assert {entry.source for entry in stored.batch.entries} == {stored.batch.source}
    # Sources never become subjects: everything stored went to the gateway's own subjects.
    info = await nc.jetstream().stream_info(cfg.stream.name, subjects_filter=">")
    assert set(info.state.subjects or {}) <= set(cfg.subjects.outputs)
    assert (info.state.subjects or {})[cfg.subjects.batch] == len(batches)


async def test_an_entry_the_gateway_fails_on_is_counted_not_lost_silently(
    nats_server: NatsServer, nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    sent = entries(50)
    doomed = sent[17]["logId"].encode()
    async with running_gateway(nats_server.url, config()) as (gateway, _):
        fail_decoding(gateway, doomed)
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.published == len(sent) - 1)
        await gateway.stop()
    stats = gateway.stats
    # in: 50; stored: 49; dropped: 1 (ingest_failed), logged with its traceback.
    assert stats.received == len(sent)
    assert dict(stats.dropped) == {"ingest_failed": 1}
    assert stats.published + stats.total_dropped == stats.received
    assert "counted as dropped" in caplog.text
    assert "a bug in the decoder" in caplog.text
    stored = log_ids(await stored_batches(nc.jetstream(), gateway.config.stream.name))
    assert sorted(stored) == sorted(e["logId"] for e in sent if e["logId"].encode() != doomed)


async def test_slow_consumer_drops_are_received_and_counted(nats_server: NatsServer, nc: Client) -> None:
    cfg = config(
        batch=BatchLimits(max_entries=10, max_delay_ms=10),
        buffer=BufferLimits(max_entries=10, overflow=OverflowPolicy.BLOCK),
        throttle=ThrottleLimits(max_publish_rate=5, max_in_flight=1),
        pending_msgs_limit=20,
    )
    sent = entries(300)
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.received == len(sent))
        await gateway.stop()
    stats = gateway.stats
    assert stats.dropped["slow_consumer"] > 0
    assert set(stats.dropped) == {"slow_consumer"}
    assert stats.published + stats.total_dropped == stats.received == len(sent)
    stored = log_ids(await stored_batches(nc.jetstream(), cfg.stream.name))
    assert len(stored) == len(set(stored)) == stats.published
