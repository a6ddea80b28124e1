"""Putting events on the bus: JetStream publishing with retries, idempotency and rate limits,
and what services use to emit events (an async publisher and a ``logging`` handler)."""

from publishers.emit import EventPublisher
from publishers.errors import (
    PermissionDeniedError,
    PublishError,
    PublishFailedError,
    is_retriable,
    reason_for,
)
from publishers.handler import HandlerConfig, HandlerStats, NatsLogHandler, level_name
from publishers.jetstream import JetStreamPublisher, PermissionWatch, PublishPolicy
from publishers.ratelimit import TokenBucket
from publishers.stream import StreamConflictError, StreamSpec, ensure_stream

__all__ = [
    "EventPublisher",
    "HandlerConfig",
    "HandlerStats",
    "JetStreamPublisher",
    "NatsLogHandler",
    "PermissionDeniedError",
    "PermissionWatch",
    "PublishError",
    "PublishFailedError",
    "PublishPolicy",
    "StreamConflictError",
    "StreamSpec",
    "TokenBucket",
    "ensure_stream",
    "is_retriable",
    "level_name",
    "reason_for",
]
