"""Batch thresholds, buffer caps and the overflow policy, validated at construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["BatchLimits", "BufferLimits", "DropReason", "FsyncPolicy", "OverflowPolicy"]


class OverflowPolicy(StrEnum):
    """What happens to input when the gateway's buffer is full."""

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class DropReason(StrEnum):
    """Why an accepted entry was not published; a metric label and ``droppedByReason`` key."""

    OVERFLOW_OLDEST = "overflow_oldest"
    OVERFLOW_NEWEST = "overflow_newest"
    PUBLISH_FAILED = "publish_failed"
    PERMISSION_DENIED = "permission_denied"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    SHUTDOWN = "shutdown"
    SLOW_CONSUMER = "slow_consumer"
    SPOOL_FULL = "spool_full"
    SPOOL_FAILED = "spool_failed"
    INGEST_FAILED = "ingest_failed"  # the gateway failed on it (a bug): counted, not lost silently


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchLimits:
    """When a batch is flushed: the first of entries, bytes or delay reached.

    ``max_bytes`` bounds the whole NATS message, headers included, and must not
    exceed the server's ``max_payload`` (checked when connected).
    """

    max_entries: int = 500
    max_bytes: int = 256 * 1024
    max_delay_ms: int = 100
    per_source: bool = False
    max_open_sources: int = 64

    def __post_init__(self) -> None:
        _positive("max_batch_entries", self.max_entries)
        _positive("max_open_sources", self.max_open_sources)
        _positive("max_batch_delay_ms", self.max_delay_ms)
        if self.max_bytes < 2048:
            raise ValueError(f"max_batch_bytes must be at least 2048, got {self.max_bytes}")

    def within(self, max_payload: int) -> BatchLimits:
        """These limits, with ``max_bytes`` lowered to ``max_payload`` if it is larger."""
        return self if self.max_bytes <= max_payload else dataclasses.replace(self, max_bytes=max_payload)

    @property
    def max_delay_s(self) -> float:
        """``max_delay_ms`` in seconds."""
        return self.max_delay_ms / 1000


@dataclass(frozen=True, kw_only=True, slots=True)
class BufferLimits:
    """Caps on what the gateway holds (open, waiting and in-flight batches)."""

    max_entries: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    overflow: OverflowPolicy = OverflowPolicy.BLOCK

    def __post_init__(self) -> None:
        _positive("max_buffered_entries", self.max_entries)
        _positive("max_buffered_bytes", self.max_bytes)


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


class FsyncPolicy(StrEnum):
    """When the spool forces its writes to stable storage."""

    ALWAYS = "always"
    INTERVAL = "interval"
    NEVER = "never"
