"""What the consumer commands are asked to do (``send``, ``tail``, ``archive``), with no I/O.

These are the settings' shapes and defaults only, so that ``gateway.process.settings``
describes the commands without loading them: ``log-gateway run`` reads its
settings and does not load the archive, ``tail`` or ``send``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from contracts.models import LEVELS, EntryRejected, ErrorPatternDetected, LogArchived, LogEntryCreated

__all__ = ["WIRE_FORMS", "ArchiveConfig", "Compression", "SendOptions", "TailOptions"]

WIRE_FORMS = ("structured", "binary", "bare")


@dataclass(frozen=True, kw_only=True, slots=True)
class SendOptions:
    """What ``send`` publishes, how many, and where."""

    level: str = "info"
    message: str = "hello from log-gateway send"
    source: str = "log-gateway-send"
    count: int = 1
    form: str = "structured"
    subject: str = LogEntryCreated.EVENT_TYPE

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"count must be at least 1, got {self.count}")
        if self.form not in WIRE_FORMS:
            raise ValueError(f"form must be one of {', '.join(WIRE_FORMS)}, got {self.form!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class TailOptions:
    """What to show and how."""

    min_level: str = "debug"
    sources: frozenset[str] | None = None
    as_json: bool = False
    color: bool = False
    batch_subject: str = "cortex_logging.batch.created"
    alert_subject: str = ErrorPatternDetected.EVENT_TYPE
    stream_started_subject: str = "cortex_logging.stream.started"
    rejected: bool = False  # also show what the gateway rejected (its entry.rejected events)
    rejected_subject: str = EntryRejected.EVENT_TYPE

    def __post_init__(self) -> None:
        if self.min_level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {self.min_level!r}")

    @property
    def levels(self) -> frozenset[str]:
        """The levels shown: ``min_level`` and above."""
        return frozenset(LEVELS[LEVELS.index(self.min_level) :])


class Compression(StrEnum):
    """Segment compression."""

    ZSTD = "zstd"
    GZIP = "gzip"

    @property
    def suffix(self) -> str:
        return ".ndjson.zst" if self is Compression.ZSTD else ".ndjson.gz"


@dataclass(frozen=True, kw_only=True, slots=True)
class ArchiveConfig:
    """Where segments go and when they roll."""

    directory: Path
    compression: Compression = Compression.ZSTD
    max_segment_bytes: int = 64 * 1024 * 1024
    max_segment_age_s: float = 300.0
    durable: str = "log-archive"
    stream: str = "CORTEX_LOGGING"
    batch_subject: str = "cortex_logging.batch.created"
    archived_subject: str = LogArchived.EVENT_TYPE
    stream_started_subject: str = "cortex_logging.stream.started"
    fsync: bool = True

    def __post_init__(self) -> None:
        if self.max_segment_bytes < 1:
            raise ValueError(f"max_segment_bytes must be at least 1, got {self.max_segment_bytes}")
        if not self.max_segment_age_s > 0:
            raise ValueError(f"max_segment_age_s must be positive, got {self.max_segment_age_s}")
