"""``otlp-export`` on a real nats-server: batches stored by one gateway, forwarded over OTLP/HTTP
into a second gateway's receiver (another subject prefix) and compared field by field; acks only
after acceptance, Retry-After honoured, and a restart that forwards nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from nats.aio.client import Client
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from contracts.models import LogBatchCreated, LogEntryCreated
from gateway.config import Subjects
from gateway.otlp.config import ExportConfig, OtlpConfig
from gateway.otlp.export import OtlpExporter
from gateway.otlp.receiver import OtlpReceiver
from gateway.process.natsserver import NatsServer
from gateway.service import Gateway
from tests import samples
from tests.helpers import collect, config, publish_entries, running_gateway, until

PREFIX = "rt"


def rich_entries(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Entries using every field the mapping carries."""
    out = []
    for i in range(start, start + n):
        entry = samples.entry(i, component=f"worker.{i % 2}", userId=f"u-{i}", sessionId="s-1")
        entry["metadata"] = {"attempt": i, "ms": 12.5, "ok": i % 2 == 0, "tags": ["a", "b"], "n": {"d": None}}
        entry["traceId"] = f"{i + 1:032x}"
        entry["spanId"] = f"{i + 1:016x}"
        out.append(entry)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def entries_on(nc: Client, stream: str, subject: str) -> list[LogEntryCreated]:
    js = nc.jetstream()
    info = await js.stream_info(stream)
    out: list[LogEntryCreated] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        if msg.subject == subject:
            out += LogBatchCreated.parse(json.loads(msg.data or b"")["data"]).entries
    return out


@asynccontextmanager
async def exporting(nc: Client, cfg: ExportConfig) -> AsyncIterator[OtlpExporter]:
    exporter = OtlpExporter(nc, cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(exporter.run(stop))
    try:
        yield exporter
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def export_config(source: Gateway, endpoint: str) -> ExportConfig:
    return ExportConfig(
        endpoint=endpoint, stream=source.config.stream.name, timeout_s=2, retry_deadline_s=20, ack_wait_s=60
    )


async def test_batches_round_trip_field_by_field(nats_server: NatsServer, nc: Client) -> None:
    sent = rich_entries(30)
    async with (
        running_gateway(nats_server.url, config()) as (source, _),
        running_gateway(nats_server.url, config(subjects=Subjects(prefix=PREFIX))) as (sink, _),
    ):
        receiver = OtlpReceiver.for_gateway(OtlpConfig(port=0, host="127.0.0.1"), sink)
        await receiver.start()
        endpoint = f"http://127.0.0.1:{receiver.port}/v1/logs"
        announced = await collect(nc, "cortex_logging.stream.started")
        await publish_entries(nc, sent)
        await until(lambda: source.stats.published == 30, 30)
        async with exporting(nc, export_config(source, endpoint)) as exporter:
            await until(lambda: sink.stats.published == 30, 30)
        await receiver.stop()
    got = await entries_on(nc, sink.config.stream.name, sink.config.subjects.batch)
    assert exporter.stats.records == 30
    assert exporter.stats.resent == 0
    started = [json.loads(m.data)["data"] for m in announced]
    mine = [d for d in started if d["startedBy"] == "otlp-export:otlp-export"]
    assert [(d["destination"], d["filters"]["endpoint"]) for d in mine] == [("external", endpoint)]
    by_id = {entry.logId: entry.to_data() for entry in got}
    assert len(by_id) == 30
    for entry in sent:
        assert by_id[entry["logId"]] == entry  # every field, the ids and extras too


async def test_acks_only_after_acceptance_and_a_restart_forwards_nothing_twice(
    nats_server: NatsServer, nc: Client
) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}/v1/logs"
    async with (
        running_gateway(nats_server.url, config()) as (source, _),
        running_gateway(nats_server.url, config(subjects=Subjects(prefix=PREFIX))) as (sink, _),
    ):
        cfg = export_config(source, endpoint)
        await publish_entries(nc, rich_entries(10))
        await until(lambda: source.stats.published == 10, 30)
        async with exporting(nc, cfg) as first:
            await until(lambda: first.stats.retries >= 2, 30)  # nobody listens yet
            consumer = await nc.jetstream().consumer_info(cfg.stream, cfg.durable)
            assert consumer.ack_floor is not None
            assert (consumer.num_ack_pending, consumer.ack_floor.stream_seq) == (1, 0)
            receiver = OtlpReceiver.for_gateway(OtlpConfig(port=port, host="127.0.0.1"), sink)
            await receiver.start()
            await until(lambda: first.stats.records == 10, 30)
        await publish_entries(nc, rich_entries(10, start=10))
        await until(lambda: source.stats.published == 20, 30)
        async with exporting(nc, cfg) as second:
            await until(lambda: second.stats.records == 10, 30)
        await until(lambda: sink.stats.published == 20, 30)
        await receiver.stop()
    got = await entries_on(nc, sink.config.stream.name, sink.config.subjects.batch)
    assert sorted(e.logId for e in got) == sorted(e["logId"] for e in rich_entries(20))
    assert sink.stats.received == 20  # none forwarded twice
    assert second.stats.resent == 0


