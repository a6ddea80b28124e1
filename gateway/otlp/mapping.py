"""OTLP LogRecords to ``LogEntryCreated`` data and back, by one table (README "OTLP logs in").

In: severity number (or, when it is 0, severity text) -> ``level``; body -> ``message`` (a
non-string body as JSON text); attributes -> ``metadata``, except the semantic conventions
``log.record.uid`` -> ``logId``, ``user.id`` -> ``userId``, ``session.id`` -> ``sessionId``;
resource ``service.name`` -> ``source``; scope name -> ``component``; trace and span ids ->
``traceId``/``spanId`` (hex); time, or observed time when time is 0, -> ``createdAt``.
Out is the same table read backwards, so an entry survives a round trip field by field.

Also the OTLP/JSON encoding: protobuf's ``json_format`` with the id fields as hex, as the
OTLP specification has them (protobuf's JSON mapping would want base64).
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from contracts.timestamps import RFC3339_PATTERN, lenient_epoch

__all__ = [
    "ENTRY_SEVERITY",
    "BadRequest",
    "entries_of",
    "entry_data",
    "entry_time_ns",
    "export_request",
    "level_of",
    "parse_json_request",
    "parse_protobuf_request",
    "parse_timestamp_ns",
    "timestamp_text",
]

# A resource without service.name: the name the OpenTelemetry SDKs give it.
UNKNOWN_SERVICE = "unknown_service"
# The attributes that are entry fields, not metadata (OpenTelemetry semantic conventions).
_FIELD_ATTRIBUTES = {"log.record.uid": "logId", "user.id": "userId", "session.id": "sessionId"}
_ENTRY_FIELDS = frozenset(("logId", "level", "message", "source", "component", "createdAt", "metadata"))
# (highest severity number of the range, level): TRACE 1-4, DEBUG 5-8, INFO 9-12, WARN 13-16,
# ERROR 17-20, FATAL 21-24.
_RANGES = ((8, "debug"), (12, "info"), (16, "warn"), (20, "error"), (24, "fatal"))
_TEXTS = {
    "TRACE": "debug",
    "DEBUG": "debug",
    "INFO": "info",
    "NOTICE": "info",
    "WARN": "warn",
    "WARNING": "warn",
    "ERROR": "error",
    "FATAL": "fatal",
    "CRITICAL": "fatal",
}
#: level -> (severity number, severity text) on the way out.
ENTRY_SEVERITY = {"debug": (5, "DEBUG"), "info": (9, "INFO"), "warn": (13, "WARN"), "error": (17, "ERROR")}
ENTRY_SEVERITY["fatal"] = (21, "FATAL")
_INT64 = (-(2**63), 2**63 - 1)
_FRACTION = re.compile(r"\.([0-9]+)")
_RFC3339 = re.compile(RFC3339_PATTERN)
_FIXED64 = 2**64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEX_LENGTHS = {"traceId": 32, "spanId": 16}


class BadRequest(ValueError):
    """The request body is not an ExportLogsServiceRequest in its content type (HTTP 400)."""


def level_of(number: int, text: str) -> str:
    """The entry level of an OTLP severity: the number's range, else the text, else ``info``."""
    for top, level in _RANGES:
        if 1 <= number <= top:
            return level
    word = text.strip().upper().rstrip("0123456789")
    return _TEXTS.get(word, "info")


