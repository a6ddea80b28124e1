"""Realistic entries (about 400 bytes, mixed levels and sources) in each wire form."""

from __future__ import annotations

import random
import time
from typing import Any

import orjson

from contracts.cloudevents import encode_binary, encode_structured, make_attributes
from contracts.models import LEVELS, LogEntryCreated

__all__ = ["FORMS", "Message", "entry", "messages"]

FORMS = ("structured", "binary", "bare", "mix")
Message = tuple[dict[str, str] | None, bytes]
_SOURCES = ("payments-api", "checkout", "agent-runtime", "memory-store", "connectors", "mcp-gateway")
_WORDS = [
    "request",
    "handled",
    "user",
    "session",
    "cache",
    "miss",
    "retry",
    "upstream",
    "timeout",
    "token",
    "refresh",
    "queue",
    "depth",
]
_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def entry(n: int, rng: random.Random, sent_at: float | None = None) -> dict[str, Any]:
    """Entry number ``n``: levels weighted like real traffic, a message, metadata."""
    level = rng.choices(LEVELS, weights=(30, 50, 12, 7, 1))[0]
    data: dict[str, Any] = {
        "logId": f"log-{n:010d}-{rng.getrandbits(32):08x}",
        "level": level,
        "message": " ".join(rng.choices(_WORDS, k=8)) + f" in {rng.randint(1, 2000)}ms",
        "source": _SOURCES[n % len(_SOURCES)],
        "component": f"worker.{n % 7}",
        "userId": f"user-{rng.randint(1, 10_000)}",
        "sessionId": f"sess-{rng.getrandbits(48):012x}",
        "metadata": {
            "requestId": f"req-{rng.getrandbits(40):010x}",
            "attempt": rng.randint(1, 3),
            "region": "eu-west-1",
        },
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
    }
    if sent_at is not None:
        data["metadata"]["sentAt"] = sent_at
    return data


def encode(data: dict[str, Any], form: str, n: int) -> Message:
    """``data`` as a message in ``form`` (``mix`` cycles through the three)."""
    if form == "mix":
        form = FORMS[n % 3]
    body = orjson.dumps(data)
    if form == "bare":
        return None, body
    attrs = make_attributes(
        LogEntryCreated.EVENT_TYPE, "//bench/producer", extensions={"traceparent": _TRACE}
    )
    return (encode_structured if form == "structured" else encode_binary)(attrs, body)


def messages(count: int, form: str, seed: int = 7) -> list[Message]:
    """``count`` distinct entry messages in ``form``."""
    rng = random.Random(seed)
    return [encode(entry(n, rng), form, n) for n in range(count)]
