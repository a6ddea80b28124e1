"""Library mode of the logging handler: batch in-process on the gateway's pure batch
pipeline, publish ``logBatchCreated`` to JetStream, for a service with no gateway beside it."""

from __future__ import annotations

import os
import time
import uuid

from nats.aio.client import Client

from contracts.events import subject_for
from contracts.models import LogBatchCreated
from contracts.timestamps import now_timestamp
from gateway.core import Admission, BatchEncoder, BufferLimits, OverflowPolicy, PendingEntry, Stats
from gateway.core.pipeline import BatchPipeline, ReadyBatch
from publishers.errors import PublishError
from publishers.jetstream import JetStreamPublisher, PermissionWatch, PublishPolicy
from publishers.records import SLICE, RecordFeed, Snapshot
from publishers.stream import StreamSpec, ensure_stream

__all__ = ["LibrarySink"]


class LibrarySink:
    """Feeds handler records into the batch pipeline; publishes each batch when it is due."""

    def __init__(self, feed: RecordFeed, nc: Client) -> None:
        config = feed.config
        if config.batching is None:
            raise ValueError("library mode needs HandlerConfig.batching")
        limits = config.batching.within(nc.max_payload)
        self._feed = feed
        self._nc = nc
        self._subject = subject_for(LogBatchCreated.EVENT_TYPE, config.subject_prefix)
        encoder = BatchEncoder(
            gateway_id=f"{config.service}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            ce_source=f"//{config.service}",
            max_entries=limits.max_entries,
        )
        # The handler's queue bounds what is held; the pipeline only needs room for one queue's worth.
        buffer = BufferLimits(
            max_entries=config.queue_size + limits.max_entries,
            max_bytes=max(limits.max_bytes, 1 << 30),
            overflow=OverflowPolicy.DROP_NEWEST,
        )
        self._pipeline = BatchPipeline(limits, buffer, encoder, Stats())
        self._publisher = JetStreamPublisher(
            nc.jetstream(), PublishPolicy(retry_deadline_s=30.0), PermissionWatch()
        )

    async def start(self) -> None:
        """Make sure a stream captures the batch subject."""
        await ensure_stream(self._nc.jetstream(), StreamSpec(subjects=(self._subject,)))

    def idle_timeout(self) -> float | None:
        due = self._pipeline.acc.next_due()
        return None if due is None else max(0.0, due - time.monotonic())

    async def send(self, items: list[Snapshot]) -> None:
        now = time.monotonic()
        for start in range(0, len(items), SLICE):
            for data, body, _trace, created in self._feed.encode(items[start : start + SLICE]):
                pending = PendingEntry(body, data["level"], data["source"], created, data["createdAt"], now)
                if self._pipeline.offer(pending) is not Admission.ACCEPTED:
                    self._feed.count_dropped("oversize")
                    self._feed.done(1)
            self._feed.breathe()
        await self.tick()

    async def tick(self, *, final: bool = False) -> None:
        """Publish every batch that is due (all of them on a flush or at the end)."""
        final = final or self._feed.flush_requested
        await self._pipeline.drain(self, time.monotonic, now_timestamp, final=final)
        if self._pipeline.acc.is_empty:
            self._feed.flush_requested = False

    async def deliver(self, batch: ReadyBatch) -> bool:
        """Publish one batch (the pipeline's sink); its entries are counted either way."""
        encoded = batch.encoded
        try:
            await self._publisher.publish(self._subject, encoded.body, encoded.headers)
        except PublishError as exc:
            self._feed.count_dropped(exc.reason, encoded.count)
            return False
        else:
            self._feed.count_published(encoded.count)
            return True
        finally:
            self._feed.done(encoded.count)