def _json_of(value: AnyValue) -> Any:
    """An AnyValue as JSON data: kvlists as objects, arrays as lists, bytes as base64 text."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_json_of(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _json_of(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _any_value(data: Any) -> AnyValue:
    """JSON data as an AnyValue (the inverse of :func:`_json_of`, bytes aside)."""
    if data is None:
        return AnyValue()
    if isinstance(data, list):
        out = AnyValue()
        out.array_value.values.extend(_any_value(item) for item in data)
        return out
    if isinstance(data, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=str(k), value=_any_value(v)) for k, v in data.items())
        return out
    return _scalar(data)


def _scalar(data: Any) -> AnyValue:
    if isinstance(data, bool):
        return AnyValue(bool_value=data)
    if isinstance(data, int):
        low, high = _INT64
        return AnyValue(int_value=data) if low <= data <= high else AnyValue(string_value=str(data))
    if isinstance(data, float):
        return AnyValue(double_value=data)
    return AnyValue(string_value=str(data))


def timestamp_text(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339: the platform's millisecond form when exact, else
    nine digits (so no precision is lost)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    base = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction % 1_000_000 == 0:
        return f"{base}.{fraction // 1_000_000:03d}Z"
    return f"{base}.{fraction:09d}Z"


def parse_timestamp_ns(text: str) -> int:
    """An RFC 3339 timestamp (already valid) as nanoseconds since the epoch, digits beyond nine cut."""
    match = _FRACTION.search(text)
    digits, whole = "", text
    if match is not None:
        digits, whole = match.group(1), text[: match.start()] + text[match.end() :]
    moment = datetime.fromisoformat(whole.upper())
    seconds = (moment - _EPOCH) // timedelta(seconds=1)
    return seconds * 1_000_000_000 + int((digits + "000000000")[:9])


def entry_time_ns(text: object) -> int | None:
    """An entry's ``createdAt`` (any string, as the platform allows) as nanoseconds since the
    epoch: RFC 3339 to the nanosecond, the other forms the gateway reads
    (:func:`contracts.timestamps.lenient_epoch`, no zone read as UTC) to the microsecond; None
    when it names no moment OTLP can hold (none at all, or before 1970)."""
    if not isinstance(text, str):
        return None
    ns: int | None = None
    if _RFC3339.fullmatch(text) is not None:
        try:
            ns = parse_timestamp_ns(text)
        except (ValueError, OverflowError):
            return None
    else:
        epoch = lenient_epoch(text)
        ns = None if epoch is None else round(epoch * 1_000_000) * 1000
    return ns if ns is not None and 0 <= ns < _FIXED64 else None


def entry_data(
    record: LogRecord, *, source: str, component: str, now_ns: int | None = None
) -> dict[str, Any]:
    """The ``LogEntryCreated`` data of one LogRecord (validated later, as any entry is)."""
    metadata: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for kv in record.attributes:
        field = _FIELD_ATTRIBUTES.get(kv.key)
        value = _json_of(kv.value)
        if field is not None and isinstance(value, str) and value:
            data[field] = value
        else:
            metadata[kv.key] = value
    body = _json_of(record.body)
    ns = record.time_unix_nano or record.observed_time_unix_nano or now_ns or time.time_ns()
    data.setdefault("logId", uuid.uuid4().hex)
    data["level"] = level_of(record.severity_number, record.severity_text)
    data["message"] = body if isinstance(body, str) else orjson.dumps(body).decode()
    data["source"] = source
    if component:
        data["component"] = component
    if metadata:
        data["metadata"] = metadata
    if len(record.trace_id) == 16 and any(record.trace_id):
        data["traceId"] = record.trace_id.hex()
    if len(record.span_id) == 8 and any(record.span_id):
        data["spanId"] = record.span_id.hex()
    data["createdAt"] = timestamp_text(ns)
    return data


def _service_name(resource_logs: ResourceLogs) -> str:
    for kv in resource_logs.resource.attributes:
        if kv.key == "service.name" and kv.value.WhichOneof("value") == "string_value":
            return kv.value.string_value or UNKNOWN_SERVICE
    return UNKNOWN_SERVICE


def entries_of(request: ExportLogsServiceRequest) -> Iterator[dict[str, Any]]:
    """Every LogRecord of ``request`` as entry data, in order."""
    now_ns = time.time_ns()
    for resource_logs in request.resource_logs:
        source = _service_name(resource_logs)
        for scope_logs in resource_logs.scope_logs:
            component = scope_logs.scope.name
            for record in scope_logs.log_records:
                yield entry_data(record, source=source, component=component, now_ns=now_ns)


def _log_record(entry: Mapping[str, Any]) -> LogRecord:
    """One entry as a LogRecord (see the module's table)."""
    ns = entry_time_ns(entry["createdAt"])
    number, text = ENTRY_SEVERITY[entry["level"]]
    record = LogRecord(
        # No moment in createdAt: time 0 is OTLP's "unknown", observed now.
        time_unix_nano=0 if ns is None else ns,
        observed_time_unix_nano=time.time_ns() if ns is None else ns,
        severity_number=number,  # type: ignore[arg-type]  # (an int is what the enum holds)
        severity_text=text,
        body=AnyValue(string_value=entry["message"]),
    )
    attributes = [(attr, entry[field]) for attr, field in _FIELD_ATTRIBUTES.items() if field in entry]
    for name, size in _HEX_LENGTHS.items():
        value = entry.get(name)
        if isinstance(value, str) and len(value) == size and _is_hex(value):
            setattr(record, "trace_id" if name == "traceId" else "span_id", bytes.fromhex(value))
        elif value is not None:
            attributes.append((name, value))
    skip = _ENTRY_FIELDS | set(_FIELD_ATTRIBUTES.values()) | set(_HEX_LENGTHS)
    attributes += [(name, value) for name, value in entry.items() if name not in skip]
    attributes += list((entry.get("metadata") or {}).items())
    record.attributes.extend(KeyValue(key=key, value=_any_value(value)) for key, value in attributes)
    return record


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def export_request(entries: Iterable[Mapping[str, Any]]) -> ExportLogsServiceRequest:
    """Entries as one ExportLogsServiceRequest: a ResourceLogs per source (``service.name``), a
    ScopeLogs per component, records in the entries' order within each."""
    request = ExportLogsServiceRequest()
    scopes: dict[tuple[str, str], ScopeLogs] = {}
    resources: dict[str, ResourceLogs] = {}
    for entry in entries:
        source, component = entry["source"], entry.get("component") or ""
        resource = resources.get(source)
        if resource is None:
            resource = request.resource_logs.add()
            resource.resource.CopyFrom(
                Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=source))])
            )
            resources[source] = resource
        scope = scopes.get((source, component))
        if scope is None:
            scope = resource.scope_logs.add()
            scope.scope.CopyFrom(InstrumentationScope(name=component))
            scopes[(source, component)] = scope
        scope.log_records.append(_log_record(entry))
    return request