class _Endpoint(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint decoding with opentelemetry-proto: first 503 with Retry-After: 1,
    then 200 with a partial success."""

    arrivals: ClassVar[list[tuple[float, int]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        parsed = ExportLogsServiceRequest.FromString(body)
        count = sum(len(s.log_records) for r in parsed.resource_logs for s in r.scope_logs)
        self.arrivals.append((time.monotonic(), count))
        if len(self.arrivals) == 1:
            self._reply(503, b"", {"Retry-After": "1"})
            return
        reply = ExportLogsServiceResponse()
        reply.partial_success.rejected_log_records = 2
        reply.partial_success.error_message = "two too many"
        self._reply(200, reply.SerializeToString(), {"Content-Type": "application/x-protobuf"})

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


async def test_retry_after_is_honoured_and_a_partial_success_is_not_retried(
    nats_server: NatsServer, nc: Client
) -> None:
    _Endpoint.arrivals.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/logs"
    try:
        async with running_gateway(nats_server.url, config()) as (source, _):
            await publish_entries(nc, rich_entries(5))
            await until(lambda: source.stats.published == 5, 30)
            async with exporting(nc, export_config(source, url)) as exporter:
                await until(lambda: exporter.stats.batches == 1, 30)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    arrivals = _Endpoint.arrivals
    assert [count for _, count in arrivals] == [5, 5]
    assert arrivals[1][0] - arrivals[0][0] >= 0.95  # waited what Retry-After said
    assert (exporter.stats.retries, exporter.stats.partially_rejected) == (1, 2)


class _SlowFirst(http.server.BaseHTTPRequestHandler):
    """Takes every request, but holds its first answer until a second request came: the
    exporter's timeout runs out, so the first acceptance is lost to it."""

    received: ClassVar[list[int]] = []
    second = threading.Event()

    def do_POST(self) -> None:
        parsed = ExportLogsServiceRequest.FromString(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append(sum(len(s.log_records) for r in parsed.resource_logs for s in r.scope_logs))
        if len(self.received) == 1:
            self.second.wait(30)
        else:
            self.second.set()
        with contextlib.suppress(OSError):  # (the first answer goes to a client that left)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


async def test_a_lost_acceptance_is_sent_again_and_said(nats_server: NatsServer, nc: Client) -> None:
    _SlowFirst.received.clear()
    _SlowFirst.second.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowFirst)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/logs"
    try:
        async with running_gateway(nats_server.url, config()) as (source, _):
            await publish_entries(nc, rich_entries(4))
            await until(lambda: source.stats.published == 4, 30)
            cfg = ExportConfig(endpoint=url, stream=source.config.stream.name, timeout_s=1, ack_wait_s=150)
            async with exporting(nc, cfg) as exporter:
                await until(lambda: exporter.stats.batches == 1, 30)
    finally:
        _SlowFirst.second.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert _SlowFirst.received == [4, 4]  # the endpoint took it twice: the one exception
    assert exporter.stats.resent == 1  # ... and the exporter said so
