"""Hostile JSON: every bad input is a typed DecodeError with a reason, never a crash."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import DecodeError, RejectReason
from contracts.jsonsafe import _walked, loads, loads_encoded


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", RejectReason.INVALID_JSON),
        (b'{"a": "\xff\xfe"}', RejectReason.INVALID_JSON),
        (b'{"a": "\\ud800"}', RejectReason.INVALID_JSON),
        (b'{"a": NaN}', RejectReason.INVALID_JSON),
        (b'{"a": Infinity}', RejectReason.INVALID_JSON),
        (b'{"a": 1e400}', RejectReason.INVALID_JSON),
        (b'{"a": 1} trailing', RejectReason.INVALID_JSON),
        (b"", RejectReason.INVALID_JSON),
        (b"[" * 5000 + b"]" * 5000, RejectReason.INVALID_JSON),
        (b"[" * 40 + b"]" * 40, RejectReason.TOO_DEEP),
        (b'{"a": 123456789012345678901234567890}', RejectReason.NUMBER_OUT_OF_RANGE),
        (b'{"a": -9223372036854775809}', RejectReason.NUMBER_OUT_OF_RANGE),
        (b'{"a": 1, "a": 2}', RejectReason.DUPLICATE_KEY),
        (b'{"x": {"b": ":", "b": "::"}}', RejectReason.DUPLICATE_KEY),
        (b'{"a\\u003a": 1, "a:": 2}', RejectReason.DUPLICATE_KEY),
        (b'{"n": "12345678901234567890123", "n": 1}', RejectReason.DUPLICATE_KEY),
    ],
)
def test_hostile_input_is_rejected_with_reason(raw: bytes, reason: RejectReason) -> None:
    with pytest.raises(DecodeError) as info:
        loads(raw)
    assert info.value.reason is reason
    assert info.value.detail


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": "x:y", "b": {"c:": ":::"}, "d": [":", {"e": 1}]}',
        b'{"a\\u003a": 1, "b": "\\u003a"}',
        b'{"id": "12345678901234567890123", "n": 18446744073709551615}',
        b'{"n": -9223372036854775808, "f": 1.5e300}',
        b"[" * 32 + b"]" * 32,
    ],
)
def test_legitimate_edge_cases_are_accepted(raw: bytes) -> None:
    assert loads(raw) == json.loads(raw)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_valid_json_round_trips(value: Any) -> None:
    raw = json.dumps(value).encode()
    assert loads(raw, max_depth=64) == value


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet=':ab\\"', min_size=1, max_size=4), st.text(alphabet=':"\\', max_size=4), min_size=1
    )
)
def test_duplicate_detection_is_exact(obj: dict[str, str]) -> None:
    raw = json.dumps(obj).encode()
    assert loads(raw) == obj
    key = next(iter(obj))
    duplicated = raw[:-1] + b", " + json.dumps(key).encode() + b": 0}"
    with pytest.raises(DecodeError) as info:
        loads(duplicated)
    assert info.value.reason is RejectReason.DUPLICATE_KEY


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    reason: RejectReason | None = None
    try:
        loads(raw)
    except DecodeError as exc:
        reason = exc.reason
    assert reason is None or reason in set(RejectReason)


@pytest.mark.parametrize(
    "literal", [b"18446744073709551616", b"-9223372036854775809", b"1" + b"0" * 30, b"-" + b"9" * 25]
)
def test_orjson_reads_integers_beyond_64_bits_as_floats_it_writes_with_an_exponent(literal: bytes) -> None:
    # loads() proves integers fit by finding no "e+" in orjson's re-encoding: this must hold.
    value = orjson.loads(literal)
    assert type(value) is float
    assert b"e+" in orjson.dumps(value)


@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=9.2e18, allow_infinity=False), st.booleans())
def test_orjson_writes_every_float_that_large_with_an_exponent(number: float, negative: bool) -> None:
    assert b"e+" in orjson.dumps(-number if negative else number)


KEYS = st.sampled_from(['"a"', '"b"', '"a:"', '"a\\u003a"', '"\\u0062"', '"e+"'])
LEAVES = (
    st.integers(-(2**70), 2**70).map(str)
    | st.floats(allow_nan=False, allow_infinity=False).map(json.dumps)
    | st.sampled_from(['"a:b"', '"\\u003a"', '"e+5"', '"+"', "true", "null", "1e19", "-1e19", '"{["'])
)
DOCUMENTS = st.recursive(
    LEAVES,
    lambda children: (
        st.tuples(st.lists(children, max_size=4), st.sampled_from([",", ", "])).map(
            lambda parts: "[" + parts[1].join(parts[0]) + "]"
        )
        | st.lists(st.tuples(KEYS, children), max_size=4).map(
            lambda members: "{" + ",".join(f"{k}:{v}" for k, v in members) + "}"
        )
    ),
    max_leaves=25,
)


def outcome(parse: Any) -> tuple[Any, ...]:
    try:
        return ("ok", parse())
    except DecodeError as exc:
        return (exc.reason,)


@settings(max_examples=1000, deadline=None)
@given(DOCUMENTS, st.sampled_from([2, 4, 32]))
def test_the_byte_count_check_decides_as_the_walk_does(document: str, max_depth: int) -> None:
    raw = document.encode()
    expected = outcome(lambda: _walked(raw, orjson.loads(raw), max_depth))
    assert outcome(lambda: loads(raw, max_depth=max_depth)) == expected
    value, encoded = loads_encoded(raw, max_depth=max_depth) if expected[0] == "ok" else (None, None)
    assert encoded is None or encoded == orjson.dumps(value)
    # The same document as orjson writes it (most traffic): decided the same way too.
    canonical = orjson.dumps(orjson.loads(raw))
    assert outcome(lambda: loads(canonical, max_depth=max_depth)) == outcome(
        lambda: _walked(canonical, orjson.loads(canonical), max_depth)
    )
