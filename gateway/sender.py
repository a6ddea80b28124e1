"""The sender: takes due batches from the pipeline and publishes them to JetStream.

It owns the publish slots (``max_in_flight``), the batch and byte throttles,
the ordered publish tasks, what a publish outcome means for the batch's
entries (through the ingest mode's fate) and the hand-off to the disk spool.
Batches are published concurrently but settle in the order they were made:
a batch waits for the one before it before it is spooled, so the spool (and
so the stream, on replay) keeps that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

from contracts.timestamps import now_timestamp
from gateway.config import ThrottleLimits
from gateway.core.limits import DropReason
from gateway.core.pipeline import BatchPipeline, ReadyBatch
from gateway.core.stats import BATCH_BYTES_BUCKETS, BATCH_ENTRIES_BUCKETS, LatencyHistogram, Stats
from gateway.ingest.fates import EntryFate
from gateway.logs import RateLimitedLog
from gateway.spool.replay import Spooler
from gateway.spool.store import SpoolRecord
from gateway.tasks import TaskWatch
from publishers.errors import PublishError, PublishFailedError
from publishers.jetstream import JetStreamPublisher
from publishers.ratelimit import TokenBucket

__all__ = ["BatchMetrics", "PublishSlots", "Sender"]


class PublishSlots:
    """Publishes in flight, at most ``limit``; the limit may change while batches are out.

    A lower limit takes no slot back: it holds the next batch until enough settle.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._freed = asyncio.Event()

    async def acquire(self) -> None:
        """Wait for a free slot and take it."""
        while self.used >= self.limit:
            self._freed.clear()
            await self._freed.wait()
        self.used += 1

    def release(self) -> None:
        self.used -= 1
        self._freed.set()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._freed.set()


@dataclass(frozen=True, slots=True)
class BatchMetrics:
    """Histograms of what was published: entry latency, entries and bytes per batch."""

    latency: LatencyHistogram
    entries: LatencyHistogram
    size: LatencyHistogram

    @classmethod
    def new(cls) -> BatchMetrics:
        return cls(
            LatencyHistogram(),
            LatencyHistogram(buckets=BATCH_ENTRIES_BUCKETS),
            LatencyHistogram(buckets=BATCH_BYTES_BUCKETS),
        )


