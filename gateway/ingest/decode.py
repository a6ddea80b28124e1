"""Per-entry messages to :class:`PendingEntry`: the gateway's hot path.

Each entry is validated once and encoded once; the core then only moves bytes.
No pydantic object outlives the call (thousands of live models slowed
validation by half in measurements on this project's machine).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from contracts import jsonsafe
from contracts.canonical import CanonicalEntry, canonical_entry, canonical_event, encode
from contracts.cloudevents import (
    PLATFORM_EXTENSIONS,
    STRUCTURED_CONTENT_TYPE,
    ContentMode,
    decode_event,
    decode_structured_value,
    encode_structured,
    make_attributes,
    plain_structured_data,
    plainly_valid_attributes,
)
from contracts.entrycheck import plainly_valid_entry
from contracts.errors import ContractError, DecodeError, RejectReason
from contracts.models import EntryRejected, LogEntryCreated, StrictLogEntryCreated
from contracts.timestamps import EntryTime, entry_time, now_timestamp, parse_timestamp
from gateway.core.encode import header_size
from gateway.core.entry import PendingEntry
from gateway.core.redact import Redactor
from gateway.core.stats import Stats
from gateway.ingest.headers import binary_attributes, header_dict, parse_header_block

__all__ = ["EntryDecoder", "ErrorEntryObserver", "might_alert", "rejected_message"]

# The envelope of an entry event is much smaller than this; a body beyond the
# batch limit plus this allowance cannot hold an entry that fits a batch.
_ENVELOPE_ALLOWANCE = 16 * 1024
# A rejected message's headers are forwarded as an excerpt: each name and value cut to
# this many characters (enough to see what it was); the event's CloudEvents attributes
# and NATS headers take well under the allowance beside them.
_HEADER_NAME_CHARS = 256
_HEADER_VALUE_CHARS = 1024
_REJECTED_ENVELOPE = 1024
_ALERT_LEVELS = frozenset(("error", "fatal"))
_ENTRY_TYPE = LogEntryCreated.EVENT_TYPE
# The header block every structured-mode publisher sends, as nats-py writes it.
_STRUCTURED_BLOCKS = frozenset(
    b"NATS/1.0\r\n%s: %s\r\n\r\n" % (name, STRUCTURED_CONTENT_TYPE.encode())
    for name in (b"content-type", b"Content-Type")
)


class ErrorEntryObserver(Protocol):
    """Sees every error and fatal entry as received (the pattern detector)."""

    def __call__(self, *, source: str, message: str, level: str, created: str, created_at: float) -> None:
        """Count one entry; ``created`` is ``createdAt`` as sent, ``created_at`` in epoch seconds."""


class EntryDecoder:
    """Decodes structured, binary and bare entry messages.

    Args:
        max_batch_bytes: bodies larger than this plus an envelope allowance are
            rejected as ``oversize`` before parsing.
        clock: monotonic time of receipt.
        strict: hold entries to :class:`~contracts.models.StrictLogEntryCreated`
            (``--strict``) instead of the platform's own contract.
        wall_clock: the receipt time in epoch seconds, standing in for a ``createdAt``
            that names no moment (the entry's ``time_fallback``; the pipeline counts the
            accepted ones in the gateway's ``Stats.time_fallbacks``).
        stats: this decoder's own tally of the fallbacks it decoded (``time_fallbacks``),
            whatever became of the entries (shed, dropped, rejected as oversize): a separate
            ``Stats``, never the gateway's, which counts accepted entries only.
    """

    def __init__(
        self,
        *,
        max_batch_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        on_error_entry: ErrorEntryObserver | None = None,
        redactor: Redactor | None = None,
        strict: bool = False,
        wall_clock: Callable[[], float] = time.time,
        stats: Stats | None = None,
    ) -> None:
        self._max_body = max_batch_bytes + _ENVELOPE_ALLOWANCE
        self._clock = clock
        self._on_error_entry = on_error_entry
        self.redactor = redactor
        self.strict = strict
        self._wall_clock = wall_clock
        self.stats = stats if stats is not None else Stats()

    def retune(
        self, *, max_batch_bytes: int, on_error_entry: ErrorEntryObserver | None, redactor: Redactor | None
    ) -> None:
        """New limits for the next message: the oversize bound, the pattern detector, the redactor."""
        self._max_body = max_batch_bytes + _ENVELOPE_ALLOWANCE
        self._on_error_entry = on_error_entry
        self.redactor = redactor

    def _oversize(self, size: int) -> str:
        batch = self._max_body - _ENVELOPE_ALLOWANCE
        return (
            f"message body of {size} bytes exceeds {self._max_body} bytes, the most a body may have: "
            f"the batch limit max_batch_bytes ({batch} bytes = {batch / 1024:g} KiB) plus "
            f"{_ENVELOPE_ALLOWANCE // 1024} KiB for the event envelope; a larger body holds no entry "
            "that fits a batch"
        )

    @property
    def alerting(self) -> bool:
        """Does a pattern detector see the error and fatal entries decoded here?"""
        return self._on_error_entry is not None

    def decode(self, headers: Mapping[str, str] | bytes | None, body: bytes) -> PendingEntry:
        """The entry in a message, encoded once.

        ``headers`` is a mapping, or a raw NATS header block (read strictly by
        :func:`gateway.ingest.headers.parse_header_block`). Envelope trace
        attributes (``traceparent``, ``tracestate``, ``correlationid``,
        ``causationid``) are kept on the entry under the same names unless it
        already has them.

        Error and fatal entries are shown to ``on_error_entry`` (the pattern
        detector) as received, fitting a batch or not; a ``redactor`` then
        replaces secrets before the entry is encoded.

        Raises:
            DecodeError: the message is not a valid entry (the reason says why).
        """
        if len(body) > self._max_body:
            raise DecodeError(RejectReason.OVERSIZE, self._oversize(len(body)))
        if self.redactor is None:
            if not headers:  # (bare entries, the commonest, without a call between)
                found = canonical_entry(body, strict=self.strict)
                if found is not None:
                    entry, epoch = found  # (as _pending, written out: the body is the entry's JSON)
                    level = entry["level"]
                    if level in _ALERT_LEVELS and self._on_error_entry is not None:
                        self._observe(entry, epoch)
                    source, created = entry["source"], entry["createdAt"]
                    return PendingEntry(body, level, source, epoch, created, self._clock())
            elif (done := self._canonical(headers, body)) is not None:
                return done
        return self._general(headers, body)

    def _general(self, headers: Mapping[str, str] | bytes | None, body: bytes) -> PendingEntry:
        """The entry, by the general path: orjson and its checks, the fast entry check, the model."""
        data, attributes, encoded = _event(headers, body)
        created_at = plainly_valid_entry(data, strict=self.strict)
        created: str = data["createdAt"] if created_at is not None else ""
        fallback = False
        if created_at is None:
            created_at, created, fallback = self._validated_time(data)
        level: str = data["level"]
        if attributes:
            _keep_trace_attributes(data, attributes)
        if self._on_error_entry is not None and level in _ALERT_LEVELS:
            self._on_error_entry(
                source=data["source"],
                message=data["message"],
                level=level,
                created=created,
                created_at=created_at,
            )
        if self.redactor is not None and self.redactor.entry(data):
            encoded = None
        return PendingEntry(
            _compact(data, encoded, body), level, data["source"], created_at, created, self._clock(), fallback
        )

    def _canonical(self, headers: Mapping[str, str] | bytes | None, body: bytes) -> PendingEntry | None:
        """The entry, if the message (with headers) is an entry written canonically in
        structured or binary mode (:mod:`contracts.canonical`); None leaves it to the general path."""
        if type(headers) is not bytes:
            return None
        if headers in _STRUCTURED_BLOCKS:
            found = canonical_event(body, strict=self.strict)
            return None if found is None else self._pending(*found, None)
        return self._canonical_binary(headers, body)

    def _canonical_binary(self, headers: bytes, body: bytes) -> PendingEntry | None:
        attributes = binary_attributes(headers)
        if attributes is None or not plainly_valid_attributes(attributes, _ENTRY_TYPE):
            return None
        found = canonical_entry(body, strict=self.strict)
        if found is None:
            return None
        entry, epoch = found
        added = False
        for name in PLATFORM_EXTENSIONS:  # (as _keep_trace_attributes adds them)
            if name in attributes and name not in entry:
                entry[name] = attributes[name]  # type: ignore[literal-required]
                added = True
        return self._pending(entry, epoch, None if added else body)

    def _pending(self, entry: CanonicalEntry, epoch: float, data: bytes | None) -> PendingEntry:
        """``entry`` held as ``data``, its JSON (None: encode it as it is now)."""
        level, source, created = entry["level"], entry["source"], entry["createdAt"]
        if self._on_error_entry is not None and level in _ALERT_LEVELS:
            self._observe(entry, epoch)
        if data is None:
            data = encode(entry)
        return PendingEntry(data, level, source, epoch, created, self._clock())

    def _observe(self, entry: CanonicalEntry, epoch: float) -> None:
        """Show an error or fatal ``entry`` to the pattern detector (there is one)."""
        assert self._on_error_entry is not None  # noqa: S101 - checked by the callers
        self._on_error_entry(
            source=entry["source"],
            message=entry["message"],
            level=entry["level"],
            created=entry["createdAt"],
            created_at=epoch,
        )

    def _validated_time(self, data: Any) -> tuple[float, str, bool]:
        """The model's verdict where the fast check could not give one, and the entry's time:
        ``createdAt`` parsed (epoch seconds, an RFC 3339 text), or the receipt time (True).

        Raises:
            DecodeError: ``invalid_entry``, with the model's field errors.
        """
        if self.strict:
            return (*_validated_created_at(data), False)
        try:
            entry = LogEntryCreated.parse(data)
        except ContractError as exc:
            raise DecodeError(RejectReason.INVALID_ENTRY, str(exc)) from None
        when: EntryTime = entry_time(entry.createdAt, self._wall_clock())
        if when.fallback:
            self.stats.time_fallbacks += 1
        return when.epoch, when.text, when.fallback


def _keep_trace_attributes(data: dict[str, Any], attributes: Mapping[str, Any]) -> None:
    for name in PLATFORM_EXTENSIONS:
        if name in attributes and name not in data:
            data[name] = attributes[name]


def _compact(data: Any, encoded: bytes | None, body: bytes) -> bytes:
    """``data`` as JSON in a bytes object of its own size.

    orjson hands back its whole 4 KiB output buffer; held by the thousand until
    published, those would cost ten times the entries' size in memory (and page
    faults), so a copy of just the bytes is kept, or the body itself when it
    already is that JSON (bare entries from a producer that writes as orjson does).
    """
    if encoded is None:
        return bytes(memoryview(orjson.dumps(data)))
    return body if encoded == body else bytes(memoryview(encoded))


def _event(
    headers: Mapping[str, str] | bytes | None, body: bytes
) -> tuple[Any, Mapping[str, Any] | None, bytes | None]:
    """A message's data, its CloudEvents attributes (None for bare data), and
    the data's JSON encoding if one was made on the way (else None).

    Bare data that is a JSON object without ``specversion`` (an entry, or no
    event at all) is taken at once; everything else goes the general way.

    Raises:
        DecodeError: as :func:`contracts.cloudevents.decode_event` does.
    """
    if not headers:
        value, encoded = jsonsafe.loads_encoded(body)
        if type(value) is dict and "specversion" not in value:
            return value, None, encoded
    elif type(headers) is bytes and headers in _STRUCTURED_BLOCKS:
        # What decode() would find in these headers: the structured mode. Any
        # other event type, or data that is not an object, goes the general way.
        value = jsonsafe.loads(body)
        if type(value) is dict:
            data = plain_structured_data(value, _ENTRY_TYPE)
            if data is not None:
                return data, value, None
            if value.get("type") == _ENTRY_TYPE and type(value.get("data")) is dict:
                event = decode_structured_value(value)
                return event.data, event.attributes, None
    if type(headers) is bytes:
        attributes = binary_attributes(headers)
        if attributes is not None and body and plainly_valid_attributes(attributes, _ENTRY_TYPE):
            # What decode() would find: a binary-mode entry event; its data is JSON.
            return jsonsafe.loads(body), attributes, None
        event = decode_event(parse_header_block(headers), body, LogEntryCreated, lowered=True)
    else:
        event = decode_event(headers, body, LogEntryCreated)  # type: ignore[arg-type]
    return event.data, (None if event.mode is ContentMode.BARE else event.attributes), None


def _validated_created_at(data: Any) -> tuple[float, str]:
    """The strict model's verdict: ``createdAt`` in epoch seconds, and as sent.

    Raises:
        DecodeError: ``invalid_entry``, with the model's field errors.
    """
    try:
        entry = StrictLogEntryCreated.parse(data)
    except ContractError as exc:
        raise DecodeError(RejectReason.INVALID_ENTRY, str(exc)) from None
    return parse_timestamp(entry.createdAt).timestamp(), entry.createdAt


def rejected_message(
    *,
    reason: str,
    detail: str,
    subject: str,
    headers: Mapping[str, str] | bytes | None,
    body: bytes,
    gateway_id: str,
    max_bytes: int,
) -> tuple[dict[str, str], bytes]:
    """A structured ``cortex_logging.entry.rejected`` event within ``max_bytes`` (its NATS headers
    included) holding as much of ``body`` and of the headers as fits.

    The headers excerpt takes at most a quarter of ``max_bytes``, each name and value cut
    short; ``truncated`` (and ``headersTruncated``) say what was cut. ``headers`` may be a raw
    NATS header block, as the fast path receives it. Only for a ``max_bytes`` too small for
    even the bare event (reason, subject, sizes) is the result larger: check before sending.
    """
    if isinstance(headers, bytes):
        headers = header_dict(headers)
    excerpt, cut = _headers_excerpt(headers, max_bytes // 4)
    attributes = make_attributes(EntryRejected.EVENT_TYPE, f"//log-gateway/{gateway_id}")
    event = _RejectedEvent(reason=reason, subject=subject, body=body, gateway_id=gateway_id)
    attempts = [(detail[:2000], excerpt, cut)] * 4 + [(detail[:200], None, bool(headers))]
    base = len(event.data(detail[:2000], excerpt, cut, 0))
    budget = max(0, max_bytes - _REJECTED_ENVELOPE - base)
    for (text, shown, shown_cut), limit in zip(
        attempts, (budget, budget // 2, budget // 6, 0, 0), strict=True
    ):
        out_headers, out_body = encode_structured(attributes, event.data(text, shown, shown_cut, limit))
        if header_size(out_headers) + len(out_body) <= max_bytes:
            break
    return out_headers, out_body


def _headers_excerpt(headers: Mapping[str, str] | None, budget: int) -> tuple[dict[str, str] | None, bool]:
    """As many of ``headers`` as fit ``budget`` bytes of JSON, in order, each name and value cut
    short; and whether anything was cut or left out."""
    if not headers:
        return None, False
    out: dict[str, str] = {}
    used, cut = 2, False
    for name, value in headers.items():
        short_name, short_value = name[:_HEADER_NAME_CHARS], value[:_HEADER_VALUE_CHARS]
        size = len(orjson.dumps(short_name)) + len(orjson.dumps(short_value)) + 2
        if used + size > budget:
            return out or None, True
        cut = cut or short_name != name or short_value != value
        out[short_name] = short_value
        used += size
    return out or None, cut


@dataclass(frozen=True, slots=True)
class _RejectedEvent:
    """What every attempt at a rejected event holds whatever its size."""

    reason: str
    subject: str
    body: bytes
    gateway_id: str

    def data(self, detail: str, headers: Mapping[str, str] | None, headers_cut: bool, limit: int) -> bytes:
        """The event's data with ``detail``, the headers excerpt and at most ``limit`` bytes of payload."""
        body = self.body
        data: dict[str, Any] = {
            "reason": self.reason,
            "detail": detail,
            "subject": self.subject,
            "payloadBytes": len(body),
            "gatewayId": self.gateway_id,
            "rejectedAt": now_timestamp(),
        }
        if headers:
            data["headers"] = dict(headers)
        if headers or headers_cut:
            data["headersTruncated"] = headers_cut
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raw = body[: limit * 3 // 4]
            data["payloadBase64"] = base64.b64encode(raw).decode()
            payload_cut = len(raw) < len(body)
        else:
            text = body[:limit].decode("utf-8", "ignore")  # cut on a character boundary
            data["payload"] = text
            payload_cut = len(text.encode()) < len(body)
        data["truncated"] = payload_cut or headers_cut
        return orjson.dumps(data)


def might_alert(body: bytes) -> bool:
    """A cheap look for an error or fatal entry, without parsing: True may be wrong (then a
    decode says so), False is not (the level of an entry that alerts is a JSON string
    ``"error"`` or ``"fatal"`` somewhere in the body, in every wire form)."""
    return b'"error"' in body or b'"fatal"' in body
