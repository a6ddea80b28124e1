"""Which publish failures are worth retrying, and the errors a publisher raises."""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors

from contracts.errors import GatewayError

__all__ = ["PermissionDeniedError", "PublishError", "PublishFailedError", "is_retriable", "reason_for"]

# Transient by nature: the ack did not come, nobody answered (a stream leader
# election answers 503 / no responders), or the connection is between servers.
_RETRIABLE: tuple[type[BaseException], ...] = (
    asyncio.TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.FlushTimeoutError,
)
# JetStream API errors that mean "try again": 503 and the cluster-not-ready codes.
_RETRIABLE_API_CODES = {503, 10008, 10074}


class PublishError(GatewayError):
    """A message could not be published.

    Attributes:
        reason: a metric label (``publish_failed``, ``permission_denied``, ``payload_too_large``).
        subject: where it was going.
    """

    def __init__(self, reason: str, subject: str, detail: str) -> None:
        self.reason = reason
        self.subject = subject
        super().__init__(f"publish to {subject} failed ({reason}): {detail}")


class PermissionDeniedError(PublishError, PermissionError):
    """The server denied publishing to the subject; never retried."""

    def __init__(self, subject: str) -> None:
        super().__init__("permission_denied", subject, "the server's permissions deny it")


class PublishFailedError(PublishError):
    """A publish failed permanently, or kept failing until its retry deadline.

    Attributes:
        transient: the last failure was one worth retrying (the deadline ran
            out), so trying again later may succeed.
    """

    def __init__(self, reason: str, subject: str, detail: str, *, transient: bool = False) -> None:
        super().__init__(reason, subject, detail)
        self.transient = transient


def is_retriable(exc: BaseException) -> bool:
    """True for errors that may succeed on a later attempt."""
    if isinstance(exc, PublishError):
        return False
    if isinstance(exc, nats.js.errors.APIError):
        return exc.code in _RETRIABLE_API_CODES or exc.err_code in _RETRIABLE_API_CODES
    return isinstance(exc, _RETRIABLE)


def reason_for(exc: BaseException) -> str:
    """The drop reason label for a publish that ended with ``exc``."""
    if isinstance(exc, PublishError):
        return exc.reason
    if isinstance(exc, nats.errors.MaxPayloadError) or (
        isinstance(exc, nats.js.errors.APIError) and exc.code == 413
    ):
        return "payload_too_large"
    return "publish_failed"
