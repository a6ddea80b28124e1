"""``logId`` is any string: entries with an empty or a reused one are all handed over (query and
BatchSubscriber, which tail uses); only an entry the same in every field as one before is a repeat."""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio.client import Client

from contracts import LogEntryCreated
from contracts.query import LogQuery
from gateway.consumers.query import QueryStats, query_page
from gateway.consumers.subscribe import BatchSubscriber, SubscriberConfig
from gateway.core.limits import BatchLimits
from gateway.process.natsserver import NatsServer
from tests import samples
from tests.helpers import config, publish_entries, running_gateway, stored_batches, until


def sent_entries() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Three entries with an empty logId, three sharing one, each different; and a repeat."""
    empty = [samples.entry(i, logId="", message=f"no id {i}") for i in range(3)]
    shared = [samples.entry(i, logId="same", message=f"shared id {i}") for i in range(3)]
    repeat = samples.entry(9, message="sent twice, identical")
    return [*empty, *shared, repeat], repeat


async def stored(nats_server: NatsServer, nc: Client) -> tuple[str, list[dict[str, Any]], int]:
    """The entries (and the repeat, twice, in two batches) stored by a gateway; its stream and
    how many batches it holds."""
    distinct, repeat = sent_entries()
    cfg = config(batch=BatchLimits(max_entries=4, max_delay_ms=10))
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, distinct)
        await until(lambda: gateway.stats.published == len(distinct))
        await publish_entries(nc, [repeat])
        await until(lambda: gateway.stats.published == len(distinct) + 1)
    return cfg.stream.name, distinct, len(await stored_batches(nc.jetstream(), cfg.stream.name))


async def test_query_hands_over_every_entry_with_an_empty_or_shared_log_id(
    nats_server: NatsServer, nc: Client
) -> None:
    stream, distinct, _ = await stored(nats_server, nc)
    stats = QueryStats()
    page = await query_page(nc, LogQuery(limit=100), stream=stream, stats=stats)
    assert sorted(e.message for e in page.entries) == sorted(e["message"] for e in distinct)
    assert stats.duplicates == 1  # the identical repeat, in its second batch


async def test_subscriber_entries_hand_over_every_entry_with_an_empty_or_shared_log_id(
    nats_server: NatsServer, nc: Client
) -> None:
    stream, distinct, batches = await stored(nats_server, nc)
    got: list[LogEntryCreated] = []
    handled: list[LogEntryCreated] = []

    async def read(sub: BatchSubscriber) -> None:
        async for entry in sub.entries():
            got.append(entry)  # noqa: PERF401 - one by one: the loop never ends, it is cancelled

    async def handle(entry: LogEntryCreated) -> None:
        handled.append(entry)

    cfg = SubscriberConfig(stream=stream, durable="ids")
    async with (
        BatchSubscriber(nc, cfg) as sub,
        BatchSubscriber(nc, SubscriberConfig(stream=stream, durable="ids-run")) as run,
    ):
        tasks = [asyncio.create_task(read(sub)), asyncio.create_task(run.run_entries(handle))]
        await until(lambda: sub.stats.batches == run.stats.batches == batches, 10)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    want = sorted(e["message"] for e in distinct)
    assert sorted(e.message for e in got) == want
    assert sorted(e.message for e in handled) == want
    assert (sub.stats.duplicate_entries, run.stats.duplicate_entries) == (1, 1)
