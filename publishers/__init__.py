"""Putting events on the bus: JetStream publishing with retries, idempotency and rate limits."""

from publishers.errors import (
    PermissionDeniedError,
    PublishError,
    PublishFailedError,
    is_retriable,
    reason_for,
)
from publishers.jetstream import JetStreamPublisher, PermissionWatch, PublishPolicy
from publishers.ratelimit import TokenBucket
from publishers.stream import StreamConflictError, StreamSpec, ensure_stream

__all__ = [
    "JetStreamPublisher",
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
    "reason_for",
]
