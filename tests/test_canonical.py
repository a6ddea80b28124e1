"""The compiled fast path (``contracts.canonical``) answers only what the general path accepts.

It answers for bodies that are orjson's own encoding of an entry within the
types' bounds; these properties hold it to the general path (orjson, the
hand-written checks, pydantic) on valid and hostile bodies, and check the two
facts it rests on: msgspec writes what orjson writes within those bounds, and
the types spell out the contracts.
"""

from __future__ import annotations

import json
import random
from typing import Any, get_args, get_type_hints

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import DecodeError, LogEntryCreated, RejectReason, StrictLogEntryCreated, jsonsafe
from contracts import canonical as canon
from contracts.canonical import CanonicalEntry, CanonicalEvent, canonical_entry, canonical_event, encode
from contracts.cloudevents import (
    JSON_CONTENT_TYPE,
    PLATFORM_EXTENSIONS,
    decode_contract,
    encode_structured,
    make_attributes,
)
from contracts.errors import ContractError
from contracts.models import LEVELS
from contracts.timestamps import parse_timestamp
from gateway.bench.payloads import entry as bench_entry
from gateway.ingest.decode import EntryDecoder
from tests import samples

CREATED = "2025-10-13T08:00:00.000Z"
EPOCH = 1_760_342_400.0


def test_the_types_spell_out_the_contracts() -> None:
    assert get_args(canon._Level) == LEVELS
    assert get_args(canon._EntryType) == (LogEntryCreated.EVENT_TYPE,)
    assert get_args(canon._JsonType) == (JSON_CONTENT_TYPE,)
    entry_fields = get_type_hints(CanonicalEntry)
    assert set(LogEntryCreated.model_fields) <= set(entry_fields)
    assert set(PLATFORM_EXTENSIONS) <= set(entry_fields)
    assert set(PLATFORM_EXTENSIONS) <= set(get_type_hints(CanonicalEvent))
    required = {name for name, field in LogEntryCreated.model_fields.items() if field.is_required()}
    assert CanonicalEntry.__required_keys__ == required


BOUNDED = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(min_value=-1e16, max_value=1e16, exclude_min=True, exclude_max=True)
    | st.text(),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(BOUNDED)
def test_msgspec_writes_what_orjson_writes_within_the_bounds(value: Any) -> None:
    assert encode(value) == orjson.dumps(value)


def test_msgspec_writes_every_character_as_orjson_does() -> None:
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert encode(text) == orjson.dumps(text)
    for c in range(0x800):  # one at a time too, the escapes above all
        assert encode(chr(c)) == orjson.dumps(chr(c))


def general(body: bytes, strict: bool) -> tuple[Any, ...]:
    """What the general path makes of a bare body: the data, its encoding, the entry's time."""
    try:
        data = jsonsafe.loads(body)
        model = (StrictLogEntryCreated if strict else LogEntryCreated).parse(data)
    except (DecodeError, ContractError):
        return ("rejected",)
    return ("ok", data, orjson.dumps(data), model.createdAt)


NUMBERS = st.sampled_from(
    [
        "0",
        "-0",
        "1.0",
        "1e5",
        "1E5",
        "1.5e-7",
        "9999999999999998.0",
        "1e16",
        "1e+16",
        "1.0e16",
        "-1e16",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "0.1",
        "100000.0",
    ]
)
KEYS = st.sampled_from(["logId", "level", "message", "source", "component", "metadata", "createdAt", "x"])


@st.composite
def entry_bodies(draw: st.DrawFn) -> bytes:
    """Entries in any key order, written canonically or with one thing odd about them."""
    data: dict[str, Any] = samples.entry(draw(st.integers(0, 10**6)), createdAt=CREATED)
    for name in draw(st.lists(st.sampled_from(["component", "userId", "sessionId", "traceId"]))):
        data[name] = draw(st.text(max_size=6))
    if draw(st.booleans()):
        data["metadata"] = draw(st.dictionaries(st.text(max_size=5), BOUNDED, max_size=3))
    if draw(st.booleans()):
        data[draw(KEYS)] = draw(BOUNDED)
    keys = draw(st.permutations(list(data)))
    body = orjson.dumps({k: data[k] for k in keys})
    trick = draw(st.sampled_from(["none"] * 6 + ["number", "duplicate", "spaces", "escape", "deep", "bytes"]))
    if trick == "number":
        body = body[:-1] + b',"n":' + draw(NUMBERS).encode() + b"}"
    elif trick == "duplicate":
        body = body[:-1] + b',"' + draw(KEYS).encode() + b'":' + orjson.dumps(draw(BOUNDED)) + b"}"
    elif trick == "spaces":
        body = json.dumps(json.loads(body), indent=draw(st.sampled_from([None, 1]))).encode()
    elif trick == "escape":
        body = body.replace(b'"log-', draw(st.sampled_from([b'"\\u006cog-', b'"log\\/', b'"log\\u003a'])), 1)
    elif trick == "deep":
        depth = draw(st.integers(1, 40))
        body = body[:-1] + b',"metadata":{"d":' + b"[" * depth + b"]" * depth + b"}}"
    elif trick == "bytes":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from([b"\xff", b"\\ud800", b"\xed\xa0\x80", b"\x00"])) + body[at:]
    return body


