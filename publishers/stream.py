"""Make sure the JetStream stream that stores the gateway's output exists."""

from __future__ import annotations

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError

from contracts.errors import GatewayError
from publishers.config import StreamSpec

__all__ = ["StreamConflictError", "StreamSpec", "ensure_stream"]

_SUBJECTS_OVERLAP = 10065


class StreamConflictError(GatewayError, ValueError):
    """The gateway's subjects are captured by several other streams."""


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> StreamInfo:
    """Create the stream, or add any of ``spec.subjects`` an existing one lacks.

    An existing stream's other settings are left as its operator made them; if
    another stream already captures the subjects, that stream is used.

    Raises:
        StreamConflictError: the subjects are split across several streams.
    """
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        return await _create(js, spec)
    missing = [s for s in spec.subjects if s not in (info.config.subjects or [])]
    if missing:
        config = info.config
        config.subjects = [*(config.subjects or []), *missing]
        return await js.update_stream(config)
    return info


async def _create(js: JetStreamContext, spec: StreamSpec) -> StreamInfo:
    try:
        return await js.add_stream(_config(spec))
    except BadRequestError as exc:
        if exc.err_code != _SUBJECTS_OVERLAP:
            raise
    # Another stream already captures these subjects: publishing lands there, so use it.
    names = {await _capturing(js, subject) for subject in spec.subjects}
    if len(names) != 1 or "(none)" in names:
        raise StreamConflictError(
            f"the subjects {list(spec.subjects)} are split across streams {sorted(names)}; "
            f"give stream {spec.name!r} its own subjects or capture them all in one stream"
        )
    return await js.stream_info(names.pop())


async def _capturing(js: JetStreamContext, subject: str) -> str:
    try:
        return await js.find_stream_name_by_subject(subject)
    except NotFoundError:
        return "(none)"


def _config(spec: StreamSpec) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=spec.max_age_s,
        num_replicas=spec.replicas,
        duplicate_window=spec.duplicate_window_s,
    )
