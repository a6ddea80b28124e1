"""JetStream publishing with an idempotency key, retries under a deadline, and permission checks.

nats-py publishes a batch's JetStream request and waits for the ack; it does
not tell the waiting publish when the server denies the subject (that arrives
only at ``error_cb``), so :class:`PermissionWatch` hears those errors and
fails the waiting publish at once instead of letting it time out and retry.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from nats.js.api import PubAck
from nats.js.client import JetStreamContext
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from publishers.config import PublishPolicy
from publishers.errors import PermissionDeniedError, PublishFailedError, is_retriable

__all__ = ["JetStreamPublisher", "PermissionWatch", "PublishPolicy"]

_DENIED = re.compile(r'permissions violation for publish to "([^"]+)"', re.IGNORECASE)


class PermissionWatch:
    """Collects publish-permission violations reported to the connection's ``error_cb``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, remember_s: float = 30.0) -> None:
        self._clock = clock
        self._remember_s = remember_s
        self._denied: dict[str, float] = {}
        self._changed = asyncio.Event()

    def on_error(self, exc: BaseException) -> bool:
        """Feed every ``error_cb`` error here; True when it was a publish denial."""
        match = _DENIED.search(str(exc))
        if match is None:
            return False
        self._denied[match.group(1)] = self._clock()
        self._changed.set()
        self._changed = asyncio.Event()
        return True

    def denied(self, subject: str) -> bool:
        """Was publishing to ``subject`` denied recently?"""
        at = self._denied.get(subject)
        return at is not None and self._clock() - at < self._remember_s

    async def wait_denied(self, subject: str) -> None:
        """Return once a publish to ``subject`` is denied."""
        while not self.denied(subject):
            await self._changed.wait()


class JetStreamPublisher:
    """Publishes to JetStream, retrying only what is retriable, within a deadline.

    Args:
        js: the JetStream context.
        policy: timeouts, backoff and deadline.
        watch: where permission denials are heard.
        on_retry: called with the error before each retry (for metrics).
    """

    def __init__(
        self,
        js: JetStreamContext,
        policy: PublishPolicy,
        watch: PermissionWatch,
        on_retry: Callable[[BaseException], None] = lambda _exc: None,
    ) -> None:
        self._js = js
        self.policy = policy
        self._watch = watch
        self._on_retry = on_retry

    async def publish(
        self, subject: str, body: bytes, headers: dict[str, str], *, deadline_s: float | None = None
    ) -> PubAck:
        """Publish and wait for the stream's ack, retrying transient failures.

        Raises:
            PermissionDeniedError: the server denies the subject.
            PublishFailedError: a permanent failure, or the deadline passed.
        """
        deadline = self.policy.retry_deadline_s if deadline_s is None else deadline_s
        retrying = AsyncRetrying(
            stop=stop_after_delay(max(deadline, 0.0)),
            wait=wait_random_exponential(
                multiplier=self.policy.backoff_initial_s, max=self.policy.backoff_max_s
            ),
            retry=retry_if_exception(is_retriable),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(subject, body, headers)
        except PermissionDeniedError:
            raise
        except Exception as exc:
            raise PublishFailedError(
                "publish_failed", subject, repr(exc), transient=is_retriable(exc)
            ) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _before_sleep(self, state: RetryCallState) -> None:
        if state.outcome is not None and (exc := state.outcome.exception()) is not None:
            self._on_retry(exc)

    async def _attempt(self, subject: str, body: bytes, headers: dict[str, str]) -> PubAck:
        if self._watch.denied(subject):
            raise PermissionDeniedError(subject)
        publish = asyncio.ensure_future(
            self._js.publish(subject, body, timeout=self.policy.timeout_s, headers=headers)
        )
        denial = asyncio.ensure_future(self._watch.wait_denied(subject))
        try:
            await asyncio.wait({publish, denial}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            denial.cancel()
        if not publish.done():
            publish.cancel()
            raise PermissionDeniedError(subject)
        if publish.exception() is not None and self._watch.denied(subject):
            # The ack timed out because the server dropped the denied publish.
            raise PermissionDeniedError(subject)
        return publish.result()