class Sender:
    """Publishes the pipeline's batches; see the module docstring.

    Args:
        pipeline: where batches come from.
        publisher: JetStream publishing with retries under a deadline.
        subject: where batches go.
        throttle: batches/s, bytes/s and publishes in flight.
        fate: what an outcome means for the entries (by ingest mode).
        spooler: the disk spool, or None.
        stats, metrics: counted here.
        wake: set when a batch may be due (by admission).
        freed: called whenever a batch's room is released (wakes a blocked intake).
        warn: rate-limited warnings.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        pipeline: BatchPipeline,
        publisher: JetStreamPublisher,
        subject: str,
        throttle: ThrottleLimits,
        *,
        fate: EntryFate,
        spooler: Spooler | None,
        stats: Stats,
        metrics: BatchMetrics,
        wake: asyncio.Event,
        freed: Callable[[], None],
        warn: RateLimitedLog,
        clock: Callable[[], float],
    ) -> None:
        self._pipeline = pipeline
        self._publisher = publisher
        self._subject = subject
        self._fate = fate
        self._spooler = spooler if fate.spoolable else None
        self._stats = stats
        self._metrics = metrics
        self._wake = wake
        self._freed = freed
        self._warn = warn
        self._clock = clock
        # Pacers, not savings: a batch goes out only once the ones before it are paid for, so
        # in any window of W seconds at most rate * W batches (bytes) plus the last batch go
        # out, at the start of a flood and after a stall alike (see TokenBucket).
        now = clock()
        self._batch_bucket = TokenBucket.pacer(throttle.max_publish_rate, now=now)
        self._bytes_bucket = TokenBucket.pacer(throttle.max_publish_bytes_rate, now=now)
        self._slots = PublishSlots(throttle.max_in_flight)
        self._retuned = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], None] = {}  # in the order batches were made
        self._turn: asyncio.Future[None] | None = None  # resolved once the newest batch is settled
        self._idle = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self, tasks: TaskWatch) -> None:
        """Start taking and publishing batches, in a task ``tasks`` watches (its death is reported)."""
        self._task = tasks.spawn(self._run(), name="log-gateway-sender")

    @property
    def max_in_flight(self) -> int:
        """The publish slots in force."""
        return self._slots.limit

    @property
    def in_flight(self) -> int:
        """Batches being published (or spooled) now."""
        return self._slots.used

    def retune(self, throttle: ThrottleLimits) -> None:
        """New rates and publish slots for the next batch; what is owed stays owed, so a
        change never lets a burst through."""
        now = self._clock()
        self._batch_bucket.set_rate(throttle.max_publish_rate, now)
        self._bytes_bucket.set_rate(throttle.max_publish_bytes_rate, now)
        self._slots.resize(throttle.max_in_flight)
        self._retuned.set()
        self._freed()  # (durable ingest's fetch room follows the slots)

    # -- taking --------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._until_due()
            await self._slots.acquire()
            await self._until_rate_allows()
            batch = self._take(self._clock())
            if batch is None:
                self._slots.release()
                continue
            after, self._turn = self._turn, asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._publish(batch, after, self._turn))
            self._tasks[task] = None
            task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def _until_due(self) -> None:
        while True:
            self._wake.clear()
            due = self._pipeline.acc.next_due()
            now = self._clock()
            if due is not None and due <= now:
                return
            timeout = None if due is None else due - now
            # asyncio.timeout, not wait_for: no task of its own, so a wake-up is one turn of
            # the loop, not three (each turn may wait behind a slice of ingest).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _until_rate_allows(self) -> None:
        # While waiting here the open batch keeps filling: fewer, fuller batches.
        while not self._stopping:
            now = self._clock()
            wait = max(self._batch_bucket.wait_s(now), self._bytes_bucket.wait_s(now))
            if wait <= 0:
                return
            self._retuned.clear()  # (a new rate may allow the batch sooner: look again then)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._retuned.wait()

    def _take(self, now: float) -> ReadyBatch | None:
        batch = self._pipeline.take(now, now_timestamp())
        if batch is not None:
            now = self._clock()
            self._batch_bucket.spend(now, 1.0)
            self._bytes_bucket.spend(now, batch.encoded.size)
        return batch

    # -- publishing ----------------------------------------------------------

    async def _publish(
        self, batch: ReadyBatch, after: asyncio.Future[None] | None, settled: asyncio.Future[None]
    ) -> None:
        """Publish one batch; spool it (after the batch before it is settled, so the spool keeps
        the order batches were made in) when the bus does not take it before its deadline."""
        kept = False
        try:
            kept = await self._outcome(batch, after)
        except asyncio.CancelledError:
            kept = self._spool_now(batch)
            if not kept:
                await self._fate.lost(batch.sealed.entries, batch.count, DropReason.SHUTDOWN)
            raise
        finally:
            if not settled.done():
                settled.set_result(None)
            self._pipeline.settle(batch, kept=kept)
            self._slots.release()
            self._freed()
            if self._pipeline.acc.held_entries == 0:
                self._idle.set()

    async def _outcome(self, batch: ReadyBatch, after: asyncio.Future[None] | None) -> bool:
        """Publish (or spool) ``batch``; True when its message was kept by the bus or the spool."""
        spooler, encoded = self._spooler, batch.encoded
        try:
            if spooler is not None and spooler.backlog:
                return await self._spool(spooler, batch, after)  # queue behind what is spooled
            await self._publisher.publish(self._subject, encoded.body, encoded.headers)
        except PublishError as exc:
            self._warn.warning("publish", "batch %s not published: %s", encoded.batch_id, exc)
            if spooler is not None and isinstance(exc, PublishFailedError) and exc.transient:
                return await self._spool(spooler, batch, after)
            await self._fate.lost(batch.sealed.entries, batch.count, exc.reason)
            return False
        self._published(batch)
        await self._fate.published(batch.sealed.entries)
        return True

    def _published(self, batch: ReadyBatch) -> None:
        stats, encoded = self._stats, batch.encoded
        stats.published += encoded.count
        stats.batches += 1
        self._metrics.entries.observe(encoded.count)
        self._metrics.size.observe(encoded.size)
        self._metrics.latency.observe_batch([e.received_at for e in batch.sealed.entries], self._clock())

    # -- the spool -----------------------------------------------------------

    def _record(self, spooler: Spooler, batch: ReadyBatch) -> SpoolRecord:
        encoded = batch.encoded
        return spooler.record(self._subject, encoded.headers, encoded.body, encoded.count)

    async def _spool(self, spooler: Spooler, batch: ReadyBatch, after: asyncio.Future[None] | None) -> bool:
        """Keep a batch the bus would not take on disk; replayed later with its Nats-Msg-Id."""
        if after is not None:
            await asyncio.wait([after])  # (not cancelling it if this task is cancelled)
        return await spooler.put(self._record(spooler, batch))

    def _spool_now(self, batch: ReadyBatch) -> bool:
        spooler = self._spooler
        return spooler is not None and spooler.put_nowait(self._record(spooler, batch))

    # -- shutdown ------------------------------------------------------------

    async def flush(self, deadline: float) -> bool:
        """Seal everything and publish it by ``deadline``; True if it ran out of time."""
        self._stopping = True
        self._pipeline.acc.seal_all()
        self._wake.set()
        self._freed()
        if not self._pipeline.acc.held_entries:
            return False
        self._idle.clear()
        try:
            await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - self._clock()))
        except TimeoutError:
            return True
        return False

    async def abandon(self) -> None:
        """Cancel the sender and unfinished publishes; spool, hand back or drop (counted) what they held."""
        tasks = [*self._tasks]
        if self._task is not None:
            self._task.cancel()
            tasks.append(self._task)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._spool_queued()
        queued = self._pipeline.acc.clear()
        await self._fate.lost(queued, len(queued), DropReason.SHUTDOWN)

    def _spool_queued(self) -> None:
        """Shutdown ran out of time: batches not yet sent go to the spool, for the next start."""
        if self._spooler is None:
            return
        while (batch := self._pipeline.take(math.inf, now_timestamp())) is not None:
            self._pipeline.settle(batch, kept=self._spool_now(batch))
