"""What the logging handler's worker hands its sinks: record snapshots, and the handler's
accounts as a small interface, so a sink never reaches into the handler's insides."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from publishers.handler import HandlerConfig

__all__ = ["RecordFeed", "Snapshot"]


@dataclass(slots=True)
class Snapshot:
    """A record as ``emit`` took it: the record, its formatted message, its trace context."""

    record: logging.LogRecord
    message: str
    trace: dict[str, str]


class RecordFeed(Protocol):
    """The handler as its sinks see it."""

    config: HandlerConfig
    subject: str
    flush_requested: bool

    def entry_json(self, item: Snapshot) -> tuple[dict[str, Any], bytes] | None:
        """The entry's data and JSON; None when it cannot be encoded (counted)."""
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
