"""The egress config objects: pure dataclasses, no NATS, so config modules can import them."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.events import validate_subject_token

__all__ = ["PublishPolicy", "StreamSpec"]


@dataclass(frozen=True, kw_only=True, slots=True)
class PublishPolicy:
    """How hard one message is pushed: per-attempt ack timeout, backoff, and total deadline.

    ``retry_deadline_s`` must stay below the stream's duplicate window, so a
    retried message can never be stored twice (checked against the stream).
    """

    timeout_s: float = 5.0
    retry_deadline_s: float = 60.0
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("timeout_s", "retry_deadline_s", "backoff_initial_s", "backoff_max_s"):
            if not getattr(self, name) > 0:  # NaN too
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamSpec:
    """The stream's name, what it captures and how long it keeps it."""

    name: str = "CORTEX_LOGGING"
    subjects: tuple[str, ...] = field(default_factory=tuple)
    max_age_s: float = 7 * 24 * 3600.0
    replicas: int = 1
    duplicate_window_s: float = 120.0

    def __post_init__(self) -> None:
        validate_subject_token(self.name, "stream name")
        if not 1 <= self.replicas <= 5:
            raise ValueError(f"stream_replicas must be between 1 and 5, got {self.replicas}")
        if not self.max_age_s >= 0:
            raise ValueError(f"stream_max_age_s must not be negative, got {self.max_age_s}")
        if not self.duplicate_window_s > 0:
            raise ValueError(f"duplicate window must be positive, got {self.duplicate_window_s}")
