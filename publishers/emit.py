"""An async publisher for services: contract events out as CloudEvents on their subjects."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from nats.aio.client import Client

from contracts.cloudevents import ContentMode, encode_binary, encode_structured, make_attributes
from contracts.events import subject_for, validate_subject_token
from contracts.models import ContractModel, LogEntryCreated, LogLevel
from contracts.timestamps import now_timestamp
from publishers.tracing import current_trace, trace_extensions, trace_ids

__all__ = ["EventPublisher"]


class EventPublisher:
    """Publishes contract events (``LogEntryCreated`` and the others) as CloudEvents.

    Args:
        nc: a connected nats-py client.
        source: the CloudEvents ``source`` (and the default entry ``source``), e.g. the service name.
        mode: structured (default) or binary content mode.
        subject_prefix: put in front of every subject, as the gateway's ``--subject-prefix``.
    """

    def __init__(
        self, nc: Client, *, source: str, mode: ContentMode = ContentMode.STRUCTURED, subject_prefix: str = ""
    ) -> None:
        if mode is ContentMode.BARE:
            raise ValueError("a publisher sends CloudEvents: structured or binary mode")
        self._nc = nc
        self.source = source
        self.mode = mode
        self.prefix = subject_prefix

    async def publish(
        self,
        event: ContractModel,
        *,
        subject_suffix: str | None = None,
        extensions: Mapping[str, str] | None = None,
    ) -> str:
        """Publish ``event`` on its type's subject (plus an optional checked suffix token).

        Trace context of the active OpenTelemetry span becomes the ``traceparent``
        and ``tracestate`` extensions. Returns the CloudEvents ``id``.
        """
        subject = subject_for(event.EVENT_TYPE, self.prefix)
        if subject_suffix is not None:
            subject += "." + validate_subject_token(subject_suffix, "subject suffix")
        ext = trace_extensions(current_trace()) | dict(extensions or {})
        attrs = make_attributes(event.EVENT_TYPE, f"//{self.source}", extensions=ext)
        encode = encode_structured if self.mode is ContentMode.STRUCTURED else encode_binary
        headers, body = encode(attrs, event.to_json())
        await self._nc.publish(subject, body, headers=headers)
        return str(attrs["id"])

    async def log(
        self,
        level: LogLevel,
        message: str,
        *,
        component: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> LogEntryCreated:
        """Publish one ``LogEntryCreated`` (trace and span ids of the active span included).

        Raises:
            ContractError: the entry is not valid.
        """
        data: dict[str, Any] = {
            "logId": uuid.uuid4().hex,
            "level": level,
            "message": message,
            "source": self.source,
            "createdAt": now_timestamp(),
            **fields,
        }
        if component is not None:
            data["component"] = component
        if metadata:
            data["metadata"] = dict(metadata)
        for key, value in trace_ids(current_trace()).items():
            data.setdefault(key, value)
        entry = LogEntryCreated.parse(data)
        await self.publish(entry)
        return entry
