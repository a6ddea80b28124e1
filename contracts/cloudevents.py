"""CloudEvents 1.0 over NATS: the structured and binary content modes, and bare data.

The ``cloudevents`` SDK has no NATS binding, so the binding lives here. Events
are encoded by splicing already-encoded data bytes into the envelope rather
than re-serialising it (the SDK's JSON writer measured about half as fast end
to end); :func:`to_sdk_event` and :func:`from_sdk_event` bridge to the SDK's
event model where a caller wants it.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote

import orjson

from contracts import jsonsafe
from contracts.errors import ContractError, DecodeError, RejectReason
from contracts.models import ContractModel
from contracts.timestamps import RFC3339_PATTERN, format_timestamp, now_timestamp, parse_timestamp

if TYPE_CHECKING:  # the SDK (and dateutil) load with the bridge's first use, not on every import
    from cloudevents.core.v1.event import CloudEvent

__all__ = [
    "CONTENT_TYPE_HEADER",
    "JSON_CONTENT_TYPE",
    "PLATFORM_EXTENSIONS",
    "STRUCTURED_CONTENT_TYPE",
    "ContentMode",
    "DecodedEvent",
    "decode",
    "decode_contract",
    "decode_event",
    "decode_structured_value",
    "encode_binary",
    "encode_structured",
    "from_sdk_event",
    "make_attributes",
    "plain_structured_data",
    "plainly_valid_attributes",
    "to_sdk_event",
    "valid_event_time",
]

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
JSON_CONTENT_TYPE = "application/json"
_BATCH_CONTENT_TYPE = "application/cloudevents-batch"
CONTENT_TYPE_HEADER = "content-type"
PLATFORM_EXTENSIONS = ("traceparent", "tracestate", "correlationid", "causationid")
_REQUIRED = ("id", "source", "type")
# Attributes whose names and values the checks above already cover.
_CHECKED = frozenset(
    ("specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "subject")
)
_STRING_ATTRIBUTES = ("datacontenttype", "dataschema", "subject")
# plain_structured_data(): checked before its loop, and text attributes checked in it.
_PLAIN_NAMES = frozenset(("specversion", "id", "source", "type", "datacontenttype", "data"))
_PLAIN_TEXT = frozenset(("time", "dataschema", "subject"))
_M = TypeVar("_M", bound=ContractModel)
_SAFE_HEADER_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
_TIME_RE = re.compile(RFC3339_PATTERN)
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
# Event times seen to pass the check: events sent together share a millisecond.
_GOOD_TIMES: set[str] = set()
_MAX_GOOD_TIMES = 4096
# Extension names seen to pass the check above: events repeat the same few (traceparent, ...).
_GOOD_EXTENSION_NAMES: set[str] = set()
_MAX_GOOD_EXTENSION_NAMES = 256


class ContentMode(StrEnum):
    """How an event travelled: CloudEvents structured or binary mode, or bare data."""

    STRUCTURED = "structured"
    BINARY = "binary"
    BARE = "bare"


class DecodedEvent:
    """A message turned into CloudEvents context attributes and its data.

    ``data`` is parsed JSON, or the raw bytes when ``datacontenttype`` is not
    JSON; ``attributes`` is empty for bare data. (A plain slotted class: it is
    made once per message on the hot path, where a frozen dataclass costs more.)
    """

    __slots__ = ("attributes", "data", "mode")

    def __init__(self, mode: ContentMode, data: Any, attributes: dict[str, Any] | None = None) -> None:
        self.mode = mode
        self.data = data
        self.attributes: dict[str, Any] = {} if attributes is None else attributes

    def __repr__(self) -> str:
        return f"DecodedEvent(mode={self.mode!r}, attributes={self.attributes!r})"

    @property
    def type(self) -> str | None:
        """The CloudEvents ``type``, if the message carried one."""
        value = self.attributes.get("type")
        return value if isinstance(value, str) else None


def make_attributes(
    event_type: str,
    source: str,
    *,
    event_id: str | None = None,
    time: str | datetime | None = None,
    subject: str | None = None,
    extensions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Context attributes for a new event; ``id`` and ``time`` default to fresh values.

    Raises:
        ValueError: an extension name is not lowercase alphanumeric (1-20 chars).
    """
    attrs: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "time": _time_text(time),
        "datacontenttype": JSON_CONTENT_TYPE,
    }
    if subject is not None:
        attrs["subject"] = subject
    for name, value in (extensions or {}).items():
        if not _EXTENSION_NAME.match(name):
            raise ValueError(f"extension name {name!r} must be 1-20 lowercase letters or digits")
        attrs[name] = value
    return attrs


