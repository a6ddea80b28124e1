"""Error-pattern alerts: published at once, beside the batches, under their own rate limit.

An alert never waits for the batching delay, the batch throttle or a batch
publish slot: it is its own JetStream publish, in its own task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from contracts.cloudevents import encode_structured, make_attributes
from contracts.models import ErrorPatternDetected
from contracts.timestamps import now_timestamp
from gateway.config import AlertConfig
from gateway.core.patterns import Alert, PatternDetector
from gateway.logs import RateLimitedLog
from publishers.errors import PublishError
from publishers.jetstream import JetStreamPublisher
from publishers.ratelimit import TokenBucket

__all__ = ["AlertPublisher", "AlertStats"]

log = logging.getLogger("log_gateway.alerts")


@dataclass
class AlertStats:
    """Alerts published, held back by the rate limit, and lost."""

    published: int = 0
    suppressed: int = 0
    failed: int = 0


class AlertPublisher:
    """Watches error and fatal entries; publishes ``ErrorPatternDetected`` when a pattern is due."""

    def __init__(
        self,
        config: AlertConfig,
        publisher: JetStreamPublisher,
        *,
        subject: str,
        gateway_id: str,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.detector = PatternDetector(config.limits)
        self.stats = AlertStats()
        self._publisher = publisher
        self._subject = subject
        self._source = f"//log-gateway/{gateway_id}"
        self._clock = clock
        self._bucket = TokenBucket(config.max_rate, burst=max(1.0, config.max_rate * 2), now=clock())
        self._tasks: set[asyncio.Task[None]] = set()
        self._warn = RateLimitedLog(log)

    def retune(self, config: AlertConfig) -> None:
        """New thresholds and alert rate from now on (see :meth:`PatternDetector.retune`)."""
        self.detector.retune(config.limits)
        if config.max_rate != self.config.max_rate:  # (what was spent stays spent)
            self._bucket.burst = max(1.0, config.max_rate * 2)
            self._bucket.set_rate(config.max_rate, self._clock())
        self.config = config

    def observe(self, *, source: str, message: str, level: str, created: str, created_at: float) -> None:
        """Count an error or fatal entry; start publishing an alert if one is due.

        ``created`` is the entry's ``createdAt`` as sent, ``created_at`` the same in epoch seconds.
        """
        now = self._clock()
        alert = self.detector.observe(
            source=source,
            message=message,
            fatal=level == "fatal",
            created=created,
            created_at=created_at,
            now=now,
        )
        if alert is None:
            return
        if self._bucket.wait_s(now, 1.0) > 0:
            self.stats.suppressed += 1
            self._warn.warning(
                "suppressed", "alert rate limit reached; held back an alert for %s", alert.pattern_id
            )
            return
        self._bucket.spend(now, 1.0)
        task = asyncio.create_task(self._publish(alert))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def event(self, alert: Alert) -> tuple[dict[str, str], bytes]:
        """The ``ErrorPatternDetected`` CloudEvent for ``alert``; its ``source`` rides as an extra field."""
        data = {
            "patternId": alert.pattern_id,
            "pattern": alert.pattern,
            "occurrences": alert.occurrences,
            "severity": alert.severity,
            "timeWindow": f"{self.config.limits.window_s:g}s",
            "firstOccurrence": alert.first_occurrence,
            "lastOccurrence": alert.last_occurrence,
            "detectedAt": now_timestamp(),
            "source": alert.source,
        }
        attrs = make_attributes(ErrorPatternDetected.EVENT_TYPE, self._source, subject=alert.source)
        headers, body = encode_structured(attrs, orjson.dumps(data))
        headers["Nats-Msg-Id"] = attrs["id"]
        return headers, body

    async def _publish(self, alert: Alert) -> None:
        headers, body = self.event(alert)
        try:
            await self._publisher.publish(self._subject, body, headers, deadline_s=10.0)
        except PublishError as exc:
            self.stats.failed += 1
            self._warn.warning("failed", "alert %s lost: %s", alert.pattern_id, exc)
        else:
            self.stats.published += 1

    async def close(self, timeout_s: float) -> None:
        """Wait for alerts still being published, at most ``timeout_s``."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=max(0.01, timeout_s))
