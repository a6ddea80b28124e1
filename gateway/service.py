"""The gateway: per-entry messages in, logBatchCreated batches out, nothing lost silently.

This module only wires the rooms together and keeps the shutdown contract; see
ARCHITECTURE.md for the path of one entry. Ingest subscribes with nats-py
directly (``gateway.ingest``), because ingest is the hot path: measured on this
project's 2-core machine, a FastStream 0.7 subscriber handled about 22k msg/s
where a raw nats-py callback handled about 80k msg/s of the same messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError

from contracts.errors import GatewayError
from gateway.alerts import AlertPublisher
from gateway.assembly import (
    Parts,
    Rooms,
    announce,
    assemble,
    ensure_output_stream,
    fit_to_server,
    open_spooler,
)
from gateway.config import ConfigError, GatewayConfig
from gateway.control.live import retune
from gateway.core import BatchLimits, DropReason, Stats
from gateway.core.accumulator import Accumulator
from gateway.core.redact import Redactor
from gateway.ingest.admission import Gate
from gateway.ingest.decode import EntryDecoder
from gateway.ingest.durable_intake import DurableIntake
from gateway.ingest.reject import Rejects
from gateway.logs import RateLimitedLog
from gateway.sender import BatchMetrics
from gateway.spool.replay import Spooler
from publishers.jetstream import JetStreamPublisher, PermissionWatch

__all__ = ["ConfigError", "Gateway", "NotStartedError", "ShutdownReport"]

log = logging.getLogger("log_gateway")
_LOST = (DropReason.SHUTDOWN, DropReason.SPOOL_FULL, DropReason.SPOOL_FAILED)


class NotStartedError(GatewayError, RuntimeError):
    """The gateway was asked for a part it only has once :meth:`Gateway.start` ran."""


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    """What shutdown achieved: entries it could not publish (lost or handed back), entries it
    kept in the spool for the next start, and whether it met its deadline."""

    unpublished: int
    timed_out: bool
    spooled: int = 0


class Gateway:
    """Batches entries from NATS into JetStream.

    Nothing starts in the constructor: :meth:`start` subscribes and starts the
    sender, :meth:`stop` (idempotent) stops intake, flushes and waits for acks.
    """

    def __init__(self, config: GatewayConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self.stats = Stats()
        self.metrics = BatchMetrics.new()
        self.watch = PermissionWatch(clock)
        self._warn = RateLimitedLog(log)
        self.alerts: AlertPublisher | None = None
        self.redactor = Redactor(keys=config.redact_keys) if config.redact else None
        self._retired_redactions = 0  # what redactors replaced live since counted (a counter goes up only)
        self.ready = False
        self.config_changes: Counter[str] = Counter()  # live changes applied, by origin
        self.config_refused: Counter[str] = Counter()  # refused ones, by origin
        self._parts = Parts(config, self.stats, self.metrics, self._warn, clock, self.redactor)
        self._rooms: Rooms | None = None
        self._stopped: asyncio.Future[ShutdownReport] | None = None

    @property
    def _started(self) -> Rooms:
        if self._rooms is None:
            raise NotStartedError("the gateway has not been started")
        return self._rooms

    @property
    def acc(self) -> Accumulator:
        """What is held (after :meth:`start`)."""
        return self._started.pipeline.acc

    @property
    def decoder(self) -> EntryDecoder:
        """The entry decoder ingest uses (after :meth:`start`)."""
        return self._started.intake.decoder

    @property
    def gate(self) -> Gate:
        """Where entries enter the batch pipeline (after :meth:`start`), for other ways in."""
        return self._started.gate

    @property
    def rejects(self) -> Rejects:
        """Where rejected messages are counted and forwarded (after :meth:`start`)."""
        return self._started.rejects

    @property
    def warn(self) -> RateLimitedLog:
        """The gateway's rate-limited warnings."""
        return self._warn

    @property
    def subscriptions(self) -> list[Subscription]:
        """Core ingest's NATS subscriptions (none before :meth:`start`, none for durable ingest)."""
        return [] if self._rooms is None else list(self._rooms.intake.subscriptions)

    @property
    def pull_counts(self) -> dict[str, int]:
        """Durable ingest's pull reader and acks, counted (requests, messages, statuses by code,
        acks/naks/terms sent); empty for core ingest or before :meth:`start`."""
        intake = None if self._rooms is None else self._rooms.intake
        return intake.pull_counts() if isinstance(intake, DurableIntake) else {}

    @property
    def spooler(self) -> Spooler | None:
        """The disk spool, when one is configured and the gateway started."""
        return None if self._rooms is None else self._rooms.spooler

    @property
    def failed(self) -> tuple[str, ...]:
        """Background tasks (sender, spool replay, ingest readers, /mcp) that died: the gateway is
        unhealthy if any."""
        return self._parts.tasks.failed

    def task_died(self, task: asyncio.Task[Any], exc: BaseException | None) -> None:
        """A task watched beside the gateway (the /mcp listener) died: health goes down, as for its own."""
        self._parts.tasks.died(task, exc)

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``coro`` beside the gateway, watched: if it dies it is logged and health goes down."""
        return self._parts.tasks.spawn(coro, name=name)

    # -- start ---------------------------------------------------------------

    async def start(self, nc: Client, *, ingest_nc: Client | None = None) -> None:
        """Check limits against the server, ensure the stream, start sending, announce, subscribe.

        ``ingest_nc``, when given, carries core ingest's subscriptions, so PubAcks and
        alerts (on ``nc``) never queue behind ingest traffic.

        Raises:
            ConfigError: the stream's duplicate window is too short for the retry deadline.
        """
        config = self.config
        limits = fit_to_server(config.batch, nc.max_payload)
        js = nc.jetstream()
        await ensure_output_stream(js, config)
        publisher = JetStreamPublisher(js, config.publish, self.watch, self._count_retry)
        spooler = open_spooler(config, self.stats, publisher)
        if config.alerts.enabled:
            self.alerts = self._alert_publisher(config, publisher)
        self._rooms = assemble(
            self._parts,
            self.alerts,
            nc=nc,
            ingest_nc=ingest_nc or nc,
            js=js,
            limits=limits,
            publisher=publisher,
            spooler=spooler,
        )
        self._rooms.sender.start(self._parts.tasks)
        await announce(publisher, config, limits)
        await self._rooms.intake.start()
        self.ready = True

    def _alert_publisher(self, config: GatewayConfig, publisher: JetStreamPublisher) -> AlertPublisher:
        return AlertPublisher(
            config.alerts,
            publisher,
            subject=config.subjects.alerts,
            gateway_id=config.gateway_id,
            clock=self._clock,
        )

    @property
    def rooms(self) -> Rooms:
        """The rooms of the started gateway.

        Raises:
            NotStartedError: before :meth:`start`.
        """
        return self._started

    def retune(self, config: GatewayConfig, limits: BatchLimits) -> None:
        """Run on ``config`` from the next batch on (``limits``: its batch limits fitted to the
        server); see :func:`gateway.control.live.retune`. Validate ``config`` first: this
        only applies it.

        Raises:
            NotStartedError: before :meth:`start`.
        """
        rooms, old = self._started, self.config
        if config.alerts.enabled and self.alerts is None:
            self.alerts = self._alert_publisher(config, rooms.publisher)
        if config.redact and (self.redactor is None or config.redact_keys != old.redact_keys):
            self._retire_redactor(Redactor(keys=config.redact_keys))
        elif not config.redact:
            self._retire_redactor(None)
        retune(rooms, self.alerts, old, config, limits, redactor=self.redactor)
        self.config = config

    @property
    def redactions(self) -> int:
        """Secrets replaced since start, across live changes of the redaction settings."""
        return self._retired_redactions + (self.redactor.count if self.redactor is not None else 0)

    def _retire_redactor(self, new: Redactor | None) -> None:
        """Swap in ``new``; the old redactor's count is kept, so the redactions counter never falls."""
        if self.redactor is not None:
            self._retired_redactions += self.redactor.count
        self.redactor = new

    def on_error(self, exc: BaseException) -> None:
        """Feed the connections' ``error_cb`` here: permission denials and slow-consumer drops."""
        if self.watch.on_error(exc):
            self._warn.warning("denied", "the server denied a publish: %s", exc)
        elif (
            isinstance(exc, SlowConsumerError) and self._rooms and exc.sub in self._rooms.intake.subscriptions
        ):
            # nats-py dropped a message before we saw it: it was received all the same.
            self.stats.received += 1
            self.stats.drop(DropReason.SLOW_CONSUMER)
            self._warn.warning("slow", "ingest fell behind; nats-py dropped messages (slow consumer)")
        else:
            self._warn.warning("nats", "NATS connection problem: %r", exc)

    def _count_retry(self, exc: BaseException) -> None:
        self.stats.retries += 1
        self._warn.warning("retry", "retrying a batch publish after %r", exc)

    # -- stop ----------------------------------------------------------------

    async def stop(self, timeout_s: float | None = None) -> ShutdownReport:
        """Stop intake, publish everything held, wait for the acks; safe to call twice.

        Returns:
            How many entries could not be published (counted as dropped, reason
            ``shutdown``, or handed back to the ingest stream) and whether the deadline was hit.
        """
        if self._stopped is not None:
            return await asyncio.shield(self._stopped)
        self._stopped = asyncio.get_running_loop().create_future()
        deadline = self._clock() + (timeout_s or self.config.shutdown_timeout_s)
        self.ready = False
        report = ShutdownReport(0, timed_out=False)
        if (rooms := self._rooms) is not None:
            await rooms.intake.stop(deadline - self._clock())
            report = await self._flush(rooms, deadline)
            await self._close_spool(rooms)
        if self.alerts is not None:
            await self.alerts.close(deadline - self._clock())
        self._stopped.set_result(report)
        return report

    async def _flush(self, rooms: Rooms, deadline: float) -> ShutdownReport:
        timed_out = await rooms.sender.flush(deadline)
        before = self._unsettled()
        await rooms.sender.abandon()
        unpublished = self._unsettled() - before
        spooled = rooms.spooler.spool.entries if rooms.spooler is not None else 0
        if spooled:
            log.warning("shutdown: %d entries wait in the spool, to be replayed at the next start", spooled)
        if unpublished:
            log.error(
                "shutdown: %d entries could not be published (%s)", unpublished, rooms.fate.unpublished_means
            )
        elif not spooled:
            log.info("shutdown: every buffered entry was published")
        stats = self.stats
        log.info(
            "shutdown: received %d, published %d, rejected %d, dropped %d, left %d (unpublished or spooled)",
            stats.received,
            stats.published,
            stats.total_rejected,
            stats.total_dropped,
            unpublished + spooled,
        )
        return ShutdownReport(unpublished, timed_out, spooled)

    def _unsettled(self) -> int:
        """Entries not published that shutdown can add to: dropped, could not be spooled, handed back."""
        return sum(self.stats.dropped[reason] for reason in _LOST) + self.stats.returned

    async def _close_spool(self, rooms: Rooms) -> None:
        if rooms.replayer is not None:
            rooms.replayer.cancel()
            await asyncio.gather(rooms.replayer, return_exceptions=True)
        if rooms.spooler is not None:
            rooms.spooler.close()
