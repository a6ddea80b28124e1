"""The fast ingest path decides exactly as the plain one: pydantic and the generic decoder.

The decoder takes shortcuts (a hand-written entry check, bare JSON in one step,
raw header blocks, re-used encodings); these properties hold it to the plain
path it replaced, on valid and hostile messages in every wire form.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import ContractError, DecodeError, LogEntryCreated, StrictLogEntryCreated
from contracts.cloudevents import (
    PLATFORM_EXTENSIONS,
    ContentMode,
    decode_contract,
    encode_binary,
    encode_structured,
    make_attributes,
)
from contracts.entrycheck import plainly_valid_entry
from contracts.timestamps import entry_time, parse_timestamp
from gateway.bench.payloads import entry as bench_entry
from gateway.core.redact import Redactor
from gateway.ingest.decode import EntryDecoder
from tests import samples

MAX_BATCH_BYTES = 64 * 1024

TIMESTAMPS = st.sampled_from(
    [
        "2025-10-13T08:00:00.000Z",
        "2025-10-13T08:00:00Z",
        "2025-10-13t08:00:00.000z",
        "2025-10-13T08:00:00.123456789+02:00",
        "2024-02-29T23:59:59.999Z",
        "2025-02-29T08:00:00.000Z",
        "2025-02-30T08:00:00.000Z",
        "2025-10-13T24:00:00.000Z",
        "2025-10-13T08:00:60.000Z",
        "2025-10-13T08:00:00.000Z\n",
        "2025-10-13 08:00:00.000Z",
        "2025-10-13T08:00:00.000+0200",
        "2025-13-01T00:00:00.000Z",
        "\u0662025-10-13T08:00:00.000Z",
        "",
    ]
) | st.text(max_size=26)
JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**65), 2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
JSON_ANY = st.recursive(
    JSON_LEAF,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
)
ODD_KEYS = st.sampled_from(
    ["EVENT_TYPE", "model_config", "model_fields", "__class__", "__dict__", "_private", "", "parse", "id"]
) | st.text(max_size=8)
FIELDS = ["logId", "level", "message", "source", "component", "userId", "sessionId", "metadata", "createdAt"]


@st.composite
def entry_data(draw: st.DrawFn) -> dict[str, Any]:
    """Entries, mostly valid, some with a field broken, missing, null or joined by odd ones."""
    data = samples.entry(draw(st.integers(0, 10**6)), message=draw(st.text(max_size=40)))
    if draw(st.booleans()):
        data["metadata"] = draw(st.dictionaries(st.text(max_size=5), JSON_ANY, max_size=3))
    if draw(st.booleans()):  # half of them valid (with any metadata and odd extra fields)
        data["level"] = draw(st.sampled_from(["debug", "info", "warn", "error", "fatal", "loud", "INFO"]))
        data["createdAt"] = draw(TIMESTAMPS)
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=2)) if draw(st.booleans()) else ():
        if draw(st.booleans()):
            data.pop(name, None)
        else:
            data[name] = draw(JSON_ANY)
    for name in draw(st.lists(ODD_KEYS, max_size=3)):
        data[name] = draw(JSON_ANY)
    # Through JSON, as the decoder sees it (integers beyond 64 bits come back as floats).
    parsed: dict[str, Any] = orjson.loads(json.dumps(data))
    return parsed


RECEIVED = 1_760_000_000.0  # the receipt time (epoch seconds) the decoders under test see


def model_epoch(data: Any, strict: bool) -> float | None:
    """``createdAt`` in epoch seconds if the model (of the mode) accepts ``data``, else None."""
    try:
        if strict:
            return parse_timestamp(StrictLogEntryCreated.parse(data).createdAt).timestamp()
        return entry_time(LogEntryCreated.parse(data).createdAt, RECEIVED).epoch
    except ContractError:
        return None


@settings(max_examples=800, deadline=None)
@given(entry_data(), st.booleans())
def test_the_entry_check_accepts_only_what_the_model_accepts(data: dict[str, Any], strict: bool) -> None:
    fast = plainly_valid_entry(data, strict=strict)
    assert fast is None or fast == model_epoch(data, strict)


@pytest.mark.parametrize("strict", [False, True])
def test_common_entries_take_the_fast_path(strict: bool) -> None:
    rng = random.Random(3)
    for data in [samples.ENTRY, samples.entry(7), *(bench_entry(n, rng) for n in range(200))]:
        parsed = orjson.loads(orjson.dumps(data))
        assert plainly_valid_entry(parsed, strict=strict) == model_epoch(parsed, strict) is not None


def reference(headers: Mapping[str, str] | None, body: bytes, strict: bool) -> tuple[Any, ...]:
    """The decoder as it was: the generic decode, the pydantic model, one encoding; by default
    the platform's contract with the entry's time parsed or the receipt time."""
    if len(body) > MAX_BATCH_BYTES + 16 * 1024:
        return ("oversize",)
    try:
        event, entry = decode_contract(headers, body, StrictLogEntryCreated if strict else LogEntryCreated)
    except DecodeError as exc:
        return (exc.reason,)
    data = event.data
    if event.mode is not ContentMode.BARE:
        for name in PLATFORM_EXTENSIONS:
            if name in event.attributes and name not in data:
                data[name] = event.attributes[name]
    if strict:
        created_at, created = parse_timestamp(entry.createdAt).timestamp(), entry.createdAt
    else:
        created_at, created, _ = entry_time(entry.createdAt, RECEIVED)
    return ("ok", orjson.dumps(data), entry.level, entry.source, created_at, created)


def fast(decoder: EntryDecoder, headers: Mapping[str, str] | bytes | None, body: bytes) -> tuple[Any, ...]:
    try:
        got = decoder.decode(headers, body)
    except DecodeError as exc:
        return (exc.reason,)
    return ("ok", got.data, got.level, got.source, got.created_at, got.created_text)


ATTRIBUTE_CHANGES: st.SearchStrategy[dict[str, Any]] = st.sampled_from(
    [
        {},
        {},
        {},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {"correlationid": "c-1", "tracestate": "a=b"},
        {"specversion": "0.3"},
        {"type": "other.type"},
        {"id": ""},
        {"source": 5},
        {"time": "yesterday"},
        {"time": None},
        {"Bad_Name": "x"},
        {"ext": ["list"]},
        {"ext": 7, "flag": True},
        {"datacontenttype": "text/plain"},
        {"datacontenttype": "application/json; charset=utf-8"},
    ]
)


def raw_block(headers: Mapping[str, str], upper: bool) -> bytes:
    lines = b"".join(f"{k.upper() if upper else k}: {v}\r\n".encode() for k, v in headers.items())
    return b"NATS/1.0\r\n" + lines + b"\r\n"


@st.composite
def bodies(draw: st.DrawFn, data: dict[str, Any]) -> bytes:
    """``data`` as JSON, sometimes made hostile: a duplicate key, an escaped colon, a deep or huge value."""
    body = json.dumps(data).encode()
    trick = draw(
        st.sampled_from(["none"] * 3 + ["orjson"] * 3 + ["duplicate", "colon", "deep", "huge", "spaces"])
    )
    if trick == "orjson":  # as our publishers write it: byte for byte orjson's encoding
        return orjson.dumps(orjson.loads(body))
    if trick == "duplicate" and body.startswith(b"{") and len(body) > 2:
        body = body[:-1] + b', "level": "info"}'
    elif trick == "colon":
        body = body.replace(b'"log-', b'"log\\u003a', 1)
    elif trick == "deep":
        body = body.replace(b'"logId"', b'"nest": ' + b"[" * 40 + b"]" * 40 + b', "logId"', 1)
    elif trick == "huge":
        body = body.replace(b'"logId"', b'"n": 123456789012345678901, "logId"', 1)
    elif trick == "spaces":
        body = json.dumps(data, indent=1).encode()
    return body


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, Mapping[str, str] | None, bytes]:
    data = draw(entry_data())
    form = draw(st.sampled_from(["bare", "bare", "structured", "binary", "envelope-in-body"]))
    body = draw(bodies(data))
    if form == "bare":
        return form, None, body
    attrs = make_attributes(LogEntryCreated.EVENT_TYPE, "//test")
    changes: dict[str, Any] = draw(ATTRIBUTE_CHANGES)
    attrs.update(changes)
    attrs = {k: v for k, v in attrs.items() if form != "binary" or v is not None}
    if form == "binary":
        attrs = {k: v if isinstance(v, str) else json.dumps(v) for k, v in attrs.items()}
        headers, body = encode_binary(attrs, body)
        return form, headers, body
    head, envelope = encode_structured(attrs, body)
    if form == "envelope-in-body":
        return form, None, envelope
    return form, head, envelope


@settings(max_examples=600, deadline=None)
@given(messages(), st.booleans(), st.booleans())
def test_the_decoder_agrees_with_the_plain_path(
    message: tuple[str, Mapping[str, str] | None, bytes], upper: bool, strict: bool
) -> None:
    _, headers, body = message
    decoder = EntryDecoder(max_batch_bytes=MAX_BATCH_BYTES, strict=strict, wall_clock=lambda: RECEIVED)
    expected = reference(headers, body, strict)
    assert fast(decoder, headers, body) == expected
    if headers:  # as the fast path receives them: the raw block, names in any case
        assert fast(decoder, raw_block(headers, upper), body) == expected


@pytest.mark.parametrize("form", ["bare", "structured", "binary"])
def test_redaction_applies_on_the_fast_path(form: str) -> None:
    data = samples.entry(1, message="login token=abc123secret ok")
    attrs = make_attributes(LogEntryCreated.EVENT_TYPE, "//test")
    body = orjson.dumps(data)
    headers: Mapping[str, str] | None = None
    if form != "bare":
        headers, body = (encode_structured if form == "structured" else encode_binary)(attrs, body)
    plain = EntryDecoder(max_batch_bytes=MAX_BATCH_BYTES).decode(headers, body)
    redacted = EntryDecoder(max_batch_bytes=MAX_BATCH_BYTES, redactor=Redactor()).decode(headers, body)
    assert b"abc123secret" in plain.data
    assert b"abc123secret" not in redacted.data
    assert orjson.loads(redacted.data)["logId"] == data["logId"]
