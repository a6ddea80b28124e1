"""The logging handler's bulk worker: one write of HPUB operations per chunk, the same bytes as
publish and the contract encoders, extras and spans as each call had them, oversize counted,
and a flush that a busy thread cannot slow down. All on a real nats-server."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.errors import BadHeaderError, BadSubjectError
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider

from contracts import ContentMode, LogEntryCreated, decode_contract
from contracts.cloudevents import encode_binary, encode_structured, make_attributes
from gateway.process.natsserver import NatsServer
from publishers import HandlerConfig, NatsLogHandler
from publishers.entrysink import EntrySink
from publishers.handler import _extra_fields
from publishers.rawwrite import header_block, hpub, subject_bytes, write_commands, write_problems
from publishers.tracing import trace_extensions
from tests.helpers import collect, until

tracer = TracerProvider().get_tracer("tests")


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"test.bulk.{uuid.uuid4().hex[:8]}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def decoded(got: list[Any]) -> list[LogEntryCreated]:
    return [decode_contract(m.headers, m.data, LogEntryCreated)[1] for m in got]


HEADER_SETS = [
    {"content-type": "application/cloudevents+json"},
    {"content-type": "application/json", "ce-id": "a-1", "ce-time": "2026-01-01T00:00:00.000Z"},
    {"ce-x": "  padded value  ", "ce-crlf": "one\r\ntwo", " ": "an empty name is skipped"},
]


@pytest.mark.parametrize("headers", HEADER_SETS)
async def test_bulk_operations_deliver_what_publish_delivers(nc: Client, headers: dict[str, str]) -> None:
    got = await collect(nc, "bulk.same")
    body = b'{"k":"v"}'
    await nc.publish("bulk.same", body, headers=headers)
    command = hpub(subject_bytes("bulk.same"), header_block(headers), body)
    await write_commands(nc, [command, command], len(body) * 2)
    await nc.flush()
    await until(lambda: len(got) == 3)
    assert [(m.headers, m.data) for m in got[1:]] == [(got[0].headers, got[0].data)] * 2
    assert nc.stats["out_msgs"] >= 3


async def test_bad_names_are_refused_as_publish_refuses_them(nc: Client) -> None:
    with pytest.raises(BadHeaderError):
        await nc.publish("bulk.bad", b"x", headers={"bad name": "v"})
    with pytest.raises(BadHeaderError):
        header_block({"bad name": "v"})
    for subject in ("", "a b", "a\r\nPUB x 1"):
        with pytest.raises(BadSubjectError):
            subject_bytes(subject)
    assert write_problems(nc) == []

    class Changed(Client):
        async def _send_command(self, data: bytes, priority: bool = False) -> None:
            return None

        def _flush_pending(self, force_flush: bool = False) -> Any:
            return None

    assert len(write_problems(Changed())) == 2


@pytest.mark.parametrize("mode", [ContentMode.STRUCTURED, ContentMode.BINARY])
async def test_events_are_the_contract_encoders_bytes(
    nc: Client, logger: logging.Logger, mode: ContentMode
) -> None:
    handler = NatsLogHandler(HandlerConfig(servers=("nats://unused:1",), service="bytes", mode=mode))
    records = [
        logger.makeRecord(logger.name, logging.INFO, __file__, 1, "n %d", (i,), None) for i in range(2)
    ]
    with tracer.start_as_current_span("span"):
        traced = otel_context.get_current()
    entries = handler.encode([(records[0], None, traced), (records[1], None, None)])
    sink = EntrySink(handler, nc)
    reference = encode_structured if mode is ContentMode.STRUCTURED else encode_binary
    for (data, body, trace, _created), (headers, block, payload) in zip(
        entries, sink.messages(entries), strict=True
    ):
        attrs = make_attributes(
            LogEntryCreated.EVENT_TYPE,
            "//bytes",
            event_id=data["logId"],
            time=data["createdAt"],
            extensions=trace_extensions(trace) if trace else None,
        )
        assert (headers, payload) == reference(attrs, body)
        assert block == header_block(headers)
    assert "traceparent" in str(sink.messages(entries[:1]))
    assert "traceparent" not in str(sink.messages(entries[1:]))


async def test_an_event_over_the_payload_limit_is_counted_and_the_rest_go_on(
    nats_server: NatsServer, nc: Client, logger: logging.Logger
) -> None:
    got = await collect(nc, "cortex_logging.entry.created.>")
    handler = NatsLogHandler(HandlerConfig(servers=(nats_server.url,), service="big"))
    logger.addHandler(handler)
    logger.info("before")
    logger.info("x" * (nc.max_payload + 1))
    logger.info("after")
    await asyncio.to_thread(handler.flush)
    await until(lambda: len(got) == 2)
    assert [e.message for e in decoded(got)] == ["before", "after"]
    assert handler.stats.dropped == {"oversize": 1}
    assert handler.stats.published == 2


class EarlyRecord(logging.LogRecord):
    """A record factory that sets an attribute before the constructor sets its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.tenant = "t-1"
        super().__init__(*args, **kwargs)