def _time_text(time: str | datetime | None) -> str:
    if time is None:
        return now_timestamp()
    return time if isinstance(time, str) else format_timestamp(time)


def encode_structured(attributes: Mapping[str, Any], data: bytes) -> tuple[dict[str, str], bytes]:
    """Structured mode: the JSON event format in the body, ``data`` spliced in as is.

    ``data`` must already be JSON; it is not re-serialised.
    """
    head = orjson.dumps(dict(attributes))
    body = head[:-1] + (b',"data":' if len(head) > 2 else b'"data":') + data + b"}"
    return {CONTENT_TYPE_HEADER: STRUCTURED_CONTENT_TYPE}, body


def encode_binary(attributes: Mapping[str, Any], data: bytes) -> tuple[dict[str, str], bytes]:
    """Binary mode: each attribute in a percent-encoded ``ce-`` header, the data as the body."""
    headers = {CONTENT_TYPE_HEADER: str(attributes.get("datacontenttype", JSON_CONTENT_TYPE))}
    for name, value in attributes.items():
        if name != "datacontenttype":
            text = value if isinstance(value, str) else _attribute_text(value)
            headers["ce-" + name] = quote(text, safe=_SAFE_HEADER_CHARS)
    return headers, data


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_timestamp(value)
    return str(value)


def decode(
    headers: Mapping[str, str] | None,
    body: bytes,
    *,
    max_depth: int = jsonsafe.DEFAULT_MAX_DEPTH,
    lowered: bool = False,
) -> DecodedEvent:
    """Decode a NATS message: structured mode, binary mode, or a bare JSON data body.

    ``lowered`` says the header names are lowercase already (saves a copy on the hot path).

    Raises:
        DecodeError: anything that is not one of those, with the reason.
    """
    if headers:
        return _decode_with_headers(
            headers if lowered else {k.lower(): v for k, v in headers.items()}, body, max_depth
        )
    return _decode_body("", body, max_depth)


def _decode_with_headers(lowered: Mapping[str, str], body: bytes, max_depth: int) -> DecodedEvent:
    content_type = lowered.get(CONTENT_TYPE_HEADER, "").strip().lower()
    if "ce-specversion" in lowered or any(k.startswith("ce-") for k in lowered):
        return _decode_binary(lowered, body, max_depth)
    return _decode_body(content_type, body, max_depth)


def _decode_body(content_type: str, body: bytes, max_depth: int) -> DecodedEvent:
    """Structured mode by content type, or the body alone: structured if it looks so, else bare."""
    if content_type.startswith(STRUCTURED_CONTENT_TYPE):
        return _decode_structured(jsonsafe.loads(body, max_depth=max_depth), max_depth)
    if content_type.startswith(_BATCH_CONTENT_TYPE) or (content_type and not _is_json_type(content_type)):
        raise DecodeError(
            RejectReason.UNSUPPORTED_CONTENT_TYPE,
            f"content-type {content_type[:80]!r} is not supported: send one event, structured or binary",
        )
    value = jsonsafe.loads(body, max_depth=max_depth)
    if isinstance(value, dict) and "specversion" in value:
        return _decode_structured(value, max_depth)
    return DecodedEvent(ContentMode.BARE, value)


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip()
    return media == JSON_CONTENT_TYPE or (media.startswith("application/") and media.endswith("+json"))


def decode_structured_value(value: Any, *, max_depth: int = jsonsafe.DEFAULT_MAX_DEPTH) -> DecodedEvent:
    """A structured-mode event already parsed from (strict) JSON, its attributes checked.

    For a caller that parsed the body itself; :func:`decode` does the same for
    a ``application/cloudevents+json`` message.

    Raises:
        DecodeError: ``invalid_envelope`` (or a JSON reason for ``data_base64``).
    """
    return _decode_structured(value, max_depth)


def plain_structured_data(value: Any, event_type: str) -> dict[str, Any] | None:
    """The data of a parsed structured-mode ``event_type`` event whose envelope plainly passes.

    A fast path that answers only when sure: ``specversion`` 1.0, non-empty
    ``id`` and ``source``, a valid ``time`` if any, JSON data as an object, and
    every other attribute a text extension with a valid name. For anything else
    (null attributes, ``data_base64``, numbers, another content type, ...) it
    returns None, and :func:`decode_structured_value` decides, with its reasons.
    """
    data = value.get("data")
    if type(data) is not dict or value.get("specversion") != "1.0" or value.get("type") != event_type:
        return None
    ident, source = value.get("id"), value.get("source")
    if type(ident) is not str or not ident or type(source) is not str or not source:
        return None
    if value.get("datacontenttype", JSON_CONTENT_TYPE) != JSON_CONTENT_TYPE:
        return None
    for name, attribute in value.items():
        if name in _PLAIN_NAMES:
            continue
        if type(attribute) is not str or (name not in _GOOD_EXTENSION_NAMES and name not in _PLAIN_TEXT):
            return None
        if name == "time" and attribute not in _GOOD_TIMES and not _good_time(attribute):
            return None
    return data


