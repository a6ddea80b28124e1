"""``LogStreamStarted``: whatever starts a stream of log events says so."""

from __future__ import annotations

import uuid
from typing import Any

from contracts.cloudevents import encode_structured, make_attributes
from contracts.models import LogStreamStarted
from contracts.timestamps import now_timestamp

__all__ = ["stream_started"]


def stream_started(
    *, started_by: str, destination: str, fmt: str, filters: dict[str, Any], stream_id: str | None = None
) -> tuple[dict[str, str], bytes]:
    """A structured ``cortex_logging.stream.started`` CloudEvent (validated against the contract).

    Raises:
        ContractError: ``destination`` or ``fmt`` is not one the contract allows.
    """
    data = {
        "streamId": stream_id or f"stream-{uuid.uuid4()}",
        "filters": filters,
        "destination": destination,
        "format": fmt,
        "startedBy": started_by,
        "startedAt": now_timestamp(),
    }
    event = LogStreamStarted.parse(data)
    attrs = make_attributes(LogStreamStarted.EVENT_TYPE, f"//log-gateway/{started_by}")
    headers, body = encode_structured(attrs, event.to_json())
    headers["Nats-Msg-Id"] = attrs["id"]
    return headers, body
