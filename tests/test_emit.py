"""Emitting from Python services: the async publisher and the logging handler, on a real nats-server."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from nats.aio.client import Client
from opentelemetry.sdk.trace import TracerProvider

from contracts import (
    ContentMode,
    LogArchived,
    LogEntryCreated,
    LogStreamStarted,
    decode_contract,
)
from gateway.core.limits import BatchLimits, OverflowPolicy
from gateway.process.natsserver import NatsServer
from publishers import EventPublisher, HandlerConfig, NatsLogHandler, level_name
from tests import samples
from tests.helpers import collect, stored_batches, until

tracer = TracerProvider().get_tracer("tests")


@pytest.mark.parametrize("mode", [ContentMode.STRUCTURED, ContentMode.BINARY])
async def test_publisher_sends_contracts_with_trace_context(nc: Client, mode: ContentMode) -> None:
    entries = await collect(nc, LogEntryCreated.EVENT_TYPE)
    suffixed = await collect(nc, LogEntryCreated.EVENT_TYPE + ".>")
    archived = await collect(nc, LogArchived.EVENT_TYPE)
    publisher = EventPublisher(nc, source="billing", mode=mode)
    with tracer.start_as_current_span("charge") as span:
        sent = await publisher.log("error", "card declined", component="charge", metadata={"amount": 12})
        await publisher.publish(LogEntryCreated.parse(samples.ENTRY), subject_suffix="billing")
    await publisher.publish(LogArchived.parse(samples.ARCHIVED))
    await until(lambda: len(entries) == 1 and len(suffixed) == 1 and len(archived) == 1)
    assert suffixed[0].subject == "cortex_logging.entry.created.billing"
    event, entry = decode_contract(entries[0].headers, entries[0].data, LogEntryCreated)
    context = span.get_span_context()
    assert event.mode is mode
    flags = int(context.trace_flags)
    assert event.attributes["traceparent"] == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    assert entry.to_data()["traceId"] == f"{context.trace_id:032x}"
    assert entry.to_data()["spanId"] == f"{context.span_id:016x}"
    assert entry.logId == sent.logId
    assert entry.source == "billing"
    assert entry.metadata == {"amount": 12}
    assert (
        decode_contract(archived[0].headers, archived[0].data, LogArchived)[1].to_data() == samples.ARCHIVED
    )


async def test_publisher_without_a_span_sends_no_trace(nc: Client) -> None:
    got = await collect(nc, LogStreamStarted.EVENT_TYPE)
    await EventPublisher(nc, source="svc").publish(LogStreamStarted.parse(samples.STREAM_STARTED))
    await until(lambda: len(got) == 1)
    assert "traceparent" not in json.loads(got[0].data)
    with pytest.raises(ValueError, match="suffix"):
        await EventPublisher(nc, source="svc").publish(
            LogStreamStarted.parse(samples.STREAM_STARTED), subject_suffix="a.>"
        )


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"test.{uuid.uuid4().hex[:8]}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def test_stdlib_levels_map_to_platform_levels() -> None:
    assert [level_name(n) for n in (5, 10, 20, 25, 30, 40, 50, 60)] == [
        "debug",
        "debug",
        "info",
        "info",
        "warn",
        "error",
        "fatal",
        "fatal",
    ]


async def log_from_threads_and_tasks(logger: logging.Logger) -> None:
    """200 records from each of 4 threads and 100 from each of 3 tasks, all at once."""

    def from_thread(t: int) -> None:
        for i in range(200):
            logger.info("thread %d record %d", t, i, extra={"worker": t, "userId": f"u{t}"})

    async def from_task(k: int) -> None:
        for i in range(100):
            logger.warning("task %d record %d", k, i, extra={"task": k})
            if i % 10 == 0:
                await asyncio.sleep(0)

    threads = [threading.Thread(target=from_thread, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(from_task(k) for k in range(3)))

    def join_all() -> None:
        for thread in threads:
            thread.join()

    await asyncio.to_thread(join_all)


async def test_records_from_threads_and_tasks_all_arrive(
    nats_server: NatsServer, nc: Client, logger: logging.Logger
) -> None:
    got = await collect(nc, "cortex_logging.entry.created.>")
    handler = NatsLogHandler(HandlerConfig(servers=(nats_server.url,), service="orders"))
    logger.addHandler(handler)
    await log_from_threads_and_tasks(logger)
    await asyncio.to_thread(handler.flush)
    await until(lambda: len(got) == 1100)
    entries = [decode_contract(m.headers, m.data, LogEntryCreated)[1] for m in got]
    assert {e.message for e in entries} == {
        f"thread {t} record {i}" for t in range(4) for i in range(200)
    } | {f"task {k} record {i}" for k in range(3) for i in range(100)}
    assert handler.stats.emitted == handler.stats.published == 1100
    assert not handler.stats.dropped
    by_thread = next(e for e in entries if e.message == "thread 2 record 7")
    assert by_thread.level == "info"
    assert by_thread.userId == "u2"
    assert by_thread.component == logger.name
    assert by_thread.source == "orders"
    assert by_thread.metadata is not None
    assert by_thread.metadata["worker"] == 2
    assert got[0].subject == "cortex_logging.entry.created.orders"


async def test_exception_info_goes_into_metadata(
    nats_server: NatsServer, nc: Client, logger: logging.Logger
) -> None:
    got = await collect(nc, "cortex_logging.entry.created.>")
    handler = NatsLogHandler(HandlerConfig(servers=(nats_server.url,), service="orders"))
    logger.addHandler(handler)

    def charge() -> None:
        raise ValueError("bad amount")

    try:
        charge()
    except ValueError:
        logger.exception("charge failed", extra={"amount": object()})
    await asyncio.to_thread(handler.flush)
    await until(lambda: len(got) == 1)
    entry = decode_contract(got[0].headers, got[0].data, LogEntryCreated)[1]
    assert entry.level == "error"
    assert entry.metadata is not None
    exc: Any = entry.metadata["exception"]
    assert exc["type"] == "ValueError"
    assert exc["message"] == "bad amount"
    assert "in charge" in exc["stack"]
    assert str(entry.metadata["amount"]).startswith("<object object")  # not JSON: kept as text


@pytest.mark.parametrize("policy", [OverflowPolicy.DROP_NEWEST, OverflowPolicy.DROP_OLDEST])
async def test_a_full_queue_drops_and_counts_instead_of_blocking(
    nats_server: NatsServer, nc: Client, logger: logging.Logger, policy: OverflowPolicy
) -> None:
    got = await collect(nc, "cortex_logging.entry.created.>")
    handler = NatsLogHandler(
        HandlerConfig(servers=(nats_server.url,), service="burst", queue_size=20, overflow=policy)
    )
    logger.addHandler(handler)
    calls = 5000
    for i in range(calls):
        logger.info("record %d", i)
    await asyncio.to_thread(handler.flush)
    stats = handler.stats
    dropped = sum(stats.dropped.values())
    assert dropped > 0
    assert calls == stats.emitted + stats.dropped["overflow_newest"]
    assert stats.emitted == stats.published + stats.dropped["overflow_oldest"]
    await until(lambda: len(got) == stats.published)
    if policy is OverflowPolicy.DROP_OLDEST:
        assert (
            decode_contract(got[-1].headers, got[-1].data, LogEntryCreated)[1].message
            == f"record {calls - 1}"
        )


def test_blocking_is_not_a_policy_for_a_handler() -> None:
    with pytest.raises(ValueError, match="never block"):
        HandlerConfig(servers=("nats://x:1",), service="s", overflow=OverflowPolicy.BLOCK)


async def test_library_mode_publishes_batches_itself(
    nats_server: NatsServer, nc: Client, logger: logging.Logger
) -> None:
    config = HandlerConfig(
        servers=(nats_server.url,), service="solo", batching=BatchLimits(max_entries=50, max_delay_ms=50)
    )
    handler = NatsLogHandler(config)
    logger.addHandler(handler)
    for i in range(230):
        logger.error("failure %d", i)
    await asyncio.to_thread(handler.close)
    batches = await stored_batches(nc.jetstream(), "CORTEX_LOGGING")
    messages = sorted(e.message for b in batches for e in b.batch.entries)
    assert messages == sorted(f"failure {i}" for i in range(230))
    assert all(b.batch.count <= 50 and b.batch.source is None for b in batches)
    assert [b.batch.sequence for b in batches] == list(range(1, len(batches) + 1))
    assert handler.stats.published == 230


async def test_close_meets_its_deadline_when_the_bus_is_gone(logger: logging.Logger) -> None:
    server = NatsServer().start()
    handler = NatsLogHandler(HandlerConfig(servers=(server.url,), service="lost", flush_timeout_s=1.0))
    logger.addHandler(handler)
    logger.info("first")
    await asyncio.to_thread(handler.flush)
    server.close()
    for i in range(50):
        logger.info("into the void %d", i)
    await asyncio.wait_for(asyncio.to_thread(handler.close), 10)
    assert handler.stats.emitted == 51


async def test_structlog_through_the_stdlib_handler(
    nats_server: NatsServer, nc: Client, logger: logging.Logger
) -> None:
    got = await collect(nc, "cortex_logging.entry.created.>")
    handler = NatsLogHandler(HandlerConfig(servers=(nats_server.url,), service="agents"))
    logger.addHandler(handler)
    log = structlog.wrap_logger(
        logger,
        processors=[structlog.stdlib.add_log_level, structlog.stdlib.render_to_log_kwargs],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    log.bind(sessionId="s-9").warning("tool call slow", tool="search", ms=812)
    await asyncio.to_thread(handler.flush)
    await until(lambda: len(got) == 1)
    entry = decode_contract(got[0].headers, got[0].data, LogEntryCreated)[1]
    assert entry.level == "warn"
    assert entry.message == "tool call slow"
    assert entry.sessionId == "s-9"
    assert entry.metadata is not None
    assert entry.metadata["tool"] == "search"
    assert entry.metadata["ms"] == 812


async def test_flush_and_emit_after_close_are_harmless(
    nats_server: NatsServer, logger: logging.Logger
) -> None:
    handler = NatsLogHandler(HandlerConfig(servers=(nats_server.url,), service="late"))
    logger.addHandler(handler)
    logger.info("before")
    await asyncio.to_thread(handler.close)
    handler.flush()  # logging.shutdown() does this again at interpreter exit
    handler.close()
    logger.info("after close")  # counted, never raised
    assert handler.stats.published == 1


async def test_records_logged_just_before_interpreter_exit_arrive(
    nats_server: NatsServer, nc: Client
) -> None:
    """No flush, no close: logging.shutdown() at exit drains the handler within its deadline."""
    got = await collect(nc, "cortex_logging.entry.created.>")
    script = (
        "import logging\n"
        "from publishers import HandlerConfig, NatsLogHandler\n"
        f"handler = NatsLogHandler(HandlerConfig(servers=({nats_server.url!r},), service='exiting'))\n"
        "log = logging.getLogger('app')\n"
        "log.setLevel(logging.INFO)\n"
        "log.addHandler(handler)\n"
        "for i in range(300):\n"
        "    log.info('last words %d', i)\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    await until(lambda: len(got) == 300)
    messages = {decode_contract(m.headers, m.data, LogEntryCreated)[1].message for m in got}
    assert messages == {f"last words {i}" for i in range(300)}


async def test_the_handler_keeps_what_the_call_saw(
    nats_server: NatsServer, nc: Client, logger: logging.Logger
) -> None:
    """The worker formats plain messages later; a mutable argument is formatted in the call, the
    span is the caller's, a filter still filters, and a bad format is counted, never raised."""
    got = await collect(nc, "cortex_logging.entry.created.>")
    handler = NatsLogHandler(HandlerConfig(servers=(nats_server.url,), service="calls"))
    handler.addFilter(lambda record: record.msg != "filtered out")
    logger.addHandler(handler)
    basket = ["apple"]
    with tracer.start_as_current_span("checkout") as span:
        logger.info("basket %s", basket)
    basket.append("pear")
    logger.info("plain %d of %s", 3, "x", extra={"userId": "u-4", "step": 2})
    logger.info("filtered out")
    handler.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 1, "bad %d", ("nan",), None))
    await asyncio.to_thread(handler.flush)
    await until(lambda: len(got) == 2)
    decoded = [decode_contract(m.headers, m.data, LogEntryCreated) for m in got]
    entries = {entry.message: (event, entry) for event, entry in decoded}
    assert set(entries) == {"basket ['apple']", "plain 3 of x"}
    event, traced = entries["basket ['apple']"]
    context = span.get_span_context()
    assert traced.to_data()["traceId"] == f"{context.trace_id:032x}"
    assert traced.to_data()["spanId"] == f"{context.span_id:016x}"
    assert event.attributes["traceparent"].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    plain = entries["plain 3 of x"][1]
    assert "traceId" not in plain.to_data()
    assert plain.userId == "u-4"
    assert plain.metadata is not None
    assert plain.metadata["step"] == 2
    assert handler.stats.emitted == 3
    assert handler.stats.published == 2
    assert handler.stats.dropped == {"error": 1}
