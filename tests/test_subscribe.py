"""The subscriber API against a real JetStream: at least once, handed over exactly once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts import LogBatchCreated, LogEntryCreated, encode_structured, make_attributes
from gateway.consumers.subscribe import BatchSubscriber, Filters, SubscriberConfig
from gateway.core.limits import BatchLimits
from gateway.process.natsserver import NatsServer
from publishers import StreamSpec, ensure_stream
from tests import samples
from tests.helpers import config, entries, publish_entries, running_gateway, until


async def produce(nats_server: NatsServer, nc: Client, n: int) -> str:
    """Run a gateway over ``n`` entries in small batches; returns the stream name."""
    cfg = config(batch=BatchLimits(max_entries=7, max_delay_ms=10))
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, entries(n))
        await until(lambda: gateway.stats.received == n)
    return cfg.stream.name


def fast(stream: str, **changes: Any) -> SubscriberConfig:
    base: dict[str, Any] = {
        "stream": stream,
        "backoff_initial_s": 0.02,
        "backoff_max_s": 0.1,
        "durable": "d" + uuid.uuid4().hex[:8],
    }
    base.update(changes)
    return SubscriberConfig(**base)


async def test_failing_first_deliveries_still_hand_over_every_entry_once(
    nats_server: NatsServer, nc: Client
) -> None:
    stream = await produce(nats_server, nc, 200)
    attempts: Counter[str] = Counter()
    handled: list[str] = []

    async def handler(entry: LogEntryCreated) -> None:
        attempts[entry.logId] += 1
        if int(entry.logId[-3:]) % 5 == 0 and attempts[entry.logId] == 1:
            raise RuntimeError("transient")
        handled.append(entry.logId)

    async with BatchSubscriber(nc, fast(stream)) as sub:
        task = asyncio.create_task(sub.run_entries(handler))
        await until(lambda: len(handled) >= 200)
        task.cancel()
    assert sorted(handled) == sorted(e["logId"] for e in entries(200))
    assert sub.stats.handler_errors == 40
    assert sub.stats.redeliveries >= 1
    assert sub.stats.duplicate_entries > 0  # entries of a failed batch that were handled before the failure


async def test_a_restarted_consumer_resumes_where_it_left_off(nats_server: NatsServer, nc: Client) -> None:
    stream = await produce(nats_server, nc, 140)
    cfg = fast(stream, durable="resume")
    first: list[str] = []
    sub = BatchSubscriber(nc, cfg)
    await sub.start()
    async for entry in sub.entries():
        first.append(entry.logId)
        if len(first) == 50:
            break
    await sub.stop()  # "killed": the batch in hand is released, not acked
    second: list[str] = []
    async with BatchSubscriber(nc, cfg) as again:
        async for entry in again.entries():
            second.append(entry.logId)
            if len(set(first) | set(second)) == 140:
                break
    assert set(first) | set(second) == {e["logId"] for e in entries(140)}
    # Only the batch that was in hand at the stop may come again.
    assert len(set(first) & set(second)) <= 7


async def test_handler_that_keeps_failing_goes_to_dead_letter(nats_server: NatsServer, nc: Client) -> None:
    stream = await produce(nats_server, nc, 7)
    dead: list[Msg] = []

    async def on_dead(msg: Msg) -> None:
        dead.append(msg)

    await nc.subscribe("cortex_logging.batch.dead_letter", cb=on_dead)

    async def broken(batch: LogBatchCreated) -> None:
        raise ValueError(f"cannot handle {batch.batchId}")

    async with BatchSubscriber(nc, fast(stream, max_deliver=3)) as sub:
        task = asyncio.create_task(sub.run(broken))
        await until(lambda: len(dead) == 1)
        task.cancel()
    data = json.loads(dead[0].data)["data"]
    assert "cannot handle" in data["error"]
    assert data["attempts"] == 3
    assert sub.stats.handler_errors == 3
    assert sub.stats.dead_lettered == 1


def batch_message(
    gateway_id: str, sequence: int, *, batch_id: str | None = None, dropped: int = 0
) -> tuple[dict[str, str], bytes]:
    entry = samples.entry(sequence)
    data = {
        "batchId": batch_id or str(uuid.uuid4()),
        "gatewayId": gateway_id,
        "sequence": sequence,
        "count": 1,
        "entries": [entry],
        "firstCreatedAt": entry["createdAt"],
        "lastCreatedAt": entry["createdAt"],
        "levelCounts": {entry["level"]: 1},
        "droppedSinceLast": dropped,
        "droppedByReason": {"overflow_oldest": dropped} if dropped else {},
    }
    return encode_structured(make_attributes(LogBatchCreated.EVENT_TYPE, "//test"), orjson.dumps(data))


async def test_gaps_drops_and_duplicate_batches_are_reported_not_swallowed(nc: Client) -> None:
    js = nc.jetstream()
    await ensure_stream(js, StreamSpec(name="GAPS", subjects=(LogBatchCreated.EVENT_TYPE,)))
    for seq, batch_id, dropped in [(1, "b1", 0), (2, "b2", 0), (2, "b2", 0), (5, "b5", 3), (6, "b6", 0)]:
        headers, body = batch_message("gw-a", seq, batch_id=batch_id, dropped=dropped)
        await js.publish(LogBatchCreated.EVENT_TYPE, body, headers=headers)  # no Nats-Msg-Id: stored twice
    gaps: list[tuple[str, int, int]] = []
    drops: list[tuple[str, int, dict[str, int]]] = []
    seen: list[int] = []
    sub = BatchSubscriber(
        nc, fast("GAPS"), on_gap=lambda *g: gaps.append(g), on_dropped=lambda *d: drops.append(d)
    )
    async with sub:
        async for batch in sub.batches():
            seen.append(batch.sequence)
            if batch.sequence == 6:
                break
    assert seen == [1, 2, 5, 6]
    assert gaps == [("gw-a", 3, 4)]
    assert drops == [("gw-a", 3, {"overflow_oldest": 3})]
    assert sub.stats.duplicate_batches == 1
    assert sub.stats.missing_batches == 2


async def test_filters_by_level_and_source(nats_server: NatsServer, nc: Client) -> None:
    stream = await produce(nats_server, nc, 60)
    got: list[LogEntryCreated] = []
    filters = Filters(levels=frozenset({"error", "fatal"}), sources=frozenset({"svc-1"}))
    expected = [e for e in entries(60) if e["level"] in ("error", "fatal") and e["source"] == "svc-1"]
    async with BatchSubscriber(nc, fast(stream), filters=filters) as sub:
        async for entry in sub.entries():
            got.append(entry)
            if len(got) == len(expected):
                break
    assert sorted(e.logId for e in got) == sorted(e["logId"] for e in expected)


async def test_core_nats_mode_delivers_live_batches(nats_server: NatsServer, nc: Client) -> None:
    cfg = config(batch=BatchLimits(max_entries=5, max_delay_ms=10))
    got: list[str] = []
    async with (
        BatchSubscriber(nc, SubscriberConfig(durable=None)) as sub,
        running_gateway(nats_server.url, cfg),
    ):
        await nc.flush()
        await publish_entries(nc, entries(20))
        async for entry in sub.entries():
            got.append(entry.logId)
            if len(got) == 20:
                break
    assert sorted(got) == sorted(e["logId"] for e in entries(20))


async def test_stats_count_the_entries_of_batches_handed_over(nats_server: NatsServer, nc: Client) -> None:
    stream = await produce(nats_server, nc, 70)
    handed = 0
    async with BatchSubscriber(nc, fast(stream)) as sub:
        async for batch in sub.batches():
            assert sub.stats.entries == handed  # the batches before this one, each counted once
            handed += len(batch.entries)
            if handed == 70:
                break
    assert sub.stats.batches == 9  # the tenth was in hand at the break, not yet handled
    assert sub.stats.entries == 63

    async def handler(batch: LogBatchCreated) -> None:
        pass

    async with BatchSubscriber(nc, fast(stream)) as again:
        task = asyncio.create_task(again.run(handler))
        await until(lambda: again.stats.entries == 70)
        task.cancel()
    assert again.stats.batches == 10
