"""Entries in canonical form, decoded and checked in one compiled pass.

Most entries arrive as this platform's publishers write them: orjson's compact
encoding of the contract's fields (in any order), the platform's trace fields,
plain values as ``metadata``. For those, msgspec decodes the body straight into
a dict typed as the contract, checking every field's type as it parses (in C),
and encoding that dict again proves the body held nothing else: a duplicate key
(msgspec keeps the last), a field the types do not name (msgspec skips it), an
escape written the long way or a number written another way would each make the
re-encoding differ. :func:`canonical_entry` answers only then, and None for
everything else, which the general path (orjson, the hand-written checks, the
pydantic model) decides with its reasons; so the outcome is always the model's.

What the general path rejects can never pass here: invalid UTF-8 and lone
surrogates fail msgspec's decoding; a duplicate key fails the re-encoding;
nesting is bounded by the types (a few levels); integers are held to 64 bits
signed (the rest of the 64-bit range goes the general way), and floats to a
magnitude below 1e16, within which msgspec writes every float as orjson does
(beyond it msgspec writes ``1e16`` where orjson writes ``1e+16``).
``tests/test_canonical.py`` holds all of it to the general path.
"""

from typing import Annotated, Literal, NotRequired, TypedDict

import msgspec
from msgspec import Meta

from contracts.cloudevents import PLATFORM_EXTENSIONS, valid_event_time
from contracts.entrycheck import platform_epoch

__all__ = ["CanonicalEntry", "CanonicalEvent", "canonical_entry", "canonical_event", "encode"]

_Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
_Float = Annotated[float, Meta(gt=-1e16, lt=1e16)]
_Scalar = str | _Int | _Float | bool | None
_Inner = dict[str, _Scalar | list[_Scalar]]
# Any JSON value within the bounds above, nested at most three levels.
_Value = _Scalar | list[_Scalar | _Inner] | _Inner
_Text = Annotated[str, Meta(min_length=1)]
# Spelled out for msgspec; tests/test_canonical.py holds them to contracts.models and cloudevents.
_Level = Literal["debug", "info", "warn", "error", "fatal"]
_EntryType = Literal["cortex_logging.entry.created"]
_JsonType = Literal["application/json"]


class CanonicalEntry(TypedDict):
    """``LogEntryCreated`` data: the contract's fields, and the trace fields producers add
    (``traceId``/``spanId`` from this platform's publishers, the CloudEvents trace extensions)."""

    logId: str
    level: _Level
    message: str
    source: str
    component: NotRequired[str]
    userId: NotRequired[str]
    sessionId: NotRequired[str]
    metadata: NotRequired[dict[str, _Value]]
    createdAt: str
    traceId: NotRequired[_Value]
    spanId: NotRequired[_Value]
    traceparent: NotRequired[_Value]
    tracestate: NotRequired[_Value]
    correlationid: NotRequired[_Value]
    causationid: NotRequired[_Value]


class CanonicalEvent(TypedDict):
    """A structured-mode entry event: the core attributes, the platform's trace extensions,
    and the entry as its data."""

    specversion: Literal["1.0"]
    id: _Text
    source: _Text
    type: _EntryType
    time: NotRequired[str]
    datacontenttype: NotRequired[_JsonType]
    subject: NotRequired[str]
    traceparent: NotRequired[str]
    tracestate: NotRequired[str]
    correlationid: NotRequired[str]
    causationid: NotRequired[str]
    data: CanonicalEntry


# What msgspec raises for a body it does not take: one the types do not fit, or (skipping a
# field the types do not name) one nested deeper than the interpreter's recursion limit.
_UNDECIDED = (msgspec.MsgspecError, RecursionError)
# A body with '": ' in its first bytes is written with spaces (Python's json.dumps), so not
# canonical (bar a string holding an escaped quote before ': ', which then merely goes the
# general way too): it goes there at once, not after a decoding and an encoding.
_LOOK = 64
_entry = msgspec.json.Decoder(CanonicalEntry).decode
_event = msgspec.json.Decoder(CanonicalEvent).decode
encode = msgspec.json.Encoder().encode
"""A value this module decoded, encoded as orjson encodes it (see the module docstring)."""


def canonical_entry(body: bytes, *, strict: bool = False) -> tuple[CanonicalEntry, float] | None:
    """The entry in ``body`` and its ``createdAt`` in epoch seconds, if ``body`` is certainly a
    valid entry written canonically, with ``createdAt`` in the platform's own form; else None.

    ``strict``: held to :class:`~contracts.models.StrictLogEntryCreated` (``logId`` and
    ``source`` not empty) instead of :class:`~contracts.models.LogEntryCreated`.
    """
    if body.find(b'": ', 0, _LOOK) >= 0:  # written with spaces (json.dumps): not canonical
        return None
    try:
        entry = _entry(body)
    except _UNDECIDED:
        return None
    if encode(entry) != body or (strict and not (entry["logId"] and entry["source"])):
        return None
    epoch = platform_epoch(entry["createdAt"])
    return None if epoch is None else (entry, epoch)


def canonical_event(body: bytes, *, strict: bool = False) -> tuple[CanonicalEntry, float] | None:
    """The entry of a structured-mode entry event whose envelope certainly passes, with the
    event's trace extensions added as the general path adds them, and its time; else None."""
    if body.find(b'": ', 0, _LOOK) >= 0:
        return None
    try:
        event = _event(body)
    except _UNDECIDED:
        return None
    if encode(event) != body or ("time" in event and not valid_event_time(event["time"])):
        return None
    entry = event["data"]
    if strict and not (entry["logId"] and entry["source"]):
        return None
    epoch = platform_epoch(entry["createdAt"])
    if epoch is None:
        return None
    for name in PLATFORM_EXTENSIONS:
        if name in event and name not in entry:
            entry[name] = event[name]  # type: ignore[literal-required]
    return entry, epoch
