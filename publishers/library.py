"""Library mode of the logging handler: batch in-process with the gateway's core, publish
``logBatchCreated`` to JetStream, for a service with no gateway beside it."""

from __future__ import annotations

import os
import time
import uuid
from typing import TYPE_CHECKING

from nats.aio.client import Client

from contracts.events import subject_for
from contracts.models import LogBatchCreated
from contracts.timestamps import now_timestamp
from gateway.core import (
    Accumulator,
    Admission,
    BatchEncoder,
    BufferLimits,
    OverflowPolicy,
    PendingEntry,
    Stats,
)
from publishers.errors import PublishError
from publishers.jetstream import JetStreamPublisher, PermissionWatch, PublishPolicy
from publishers.stream import StreamSpec, ensure_stream

if TYPE_CHECKING:
    from publishers.handler import NatsLogHandler, _Snapshot

__all__ = ["BatchSink"]


class BatchSink:
    """Feeds handler records into batches and publishes each batch when it is due."""

    def __init__(self, handler: NatsLogHandler, nc: Client) -> None:
        config = handler.config
        assert config.batching is not None  # noqa: S101 - only made in library mode
        limits = config.batching.within(nc.max_payload)
        self._handler = handler
        self._nc = nc
        self._subject = subject_for(LogBatchCreated.EVENT_TYPE, config.subject_prefix)
        self._encoder = BatchEncoder(
            gateway_id=f"{config.service}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            ce_source=f"//{config.service}",
            max_entries=limits.max_entries,
        )
        # The handler's queue bounds what is held; the accumulator only needs room for one queue's worth.
        buffer = BufferLimits(
            max_entries=config.queue_size + limits.max_entries,
            max_bytes=max(limits.max_bytes, 1 << 30),
            overflow=OverflowPolicy.DROP_NEWEST,
        )
        self._stats = Stats()
        self._acc = Accumulator(limits, buffer, self._encoder.overhead_for, self._stats)
        self._publisher = JetStreamPublisher(
            nc.jetstream(), PublishPolicy(retry_deadline_s=30.0), PermissionWatch()
        )
        self._sequence = 0

    async def start(self) -> None:
        """Make sure a stream captures the batch subject."""
        await ensure_stream(self._nc.jetstream(), StreamSpec(subjects=(self._subject,)))

    def idle_timeout(self) -> float | None:
        due = self._acc.next_due()
        return None if due is None else max(0.0, due - time.monotonic())

    async def send(self, items: list[_Snapshot]) -> None:
        now = time.monotonic()
        for item in items:
            encoded = self._handler.entry_json(item)
            if encoded is None:
                self._handler._done(1)
                continue
            data, body = encoded
            pending = PendingEntry(
                body, data["level"], data["source"], item.record.created, data["createdAt"], now
            )
            if self._acc.offer(pending) is not Admission.ACCEPTED:
                self._handler._count_drop("oversize")
                self._handler._done(1)
        await self.tick()

    async def tick(self, *, final: bool = False) -> None:
        """Publish every batch that is due (all of them on a flush or at the end)."""
        if final or self._handler.flush_requested:
            self._acc.seal_all()
        while (batch := self._acc.take(time.monotonic())) is not None:
            self._sequence += 1
            encoded = self._encoder.encode(
                batch, sequence=self._sequence, dropped=self._stats.take_unreported(), now=now_timestamp()
            )
            try:
                await self._publisher.publish(self._subject, encoded.body, encoded.headers)
            except PublishError as exc:
                self._handler._count_drop(exc.reason, encoded.count)
            else:
                self._handler._count(published=encoded.count)
            finally:
                self._acc.release(batch)
                self._handler._done(encoded.count)
        if self._acc.is_empty:
            self._handler.flush_requested = False
