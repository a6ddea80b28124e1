"""``log-gateway archive``: batches from JetStream into segment files, acked once on disk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from nats.aio.client import Client

from contracts.cloudevents import encode_structured, make_attributes
from contracts.models import LogArchived
from gateway.consumers.options import ArchiveConfig
from gateway.consumers.segments import (
    SegmentInfo,
    SegmentWriter,
    archived_event_data,
    created_text,
)
from gateway.consumers.subscribe import BatchSubscriber, Delivery, SubscriberConfig
from gateway.core.announce import stream_started

__all__ = ["ArchiveConfig", "Archiver"]

log = logging.getLogger("log_gateway.consumers.segments")


class Archiver:
    """Consumes batches durably and writes their entries to rolling segments."""

    def __init__(
        self, nc: Client, config: ArchiveConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._nc = nc
        self.config = config
        self._clock = clock
        self.writer = SegmentWriter(
            config.directory, compression=config.compression, fsync=config.fsync, stream=config.stream
        )
        self.segments: list[SegmentInfo] = []
        self._pending: list[Delivery] = []

    def _subscriber(self) -> BatchSubscriber:
        cfg = self.config
        return BatchSubscriber(
            self._nc,
            SubscriberConfig(
                durable=cfg.durable,
                stream=cfg.stream,
                subject=cfg.batch_subject,
                # Batches stay unacknowledged until their segment is on disk.
                ack_wait_s=cfg.max_segment_age_s * 2 + 30,
                max_ack_pending=100_000,
            ),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Archive until ``stop`` is set; then finish the open segment."""
        await self._announce()
        async with self._subscriber() as sub:
            info = await self._nc.jetstream().stream_info(self.config.stream)
            self.writer.stream_created = created_text(info.created)
            deliveries = sub.deliveries()
            next_one: asyncio.Task[Delivery] | None = None
            try:
                while not stop.is_set():
                    next_one = next_one or asyncio.ensure_future(_next(deliveries))
                    done = await self._wait(next_one, stop)
                    if done:
                        await self._take(next_one.result())
                        next_one = None
                    elif self._segment_expired():
                        await self._finish()
            finally:
                if next_one is not None:
                    next_one.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await next_one
                await self._finish()

    async def _wait(self, next_one: asyncio.Task[Delivery], stop: asyncio.Event) -> bool:
        """Wait for a delivery, ``stop`` or the open segment's deadline; True if a delivery came."""
        opened = self.writer.opened_at()
        timeout = None if opened is None else max(0.0, opened + self.config.max_segment_age_s - self._clock())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({next_one, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        return next_one.done()

    def _segment_expired(self) -> bool:
        opened = self.writer.opened_at()
        return opened is not None and self._clock() - opened >= self.config.max_segment_age_s

    async def _take(self, delivery: Delivery) -> None:
        now = self._clock()
        self.writer.write_batch(delivery.batch.entries, now, seq=delivery.stream_sequence)
        self._pending.append(delivery)
        if self.writer.size >= self.config.max_segment_bytes or self._segment_expired():
            await self._finish()

    async def _finish(self) -> None:
        """Close the segment, then (only then) ack its batches and announce it."""
        info = self.writer.finish()
        pending, self._pending = self._pending, []
        for delivery in pending:
            await delivery.ack()
        if info is None:
            return
        self.segments.append(info)
        headers, body = encode_structured(
            make_attributes(LogArchived.EVENT_TYPE, "//log-gateway/archive"), archived_event_data(info)
        )
        await self._nc.publish(self.config.archived_subject, body, headers=headers)
        await self._nc.flush()
        log.info("archived %d entries to %s (%d bytes)", info.entry_count, info.path, info.compressed_size)

    async def _announce(self) -> None:
        headers, body = stream_started(
            started_by=f"archive:{self.config.durable}",
            destination="file",
            fmt="json",
            filters={"dir": str(self.config.directory), "compression": str(self.config.compression)},
        )
        await self._nc.publish(self.config.stream_started_subject, body, headers=headers)


async def _next(deliveries: AsyncIterator[Delivery]) -> Delivery:
    return await anext(deliveries)
