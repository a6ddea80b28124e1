"""The OTLP receiver's and exporter's settings (no optional dependency: settings read them)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExportConfig", "OtlpConfig"]


@dataclass(frozen=True, kw_only=True, slots=True)
class OtlpConfig:
    """``log-gateway run --otlp-port``: where the OTLP/HTTP logs receiver listens and what it takes.

    Attributes:
        port: TCP port (4318 by convention; 0 picks a free one).
        host: address to bind (localhost: only this host's services reach it).
        max_body_bytes: a request body beyond this, as sent or once gunzipped, gets 413.
        retry_after_s: the ``Retry-After`` of a 503 when the buffer is full under ``block``.
    """

    port: int
    host: str = "localhost"
    max_body_bytes: int = 8 * 1024 * 1024
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"otlp_port must be 0..65535, got {self.port}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"otlp_max_body_bytes must be at least 1024, got {self.max_body_bytes}")
        if self.retry_after_s < 1:
            raise ValueError(f"otlp_retry_after_s must be at least 1, got {self.retry_after_s}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ExportConfig:
    """``log-gateway otlp-export``: batches from the stream to an OTLP/HTTP endpoint.

    Attributes:
        endpoint: the full URL (``http://collector:4318/v1/logs``).
        durable: the durable consumer's name (a restart resumes after the last acked batch).
        stream: the JetStream stream holding the batches.
        subject: the batch subject.
        stream_started_subject: where the export announces itself (``LogStreamStarted``).
        timeout_s: wait this long for one export's answer.
        retry_deadline_s: give up on a batch (not acked: redelivered later) after retrying this long.
        ack_wait_s: the consumer's ack wait; must exceed twice the retry deadline plus one timeout
            (the batch being sent, and the next one already fetched, waiting its turn).
    """

    endpoint: str
    durable: str = "otlp-export"
    stream: str = "CORTEX_LOGGING"
    subject: str = "cortex_logging.batch.created"
    stream_started_subject: str = "cortex_logging.stream.started"
    timeout_s: float = 10.0
    retry_deadline_s: float = 60.0
    ack_wait_s: float = 150.0

    def __post_init__(self) -> None:
        if not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http:// or https:// URL, got {self.endpoint!r}")
        if not (self.timeout_s > 0 and self.retry_deadline_s > 0):
            raise ValueError("export_timeout_s and export_retry_deadline_s must be positive")
        worst = 2 * (self.retry_deadline_s + self.timeout_s)
        if self.ack_wait_s <= worst:
            raise ValueError(
                f"ack_wait_s ({self.ack_wait_s:g}) must exceed twice export_retry_deadline_s plus "
                f"export_timeout_s ({worst:g}), or a batch waiting its turn is redelivered"
            )
