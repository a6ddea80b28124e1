"""OTLP/HTTP logs in: the OpenTelemetry SDK's own exporter, and hand-made requests, against a
gateway on a real nats-server; every record batched, rejected or turned away, and counted."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import nats
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from contracts.models import LogEntryCreated
from gateway.core.limits import BatchLimits, BufferLimits, DropReason, OverflowPolicy
from gateway.otlp.config import OtlpConfig
from gateway.otlp.mapping import level_of, parse_timestamp_ns, timestamp_text
from gateway.otlp.receiver import OtlpReceiver
from gateway.process.natsserver import NatsServer
from gateway.service import Gateway
from tests.helpers import collect, config, fail_decoding, running_gateway, stored_batches, until

JS = "application/json"
TRACE_ID, SPAN_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
T0 = 1_760_342_400_123_000_000  # 2025-10-13T08:00:00.123Z in nanoseconds


@asynccontextmanager
async def receiving(
    url: str, *, otlp: OtlpConfig | None = None, **changes: Any
) -> AsyncIterator[tuple[Gateway, OtlpReceiver, str]]:
    """A gateway on ``url`` with an OTLP receiver on a free port; the receiver stops first."""
    async with running_gateway(url, config(**changes)) as (gateway, _nc):
        receiver = OtlpReceiver.for_gateway(otlp or OtlpConfig(port=0, host="127.0.0.1"), gateway)
        await receiver.start()
        try:
            yield gateway, receiver, f"http://127.0.0.1:{receiver.port}/v1/logs"
        finally:
            await receiver.stop()


def emit_with_sdk(endpoint: str, compression: Compression) -> None:
    """Log through the SDK's LoggerProvider and its OTLP/HTTP exporter (protobuf), in this thread."""
    provider = LoggerProvider(resource=Resource.create({"service.name": "billing"}))
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, compression=compression, timeout=10))
    )
    logger = provider.get_logger("billing.charge")
    span = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1)))
    context = trace.set_span_in_context(span)
    severities = [SeverityNumber.TRACE, SeverityNumber.DEBUG2, SeverityNumber.INFO, SeverityNumber.WARN]
    severities += [SeverityNumber.ERROR3, SeverityNumber.FATAL]
    for i, number in enumerate(severities):
        logger.emit(
            timestamp=T0 + i * 1_000_000,
            severity_number=number,
            body=f"record {i}",
            attributes={"orderId": f"o-{i}", "attempt": i, "user.id": "u-1"},
            context=context,
        )
    logger.emit(observed_timestamp=T0, severity_text="warning", body={"charge": {"cents": 120}})
    provider.shutdown()


async def stored_entries(gateway: Gateway, nc_url: str, count: int) -> list[LogEntryCreated]:
    await until(lambda: gateway.stats.published == count, 30)
    nc = await nats.connect(nc_url)
    try:
        batches = await stored_batches(nc.jetstream(), gateway.config.stream.name)
    finally:
        await nc.close()
    return [entry for stored in batches for entry in stored.batch.entries]


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
async def test_the_sdk_exporters_records_are_stored_with_the_mapping(
    nats_server: NatsServer, compression: Compression
) -> None:
    async with receiving(nats_server.url) as (gateway, receiver, endpoint):
        await asyncio.to_thread(emit_with_sdk, endpoint, compression)
        got = await stored_entries(gateway, nats_server.url, 7)
    assert receiver.stats.responses == {200: 7}
    assert [e.level for e in got] == ["debug", "debug", "info", "warn", "error", "fatal", "warn"]
    for i, entry in enumerate(got[:6]):
        assert entry.message == f"record {i}"
        assert entry.source == "billing"
        assert entry.component == "billing.charge"
        assert entry.metadata == {"orderId": f"o-{i}", "attempt": i}
        assert entry.userId == "u-1"
        assert entry.model_extra == {"traceId": f"{TRACE_ID:032x}", "spanId": f"{SPAN_ID:016x}"}
        assert entry.createdAt == f"2025-10-13T08:00:00.{123 + i:03d}Z"
    last = got[6]
    assert json.loads(last.message) == {"charge": {"cents": 120}}  # a non-string body as JSON text
    assert last.createdAt == "2025-10-13T08:00:00.123Z"  # time 0: the observed time
    assert last.component == "billing.charge"
    assert not last.model_extra  # no span: no ids
    assert gateway.stats.received == 7
    assert gateway.stats.total_rejected == 0


def json_request(records: list[dict[str, Any]], service: str = "checkout") -> dict[str, Any]:
    """An OTLP/JSON body: lowerCamelCase keys, integer enums, hex ids."""
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeLogs": [{"scope": {"name": "cart"}, "logRecords": records}],
            }
        ]
    }


