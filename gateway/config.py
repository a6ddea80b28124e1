"""The gateway's settings as typed objects, with the cross-field rules checked once."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from contracts.errors import GatewayError
from contracts.events import ENTRY_REJECTED_SUBJECT, subject_for, validate_subject, validate_subject_token
from contracts.models import (
    ErrorPatternDetected,
    GatewayConfigured,
    LogArchived,
    LogBatchCreated,
    LogEntryCreated,
    LogStreamStarted,
)
from gateway.core.limits import BatchLimits, BufferLimits, FsyncPolicy, OverflowPolicy
from gateway.core.patterns import PatternLimits
from gateway.core.redact import DEFAULT_KEYS
from publishers.config import PublishPolicy, StreamSpec

__all__ = [
    "AlertConfig",
    "ConfigError",
    "DurableIngest",
    "GatewayConfig",
    "SpoolConfig",
    "Subjects",
    "ThrottleLimits",
    "default_gateway_id",
]


class ConfigError(GatewayError, ValueError):
    """A setting conflicts with what the connected server allows."""


def default_gateway_id() -> str:
    """``<host>-<pid>-<random>``: unique per gateway instance, so sequences never mix."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Subjects:
    """The subjects the gateway speaks, all after an optional prefix."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if self.prefix:
            validate_subject(self.prefix, "subject prefix")

    @property
    def entry(self) -> str:
        """Where services publish single entries."""
        return subject_for(LogEntryCreated.EVENT_TYPE, self.prefix)

    @property
    def entry_children(self) -> str:
        """Entries on per-service sub-subjects (``<entry>.>``)."""
        return self.entry + ".>"

    @property
    def batch(self) -> str:
        """Where batches go."""
        return subject_for(LogBatchCreated.EVENT_TYPE, self.prefix)

    @property
    def rejected(self) -> str:
        """Where rejected input is forwarded."""
        return subject_for(ENTRY_REJECTED_SUBJECT, self.prefix)

    @property
    def alerts(self) -> str:
        """Where error-pattern alerts go."""
        return subject_for(ErrorPatternDetected.EVENT_TYPE, self.prefix)

    @property
    def stream_started(self) -> str:
        """Where stream announcements go."""
        return subject_for(LogStreamStarted.EVENT_TYPE, self.prefix)

    @property
    def archived(self) -> str:
        """Where archive segments are announced."""
        return subject_for(LogArchived.EVENT_TYPE, self.prefix)

    @property
    def configured(self) -> str:
        """Where a running gateway announces a configuration change."""
        return subject_for(GatewayConfigured.EVENT_TYPE, self.prefix)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The subjects the gateway's stream captures."""
        return (self.batch, self.rejected, self.alerts, self.stream_started, self.archived, self.configured)


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertConfig:
    """Pattern thresholds and the alerts' own rate limit (alerts per second)."""

    enabled: bool = True
    limits: PatternLimits = field(default_factory=PatternLimits)
    max_rate: float = 5.0

    def __post_init__(self) -> None:
        if not self.max_rate > 0:
            raise ValueError(f"max_alert_rate must be positive, got {self.max_rate}")


