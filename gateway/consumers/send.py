"""``log-gateway send``: publish test entries, for smoke tests and demos.

Each entry is a valid ``cortex_logging.entry.created`` with a fresh ``logId`` and
the current time, in the wire form asked for: a structured-mode CloudEvent (the
platform's), a binary-mode one (attributes in ``ce-`` headers), or the bare entry.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from nats.aio.client import Client

from contracts.cloudevents import encode_binary, encode_structured, make_attributes
from contracts.models import LogEntryCreated
from contracts.timestamps import now_timestamp
from gateway.consumers.options import WIRE_FORMS, SendOptions

__all__ = ["WIRE_FORMS", "SendOptions", "entry_message", "send"]


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
