"""What JetStream says about a pull consumer's messages, read from bytes: the ack subject's
delivery metadata and the status lines of a pull request's replies.

A message delivered by a consumer carries its metadata in its reply (ack) subject, in one
of two forms:

- ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<timestamp ns>.<pending>``
  (9 tokens);
- ``$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.``
  ``<timestamp ns>.<pending>[.<random>]`` (11 or 12 tokens; the domain ``_`` means none), from
  servers that know domains and accounts.

A pull request that ends without filling its batch, or a request refused, gets a status
message instead: an empty body whose header block starts ``NATS/1.0 <code> <description>``.
:func:`read_status` reads that line and :func:`action_of` says what the reader does about
it (see :class:`PullAction`). Pure: no nats, no I/O.
"""

from __future__ import annotations

import enum
import re
from typing import Final, NamedTuple

__all__ = [
    "ACK_PREFIX",
    "AckMetadata",
    "PullAction",
    "PullStatus",
    "ack_metadata",
    "action_of",
    "delivered_count",
    "first_delivery_prefix",
    "go_duration_s",
    "is_first_delivery",
    "limit_of",
    "read_status",
]

ACK_PREFIX: Final = b"$JS.ACK."
_STATUS_LINE: Final = b"NATS/1.0 "
_V1_TOKENS: Final = 9
_V2_TOKENS: Final = (11, 12)


class AckMetadata(NamedTuple):
    """One delivery, as its ack subject tells it."""

    stream: str
    consumer: str
    delivered: int  # 1 on the first delivery
    stream_seq: int
    consumer_seq: int
    timestamp_ns: int
    pending: int
    domain: str = ""
    account: str = ""


def ack_metadata(reply: bytes) -> AckMetadata | None:
    """The metadata in ``reply``, either form; None when it is no JetStream ack subject."""
    tokens = reply.split(b".")
    count = len(tokens)
    if not reply.startswith(ACK_PREFIX) or (count != _V1_TOKENS and count not in _V2_TOKENS):
        return None
    domain = account = b""
    if count != _V1_TOKENS:
        domain, account = tokens[2], tokens[3]
        tokens = tokens[:2] + tokens[4:11]
    numbers = tokens[4:9]
    if not all(number.isdigit() for number in numbers):
        return None
    delivered, stream_seq, consumer_seq, timestamp, pending = (int(number) for number in numbers)
    return AckMetadata(
        tokens[2].decode(),
        tokens[3].decode(),
        delivered,
        stream_seq,
        consumer_seq,
        timestamp,
        pending,
        "" if domain == b"_" else domain.decode(),
        account.decode(),
    )


def delivered_count(reply: bytes) -> int:
    """How many times this message was delivered (1: the first time), read from its ack subject
    on the hot path: only the one token; 0 when ``reply`` is not a JetStream ack subject."""
    tokens = reply.split(b".", 7)
    # The 9-token form has its count at index 4, the newer forms at index 6; the 7th split
    # leaves the rest of the subject in one last token, telling the forms apart by its dots.
    if len(tokens) < 8 or tokens[0] != b"$JS" or tokens[1] != b"ACK":
        return 0
    dots = tokens[7].count(b".")
    token = tokens[4] if dots == 1 else tokens[6] if dots in (3, 4) else b""
    return int(token) if token.isdigit() else 0


def first_delivery_prefix(stream: str, consumer: str) -> bytes:
    """How the 9-token ack subject of a first delivery from ``consumer`` on ``stream`` starts."""
    return b"%s%s.%s.1." % (ACK_PREFIX, stream.encode(), consumer.encode())


def is_first_delivery(prefix: bytes, reply: bytes) -> bool:
    """Is ``reply`` the ack subject of a first delivery, in the 9-token form ``prefix`` starts
    (:func:`first_delivery_prefix`)? A startswith and a count, cheaper than
    :func:`delivered_count`'s split; False says only "ask :func:`delivered_count`": a newer form
    whose domain and account hash happen to read as the stream and consumer has more tokens."""
    return reply.startswith(prefix) and reply.count(b".", len(prefix)) == 3


class PullStatus(NamedTuple):
    """A status message's code and description (``NATS/1.0 408 Request Timeout``)."""

    code: int
    description: str


def read_status(headers: bytes | None) -> PullStatus | None:
    """The status line of a header block; None for a message's own headers (no status)."""
    if headers is None or not headers.startswith(_STATUS_LINE):
        return None
    line = headers[len(_STATUS_LINE) : headers.find(b"\r\n")].decode(errors="replace")
    code, _, description = line.strip().partition(" ")
    if not (len(code) == 3 and code.isdigit()):
        return None
    return PullStatus(int(code), description.strip())


class PullAction(enum.Enum):
    """What the pull reader does about a status message (one rule per code, in :func:`action_of`)."""

    ALIVE = "alive"  # 100 Idle Heartbeat: the request is still waiting; nothing ended
    FLOW_CONTROL = "flow_control"  # 100 FlowControl Request: answer it (an empty reply)
    ENDED = "ended"  # 404 No Messages, 408 Request Timeout: ask again at once
    RETRY = "retry"  # 409 leadership change, server shutdown, max waiting...: ask again shortly
    SHRINK_BATCH = "shrink_batch"  # 409 Exceeded MaxRequestBatch of N: ask for N at most (or half)
    SHRINK_EXPIRES = "shrink_expires"  # 409 Exceeded MaxRequestExpires of D: wait D at most
    CONSUMER_GONE = "consumer_gone"  # 409 Consumer Deleted: make it again (or health goes down)
    UNAVAILABLE = "unavailable"  # 503 No Responders: no consumer (or no JetStream) answers
    FATAL = "fatal"  # 400 Bad Request, 409 Consumer is push based: asking again cannot help


_409: Final = (
    ("consumer deleted", PullAction.CONSUMER_GONE),
    ("consumer is push based", PullAction.FATAL),
    ("exceeded maxrequestbatch", PullAction.SHRINK_BATCH),
    ("exceeded maxrequestexpires", PullAction.SHRINK_EXPIRES),
    ("exceeded maxackpending", PullAction.SHRINK_BATCH),  # (a batch above the consumer's cap)
    # The rest end the request and say nothing about the next one: leadership change,
    # server shutdown, exceeded maxwaiting, maxrequestmaxbytes (never sent), message size.
)


_BY_CODE: Final = {
    404: PullAction.ENDED,
    408: PullAction.ENDED,
    503: PullAction.UNAVAILABLE,
    400: PullAction.FATAL,
}


def action_of(status: PullStatus, *, has_reply: bool = False) -> PullAction:
    """What a status means for the request it answers and for the next one."""
    code = status.code
    if code == 100:
        return PullAction.FLOW_CONTROL if has_reply else PullAction.ALIVE
    if code == 409:
        described = status.description.lower()
        for start, action in _409:
            if described.startswith(start):
                return action
    # Any other code ends the request and says nothing of the next: ask again shortly.
    return _BY_CODE.get(code, PullAction.RETRY)


_LIMIT = re.compile(r" of (\S+)$")
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_S: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def limit_of(status: PullStatus) -> str | None:
    """The limit a 409 names (``Exceeded MaxRequestBatch of 5`` -> ``5``), if any."""
    found = _LIMIT.search(status.description)
    return found.group(1) if found else None


def go_duration_s(text: str) -> float | None:
    """A Go duration (``1s``, ``1m30s``, ``500ms``) in seconds; None if it is not one."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)
