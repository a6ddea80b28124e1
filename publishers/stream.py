"""Make sure the JetStream stream that stores the gateway's output exists."""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.events import validate_subject_token

__all__ = ["StreamSpec", "ensure_stream"]


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
        if self.max_age_s < 0:
            raise ValueError(f"stream_max_age_s must not be negative, got {self.max_age_s}")
        if self.duplicate_window_s <= 0:
            raise ValueError(f"duplicate window must be positive, got {self.duplicate_window_s}")


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> StreamInfo:
    """Create the stream, or add any of ``spec.subjects`` an existing one lacks.

    An existing stream's other settings are left as its operator made them.
    """
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        config = StreamConfig(
            name=spec.name,
            subjects=list(spec.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=spec.max_age_s,
            num_replicas=spec.replicas,
            duplicate_window=spec.duplicate_window_s,
        )
        return await js.add_stream(config)
    missing = [s for s in spec.subjects if s not in (info.config.subjects or [])]
    if missing:
        config = info.config
        config.subjects = [*(config.subjects or []), *missing]
        return await js.update_stream(config)
    return info