@dataclass(frozen=True, kw_only=True, slots=True)
class DurableIngest:
    """Where durable ingest reads from, and how long a fetched entry may stay unacknowledged."""

    stream: str = "CORTEX_LOG_ENTRIES"
    durable: str = "log-gateway"
    replicas: int = 1
    max_age_s: float = 7 * 24 * 3600.0
    ack_wait_s: float = 120.0
    max_ack_pending: int = 100_000
    fetch_batch: int = 1000
    fetch_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        validate_subject_token(self.stream, "ingest stream name")
        validate_subject_token(self.durable, "ingest durable name")
        if not 1 <= self.replicas <= 5:
            raise ValueError(f"ingest_replicas must be between 1 and 5, got {self.replicas}")
        for name in ("max_age_s", "ack_wait_s", "fetch_timeout_s"):
            if not getattr(self, name) > 0:  # NaN too
                raise ValueError(f"ingest {name} must be positive, got {getattr(self, name)}")
        for name in ("max_ack_pending", "fetch_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"ingest {name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True, slots=True)
class SpoolConfig:
    """Where the spool lives, how big it may grow and when it forces writes to disk."""

    directory: Path
    max_bytes: int = 1024 * 1024 * 1024
    fsync: FsyncPolicy = FsyncPolicy.INTERVAL
    fsync_interval_s: float = 1.0
    replay_backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_bytes < 64 * 1024:
            raise ValueError(f"spool_max_bytes must be at least 65536, got {self.max_bytes}")
        for name in ("fsync_interval_s", "replay_backoff_max_s"):
            if not getattr(self, name) > 0:  # NaN too
                raise ValueError(f"spool {name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ThrottleLimits:
    """What the gateway may put on the bus: batches/s, bytes/s, unacknowledged publishes."""

    max_publish_rate: float | None = None
    max_publish_bytes_rate: float | None = None
    max_in_flight: int = 4

    def __post_init__(self) -> None:
        for name in ("max_publish_rate", "max_publish_bytes_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:  # NaN too
                raise ValueError(f"{name} must be positive, got {value}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {self.max_in_flight}")


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayConfig:
    """Everything the gateway needs, validated at construction."""

    gateway_id: str = field(default_factory=default_gateway_id)
    queue_group: str = "log-gateway"
    subjects: Subjects = field(default_factory=Subjects)
    batch: BatchLimits = field(default_factory=BatchLimits)
    buffer: BufferLimits = field(default_factory=BufferLimits)
    throttle: ThrottleLimits = field(default_factory=ThrottleLimits)
    publish: PublishPolicy = field(default_factory=PublishPolicy)
    stream: StreamSpec = field(default_factory=StreamSpec)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    durable_ingest: DurableIngest | None = None
    spool: SpoolConfig | None = None
    redact: bool = False
    redact_keys: tuple[str, ...] = DEFAULT_KEYS
    shutdown_timeout_s: float = 30.0
    pending_msgs_limit: int = 512 * 1024
    pending_bytes_limit: int = 256 * 1024 * 1024
    strict_entries: bool = False  # entries held to StrictLogEntryCreated, not the platform's contract

    def __post_init__(self) -> None:
        validate_subject_token(self.gateway_id, "gateway_id")
        validate_subject_token(self.queue_group, "queue_group")
        if not self.shutdown_timeout_s > 0:
            raise ValueError(f"shutdown_timeout_s must be positive, got {self.shutdown_timeout_s}")
        for name in ("pending_msgs_limit", "pending_bytes_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.buffer.max_bytes < self.batch.max_bytes:
            # Otherwise an entry that fits a batch might never fit the buffer, and "block" would wait forever.
            raise ValueError(
                f"max_buffered_bytes ({self.buffer.max_bytes}) must be at least "
                f"max_batch_bytes ({self.batch.max_bytes})"
            )
        worst = self.publish.retry_deadline_s + self.publish.timeout_s
        self._check_durable(worst)
        if worst >= self.stream.duplicate_window_s:
            raise ValueError(
                f"publish_retry_deadline_s + publish_timeout_s ({worst:g}s) must stay below the stream's "
                f"duplicate window ({self.stream.duplicate_window_s:g}s), "
                "or a retried batch could be stored twice"
            )

    def _check_durable(self, worst_publish_s: float) -> None:
        ingest = self.durable_ingest
        if ingest is None:
            return
        if self.spool is not None:
            raise ValueError(
                "spool_dir is for core ingest: durable ingest keeps unpublished entries in its stream"
            )
        if self.buffer.overflow is not OverflowPolicy.BLOCK:
            # The ingest stream is the buffer: dropping would discard what it still holds for us.
            raise ValueError("durable ingest needs the overflow policy 'block' (the ingest stream buffers)")
        held_s = self.batch.max_delay_s + worst_publish_s
        if ingest.ack_wait_s <= held_s:
            raise ValueError(
                f"ingest_ack_wait_s ({ingest.ack_wait_s:g}s) must exceed max_batch_delay_ms plus "
                f"publish_retry_deadline_s plus publish_timeout_s ({held_s:g}s), "
                "or entries would be redelivered while their batch is still being published"
            )
