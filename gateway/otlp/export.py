"""``log-gateway otlp-export``: stored batches forwarded to an OTLP/HTTP logs endpoint.

Batches are read with a durable consumer (``BatchSubscriber``), one at a time and in
order; each goes out as one ``ExportLogsServiceRequest`` (``gateway.otlp.mapping``, the
table of the receiver read backwards; ``logId`` rides as ``log.record.uid``) and is
acknowledged only once the endpoint accepted it (2xx; a ``partial_success`` is logged, as
the specification has it, and not retried). 429, 502, 503 and 504, timeouts and connection
errors are retried with backoff, waiting what ``Retry-After`` says, until the retry
deadline; then, and for any other answer, the batch is handed back (nak) for a later
delivery, and after ``max_deliver`` deliveries it goes to the dead-letter subject.

A restart resumes after the last acknowledged batch, so nothing is forwarded twice, except
a batch whose acceptance was lost: the endpoint took it but its answer, or the ack that
followed, never arrived (a timeout, a crash in between). Such a batch is sent again; it is
counted in ``stats.resent`` and logged, and its records keep their ``log.record.uid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import random
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from nats.aio.client import Client
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay

from contracts.models import LogBatchCreated
from gateway.consumers.subscribe import BatchSubscriber, Delivery, SubscriberConfig
from gateway.core.announce import stream_started
from gateway.otlp.config import ExportConfig
from gateway.otlp.mapping import export_request

__all__ = ["ExportStats", "OtlpExporter", "Rejected", "Retryable"]

log = logging.getLogger("log_gateway")
_RETRYABLE = frozenset((429, 502, 503, 504))
_BACKOFF_INITIAL_S, _BACKOFF_MAX_S = 0.5, 30.0


class Retryable(Exception):
    """The endpoint asked for a retry (429/5xx), or did not answer; ``retry_after_s`` if it said."""

    def __init__(self, why: str, retry_after_s: float | None = None) -> None:
        super().__init__(why)
        self.retry_after_s = retry_after_s


class Rejected(Exception):
    """The endpoint refused the batch for good (another 4xx): retrying would not help."""


@dataclass
class ExportStats:
    """What the exporter did."""

    batches: int = 0
    records: int = 0
    retries: int = 0
    failed: int = 0
    resent: int = 0
    partially_rejected: int = 0


class OtlpExporter:
    """Forwards batches from the stream to ``config.endpoint``; acks each once it is accepted."""

    def __init__(self, nc: Client, config: ExportConfig, *, max_deliver: int = 5) -> None:
        self._nc = nc
        self.config = config
        self._max_deliver = max_deliver
        self.stats = ExportStats()
        self._unanswered: set[str] = set()  # batchIds sent without an answer (maybe accepted)
        self._refused: set[str] = set()  # batchIds handed back after the endpoint surely refused them

    def _subscriber(self) -> BatchSubscriber:
        cfg = self.config
        return BatchSubscriber(
            self._nc,
            SubscriberConfig(
                durable=cfg.durable,
                stream=cfg.stream,
                subject=cfg.subject,
                ack_wait_s=cfg.ack_wait_s,
                fetch_batch=1,  # one batch in hand at a time: in order, and none waits out its ack_wait
                max_deliver=self._max_deliver,
            ),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Forward until ``stop`` is set; a batch being sent then is finished first (or handed back)."""
        await self._announce()
        async with self._subscriber() as sub:
            deliveries = sub.deliveries()
            while not stop.is_set():
                delivery = await _next_or_stop(deliveries, stop)
                if delivery is None:
                    break
                await self._forward(delivery)

    async def _announce(self) -> None:
        """Say that a stream of log events to the endpoint starts (``LogStreamStarted``)."""
        headers, body = stream_started(
            started_by=f"otlp-export:{self.config.durable}",
            destination="external",
            fmt="structured",
            filters={"endpoint": self.config.endpoint, "subject": self.config.subject},
        )
        await self._nc.publish(self.config.stream_started_subject, body, headers=headers)

    async def _forward(self, delivery: Delivery) -> None:
        batch = delivery.batch
        if delivery.attempt > 1 and batch.batchId not in self._refused:
            # Delivered again, not after a refusal seen here: a restart after a send whose
            # answer or ack never arrived, so the endpoint may have it.
            self._unanswered.add(batch.batchId)
        try:
            await self._send(batch)
        except (Retryable, Rejected) as exc:
            self.stats.failed += 1
            log.warning("batch %s not accepted by %s: %s", batch.batchId, self.config.endpoint, exc)
            if batch.batchId not in self._unanswered:
                self._refused.add(batch.batchId)  # (surely not taken: its redelivery is no duplicate)
            await delivery.nak(str(exc))
            return
        self._unanswered.discard(batch.batchId)
        self._refused.discard(batch.batchId)
        await delivery.ack()
        self.stats.batches += 1
        self.stats.records += batch.count

    async def _send(self, batch: LogBatchCreated) -> None:
        """POST the batch, retrying what is retryable until the deadline.

        Raises:
            Retryable: still refused (or unanswered) at the deadline.
            Rejected: refused for good.
        """
        body = export_request(entry.to_data() for entry in batch.entries).SerializeToString()
        retrying = AsyncRetrying(
            stop=stop_after_delay(self.config.retry_deadline_s),
            wait=_wait,
            retry=retry_if_exception_type(Retryable),
            before_sleep=self._count_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._post(body, batch.batchId)

    def _count_retry(self, state: RetryCallState) -> None:
        self.stats.retries += 1

    async def _post(self, body: bytes, batch_id: str) -> None:
        if batch_id in self._unanswered:
            self.stats.resent += 1
            log.warning(
                "sending batch %s again: an earlier send may have been accepted without its answer "
                "or its ack arriving, so the endpoint may get it twice (its records keep their "
                "log.record.uid)",
                batch_id,
            )
        # One batch is in hand at a time, so a blocking client in a thread costs nothing here.
        try:
            status, answer, retry_after = await asyncio.to_thread(
                _post_blocking, self.config.endpoint, body, self.config.timeout_s
            )
        except TimeoutError as exc:
            self._unanswered.add(batch_id)  # it may have arrived and been taken
            raise Retryable(f"no answer within {self.config.timeout_s:g}s: {exc!r}") from None
        except (OSError, http.client.HTTPException) as exc:
            if not isinstance(exc, urllib.error.URLError):  # (no connection: it never arrived)
                self._unanswered.add(batch_id)
            raise Retryable(f"no answer: {exc!r}") from None
        if status in _RETRYABLE:
            raise Retryable(f"HTTP {status}", _retry_after_s(retry_after))
        if not 200 <= status < 300:
            raise Rejected(f"HTTP {status}: {answer[:200]!r}")
        self._partial(answer, batch_id)

    def _partial(self, answer: bytes, batch_id: str) -> None:
        reply = ExportLogsServiceResponse()
        with contextlib.suppress(Exception):  # (an answer that is no response: accepted all the same)
            reply.ParseFromString(answer)
        rejected = reply.partial_success.rejected_log_records
        if rejected:
            self.stats.partially_rejected += rejected
            log.warning(
                "the endpoint took batch %s but rejected %d of its records: %s",
                batch_id,
                rejected,
                reply.partial_success.error_message,
            )


def _post_blocking(url: str, body: bytes, timeout_s: float) -> tuple[int, bytes, str | None]:
    """POST ``body`` as protobuf; the status, the answer and its ``Retry-After``.

    Raises:
        TimeoutError: no answer in time.
        OSError: no connection (``urllib.error.URLError``) or it broke.
    """
    request = urllib.request.Request(  # noqa: S310 - ExportConfig admits http:// and https:// only
        url, data=body, method="POST", headers={"Content-Type": "application/x-protobuf"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - as above
            return int(response.status), response.read(), response.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:  # (an answer all the same: 4xx, 5xx)
        with exc:
            return exc.code, exc.read(), exc.headers.get("Retry-After")


def _wait(state: RetryCallState) -> float:
    """``Retry-After`` when the endpoint said it, else exponential backoff with full jitter."""
    exc = state.outcome.exception() if state.outcome is not None else None
    if isinstance(exc, Retryable) and exc.retry_after_s is not None:
        return exc.retry_after_s
    cap = min(_BACKOFF_MAX_S, _BACKOFF_INITIAL_S * 2 ** (state.attempt_number - 1))
    return random.uniform(0, cap)  # noqa: S311 - jitter, not a secret


def _retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) in seconds from now."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


async def _next_or_stop(deliveries: AsyncIterator[Delivery], stop: asyncio.Event) -> Delivery | None:
    """The next delivery, or None once ``stop`` is set first."""
    next_one = asyncio.ensure_future(anext(deliveries))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({next_one, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if next_one.done():
        return next_one.result()
    next_one.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await next_one
    return None