def json_record(i: int, **changes: Any) -> dict[str, Any]:
    record = {
        "timeUnixNano": str(T0 + i),
        "severityNumber": 17,
        "severityText": "ERROR",
        "body": {"stringValue": f"json {i}"},
        "attributes": [{"key": "cartId", "value": {"intValue": "42"}}],
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "someFutureField": True,  # unknown fields are ignored
    }
    record.update(changes)
    return record


def post_blocking(
    endpoint: str, body: bytes, content_type: str, headers: dict[str, str]
) -> tuple[int, str, bytes, dict[str, str]]:
    url = urlsplit(endpoint)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request("POST", url.path, body=body, headers={"Content-Type": content_type, **headers})
        response = conn.getresponse()
        kind = (response.getheader("Content-Type") or "").split(";", 1)[0]
        answer = response.read()
        return response.status, kind, answer, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


async def post(
    endpoint: str, body: bytes, content_type: str, **headers: str
) -> tuple[int, str, bytes, dict[str, str]]:
    """POST with the standard library's client (status, media type, body, lowercased headers)."""
    return await asyncio.to_thread(post_blocking, endpoint, body, content_type, headers)


@pytest.mark.parametrize("gzipped", [False, True])
async def test_json_requests_are_taken_and_answered_in_json(nats_server: NatsServer, gzipped: bool) -> None:
    body = json.dumps(json_request([json_record(1), json_record(2)])).encode()
    headers = {"Content-Encoding": "gzip"} if gzipped else {}
    async with receiving(nats_server.url) as (gateway, _receiver, endpoint):
        status, kind, answer, _ = await post(
            endpoint, gzip.compress(body) if gzipped else body, "application/json", **headers
        )
        got = await stored_entries(gateway, nats_server.url, 2)
    assert (status, kind, json.loads(answer)) == (200, "application/json", {})
    first = got[0]
    assert (first.level, first.message) == ("error", "json 1")
    assert (first.source, first.component) == ("checkout", "cart")
    assert first.metadata == {"cartId": 42}
    assert first.model_extra == {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}
    assert first.createdAt == "2025-10-13T08:00:00.123000001Z"  # nanoseconds kept