@settings(max_examples=400, deadline=None)
@given(entry_bodies(), st.booleans())
def test_it_answers_only_what_the_general_path_accepts_and_as_it_does(body: bytes, strict: bool) -> None:
    found = canonical_entry(body, strict=strict)
    if found is None:
        return
    entry, epoch = found
    expected = general(body, strict)
    assert expected[0] == "ok"
    assert expected[1] == entry
    assert expected[2] == body == encode(entry)  # so the body itself is what the batch holds
    assert epoch == parse_timestamp(expected[3]).timestamp()


def _goes_the_general_way_and_is_rejected(body: bytes, reason: RejectReason) -> None:
    """The fast pass declines ``body`` (bare and in a structured event) and the general path
    rejects it with ``reason``."""
    assert canonical_entry(body) is None
    with pytest.raises(DecodeError) as caught:
        EntryDecoder(max_batch_bytes=1 << 20).decode(None, body)
    assert caught.value.reason is reason
    event = encode_structured(make_attributes(LogEntryCreated.EVENT_TYPE, "//test"), body)[1]
    assert canonical_event(event) is None


@pytest.mark.parametrize(
    ("odd", "reason"),
    [
        (b'{"a":1,"a":2}', RejectReason.DUPLICATE_KEY),
        (b'{"a":"\xff"}', RejectReason.INVALID_JSON),
        (b'{"a":"\\ud800"}', RejectReason.INVALID_JSON),
        (b'{"a":"\xed\xa0\x80"}', RejectReason.INVALID_JSON),
        (b'{"a":NaN}', RejectReason.INVALID_JSON),
        (b'{"a":123456789012345678901234567890}', RejectReason.NUMBER_OUT_OF_RANGE),
        (b'{"a":-9223372036854775809}', RejectReason.NUMBER_OUT_OF_RANGE),
        (b'{"a":' + b"[" * 40 + b"]" * 40 + b"}", RejectReason.TOO_DEEP),
    ],
)
def test_hostile_metadata_goes_the_general_way_and_is_rejected_as_before(
    odd: bytes, reason: RejectReason
) -> None:
    data = {**samples.ENTRY, "metadata": {}}
    body = orjson.dumps(data).replace(b'"metadata":{}', b'"metadata":' + odd)
    _goes_the_general_way_and_is_rejected(body, reason)


@pytest.mark.parametrize(
    ("depth", "reason"), [(1000, RejectReason.TOO_DEEP), (5000, RejectReason.INVALID_JSON)]
)
def test_a_field_it_does_not_know_nested_past_the_recursion_limit_goes_the_general_way(
    depth: int, reason: RejectReason
) -> None:
    body = orjson.dumps(samples.ENTRY)[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
    _goes_the_general_way_and_is_rejected(body, reason)


def publishers_entries() -> list[dict[str, Any]]:
    """Entries in the field orders this platform's publishers write."""
    rng = random.Random(5)
    head: dict[str, Any] = {"logId": "a1", "level": "info", "message": "m", "source": "svc"}
    emit = head | {"createdAt": CREATED, "component": "c", "metadata": {"k": 1}, "traceId": "0af7"}
    handler = head | {"component": "app", "createdAt": CREATED, "userId": "u-1"}
    handler["metadata"] = {"pid": 7, "exception": {"type": "E", "stack": "..."}}
    pino = head | {"createdAt": CREATED, "component": "db", "spanId": "b7ad"}
    pino["metadata"] = {"ms": 12.5, "tags": ["a"]}
    return [emit, handler, pino, samples.ENTRY, *(bench_entry(n, rng) for n in range(50))]


@pytest.mark.parametrize("strict", [False, True])
def test_the_publishers_entries_take_the_fast_path_in_every_wire_form(strict: bool) -> None:
    for data in publishers_entries():
        body = orjson.dumps(data)
        found = canonical_entry(body, strict=strict)
        assert found is not None
        assert found[0] == data
        extensions = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        attrs = make_attributes(LogEntryCreated.EVENT_TYPE, "//test", extensions=extensions)
        event = canonical_event(encode_structured(attrs, body)[1], strict=strict)
        assert event is not None
        assert event[0] == data | extensions


@settings(max_examples=200, deadline=None)
@given(
    entry_bodies(),
    st.dictionaries(st.sampled_from([*PLATFORM_EXTENSIONS, "subject", "time"]), st.text(max_size=4)),
    st.booleans(),
)
def test_an_event_it_answers_is_one_the_general_path_accepts_with_the_same_entry(
    body: bytes, changes: dict[str, str], strict: bool
) -> None:
    attrs = make_attributes(LogEntryCreated.EVENT_TYPE, "//test", time=CREATED) | changes
    headers, envelope = encode_structured(attrs, body)
    found = canonical_event(envelope, strict=strict)
    if found is None:
        return
    event, entry = decode_contract(headers, envelope, StrictLogEntryCreated if strict else LogEntryCreated)
    data = event.data
    for name in PLATFORM_EXTENSIONS:
        if name in event.attributes and name not in data:
            data[name] = event.attributes[name]
    assert found[0] == data
    assert encode(found[0]) == orjson.dumps(data)
    assert found[1] == parse_timestamp(entry.createdAt).timestamp()


def test_a_time_that_names_no_moment_goes_the_general_way() -> None:
    for created in ("2025-02-30T08:00:00.000Z", "2025-10-13T08:00:00Z", "soon"):
        assert canonical_entry(orjson.dumps(samples.ENTRY | {"createdAt": created})) is None
    assert canonical_entry(orjson.dumps(samples.ENTRY)) == (samples.ENTRY, EPOCH)
