"""Durable ingest (``--ingest jetstream``) on real servers; each test states its counts."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
from collections import Counter

import nats
import pytest
from nats.aio.client import Client

from gateway.config import DurableIngest, ThrottleLimits
from gateway.core.limits import BatchLimits, BufferLimits, OverflowPolicy
from gateway.ingest.durable_intake import Settle, ensure_ingest, settle
from gateway.process.natsserver import NatsServer
from tests.helpers import (
    FAST_PUBLISH,
    FORMS,
    config,
    entries,
    fail_decoding,
    ingest_state,
    log_ids,
    message,
    publish_entries,
    running_gateway,
    stored_batches,
    until,
    until_ingest,
)
from tests.test_cli import gateway_process, http_get, metric


def durable(**changes: object) -> DurableIngest:
    return DurableIngest(**{"ack_wait_s": 5.0, "fetch_timeout_s": 0.2, **changes})  # type: ignore[arg-type]


async def test_entries_are_acknowledged_once_their_batch_is_stored(
    nats_server: NatsServer, nc: Client
) -> None:
    spec = durable()
    cfg = config(
        durable_ingest=spec, publish=FAST_PUBLISH, batch=BatchLimits(max_entries=100, max_delay_ms=20)
    )
    sent = entries(1000)
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await nc.publish("cortex_logging.entry.created", b"{not json")
        await nc.publish("cortex_logging.entry.created.svc", b'{"logId": 1}')
        await until(lambda: gateway.stats.published == 1000 and gateway.stats.total_rejected == 2)
        # Stored entries are acked and rejected ones termed: the work queue empties.
        await until_ingest(nc, spec, (0, 0))
    stored = log_ids(await stored_batches(nc.jetstream(), cfg.stream.name))
    # in: 1002; stored: 1000 once each; rejected: 2; dropped, returned, redelivered: 0.
    assert sorted(stored) == sorted(e["logId"] for e in sent)
    assert gateway.stats.total_dropped == gateway.stats.returned == gateway.stats.redelivered == 0
    assert gateway.stats.received == 1002


async def test_an_entry_the_gateway_fails_on_is_counted_and_terminated(
    nats_server: NatsServer, nc: Client
) -> None:
    spec = durable()
    cfg = config(
        durable_ingest=spec, publish=FAST_PUBLISH, batch=BatchLimits(max_entries=10, max_delay_ms=20)
    )
    sent = entries(40)
    doomed = sent[7]["logId"].encode()
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        fail_decoding(gateway, doomed)
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.published == len(sent) - 1)
        # Ingest went on, and the failed entry was terminated, not left to redeliver: the queue empties.
        await until_ingest(nc, spec, (0, 0))
    # in: 40; stored: 39; dropped: 1 (ingest_failed); redelivered: 0.
    assert dict(gateway.stats.dropped) == {"ingest_failed": 1}
    assert gateway.stats.received == gateway.stats.published + gateway.stats.total_dropped == 40
    assert gateway.stats.redelivered == 0


async def test_rejects_amid_a_read_s_messages_hold_up_none_of_the_rest(
    nats_server: NatsServer, nc: Client
) -> None:
    """A read's messages go to the intake in one call; each reject (terminated, an awaited
    write) holds up the rest of its run, which queue behind it and are taken in turn."""
    spec = durable()
    cfg = config(
        durable_ingest=spec, publish=FAST_PUBLISH, batch=BatchLimits(max_entries=50, max_delay_ms=20)
    )
    sent = entries(300)
    valid = [entry for i, entry in enumerate(sent) if i % 7 != 3]
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await until_ingest(nc, spec, (0, 0))  # (the stream and consumer are made)
        for i, entry in enumerate(sent):  # every 7th a reject, among its neighbours of one read
            headers, body = message(FORMS[i % 3], entry)
            bad = i % 7 == 3
            await nc.publish("cortex_logging.entry.created", b"{not json" if bad else body, headers=headers)
        await nc.flush()  # (one burst: the gateway reads it in runs of many messages)
        await until(lambda: gateway.stats.published == len(valid))
        await until(lambda: gateway.stats.total_rejected == len(sent) - len(valid))
        await until_ingest(nc, spec, (0, 0))  # stored ones acked, rejected ones terminated
    stored = log_ids(await stored_batches(nc.jetstream(), cfg.stream.name))
    # in: 300; stored: 257 once each; rejected: 43; dropped, returned, redelivered: 0.
    assert sorted(stored) == sorted(entry["logId"] for entry in valid)
    assert gateway.stats.received == 300
    assert gateway.stats.total_dropped == gateway.stats.returned == gateway.stats.redelivered == 0


async def test_two_gateways_share_one_consumer(nats_server: NatsServer, nc: Client) -> None:
    spec = durable(fetch_batch=50)
    cfg = config(
        durable_ingest=spec, publish=FAST_PUBLISH, batch=BatchLimits(max_entries=50, max_delay_ms=20)
    )
    other = config(durable_ingest=spec, publish=FAST_PUBLISH, batch=cfg.batch, stream=cfg.stream)
    sent = entries(3000)
    async with (
        running_gateway(nats_server.url, cfg) as (first, _),
        running_gateway(nats_server.url, other) as (second, _),
    ):
        await publish_entries(nc, sent)
        await until(lambda: first.stats.published + second.stats.published == 3000)
        await until_ingest(nc, spec, (0, 0))
    stored = log_ids(await stored_batches(nc.jetstream(), cfg.stream.name))
    # in: 3000; stored: 3000 once each, split between both gateways.
    assert sorted(stored) == sorted(e["logId"] for e in sent)
    assert first.stats.published > 0
    assert second.stats.published > 0


async def test_entries_unpublished_at_shutdown_go_back_to_the_stream(
    nats_server: NatsServer, nc: Client
) -> None:
    spec = durable(ack_wait_s=60.0)  # redelivery after a nak, not after ack_wait
    slow = ThrottleLimits(max_publish_rate=0.5, max_in_flight=1)
    cfg = config(durable_ingest=spec, publish=FAST_PUBLISH, batch=BatchLimits(max_entries=10), throttle=slow)
    sent = entries(100)
    async with running_gateway(nats_server.url, cfg) as (first, _):
        await publish_entries(nc, sent)
        await until(lambda: first.stats.received == 100)
        report = await first.stop(timeout_s=0.5)
    # in: 100; published before the deadline + handed back == 100; dropped: none.
    assert report.unpublished == first.stats.returned > 0
    assert first.stats.published + first.stats.returned == 100
    assert first.stats.total_dropped == 0
    async with running_gateway(
        nats_server.url, config(durable_ingest=spec, publish=FAST_PUBLISH, stream=cfg.stream)
    ) as (
        second,
        _,
    ):
        await until(lambda: second.stats.published == first.stats.returned, timeout_s=20)
        assert second.stats.redelivered == first.stats.returned
    stored = log_ids(await stored_batches(nc.jetstream(), cfg.stream.name))
    assert sorted(stored) == sorted(e["logId"] for e in sent)


async def test_a_gateway_killed_mid_batch_loses_nothing(nats_server: NatsServer, nc: Client) -> None:
    """SIGKILL a gateway process holding an open batch and others in flight; the next one takes over."""
    stream = "KILLED_MID_BATCH"
    args = [
        "--nats-url",
        nats_server.url,
        "--http-port",
        "0",
        "--stream-name",
        stream,
        "--ingest",
        "jetstream",
    ]
    args += ["--ingest-ack-wait-s", "4", "--publish-timeout-s", "0.5", "--publish-retry-deadline-s", "1"]
    args += ["--max-batch-entries", "100", "--max-publish-rate", "2", "--max-in-flight", "1"]
    sent = entries(2000)
    spec = DurableIngest(ack_wait_s=4.0)
    async with gateway_process(*args) as (proc, lines):
        port = int(re.search(r"http=http://127.0.0.1:(\d+)", "".join(lines)).group(1))  # type: ignore[union-attr]
        await publish_entries(nc, sent)
        async with asyncio.timeout(30):
            while metric((await http_get(port, "/metrics"))[1], "log_gateway_batches_published_total") < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    published_before = log_ids(await stored_batches(nc.jetstream(), stream))
    pending_at_kill = (await ingest_state(nc, spec))[1]
    output = dataclasses.replace(config().stream, name=stream)
    cfg = config(durable_ingest=spec, publish=FAST_PUBLISH, stream=output)
    async with running_gateway(nats_server.url, cfg) as (second, _):
        await until_ingest(nc, spec, (0, 0), timeout_s=60)
        await until(lambda: second.acc.held_entries == 0)
    stored = log_ids(await stored_batches(nc.jetstream(), stream))
    copies = Counter(stored)
    # in: 2000; stored: every entry at least once; duplicates only among what was unacknowledged at the kill.
    assert set(copies) == {e["logId"] for e in sent}
    assert 0 < len(published_before) < 2000
    assert sum(copies.values()) - len(copies) <= pending_at_kill
    assert second.stats.redelivered > 0
    assert second.stats.total_dropped == 0


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"buffer": BufferLimits(overflow=OverflowPolicy.DROP_OLDEST)}, "overflow policy 'block'"),
        ({"durable_ingest": DurableIngest(ack_wait_s=2.0)}, "ingest_ack_wait_s"),
    ],
)
def test_durable_ingest_settings_that_would_lose_or_duplicate_are_refused(
    changes: dict[str, object], needle: str
) -> None:
    base: dict[str, object] = {"durable_ingest": DurableIngest()}
    with pytest.raises(ValueError, match=needle):
        config(**{**base, **changes})


async def test_a_throttled_gateway_fetches_only_what_it_can_publish_before_ack_wait(
    nats_server: NatsServer, nc: Client
) -> None:
    """At 250 entries/s a fetch of everything would outlast a 3 s ack_wait; the gateway holds 100."""
    spec = durable(ack_wait_s=3.0)
    slow = ThrottleLimits(max_publish_rate=5, max_in_flight=1)
    cfg = config(durable_ingest=spec, publish=FAST_PUBLISH, batch=BatchLimits(max_entries=50), throttle=slow)
    sent = entries(1500)
    held: list[int] = []
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)

        def done() -> bool:
            held.append(gateway.acc.held_entries)
            return gateway.stats.published == len(sent)

        await until(done)
    stored = log_ids(await stored_batches(nc.jetstream(), cfg.stream.name))
    # in: 1500 over ~6 s; stored: each once; redelivered: none.
    assert sorted(stored) == sorted(e["logId"] for e in sent)
    assert gateway.stats.redelivered == 0
    assert max(held) <= 2 * slow.max_in_flight * 50


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"stream": "a b"}, "ingest stream name"),
        ({"replicas": 0}, "ingest_replicas"),
        ({"ack_wait_s": 0.0}, "ack_wait_s"),
        ({"max_ack_pending": 0}, "max_ack_pending"),
    ],
)
def test_bad_durable_settings_are_named(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        DurableIngest(**changes)  # type: ignore[arg-type]


async def test_settling_without_a_connection_is_counted_not_raised(nats_server: NatsServer) -> None:
    spec = durable()
    client = await nats.connect(nats_server.url)
    psub = await ensure_ingest(client.jetstream(), spec, ("settle.test",))
    await client.publish("settle.test", b"{}")
    [msg] = await psub.fetch(1, timeout=5)
    await client.close()
    # A handle that is no message is skipped; the message's ack cannot be sent: counted.
    assert await settle([None, msg], Settle.ACK) == 1