async def test_records_the_gateway_cannot_take_are_a_partial_success(nats_server: NatsServer) -> None:
    huge = json_record(2, body={"stringValue": "x" * 40_000})  # fits no 8 KiB batch
    body = json.dumps(json_request([json_record(1), huge, json_record(3)])).encode()
    async with receiving(nats_server.url, batch=BatchLimits(max_bytes=8192)) as (gateway, _r, endpoint):
        watcher = await nats.connect(nats_server.url)
        rejected = await collect(watcher, gateway.config.subjects.rejected)
        status, _kind, answer, _ = await post(endpoint, body, "application/json")
        got = await stored_entries(gateway, nats_server.url, 2)
        await until(lambda: len(rejected) == 1, 10)
        await watcher.close()
    assert status == 200
    partial = json.loads(answer)["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"  # (int64 is a string in protobuf's JSON mapping)
    assert "1 oversize" in partial["errorMessage"]
    assert [e.message for e in got] == ["json 1", "json 3"]
    assert gateway.stats.received == 3
    assert gateway.stats.rejected == {"oversize": 1}
    assert json.loads(rejected[0].data)["data"]["subject"] == "otlp:/v1/logs"


async def test_a_full_buffer_under_drop_newest_is_a_partial_success(nats_server: NatsServer) -> None:
    buffer = BufferLimits(max_entries=5, overflow=OverflowPolicy.DROP_NEWEST)
    slow = BatchLimits(max_delay_ms=60_000)  # entries stay held until shutdown flushes them
    body = json.dumps(json_request([json_record(i) for i in range(8)])).encode()
    async with receiving(nats_server.url, buffer=buffer, batch=slow) as (gateway, _r, endpoint):
        status, _kind, answer, _ = await post(endpoint, body, "application/json")
        assert gateway.stats.dropped == {DropReason.OVERFLOW_NEWEST: 3}
    assert status == 200
    assert json.loads(answer)["partialSuccess"]["rejectedLogRecords"] == "3"
    assert gateway.stats.received == 8
    assert gateway.stats.published == 5


async def test_a_full_buffer_under_block_answers_503_with_retry_after(nats_server: NatsServer) -> None:
    buffer = BufferLimits(max_entries=5, overflow=OverflowPolicy.BLOCK)
    slow = BatchLimits(max_delay_ms=60_000)
    otlp = OtlpConfig(port=0, host="127.0.0.1", retry_after_s=3)
    four = json.dumps(json_request([json_record(i) for i in range(4)])).encode()
    two = json.dumps(json_request([json_record(i) for i in range(4, 6)])).encode()
    async with receiving(nats_server.url, otlp=otlp, buffer=buffer, batch=slow) as (gateway, receiver, url):
        assert (await post(url, four, "application/json"))[0] == 200
        status, kind, answer, headers = await asyncio.wait_for(post(url, two, "application/json"), 10)
        assert gateway.stats.received == 4  # nothing of the refused request was taken
        assert receiver.stats.throttled == 1
    assert (status, kind, headers["retry-after"]) == (503, "application/json", "3")
    assert json.loads(answer)["code"] == 14  # UNAVAILABLE
    assert gateway.stats.published == 4
    assert gateway.stats.total_dropped == 0


async def test_the_sdk_exporter_waits_out_the_503_and_gets_in(nats_server: NatsServer) -> None:
    buffer = BufferLimits(max_entries=5, overflow=OverflowPolicy.BLOCK)
    held = BatchLimits(max_delay_ms=2000)  # the buffer stays full for 2 s, then the batch goes out
    five = json.dumps(json_request([json_record(i) for i in range(5)])).encode()
    async with receiving(nats_server.url, buffer=buffer, batch=held) as (gateway, receiver, endpoint):
        provider = LoggerProvider(resource=Resource.create({"service.name": "late"}))
        exporter = OTLPLogExporter(endpoint=endpoint, timeout=20)
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logger = provider.get_logger("late")
        assert (await post(endpoint, five, JS))[0] == 200

        def emit() -> None:
            logger.emit(body="late record", severity_number=SeverityNumber.INFO)  # exports before it returns
            provider.shutdown()

        await asyncio.to_thread(emit)
        got = await stored_entries(gateway, nats_server.url, 6)
    assert receiver.stats.responses[503] >= 1  # turned away while full, Retry-After: 1 ...
    assert receiver.stats.responses[200] == 2  # ... then taken
    assert [e.message for e in got if e.source == "late"] == ["late record"]
    assert gateway.stats.received == 6


async def test_bodies_over_the_limit_get_413_as_sent_or_gunzipped(nats_server: NatsServer) -> None:
    otlp = OtlpConfig(port=0, host="127.0.0.1", max_body_bytes=4096)
    big = json.dumps(json_request([json_record(i) for i in range(40)])).encode()
    assert len(big) > 4096
    async with receiving(nats_server.url, otlp=otlp) as (gateway, _receiver, endpoint):
        plain = await post(endpoint, big, "application/json")
        bomb = await post(endpoint, gzip.compress(big), "application/json", **{"Content-Encoding": "gzip"})
        proto = await post(endpoint, b"\x00" * 5000, "application/x-protobuf")
    for status, kind, answer, _ in (plain, bomb):
        assert (status, kind) == (413, "application/json")
        assert "4096" in json.loads(answer)["message"]
    assert (proto[0], proto[1]) == (413, "application/x-protobuf")
    assert "4096" in Status.FromString(proto[2]).message
    assert gateway.stats.received == 0


async def test_bad_requests_are_refused_with_a_reason(nats_server: NatsServer) -> None:
    async with receiving(nats_server.url) as (gateway, _receiver, endpoint):
        wrong_type = await post(endpoint, b"{}", "text/plain")
        wrong_encoding = await post(endpoint, b"{}", "application/json", **{"Content-Encoding": "br"})
        not_proto = await post(endpoint, b"\xff\xff\xff", "application/x-protobuf")
        bad_hex = json.dumps(json_request([json_record(1, traceId="zz")])).encode()
        not_hex = await post(endpoint, bad_hex, "application/json")
        empty = await post(endpoint, b"", "application/x-protobuf")
    assert wrong_type[0] == 415
    assert b"application/x-protobuf" in wrong_type[2]
    assert wrong_encoding[0] == 415
    assert not_proto[0] == 400
    assert "ExportLogsServiceRequest" in Status.FromString(not_proto[2]).message
    assert not_hex[0] == 400
    assert "traceId must be hex" in json.loads(not_hex[2])["message"]
    assert empty[0] == 200  # an empty request is a success, as the specification says
    assert ExportLogsServiceResponse.FromString(empty[2]) == ExportLogsServiceResponse()
    assert gateway.stats.received == 0


async def test_a_bug_on_one_record_is_counted_not_a_crash(nats_server: NatsServer) -> None:
    body = json.dumps(json_request([json_record(1), json_record(2, body={"stringValue": "boom"})])).encode()
    async with receiving(nats_server.url) as (gateway, _receiver, endpoint):
        fail_decoding(gateway, b"boom")
        status, _kind, answer, _ = await post(endpoint, body, JS)
        got = await stored_entries(gateway, nats_server.url, 1)
    assert status == 200
    assert "1 ingest_failed" in json.loads(answer)["partialSuccess"]["errorMessage"]
    assert [e.message for e in got] == ["json 1"]
    assert gateway.stats.dropped == {DropReason.INGEST_FAILED: 1}


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "bottom"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


async def test_hostile_nesting_is_a_bad_request_not_a_crash(nats_server: NatsServer) -> None:
    """Beyond protobuf's 100 nested messages a body is no request at all (so entry data never
    nests near the decoder's 32 levels: 3 messages per kvlist level)."""
    deep = json.dumps(json_request([json_record(4, body=nested(40))])).encode()
    async with receiving(nats_server.url) as (gateway, _receiver, endpoint):
        deep_proto = await post(endpoint, _deep_protobuf(40), "application/x-protobuf")
        deep_json = await post(endpoint, deep, JS)
        shallow = await post(endpoint, _deep_protobuf(20), "application/x-protobuf")
        got = await stored_entries(gateway, nats_server.url, 1)
    assert deep_proto[0] == 400
    assert deep_json[0] == 400
    assert "too deep" in json.loads(deep_json[2])["message"]
    assert len(deep_json[2]) < 600  # the reason, not protobuf's path through every level
    assert shallow[0] == 200
    assert json.loads(got[0].message)["k"]["k"]["k"]  # a deep body, as JSON text
    assert gateway.stats.received == 1


def _deep_protobuf(depth: int) -> bytes:
    """An ExportLogsServiceRequest whose one record's body nests ``depth`` kvlists."""
    value = AnyValue(string_value="bottom")
    for _ in range(depth):
        outer = AnyValue()
        outer.kvlist_value.values.add(key="k").value.CopyFrom(value)
        value = outer
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.add().body.CopyFrom(value)
    return request.SerializeToString()


def chunked_and_other_routes(endpoint: str, body: bytes) -> list[tuple[int, bytes]]:
    """On one kept-alive connection: a chunked POST twice; then a GET and another path."""
    url = urlsplit(endpoint)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    out = []
    try:
        for _ in range(2):
            chunks = iter([body[:10], body[10:]])
            conn.request("POST", url.path, body=chunks, headers={"Content-Type": JS}, encode_chunked=True)
            response = conn.getresponse()
            out.append((response.status, response.read()))
        for method, path in (("GET", url.path), ("POST", "/v1/traces")):
            conn.request(method, path)
            response = conn.getresponse()
            out.append((response.status, response.read()))
            conn.close()
    finally:
        conn.close()
    return out


async def test_chunked_bodies_keep_alive_and_only_post_v1_logs(nats_server: NatsServer) -> None:
    body = json.dumps(json_request([json_record(1)])).encode()
    async with receiving(nats_server.url) as (gateway, receiver, endpoint):
        answers = await asyncio.to_thread(chunked_and_other_routes, endpoint, body)
        await stored_entries(gateway, nats_server.url, 2)
    assert [status for status, _ in answers] == [200, 200, 405, 404]
    assert b"POST /v1/logs" in answers[3][1]
    assert receiver.stats.responses == {200: 2, 405: 1, 404: 1}


async def test_a_client_expecting_100_continue_gets_it_before_sending(nats_server: NatsServer) -> None:
    body = json.dumps(json_request([json_record(1)])).encode()
    async with receiving(nats_server.url) as (gateway, _receiver, endpoint):
        url = urlsplit(endpoint)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        head = (
            f"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: {JS}\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
        )
        writer.write(head.encode())
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)  # before any body
        writer.write(body)
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.close()
        await stored_entries(gateway, nats_server.url, 1)
    assert interim.startswith(b"HTTP/1.1 100 ")
    assert final.startswith(b"HTTP/1.1 200 ")


LEVELS: list[tuple[int, str, str]] = [
    (1, "", "debug"),
    (8, "", "debug"),
    (9, "", "info"),
    (16, "", "warn"),
    (17, "", "error"),
    (24, "", "fatal"),
    (0, "CRITICAL", "fatal"),
    (0, "Warning", "warn"),
    (0, "", "info"),
]


@pytest.mark.parametrize(("number", "text", "level"), LEVELS)
def test_severity_maps_to_the_level(number: int, text: str, level: str) -> None:
    assert level_of(number, text) == level


def test_timestamps_keep_nanoseconds_both_ways() -> None:
    for ns in (T0, T0 + 1, 0, 1_999_999_999_999_999_999):
        assert parse_timestamp_ns(timestamp_text(ns)) == ns
    assert timestamp_text(T0) == "2025-10-13T08:00:00.123Z"
    assert parse_timestamp_ns("2025-10-13T10:00:00.5+02:00") == 1_760_342_400_500_000_000
