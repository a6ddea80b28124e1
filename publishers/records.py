"""What the logging handler's worker hands its sinks: record snapshots, encoded entries, and the
handler's accounts as a small interface, so a sink never reaches into the handler's insides."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from publishers.handler import HandlerConfig

__all__ = ["SLICE", "Encoded", "RecordFeed", "Snapshot"]

# A record as ``emit`` took it: the record, its message when emit had to format it (None: the
# worker formats it, the arguments being immutable), and the OpenTelemetry context of the call.
Snapshot = tuple[logging.LogRecord, str | None, object]

# An entry ready to send: its ``LogEntryCreated`` data, that data as JSON, its trace context
# (see :func:`publishers.tracing.current_trace`), and the record's creation time (epoch seconds).
Encoded = tuple[dict[str, Any], bytes, dict[str, str], float]

# Records a sink encodes and sends between two :meth:`RecordFeed.breathe` calls.
SLICE = 20


class RecordFeed(Protocol):
    """The handler as its sinks see it."""

    config: HandlerConfig
    subject: str
    flush_requested: bool

    def encode(self, items: list[Snapshot]) -> list[Encoded]:
        """The entries of ``items``; those that cannot be encoded are counted dropped and settled."""
        ...

    def queued(self) -> int:
        """Records waiting in the queue, not yet taken."""
        ...

    def breathe(self) -> None:
        """Let the threads that log run a while (the worker holds the GIL in short slices)."""
        ...

    def count_published(self, count: int) -> None:
        """``count`` entries reached the bus."""
        ...

    def count_dropped(self, reason: str, count: int = 1) -> None:
        """``count`` entries were dropped for ``reason``."""
        ...

    def done(self, count: int) -> None:
        """``count`` queued records are settled (published or dropped): flush may return."""
        ...
