"""Hostile-input-safe JSON decoding.

orjson does the parsing (it rejects invalid UTF-8, lone surrogates, NaN and
Infinity, and nesting beyond 1024). What it cannot see, duplicate keys and
integers too large for 64 bits (which it silently turns into floats), is
checked here. The check is exact but cheap: a document has a duplicate key iff
it holds more key tokens than the parsed objects hold keys, and the key tokens
are counted from the colons outside strings. When the cheap count cannot be
trusted (escaped colons, numbers near or beyond the 64-bit range) the stdlib
parser with strict hooks decides instead, so the slow path is only paid by odd
inputs.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import orjson

from contracts.errors import DecodeError, RejectReason

__all__ = ["DEFAULT_MAX_DEPTH", "INT_MAX", "INT_MIN", "loads"]

DEFAULT_MAX_DEPTH = 32
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
_HUGE = 9.2e18  # floats at least this large may be integer literals orjson could not hold
_ESCAPED_COLON = b"\\u003"


def loads(data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse ``data`` as strict JSON.

    Raises:
        DecodeError: invalid JSON or UTF-8, NaN/Infinity, a duplicate key,
            nesting deeper than ``max_depth``, or an integer outside 64 bits.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        _fail_json(exc)
    # Wrapped in a list so a top-level scalar is checked too; the wrapper is one level.
    keys, string_colons, huge = _walk([value], max_depth, 0)
    if huge or _ESCAPED_COLON in data or data.count(b":") - string_colons != keys:
        return _strict_loads(data)
    return value


def _fail_json(exc: orjson.JSONDecodeError) -> NoReturn:
    raise DecodeError(RejectReason.INVALID_JSON, str(exc)) from None


def _walk(value: Any, max_depth: int, depth: int) -> tuple[int, int, bool]:
    """Count keys and colons inside strings; enforce depth and integer range.

    ``huge`` flags a float beyond the 64-bit integer range: orjson turns too-large
    integer literals into such floats, so the strict parser must look at them.
    """
    if depth > max_depth:
        raise DecodeError(RejectReason.TOO_DEEP, f"JSON nested deeper than {max_depth} levels")
    keys = colons = 0
    huge = False
    if type(value) is dict:
        keys = len(value)
        items: Any = value.values()
        for key in value:
            colons += key.count(":")
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is str:
            colons += item.count(":")
        elif kind is dict or kind is list:
            k, c, h = _walk(item, max_depth, depth + 1)
            keys += k
            colons += c
            huge = huge or h
        elif kind is float and not -_HUGE < item < _HUGE:
            huge = True
        elif kind is int and not INT_MIN <= item <= INT_MAX:
            _out_of_range(item)
    return keys, colons, huge


def _out_of_range(number: object) -> NoReturn:
    raise DecodeError(
        RejectReason.NUMBER_OUT_OF_RANGE,
        f"integer {str(number)[:40]} is outside the 64-bit range",
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DecodeError(RejectReason.DUPLICATE_KEY, f"duplicate key {dup[:64]!r}")
    return obj


def _checked_int(text: str) -> int:
    if len(text) > 21:
        _out_of_range(text)
    number = int(text)
    if not INT_MIN <= number <= INT_MAX:
        _out_of_range(text)
    return number


def _strict_loads(data: bytes) -> Any:
    # Only reached after orjson accepted the document, so UTF-8, NaN and depth
    # are already known good; this pass exists for duplicates and big integers.
    return json.loads(
        data.decode("utf-8"),
        object_pairs_hook=_no_duplicates,
        parse_int=_checked_int,
    )