def parse_protobuf_request(body: bytes) -> ExportLogsServiceRequest:
    """An ``application/x-protobuf`` body.

    Raises:
        BadRequest: it is not an ExportLogsServiceRequest.
    """
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(body)
    except ProtobufDecodeError as exc:
        raise BadRequest(f"not an ExportLogsServiceRequest in protobuf: {_short(exc)}") from None
    return request


def parse_json_request(body: bytes) -> ExportLogsServiceRequest:
    """An ``application/json`` body: OTLP/JSON (lowerCamelCase keys, integer enums, hex ids);
    unknown fields are ignored, as the specification asks of receivers.

    Raises:
        BadRequest: not JSON, not an ExportLogsServiceRequest, or an id that is not hex.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("an ExportLogsServiceRequest in JSON is an object")
    for record in _records(data):
        _hex_to_base64(record)
    request = ExportLogsServiceRequest()
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise BadRequest(f"not an ExportLogsServiceRequest in OTLP/JSON: {_short(exc)}") from None
    except RecursionError:
        raise BadRequest("an ExportLogsServiceRequest in OTLP/JSON nested too deeply") from None
    return request


def _short(exc: Exception) -> str:
    """An error's text, cut short (protobuf's name every level of a deep message)."""
    text = str(exc)
    return text if len(text) <= 300 else text[:150] + " ... " + text[-140:]


def _records(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The log record objects of an OTLP/JSON request (either key spelling), as far as they are objects."""
    for resource in _items(data, "resourceLogs", "resource_logs"):
        for scope in _items(resource, "scopeLogs", "scope_logs"):
            yield from _items(scope, "logRecords", "log_records")


def _items(data: dict[str, Any], camel: str, snake: str) -> Iterator[dict[str, Any]]:
    value = data.get(camel, data.get(snake))
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _hex_to_base64(record: dict[str, Any]) -> None:
    for camel, snake in (("traceId", "trace_id"), ("spanId", "span_id")):
        for key in (camel, snake):
            value = record.get(key)
            if not isinstance(value, str):
                continue
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raise BadRequest(f"{camel} must be hex in OTLP/JSON, got {value[:40]!r}") from None
            record[key] = base64.b64encode(raw).decode()