def plainly_valid_attributes(attrs: Mapping[str, str], event_type: str) -> bool:
    """Do these text attributes (of a binary-mode message) plainly pass as an ``event_type`` event?

    A fast path like :func:`plain_structured_data`: True only when sure (JSON
    data or none said, a valid time if any, every other name a core attribute
    or an extension name already seen to be valid); False leaves the verdict,
    and its reasons, to :func:`decode`.
    """
    get = attrs.get
    if get("specversion") != "1.0" or get("type") != event_type or not get("id") or not get("source"):
        return False
    if get("datacontenttype", JSON_CONTENT_TYPE) != JSON_CONTENT_TYPE:
        return False
    time = get("time")
    if time is not None and time not in _GOOD_TIMES and not _good_time(time):
        return False
    good = _GOOD_EXTENSION_NAMES
    for name in attrs:  # noqa: SIM110 - a loop: all() would make a generator per event on the hot path
        if name not in _CHECKED and name not in good:
            return False
    return True


def valid_event_time(value: str) -> bool:
    """Is ``value`` an RFC 3339 timestamp, as the ``time`` attribute must be?"""
    return value in _GOOD_TIMES or _good_time(value)


def _good_time(value: str) -> bool:
    """Is ``value`` an RFC 3339 timestamp? Remembered when it is: events sent together share a time."""
    if not _TIME_RE.match(value):
        return False
    if len(_GOOD_TIMES) >= _MAX_GOOD_TIMES:
        _GOOD_TIMES.clear()
    _GOOD_TIMES.add(value)
    return True


def _decode_structured(value: Any, max_depth: int) -> DecodedEvent:
    if not isinstance(value, dict):
        raise DecodeError(RejectReason.INVALID_ENVELOPE, "a structured-mode event must be a JSON object")
    attrs = {k: v for k, v in value.items() if v is not None}
    data = attrs.pop("data", None)
    encoded = attrs.pop("data_base64", None)
    _check_attributes(attrs)
    if encoded is not None:
        if data is not None:
            raise DecodeError(RejectReason.INVALID_ENVELOPE, "event has both data and data_base64")
        data = _data_from_base64(encoded, attrs, max_depth)
    return DecodedEvent(ContentMode.STRUCTURED, data, attrs)


def _data_from_base64(encoded: Any, attrs: dict[str, Any], max_depth: int) -> Any:
    if not isinstance(encoded, str):
        raise DecodeError(RejectReason.INVALID_ENVELOPE, "data_base64 must be a string")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(RejectReason.INVALID_ENVELOPE, "data_base64 is not valid base64") from None
    return _parse_data(raw, str(attrs.get("datacontenttype", JSON_CONTENT_TYPE)), max_depth)


def _parse_data(raw: bytes, content_type: str, max_depth: int) -> Any:
    """JSON data is parsed; any other media type is handed over as the raw bytes."""
    if content_type != JSON_CONTENT_TYPE and not _is_json_type(content_type.lower()):
        return raw
    return jsonsafe.loads(raw, max_depth=max_depth)


def _decode_binary(lowered: Mapping[str, str], body: bytes, max_depth: int) -> DecodedEvent:
    attrs: dict[str, Any] = {}
    for name, value in lowered.items():
        if name.startswith("ce-"):
            attrs[name[3:]] = _header_value(name, value) if "%" in value else value
    content_type = lowered.get(CONTENT_TYPE_HEADER)
    if content_type is not None:
        attrs["datacontenttype"] = content_type
    _check_attributes(attrs)
    data = _parse_data(body, content_type or JSON_CONTENT_TYPE, max_depth) if body else None
    return DecodedEvent(ContentMode.BINARY, data, attrs)


def _header_value(name: str, value: str) -> str:
    if "%" not in value:
        return value
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise DecodeError(
            RejectReason.INVALID_ENVELOPE, f"header {name} is not percent-encoded UTF-8"
        ) from None


