"""Putting events on the bus: JetStream publishing with retries, idempotency and rate limits,
and what services use to emit events (an async publisher and a ``logging`` handler).

The public names are loaded on first use (PEP 562): the gateway, which needs
the egress only, does not load the emitters (and OpenTelemetry with them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

_HOMES = {
    "EventPublisher": "publishers.emit",
    "HandlerConfig": "publishers.handler",
    "HandlerStats": "publishers.handler",
    "JetStreamPublisher": "publishers.jetstream",
    "NatsLogHandler": "publishers.handler",
    "PermissionDeniedError": "publishers.errors",
    "PermissionWatch": "publishers.jetstream",
    "PublishError": "publishers.errors",
    "PublishFailedError": "publishers.errors",
    "PublishPolicy": "publishers.jetstream",
    "StreamConflictError": "publishers.stream",
    "StreamSpec": "publishers.stream",
    "TokenBucket": "publishers.ratelimit",
    "ensure_stream": "publishers.stream",
    "is_retriable": "publishers.errors",
    "level_name": "publishers.handler",
    "reason_for": "publishers.errors",
}


def __getattr__(name: str) -> object:
    """A public name, imported from its module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