def test_extras_are_read_as_the_call_set_them(logger: logging.Logger) -> None:
    handler = NatsLogHandler(HandlerConfig(servers=("nats://unused:1",), service="extras"))

    def metadata(record: logging.LogRecord) -> Any:
        return handler.entry_data(record, record.getMessage(), {}, 7)["metadata"]

    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "m", (), None, extra={"b": 1, "a": 2})
    logging.Formatter("%(asctime)s %(message)s").format(record)  # another handler formatted it first
    assert list(metadata(record).items()) == [("b", 1), ("a", 2), ("pid", 7)]
    assert metadata(logger.makeRecord(logger.name, logging.INFO, __file__, 1, "m", (), None)) == {"pid": 7}
    early = EarlyRecord(logger.name, logging.INFO, __file__, 1, "m", (), None)
    early.late = True
    assert metadata(early) == {"tenant": "t-1", "late": True, "pid": 7}


@pytest.mark.parametrize("mode", [ContentMode.STRUCTURED, ContentMode.BINARY])
async def test_each_record_keeps_its_own_span_within_a_chunk(
    nats_server: NatsServer, nc: Client, logger: logging.Logger, mode: ContentMode
) -> None:
    got = await collect(nc, "cortex_logging.entry.created.>")
    handler = NatsLogHandler(HandlerConfig(servers=(nats_server.url,), service="spans", mode=mode))
    logger.addHandler(handler)
    with tracer.start_as_current_span("a") as a:
        logger.info("in a")
    logger.info("in none")
    with tracer.start_as_current_span("b") as b:
        logger.info("in b")
        with tracer.start_as_current_span("c") as c:
            logger.info("in c")
        logger.info("in b again")
    await asyncio.to_thread(handler.flush)
    await until(lambda: len(got) == 5)
    spans = {e.message: e.to_data().get("spanId") for e in decoded(got)}
    assert spans == {
        "in a": f"{a.get_span_context().span_id:016x}",
        "in none": None,
        "in b": f"{b.get_span_context().span_id:016x}",
        "in c": f"{c.get_span_context().span_id:016x}",
        "in b again": f"{b.get_span_context().span_id:016x}",
    }
    event = decode_contract(got[2].headers, got[2].data, LogEntryCreated)[0]
    assert event.mode is mode
    assert event.attributes["traceparent"].split("-")[2] == spans["in b"]


async def test_a_flush_is_not_slowed_by_a_thread_busy_logging(
    nats_server: NatsServer, nc: Client, logger: logging.Logger
) -> None:
    """A thread that holds the GIL and logs makes the worker stay away between slices, except
    while a thread waits in flush: then the worker takes its full share and the flush meets its
    deadline."""
    got = await collect(nc, "cortex_logging.entry.created.mine")
    handler = NatsLogHandler(HandlerConfig(servers=(nats_server.url,), service="mine", queue_size=200_000))
    logger.addHandler(handler)
    stop = threading.Event()

    def busy() -> None:  # holds the GIL, and logs a record every 0.1 ms
        while not stop.is_set():
            logger.info("noise")
            until = time.perf_counter() + 0.0001
            while time.perf_counter() < until:
                pass

    spinner = threading.Thread(target=busy)
    spinner.start()
    try:
        for i in range(3000):
            logger.info("record %d", i)
        before = handler.stats.emitted
        await asyncio.to_thread(handler.flush, 3.0)
        published = handler.stats.published
    finally:
        stop.set()
        spinner.join()
    assert published >= before > 3000
    await until(lambda: sum(m.data.count(b'"message":"record ') for m in got) == 3000)
    assert not handler.stats.dropped


