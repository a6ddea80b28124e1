"""``log-gateway send``: publish test entries, for smoke tests and demos.

Each entry is a valid ``cortex_logging.entry.created`` with a fresh ``logId`` and
the current time, in the wire form asked for: a structured-mode CloudEvent (the
platform's), a binary-mode one (attributes in ``ce-`` headers), or the bare entry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.client import Client

from contracts.cloudevents import encode_binary, encode_structured, make_attributes
from contracts.models import LogEntryCreated
from contracts.timestamps import now_timestamp

__all__ = ["WIRE_FORMS", "SendOptions", "entry_message", "send"]

WIRE_FORMS = ("structured", "binary", "bare")


@dataclass(frozen=True, kw_only=True, slots=True)
class SendOptions:
    """What ``send`` publishes, how many, and where."""

    level: str = "info"
    message: str = "hello from log-gateway send"
    source: str = "log-gateway-send"
    count: int = 1
    form: str = "structured"
    subject: str = LogEntryCreated.EVENT_TYPE

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"count must be at least 1, got {self.count}")
        if self.form not in WIRE_FORMS:
            raise ValueError(f"form must be one of {', '.join(WIRE_FORMS)}, got {self.form!r}")


def entry_message(options: SendOptions, n: int) -> tuple[dict[str, Any], dict[str, str] | None, bytes]:
    """Entry number ``n`` (from 1): its data, and its headers and body in ``options.form``."""
    data: dict[str, Any] = {
        "logId": str(uuid.uuid4()),
        "level": options.level,
        "message": options.message,
        "source": options.source,
        "createdAt": now_timestamp(),
    }
    if options.count > 1:
        data["metadata"] = {"n": n, "of": options.count}
    body = orjson.dumps(LogEntryCreated.parse(data).to_data())
    if options.form == "bare":
        return data, None, body
    attributes = make_attributes(LogEntryCreated.EVENT_TYPE, "//log-gateway/send")
    encode = encode_structured if options.form == "structured" else encode_binary
    headers, payload = encode(attributes, body)
    return data, headers, payload


async def send(nc: Client, options: SendOptions) -> list[str]:
    """Publish ``options.count`` entries and flush; returns their ``logId``s."""
    ids = []
    for n in range(1, options.count + 1):
        data, headers, body = entry_message(options, n)
        await nc.publish(options.subject, body, headers=headers)
        ids.append(data["logId"])
        if n % 1000 == 0:
            await nc.flush()
    await nc.flush()
    return ids