def _check_attributes(attrs: dict[str, Any]) -> None:
    """Enforce the CloudEvents 1.0 rules on context attributes."""
    if attrs.get("specversion") != "1.0":
        raise DecodeError(
            RejectReason.INVALID_ENVELOPE,
            f"specversion must be '1.0', got {str(attrs.get('specversion'))[:20]!r}",
        )
    for name in _REQUIRED:
        value = attrs.get(name)
        if not isinstance(value, str) or not value:
            raise DecodeError(RejectReason.INVALID_ENVELOPE, f"attribute {name!r} must be a non-empty string")
    for name in _STRING_ATTRIBUTES:
        if name in attrs and not isinstance(attrs[name], str):
            raise DecodeError(RejectReason.INVALID_ENVELOPE, f"attribute {name!r} must be a string")
    if "time" in attrs:
        _check_time(attrs["time"])
    for name, value in attrs.items():
        if name not in _CHECKED:
            _check_extension(name, value)


def _check_time(value: Any) -> None:
    if isinstance(value, str) and (value in _GOOD_TIMES or _good_time(value)):
        return
    raise DecodeError(RejectReason.INVALID_ENVELOPE, "attribute 'time' must be an RFC 3339 timestamp")


def _check_extension(name: str, value: Any) -> None:
    if name not in _GOOD_EXTENSION_NAMES:
        if not _EXTENSION_NAME.match(name):
            raise DecodeError(
                RejectReason.INVALID_ENVELOPE,
                f"attribute name {name[:40]!r} must be 1-20 lowercase letters or digits",
            )
        if len(_GOOD_EXTENSION_NAMES) < _MAX_GOOD_EXTENSION_NAMES:
            _GOOD_EXTENSION_NAMES.add(name)
    if not isinstance(value, (str, int, bool)):
        raise DecodeError(
            RejectReason.INVALID_ENVELOPE, f"attribute {name!r} must be a string, number or boolean"
        )


def decode_contract(
    headers: Mapping[str, str] | None,
    body: bytes,
    contract: type[_M],
    *,
    max_depth: int = jsonsafe.DEFAULT_MAX_DEPTH,
) -> tuple[DecodedEvent, _M]:
    """Decode a message and validate its data against ``contract``.

    Raises:
        DecodeError: the message is malformed (its reason says how), carries
            another event type (``unexpected_type``) or invalid data
            (``invalid_entry``, with the contract's field errors in ``detail``).
    """
    event = decode_event(headers, body, contract, max_depth=max_depth)
    try:
        return event, contract.parse(event.data)
    except ContractError as exc:
        raise DecodeError(RejectReason.INVALID_ENTRY, str(exc)) from None


def decode_event(
    headers: Mapping[str, str] | None,
    body: bytes,
    contract: type[ContractModel],
    *,
    max_depth: int = jsonsafe.DEFAULT_MAX_DEPTH,
    lowered: bool = False,
) -> DecodedEvent:
    """Decode a message that must carry a ``contract`` event, leaving its data unvalidated.

    For callers that validate the data their own way (see :mod:`contracts.entrycheck`).

    Raises:
        DecodeError: the message is malformed (its reason says how), carries
            another event type (``unexpected_type``) or data that is not JSON.
    """
    event = decode(headers, body, max_depth=max_depth, lowered=lowered)
    if isinstance(event.data, bytes):
        raise DecodeError(
            RejectReason.UNSUPPORTED_CONTENT_TYPE,
            f"{contract.__name__} data must be JSON, not {event.attributes.get('datacontenttype')!r}",
        )
    if event.mode is not ContentMode.BARE and event.type != contract.EVENT_TYPE:
        raise DecodeError(
            RejectReason.UNEXPECTED_TYPE,
            f"expected type {contract.EVENT_TYPE!r}, got {str(event.type)[:80]!r}",
        )
    return event


def to_sdk_event(event: DecodedEvent) -> CloudEvent:
    """The event as the ``cloudevents`` SDK's v1 ``CloudEvent`` (for bare data: not possible).

    Raises:
        ValueError: ``event`` is bare data, which has no CloudEvents attributes.
    """
    from cloudevents.core.formats.json import JSONFormat  # noqa: PLC0415
    from cloudevents.core.v1.event import CloudEvent  # noqa: PLC0415

    if event.mode is ContentMode.BARE:
        raise ValueError("bare data has no CloudEvents attributes")
    if isinstance(event.data, bytes):
        attrs = dict(event.attributes)
        if "time" in attrs:
            attrs["time"] = parse_timestamp(attrs["time"])
        return CloudEvent(attrs, event.data)
    body = encode_structured(event.attributes, orjson.dumps(event.data))[1]
    return JSONFormat().read(None, body)  # type: ignore[return-value]


def from_sdk_event(sdk_event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Encode an SDK ``CloudEvent`` in structured mode for NATS, with the SDK's own JSON writer."""
    from cloudevents.core.formats.json import JSONFormat  # noqa: PLC0415

    return {CONTENT_TYPE_HEADER: STRUCTURED_CONTENT_TYPE}, JSONFormat().write(sdk_event)