async def test_a_flush_request_ends_once_the_queue_is_sent(
    nats_server: NatsServer, logger: logging.Logger
) -> None:
    """After a flush the worker lingers for bulk takes again (it does not while a flush waits)."""
    handler = NatsLogHandler(HandlerConfig(servers=(nats_server.url,), service="again"))
    logger.addHandler(handler)
    logger.info("one")
    await asyncio.to_thread(handler.flush)
    assert handler.stats.published == 1
    await until(lambda: not handler.flush_requested)
    logger.info("two")
    await asyncio.to_thread(handler.flush)
    assert handler.stats.published == 2


async def test_records_logged_while_the_server_is_away_arrive_when_it_is_back(logger: logging.Logger) -> None:
    """Down, the worker publishes one event at a time into nats-py's reconnect buffer; back up,
    it writes whole chunks again: every record arrives, none counted dropped."""
    first = NatsServer().start()
    handler = NatsLogHandler(
        HandlerConfig(servers=(first.url,), service="away", connect={"reconnect_time_wait": 0.2})
    )
    logger.addHandler(handler)
    logger.info("before 0")
    await asyncio.to_thread(handler.flush)
    port = first.port
    first.close()
    for i in range(20):
        logger.info("while away %d", i)
    with NatsServer(port=port) as second:
        watcher = await nats.connect(second.url)
        try:
            got = await collect(watcher, "cortex_logging.entry.created.>")
            logger.info("back 0")
            await asyncio.to_thread(handler.flush, 10.0)
            await until(lambda: len(got) == 21)
        finally:
            await watcher.close()
    assert [e.message for e in decoded(got)] == [f"while away {i}" for i in range(20)] + ["back 0"]
    assert handler.stats.published == 22
    assert not handler.stats.dropped


def test_extras_are_read_while_another_thread_formats_the_record() -> None:
    """The worker reads a record's extras while the caller's thread may still format it (a
    Formatter adds ``message`` and ``asctime``): the keys are taken in one piece, so the dict
    growing meanwhile never fails the read (which would drop the record as an error)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    shared: list[logging.LogRecord] = []
    stop = threading.Event()
    formatter = logging.Formatter("%(asctime)s %(message)s")

    def formats() -> None:
        while not stop.is_set():
            if shared:
                formatter.format(shared[-1])

    thread = threading.Thread(target=formats, daemon=True)
    thread.start()
    failures = 0
    try:
        for i in range(100_000):
            record = logging.LogRecord("x", logging.INFO, __file__, 1, "m %s", (i,), None)
            record.a, record.b = 1, 2  # extras, set after the constructor as makeRecord does
            shared[:] = [record]
            try:
                assert _extra_fields(record.__dict__) == {"a": 1, "b": 2}
            except RuntimeError:
                failures += 1
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(previous)
    assert failures == 0


async def test_an_outage_longer_than_nats_py_s_buffer_costs_nothing_uncounted(logger: logging.Logger) -> None:
    """Down for more than nats-py's reconnect buffer holds (2 MiB): the worker keeps records in
    its queue (and stays alive) until the server is back; then every record is published or
    counted dropped, and what was published arrives."""
    first = NatsServer().start()
    handler = NatsLogHandler(
        HandlerConfig(
            servers=(first.url,), service="outage", queue_size=5000, connect={"reconnect_time_wait": 0.2}
        )
    )
    logger.addHandler(handler)
    logger.info("before")
    await asyncio.to_thread(handler.flush)
    port = first.port
    first.close()
    for i in range(8000):  # 8,000 x ~0.5 KB: past nats-py's buffer and the handler's queue
        logger.info("while away %d %s", i, "x" * 400)
    with NatsServer(port=port) as second:
        watcher = await nats.connect(second.url)
        try:
            got = await collect(watcher, "cortex_logging.entry.created.>")
            await asyncio.to_thread(handler.flush, 10.0)
            assert handler._thread is not None
            assert handler._thread.is_alive()
            stats = handler.stats
            await until(lambda: len(got) == stats.published - 1)
        finally:
            await watcher.close()
    assert stats.published + sum(stats.dropped.values()) == 8001  # each record logged: sent or counted
    assert set(stats.dropped) <= {"overflow_newest", "disconnected"}
