"""Hostile-input-safe JSON decoding.

orjson does the parsing (it rejects invalid UTF-8, lone surrogates, NaN and
Infinity, and nesting beyond 1024). What it cannot see, duplicate keys and
integers too large for 64 bits (which it silently turns into floats), is
checked here, exactly but cheaply, mostly by counting bytes in C:

- a document that is byte for byte orjson's encoding of what it parsed to
  lost nothing on the way: no duplicate key, no integer read as a float;
- duplicate keys: each member of an object puts one colon outside strings, and
  orjson writes colons inside strings as they are, so a document has a
  duplicate key iff it holds more colons than orjson's re-encoding of what it
  parsed (an escaped colon, ``\\u003a``, defeats the count: such documents take
  the slow path);
- depth: a document with at most ``max_depth`` brackets cannot nest deeper;
- range: orjson reads an integer literal beyond 64 bits as a float of at least
  9.2e18, and writes every float from 1e16 up with an exponent
  (``1.8446744073709552e+19``), so a re-encoding without ``e+`` proves every
  integer fit (``tests/test_jsonsafe.py`` holds orjson to both).

When a count cannot decide (many brackets, long digit runs, escaped colons) a
walk of the parsed value and, if need be, the stdlib parser with strict hooks
decide instead, so the slow path is only paid by odd inputs.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import orjson

from contracts.errors import DecodeError, RejectReason

__all__ = ["DEFAULT_MAX_DEPTH", "INT_MAX", "INT_MIN", "loads", "loads_encoded"]

DEFAULT_MAX_DEPTH = 32
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
_HUGE = 9.2e18  # floats at least this large may be integer literals orjson could not hold
_ESCAPED_COLON = b"\\u003"
_EXPONENT = b"e+"  # in orjson's output: a float of 1e16 or more (or text that holds "e+")


def loads(data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse ``data`` as strict JSON.

    Raises:
        DecodeError: invalid JSON or UTF-8, NaN/Infinity, a duplicate key,
            nesting deeper than ``max_depth``, or an integer outside 64 bits.
    """
    return loads_encoded(data, max_depth=max_depth)[0]


def loads_encoded(data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> tuple[Any, bytes | None]:
    """Like :func:`loads`, and orjson's encoding of the value when the check made one (else None).

    For a caller that would encode the value as it is anyway.

    Raises:
        DecodeError: as :func:`loads` does.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        _fail_json(exc)
    brackets = data.count(b"{")
    if data.find(b"[") >= 0:  # a find (memchr) costs half a count: most entries hold no array
        brackets += data.count(b"[")
    if brackets <= max_depth:
        encoded = orjson.dumps(value)
        if encoded == data:  # orjson's own encoding: the round trip lost nothing, so no duplicate
            return value, encoded  # key and no integer read as a float can be in it
        if (
            (b"\\" not in data or _ESCAPED_COLON not in data)
            and (b"+" not in encoded or _EXPONENT not in encoded)
            and data.count(b":") == encoded.count(b":")
        ):
            return value, encoded
    return _walked(data, value, max_depth), None


def _walked(data: bytes, value: Any, max_depth: int) -> Any:
    """The check for documents the byte counts cannot clear: walk ``value``, then maybe reparse."""
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
