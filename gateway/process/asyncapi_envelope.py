"""The AsyncAPI document as the wire has it: CloudEvent envelopes, headers, correlation ids.

FastStream describes each subject with the bare data model as payload and
``application/json``; on the wire every event the gateway emits is a
structured-mode CloudEvent (``application/cloudevents+json``) with the data
under ``data``, and ingest accepts a structured or binary CloudEvent or the
bare entry. A generated consumer decoding the declared shape would decode the
wrong one, so this rewrites the messages FastStream generated: the envelope as
payload, the ``Nats-Msg-Id`` header where one is sent, and a ``correlationId``
only on the ingest messages, which carry one (the ``correlationid`` attribute).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from contracts.cloudevents import JSON_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE

__all__ = ["EMITTED", "wire_document"]

# Channel title -> (component schema of the data, event type, what Nats-Msg-Id holds or None).
EMITTED: dict[str, tuple[str, str, str | None]] = {
    "logBatchCreated": ("LogBatchCreated", "cortex_logging.batch.created", "the batchId"),
    "entryRejected": ("EntryRejected", "cortex_logging.entry.rejected", None),
    "errorPatternDetected": (
        "ErrorPatternDetected",
        "cortex_logging.error_pattern.detected",
        "the event id",
    ),
    "logStreamStarted": ("LogStreamStarted", "cortex_logging.stream.started", "the event id"),
    "logArchived": ("LogArchived", "cortex_logging.log.archived", None),
    "gatewayConfigured": ("GatewayConfigured", "cortex_logging.gateway.configured", "the event id"),
}
_ENTRY = ("LogEntryCreated", "cortex_logging.entry.created")


def _envelope(schema: str, event_type: str) -> dict[str, Any]:
    """A structured-mode CloudEvent (JSON event format) whose ``data`` is ``schema``."""
    return {
        "type": "object",
        "required": ["specversion", "id", "source", "type", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1},
            "source": {"type": "string", "minLength": 1},
            "type": {"const": event_type},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": JSON_CONTENT_TYPE},
            "correlationid": {"type": "string"},
            "data": {"$ref": f"#/components/schemas/{schema}"},
        },
    }


def _headers(content_type: str, msg_id: str | None = None, *, binary: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {"content-type": {"const": content_type}}
    required = ["content-type"]
    if msg_id is not None:
        properties["Nats-Msg-Id"] = {"type": "string", "description": f"JetStream de-duplication: {msg_id}"}
        required.append("Nats-Msg-Id")
    if binary:
        for name in ("specversion", "id", "source", "type"):
            properties[f"ce-{name}"] = {"type": "string"}
        properties["ce-correlationid"] = {"type": "string"}
        required += ["ce-specversion", "ce-id", "ce-source", "ce-type"]
    return {"type": "object", "properties": properties, "required": required}


def _emitted_message(title: str, schema: str, event_type: str, msg_id: str | None) -> dict[str, Any]:
    return {
        "name": title,
        "title": f"{title} (structured-mode CloudEvent)",
        "contentType": STRUCTURED_CONTENT_TYPE,
        "headers": _headers(STRUCTURED_CONTENT_TYPE, msg_id),
        "payload": _envelope(schema, event_type),
    }


def _ingest_messages() -> dict[str, dict[str, Any]]:
    schema, event_type = _ENTRY
    data = {"$ref": f"#/components/schemas/{schema}"}
    return {
        "entryStructured": {
            "name": "entryStructured",
            "title": "An entry as a structured-mode CloudEvent",
            "contentType": STRUCTURED_CONTENT_TYPE,
            "headers": _headers(STRUCTURED_CONTENT_TYPE),
            "payload": _envelope(schema, event_type),
            "correlationId": {"location": "$message.payload#/correlationid"},
        },
        "entryBinary": {
            "name": "entryBinary",
            "title": "An entry as a binary-mode CloudEvent (attributes in ce- headers)",
            "contentType": JSON_CONTENT_TYPE,
            "headers": _headers(JSON_CONTENT_TYPE, binary=True),
            "payload": data,
            "correlationId": {"location": "$message.header#/ce-correlationid"},
        },
        "entryBare": {
            "name": "entryBare",
            "title": "An entry as bare JSON (no envelope)",
            "contentType": JSON_CONTENT_TYPE,
            "payload": data,
        },
    }


def _without_correlation(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != "correlationId"}


def wire_document(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (FastStream's AsyncAPI 3.0 document, as JSON data) with the wire's messages.

    Channels that carry no CloudEvent (the control service's requests: plain JSON, as
    FastStream describes them) keep FastStream's messages, without a correlation id."""
    generated: dict[str, Any] = doc["components"].get("messages", {})
    messages: dict[str, Any] = {}
    for key, channel in doc.get("channels", {}).items():
        if key in EMITTED:
            messages[key] = _emitted_message(key, *EMITTED[key])
            names = [key]
        elif key.startswith("ingest:"):
            messages.update(_ingest_messages())
            names = ["entryStructured", "entryBinary", "entryBare"]
        else:
            # FastStream gives every message a correlationId; a nats.micro request carries none.
            messages.update(
                {k: _without_correlation(v) for k, v in generated.items() if k.startswith(f"{key}:")}
            )
            continue
        channel["messages"] = {name: {"$ref": f"#/components/messages/{name}"} for name in names}
        operation = doc["operations"][key]
        operation["messages"] = [
            {"$ref": f"#/channels/{quote(key, safe=':')}/messages/{name}"} for name in names
        ]
    doc["components"]["messages"] = messages
    return doc
