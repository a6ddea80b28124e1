"""NATS header blocks (``NATS/1.0\\r\\nName: value\\r\\n...\\r\\n``) read as they come off the wire.

nats-py turns every header block into a dict with a general, forgiving parser:
a third of its receive cost for a binary-mode CloudEvent. The ingest fast path
(:mod:`gateway.ingest.fastpath`) keeps the raw block instead and reads it here, once,
strictly: a block that is not what a publisher writes (a status line, a line
without a colon, a name that is not a token, bytes that are not UTF-8, a
CloudEvents header given twice) is an invalid envelope, rejected with that
reason, never a crash and never silently half-read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NoReturn

from contracts.errors import DecodeError, RejectReason

__all__ = ["binary_attributes", "header_dict", "parse_header_block"]

_HEAD: Final = "NATS/1.0\r\n"
_EMPTY: Final = "NATS/1.0\r\n\r\n"
_END: Final = "\r\n\r\n"
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_WHITESPACE: Final = " \t\n\r\x0b\x0c"  # what nats-py strips around a value
# Raw header name -> its lowercase form, for names already known to be tokens (a bounded few).
_NAMES: dict[str, str] = {}
_MAX_NAMES: Final = 256
# Short blocks read before: a publisher sends the same structured-mode block every time.
_BLOCKS: dict[bytes, Mapping[str, str]] = {}
_MAX_BLOCKS: Final = 64
_MAX_CACHED_BLOCK: Final = 128


def parse_header_block(raw: bytes) -> Mapping[str, str]:
    """The headers in ``raw``, names lowercased, values stripped of surrounding blanks.

    The mapping may be shared with other callers: do not change it.

    Raises:
        DecodeError: ``invalid_envelope``, saying what is wrong with the block.
    """
    headers = _BLOCKS.get(raw)
    if headers is None:
        headers = _parse(raw)
        if len(raw) <= _MAX_CACHED_BLOCK:
            if len(_BLOCKS) >= _MAX_BLOCKS:
                _BLOCKS.clear()
            _BLOCKS[raw] = headers
    return headers


def _parse(raw: bytes) -> dict[str, str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        _malformed("the NATS headers are not UTF-8")
    if text == _EMPTY:
        return {}
    if not text.startswith(_HEAD) or not text.endswith(_END):
        _malformed("the NATS header block is malformed (a status line, or lines not ended by CRLF)")
    out: dict[str, str] = {}
    for line in text[len(_HEAD) : -len(_END)].split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon:
            _malformed(f"NATS header line {line[:40]!r} has no colon")
        key = _NAMES.get(name) or _lowercase_token(name)
        if key in out and (key == "content-type" or key.startswith("ce-")):
            _malformed(f"header {key[:40]!r} appears more than once")
        out[key] = value.strip(_WHITESPACE)
    return out


def binary_attributes(raw: bytes) -> dict[str, str] | None:
    """The CloudEvents attributes of a block that plainly holds them, else None.

    A fast path for binary-mode events, whose blocks differ in every message (an
    id, a time) and so are never cached whole: ``ce-`` headers without the
    prefix, and ``content-type`` as ``datacontenttype``, read in one pass, the
    lines a publisher repeats (its source, type, content type) remembered. Only
    when every name is one :func:`parse_header_block` has read before, no
    CloudEvents header repeats and no value is percent-encoded; otherwise
    (including a block that is malformed) None, and the strict reader decides.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.startswith(_HEAD) or not text.endswith(_END):
        return None
    attrs: dict[str, str] = {}
    known = _LINES
    for line in text[len(_HEAD) : -len(_END)].split("\r\n"):
        read = known.get(line)
        if read is None and (read := _attribute_line(line)) is None:
            return None
        key, value = read
        if key is not None:  # an attribute, not some other header
            if key in attrs:
                return None
            attrs[key] = value
    return attrs


# Header lines read by binary_attributes: (attribute name, or None for another header; value).
_LINES: dict[str, tuple[str | None, str]] = {}
_MAX_LINES: Final = 1024


def _attribute_line(line: str) -> tuple[str | None, str] | None:
    name, colon, value = line.partition(":")
    lowered = _NAMES.get(name)
    if lowered is None or not colon:  # a line that is a known name alone is still malformed
        return None
    key: str | None = None  # another header
    if lowered.startswith("ce-"):
        key = lowered[3:]
    elif lowered == "content-type":
        key = "datacontenttype"
    if key is not None and "%" in value:  # percent-encoded: the strict path decodes it
        return None
    read = (key, value.strip(_WHITESPACE))
    if len(_LINES) >= _MAX_LINES:
        _LINES.clear()
    _LINES[line] = read
    return read


def _lowercase_token(name: str) -> str:
    if _TOKEN.fullmatch(name) is None:
        _malformed(f"NATS header name {name[:40]!r} is not a token")
    key = name.lower()
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[name] = key
    return key


def _malformed(detail: str) -> NoReturn:
    raise DecodeError(RejectReason.INVALID_ENVELOPE, detail)


def header_dict(raw: bytes | None) -> dict[str, str] | None:
    """The headers in ``raw`` as nats-py would give them (names as sent), never raising.

    For diagnostics (a rejected message's headers): malformed lines are skipped,
    undecodable bytes replaced.
    """
    if not raw:
        return None
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        key = name.strip().decode("ascii", "replace")
        if colon and key and not any(c.isspace() for c in key):
            out[key] = value.strip().decode("utf-8", "replace")
    return out or None
