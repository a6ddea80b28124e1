"""The CloudEvents binding without a server: encode, decode, spec examples, hostile input."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import (
    ContentMode,
    DecodeError,
    LogEntryCreated,
    RejectReason,
    decode,
    decode_contract,
    encode_binary,
    encode_structured,
    make_attributes,
)
from contracts.cloudevents import from_sdk_event, to_sdk_event
from tests import samples

EXTENSIONS = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
    "correlationid": "corr-42",
    "causationid": 'cause 7 / ünïcödé "quoted" 100%',
}


def entry_attributes() -> dict[str, Any]:
    return make_attributes(
        LogEntryCreated.EVENT_TYPE, "//payments-api/pod-1", subject="payments-api", extensions=EXTENSIONS
    )


@pytest.mark.parametrize("encode", [encode_structured, encode_binary])
def test_round_trip_keeps_attributes_and_data(encode: Any) -> None:
    attrs = entry_attributes()
    headers, body = encode(attrs, orjson.dumps(samples.ENTRY))
    event, entry = decode_contract(headers, body, LogEntryCreated)
    assert event.attributes == attrs
    assert entry.to_data() == samples.ENTRY
    assert event.mode is (ContentMode.STRUCTURED if encode is encode_structured else ContentMode.BINARY)


def test_binary_headers_are_percent_encoded_and_header_safe() -> None:
    attrs = entry_attributes() | {"correlationid": "line1\r\nNats-Msg-Id: forged"}
    headers, _ = encode_binary(attrs, b"{}")
    assert headers["content-type"] == "application/json"
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-causationid"] == "cause%207%20/%20%C3%BCn%C3%AFc%C3%B6d%C3%A9%20%22quoted%22%20100%25"
    assert all(ch.isprintable() and ch != " " for value in headers.values() for ch in value if value != "")
    assert "\n" not in headers["ce-correlationid"]


def test_structured_body_is_the_json_event_format() -> None:
    headers, body = encode_structured(entry_attributes(), orjson.dumps(samples.ENTRY))
    assert headers == {"content-type": "application/cloudevents+json"}
    parsed = json.loads(body)
    assert parsed["data"] == samples.ENTRY
    assert parsed["specversion"] == "1.0"


def test_bare_entry_is_accepted() -> None:
    event, entry = decode_contract(None, orjson.dumps(samples.ENTRY), LogEntryCreated)
    assert event.mode is ContentMode.BARE
    assert event.attributes == {}
    assert entry.logId == samples.ENTRY["logId"]


def test_structured_without_header_is_recognised() -> None:
    _, body = encode_structured(entry_attributes(), orjson.dumps(samples.ENTRY))
    event = decode({"content-type": "application/json"}, body)
    assert event.mode is ContentMode.STRUCTURED


def test_sdk_reads_what_we_write_and_we_read_what_it_writes() -> None:
    attrs = entry_attributes()
    _, body = encode_structured(attrs, orjson.dumps(samples.ENTRY))
    sdk_event = JSONFormat().read(None, body)
    assert sdk_event.get_id() == attrs["id"]
    assert sdk_event.get_extension("traceparent") == EXTENSIONS["traceparent"]
    assert sdk_event.get_data() == samples.ENTRY
    theirs = CloudEvent(
        {"id": "1", "source": "/s", "type": LogEntryCreated.EVENT_TYPE, **EXTENSIONS}, samples.ENTRY
    )
    headers, body = from_sdk_event(theirs)
    event, entry = decode_contract(headers, body, LogEntryCreated)
    assert event.attributes["correlationid"] == "corr-42"
    assert entry.to_data() == samples.ENTRY
    back = to_sdk_event(event)
    assert back.get_extension("causationid") == EXTENSIONS["causationid"]


# The examples from the CloudEvents 1.0 JSON event format specification.
SPEC_JSON_EXAMPLE = b"""{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "subject": null,
    "id" : "C234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "datacontenttype" : "application/json",
    "data" : {"appinfoA" : "abc", "appinfoB" : 123, "appinfoC" : true}
}"""
SPEC_BINARY_DATA = b"\x00\x01thrift\xff"
SPEC_BASE64_EXAMPLE = json.dumps(
    {
        "specversion": "1.0",
        "type": "com.example.someevent",
        "source": "/mycontext",
        "id": "A234-1234-1234",
        "time": "2018-04-05T17:31:00Z",
        "comexampleextension1": "value",
        "comexampleothervalue": 5,
        "datacontenttype": "application/vnd.apache.thrift.binary",
        "data_base64": base64.b64encode(SPEC_BINARY_DATA).decode(),
    }
).encode()


def test_spec_examples_decode() -> None:
    event = decode({"content-type": "application/cloudevents+json"}, SPEC_JSON_EXAMPLE)
    assert event.type == "com.example.someevent"
    assert "subject" not in event.attributes
    assert event.attributes["comexampleothervalue"] == 5
    assert event.data == {"appinfoA": "abc", "appinfoB": 123, "appinfoC": True}
    binary = decode({"content-type": "application/cloudevents+json"}, SPEC_BASE64_EXAMPLE)
    assert binary.data == SPEC_BINARY_DATA
    assert to_sdk_event(binary).get_data() == SPEC_BINARY_DATA
    with pytest.raises(DecodeError) as info:
        decode_contract(
            {"content-type": "application/cloudevents+json"}, SPEC_BASE64_EXAMPLE, LogEntryCreated
        )
    assert info.value.reason is RejectReason.UNSUPPORTED_CONTENT_TYPE


def test_spec_binary_mode_example_decodes() -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "com.example.someevent",
        "ce-time": "2018-04-05T03:56:24Z",
        "ce-id": "1234-1234-1234",
        "ce-source": "/mycontext/subcontext",
        "ce-comexampleextension1": "value",
        "Content-Type": "application/json; charset=utf-8",
    }
    event = decode(headers, b'{"appinfoA": "abc"}')
    assert event.mode is ContentMode.BINARY
    assert event.attributes["source"] == "/mycontext/subcontext"
    assert event.attributes["datacontenttype"] == "application/json; charset=utf-8"
    assert event.data == {"appinfoA": "abc"}


STRUCTURED = {"content-type": "application/cloudevents+json"}


def envelope(**changes: Any) -> bytes:
    base: dict[str, Any] = {
        "specversion": "1.0",
        "id": "1",
        "source": "/s",
        "type": LogEntryCreated.EVENT_TYPE,
    }
    base.update(changes)
    base["data"] = base.get("data", samples.ENTRY)
    return json.dumps(base).encode()


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        (STRUCTURED, b"[1, 2]", RejectReason.INVALID_ENVELOPE),
        (STRUCTURED, envelope(specversion="0.3"), RejectReason.INVALID_ENVELOPE),
        (STRUCTURED, envelope(id=""), RejectReason.INVALID_ENVELOPE),
        (STRUCTURED, envelope(source=5), RejectReason.INVALID_ENVELOPE),
        (STRUCTURED, envelope(time="yesterday"), RejectReason.INVALID_ENVELOPE),
        (STRUCTURED, envelope(subject=["x"]), RejectReason.INVALID_ENVELOPE),
        (STRUCTURED, envelope(**{"Bad-Name": "x"}), RejectReason.INVALID_ENVELOPE),
        (STRUCTURED, envelope(ext={"nested": 1}), RejectReason.INVALID_ENVELOPE),
        (STRUCTURED, envelope(data_base64="%%%"), RejectReason.INVALID_ENVELOPE),
        (STRUCTURED, envelope(data_base64=5), RejectReason.INVALID_ENVELOPE),
        (STRUCTURED, envelope(data_base64="e30="), RejectReason.INVALID_ENVELOPE),
        (STRUCTURED, envelope(type="cortex_logging.log.archived"), RejectReason.UNEXPECTED_TYPE),
        (STRUCTURED, envelope(data={"logId": "x"}), RejectReason.INVALID_ENTRY),
        (STRUCTURED, b'{"specversion": "1.0", "specversion": "1.0"}', RejectReason.DUPLICATE_KEY),
        ({"content-type": "text/plain"}, b"hello", RejectReason.UNSUPPORTED_CONTENT_TYPE),
        (
            {"content-type": "application/cloudevents-batch+json"},
            b"[]",
            RejectReason.UNSUPPORTED_CONTENT_TYPE,
        ),
        ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s"}, b"{}", RejectReason.INVALID_ENVELOPE),
        (
            {"ce-specversion": "1.0", "ce-id": "%ff", "ce-source": "/s", "ce-type": "t"},
            b"{}",
            RejectReason.INVALID_ENVELOPE,
        ),
        (None, b"not json", RejectReason.INVALID_JSON),
        (None, b'"a string"', RejectReason.INVALID_ENTRY),
        (None, json.dumps(samples.ENTRY | {"level": "loud"}).encode(), RejectReason.INVALID_ENTRY),
    ],
)
def test_bad_messages_are_typed_errors(
    headers: dict[str, str] | None, body: bytes, reason: RejectReason
) -> None:
    with pytest.raises(DecodeError) as info:
        decode_contract(headers, body, LogEntryCreated)
    assert info.value.reason is reason, info.value


def test_invalid_entry_names_the_field() -> None:
    with pytest.raises(DecodeError, match="LogEntryCreated: level"):
        decode_contract(None, json.dumps(samples.ENTRY | {"level": "loud"}).encode(), LogEntryCreated)


def test_extension_names_are_checked_when_encoding() -> None:
    with pytest.raises(ValueError, match="extension name"):
        make_attributes("t", "/s", extensions={"Trace-Parent": "x"})


header_text = st.text(min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True), header_text, max_size=5), header_text
)
def test_binary_round_trip_any_attribute_text(extra: dict[str, str], source: str) -> None:
    attrs = make_attributes("t.x", source) | {
        k: v for k, v in extra.items() if k not in ("specversion", "datacontenttype", "time")
    }
    headers, body = encode_binary(attrs, b'{"a": 1}')
    assert decode(headers, body).attributes == attrs


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["content-type", "ce-specversion", "ce-id", "ce-type", "ce-source", "x"]),
        st.text(max_size=20),
    ),
    st.binary(max_size=120),
)
def test_arbitrary_messages_never_crash(headers: dict[str, str], body: bytes) -> None:
    reason: RejectReason | None = None
    try:
        decode_contract(headers, body, LogEntryCreated)
    except DecodeError as exc:
        reason = exc.reason
    assert reason is None or reason in set(RejectReason)
