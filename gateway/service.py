"""The gateway: per-entry messages in, logBatchCreated batches out, nothing lost silently.

Ingest subscribes with nats-py directly on the FastStream broker's connection,
because ingest is the hot path: measured on this project's 2-core machine with
40k ~400-byte messages, a FastStream 0.7 subscriber (apply_types off, no
logger) handled about 22k msg/s where a raw nats-py callback handled about
80k msg/s of the same messages. It skips nats-py's per-message work (see ``gateway.ingest.fastpath``).
Publishing batches goes through nats-py's JetStream API too, for its error
types (retry classification) and ack handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError
from nats.js.client import JetStreamContext

from contracts.errors import DecodeError, GatewayError, RejectReason
from contracts.timestamps import now_timestamp
from gateway.alerts import AlertPublisher
from gateway.config import DurableIngest, GatewayConfig
from gateway.core import (
    Accumulator,
    Admission,
    BatchEncoder,
    BatchLimits,
    DropReason,
    EncodedBatch,
    LatencyHistogram,
    PendingEntry,
    SealedBatch,
    Stats,
)
from gateway.core.accumulator import ACCEPTED, BLOCKED, DROPPED, OVERSIZE
from gateway.core.announce import stream_started
from gateway.core.redact import Redactor
from gateway.core.stats import BATCH_BYTES_BUCKETS, BATCH_ENTRIES_BUCKETS
from gateway.ingest.decode import EntryDecoder, rejected_message
from gateway.ingest.durable_intake import DurableReader, Settle, ensure_ingest, settle
from gateway.ingest.fastpath import Headers, subscribe_fast
from gateway.logs import RateLimitedLog
from gateway.spool.replay import Spooler, open_spool
from gateway.spool.store import SpoolRecord
from publishers import (
    JetStreamPublisher,
    PermissionWatch,
    PublishError,
    PublishFailedError,
    TokenBucket,
    ensure_stream,
)

__all__ = ["ConfigError", "Gateway", "ShutdownReport"]

log = logging.getLogger("log_gateway")
# A rejected message is forwarded for diagnosis; 64 KiB of it is plenty and
# keeps a flood of garbage from costing the bus more than the garbage itself.
MAX_REJECTED_BYTES = 64 * 1024


class ConfigError(GatewayError, ValueError):
    """A setting conflicts with what the connected server allows."""


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
        self.latency = LatencyHistogram()
        self.batch_entries = LatencyHistogram(buckets=BATCH_ENTRIES_BUCKETS)
        self.batch_bytes = LatencyHistogram(buckets=BATCH_BYTES_BUCKETS)
        self.watch = PermissionWatch(clock)
        self._warn = RateLimitedLog(log)
        self.alerts: AlertPublisher | None = None
        self.redactor = Redactor(keys=config.redact_keys) if config.redact else None
        self.ready = False
        self._stopping = False
        self._stopped: asyncio.Future[ShutdownReport] | None = None
        self._subs: list[Subscription] = []
        self._readers: list[asyncio.Task[None]] = []
        self._durable: DurableReader | None = None
        self.spooler: Spooler | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._tasks: dict[asyncio.Task[None], None] = {}  # in the order batches were made
        self._turn: asyncio.Future[None] | None = None  # resolved once the newest batch is settled
        self._sender: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._sequence = 0

    # -- start ---------------------------------------------------------------

    async def start(self, nc: Client, *, ingest_nc: Client | None = None) -> None:
        """Check limits against the server, ensure the stream, start sending, announce, subscribe.

        Core ingest subscribes on ``ingest_nc`` (when given) and everything else uses
        ``nc``; feed both connections' errors to :meth:`on_error`.

        Raises:
            ConfigError: the stream's duplicate window is too short for the retry deadline.
        """
        self._nc = nc
        self._ingest_nc = ingest_nc or nc
        limits = self._fit_to_server(nc.max_payload)
        self._encoder = BatchEncoder(
            gateway_id=self.config.gateway_id,
            ce_source=f"//log-gateway/{self.config.gateway_id}",
            max_entries=limits.max_entries,
        )
        self.acc = Accumulator(limits, self.config.buffer, self._encoder.overhead_for, self.stats)
        js = nc.jetstream()
        await self._ensure_stream(js)
        self._publisher = JetStreamPublisher(js, self.config.publish, self.watch, self._count_retry)
        self._start_spool()
        self._start_alerts()
        self._decoder = EntryDecoder(
            max_batch_bytes=limits.max_bytes,
            clock=self._clock,
            on_error_entry=self.alerts.observe if self.alerts else None,
            redactor=self.redactor,
        )
        self._start_sender()
        await self._announce(limits)
        if self.config.durable_ingest is None:
            await self._subscribe(self._ingest_nc)
        else:
            await self._subscribe_durable(js, self.config.durable_ingest)
        self.ready = True

    def _start_spool(self) -> None:
        spool = self.config.spool
        if spool is None:
            return
        self.spooler = Spooler(
            open_spool(spool), spool, self._replay, self.stats, self.config.buffer.overflow
        )
        if self.spooler.backlog:
            log.info("spool holds %d entries from before; replaying them first", self.spooler.spool.entries)
        self._replayer = asyncio.create_task(self.spooler.run(), name="log-gateway-replay")

    def _start_alerts(self) -> None:
        if self.config.alerts.enabled:
            self.alerts = AlertPublisher(
                self.config.alerts,
                self._publisher,
                subject=self.config.subjects.alerts,
                gateway_id=self.config.gateway_id,
                clock=self._clock,
            )

    def _start_sender(self) -> None:
        now = self._clock()
        throttle = self.config.throttle
        rate = throttle.max_publish_rate
        self._batch_bucket = TokenBucket(rate, burst=max(1.0, rate or 0.0), now=now)
        self._bytes_bucket = TokenBucket(throttle.max_publish_bytes_rate, now=now)
        self._slots = asyncio.Semaphore(throttle.max_in_flight)
        self._sender = asyncio.create_task(self._send_loop(), name="log-gateway-sender")

    async def _announce(self, limits: BatchLimits) -> None:
        subjects = self.config.subjects
        headers, body = stream_started(
            stream_id=self.config.gateway_id,
            started_by=self.config.gateway_id,
            destination="external",
            fmt="json",
            filters={
                "input": [subjects.entry, subjects.entry_children],
                "output": subjects.batch,
                "perSource": limits.per_source,
            },
        )
        try:
            await self._publisher.publish(subjects.stream_started, body, headers, deadline_s=10.0)
        except PublishError as exc:
            log.warning("could not announce the batch stream: %s", exc)

    def _fit_to_server(self, max_payload: int) -> BatchLimits:
        limits = self.config.batch.within(max_payload)
        if limits is not self.config.batch:
            log.warning(
                "max_batch_bytes %d exceeds the server's max_payload %d; using it",
                self.config.batch.max_bytes,
                max_payload,
            )
        return limits

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        spec = self.config.stream
        if not spec.subjects:
            spec = dataclasses.replace(spec, subjects=self.config.subjects.outputs)
        info = await ensure_stream(js, spec)
        window = info.config.duplicate_window or 0.0
        worst = self.config.publish.retry_deadline_s + self.config.publish.timeout_s
        if window and worst >= window:
            raise ConfigError(
                f"stream {spec.name} has a duplicate window of {window:g}s, shorter than the retry "
                f"deadline plus one publish timeout ({worst:g}s): lower publish_retry_deadline_s"
            )

    async def _subscribe(self, nc: Client) -> None:
        for subject in (self.config.subjects.entry, self.config.subjects.entry_children):
            sub, reader = await subscribe_fast(
                nc,
                subject,
                queue=self.config.queue_group,
                handler=self._on_msg,
                pending_msgs_limit=self.config.pending_msgs_limit,
                pending_bytes_limit=self.config.pending_bytes_limit,
            )
            self._subs.append(sub)
            if reader is not None:
                self._readers.append(reader)
        await nc.flush()

    async def _subscribe_durable(self, js: JetStreamContext, spec: DurableIngest) -> None:
        subjects = self.config.subjects
        psub = await ensure_ingest(js, spec, (subjects.entry, subjects.entry_children))
        self._durable = DurableReader(psub, spec, self._on_durable, self._entry_room, self._wait_room)
        self._readers.append(asyncio.create_task(self._durable.run(), name="intake:durable"))

    def _entry_room(self) -> int:
        # The ingest stream is the buffer: hold only what keeps every publish slot busy twice
        # over, so no entry waits here (under a throttle) until its ack_wait runs out.
        enough = 2 * self.config.throttle.max_in_flight * self.acc.limits.max_entries
        return min(self.config.buffer.max_entries, enough) - self.acc.held_entries

    async def _wait_room(self) -> None:
        self._room.clear()
        if self._entry_room() <= 0:
            await self._room.wait()

    def on_error(self, exc: BaseException) -> None:
        """Feed the connection's ``error_cb`` here: permission denials and slow-consumer drops."""
        if self.watch.on_error(exc):
            self._warn.warning("denied", "the server denied a publish: %s", exc)
        elif isinstance(exc, SlowConsumerError) and exc.sub in self._subs:
            # nats-py dropped a message before we saw it: it was received all the same.
            self.stats.received += 1
            self.stats.drop(DropReason.SLOW_CONSUMER)
            self._warn.warning("slow", "ingest fell behind; nats-py dropped messages (slow consumer)")
        else:
            self._warn.warning("nats", "NATS connection problem: %r", exc)

    # -- ingest --------------------------------------------------------------

    def _on_msg(self, subject: bytes, headers: Headers, body: bytes) -> Awaitable[None] | None:
        """Take one message; synchronous unless it must wait (block policy) or be forwarded.

        ``headers`` is the raw NATS header block on the fast path (see ``gateway.ingest.fastpath``).
        """
        self.stats.received += 1
        try:
            entry = self._decoder.decode(headers, body)
        except DecodeError as exc:
            return self._reject(subject, headers, body, exc.reason, exc.detail)
        except Exception:  # noqa: BLE001 - a bug on one message must neither stop ingest nor go uncounted
            self._ingest_failed(subject)
            return None
        admission = self._admit(entry)
        if admission is ACCEPTED or admission is DROPPED:
            return None
        if admission is BLOCKED:
            return self._offer_blocking(entry)
        return self._reject(subject, headers, body, RejectReason.OVERSIZE, _oversize(entry))

    def _ingest_failed(self, subject: bytes) -> None:
        self.stats.drop(DropReason.INGEST_FAILED)
        text = subject.decode(errors="replace")
        self._warn.warning(
            "ingest-failed", "failed on a message on %s (counted as dropped)", text, exc_info=True
        )

    def _on_durable(self, msg: Msg) -> Awaitable[object] | None:
        """Take one message fetched from the ingest stream; settled once its batch is stored."""
        self.stats.received += 1
        if msg.metadata.num_delivered > 1:
            self.stats.redelivered += 1
        try:
            entry = self._decoder.decode(msg.headers, msg.data)
        except DecodeError as exc:
            return self._terminate(msg, exc.reason, exc.detail)
        except Exception:  # noqa: BLE001 - as on core ingest; a redelivery would fail again
            self._ingest_failed(msg.subject.encode())
            return settle([msg], Settle.TERM)
        entry.handle = msg
        admission = self._admit(entry)
        if admission is BLOCKED:
            return self._offer_blocking(entry)
        if admission is OVERSIZE:
            return self._terminate(msg, RejectReason.OVERSIZE, _oversize(entry))
        return None

    def _admit(self, entry: PendingEntry) -> Admission:
        was_idle = self.acc.is_empty
        admission = self.acc.offer(entry)
        if admission is ACCEPTED:
            if was_idle or self.acc.has_waiting:
                self._wake.set()
        elif admission is DROPPED:
            self._warn.warning("overflow", "buffer full: dropped the newest entry")
        return admission

    async def _offer_blocking(self, entry: PendingEntry) -> None:
        """Policy ``block``: hold this callback (and so intake) until there is room."""
        while True:
            self._room.clear()
            admission = self.acc.offer(entry)
            if admission is not Admission.BLOCKED:
                self._wake.set()
                return
            self._wake.set()
            await self._room.wait()

    async def _reject(self, subject: bytes, headers: Headers, body: bytes, reason: str, detail: str) -> None:
        self.stats.reject(reason)
        text = subject.decode(errors="replace")
        self._warn.warning("reject:" + reason, "rejected a message on %s: %s: %s", text, reason, detail)
        out_headers, out_body = rejected_message(
            reason=reason,
            detail=detail,
            subject=text,
            headers=headers,
            body=body,
            gateway_id=self.config.gateway_id,
            max_bytes=min(self._nc.max_payload, MAX_REJECTED_BYTES),
        )
        try:
            await self._nc.publish(self.config.subjects.rejected, out_body, headers=out_headers)
        except Exception as exc:  # noqa: BLE001 - counted above; forwarding is best effort
            self._warn.warning("reject-forward", "could not forward a rejected message: %r", exc)

    async def _terminate(self, msg: Msg, reason: str, detail: str) -> None:
        """Reject a message from the ingest stream for good: a redelivery would be rejected again."""
        await self._reject(msg.subject.encode(), msg.headers, msg.data, reason, detail)
        await settle([msg], Settle.TERM)

    # -- send ----------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            await self._until_due()
            await self._slots.acquire()
            await self._until_rate_allows()
            batch = self.acc.take(self._clock())
            if batch is None:
                self._slots.release()
                continue
            encoded = self._encode(batch)
            after, self._turn = self._turn, asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._publish(batch, encoded, after, self._turn))
            self._tasks[task] = None
            task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def _until_due(self) -> None:
        while True:
            self._wake.clear()
            due = self.acc.next_due()
            now = self._clock()
            if due is not None and due <= now:
                return
            timeout = None if due is None else due - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _until_rate_allows(self) -> None:
        # While waiting here the open batch keeps filling: fewer, fuller batches.
        while not self._stopping:
            now = self._clock()
            wait = max(self._batch_bucket.wait_s(now, 1.0), self._bytes_bucket.wait_s(now))
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def _encode(self, batch: SealedBatch) -> EncodedBatch:
        self._sequence += 1
        encoded = self._encoder.encode(
            batch, sequence=self._sequence, dropped=self.stats.take_unreported(), now=now_timestamp()
        )
        now = self._clock()
        self._batch_bucket.spend(now, 1.0)
        self._bytes_bucket.spend(now, encoded.size)
        return encoded

    async def _publish(
        self,
        batch: SealedBatch,
        encoded: EncodedBatch,
        after: asyncio.Future[None] | None,
        settled: asyncio.Future[None],
    ) -> None:
        """Publish one batch; spool it (after the batch before it is settled, so the spool keeps
        the order batches were made in) when the bus does not take it before its deadline."""
        spooler = self.spooler
        try:
            if spooler is not None and spooler.backlog:
                await self._spool(spooler, encoded, after)  # queue behind what is spooled
                return
            await self._publisher.publish(self.config.subjects.batch, encoded.body, encoded.headers)
        except PublishError as exc:
            self._warn.warning("publish", "batch %s not published: %s", encoded.batch_id, exc)
            if spooler is not None and isinstance(exc, PublishFailedError) and exc.transient:
                await self._spool(spooler, encoded, after)
            else:
                await self._lost(batch, encoded, exc.reason)
        except asyncio.CancelledError:
            if spooler is None or not spooler.put_nowait(self._record(spooler, encoded)):
                await self._lost(batch, encoded, DropReason.SHUTDOWN)
            raise
        else:
            self._published(batch, encoded)
            if self._durable is not None:
                await settle([e.handle for e in batch.entries], Settle.ACK)
        finally:
            if not settled.done():
                settled.set_result(None)
            self.acc.release(batch)
            self._slots.release()
            self._room.set()
            if self.acc.held_entries == 0:
                self._idle.set()

    def _record(self, spooler: Spooler, encoded: EncodedBatch) -> SpoolRecord:
        return spooler.record(self.config.subjects.batch, encoded.headers, encoded.body, encoded.count)

    async def _spool(
        self, spooler: Spooler, encoded: EncodedBatch, after: asyncio.Future[None] | None
    ) -> None:
        """Keep a batch the bus would not take on disk; replayed later with its Nats-Msg-Id."""
        if after is not None:
            await asyncio.wait([after])  # (not cancelling it if this task is cancelled)
        if not await spooler.put(self._record(spooler, encoded)):
            self.stats.restore_unreported(encoded.dropped)  # its drop report goes in a later batch

    async def _replay(self, record: SpoolRecord) -> None:
        await self._publisher.publish(
            record.subject, record.body, record.headers, deadline_s=self.config.publish.timeout_s
        )

    async def _lost(self, batch: SealedBatch, encoded: EncodedBatch, reason: str) -> None:
        self.stats.restore_unreported(encoded.dropped)
        if self._durable is None:
            self.stats.drop(reason, encoded.count)
            return
        # The ingest stream still holds them: hand them back for another try.
        self.stats.returned += encoded.count
        await settle([e.handle for e in batch.entries], Settle.NAK)

    def _published(self, batch: SealedBatch, encoded: EncodedBatch) -> None:
        self.stats.published += encoded.count
        self.stats.batches += 1
        self.batch_entries.observe(encoded.count)
        self.batch_bytes.observe(encoded.size)
        self.latency.observe_batch([e.received_at for e in batch.entries], self._clock())

    def _count_retry(self, exc: BaseException) -> None:
        self.stats.retries += 1
        self._warn.warning("retry", "retrying a batch publish after %r", exc)

    # -- stop ----------------------------------------------------------------

    async def stop(self, timeout_s: float | None = None) -> ShutdownReport:
        """Stop intake, publish everything held, wait for the acks; safe to call twice.

        Returns:
            How many entries could not be published (counted as dropped, reason
            ``shutdown``) and whether the deadline was hit.
        """
        if self._stopped is not None:
            return await asyncio.shield(self._stopped)
        self._stopped = asyncio.get_running_loop().create_future()
        deadline = self._clock() + (timeout_s or self.config.shutdown_timeout_s)
        self.ready = False
        await self._stop_intake(deadline)
        report = await self._flush(deadline)
        await self._close_spool()
        if self.alerts is not None:
            await self.alerts.close(deadline - self._clock())
        self._stopped.set_result(report)
        return report

    async def _stop_intake(self, deadline: float) -> None:
        if self._durable is not None:
            # Let the fetch in progress finish: what it brings is batched, not left unacknowledged.
            self._durable.stop()
            self._room.set()
            await asyncio.wait(self._readers, timeout=max(0.01, deadline - self._clock()))
        for sub in self._subs if self._ingest_nc.is_connected else ():  # draining needs the server
            with contextlib.suppress(Exception):
                # nats-py leaves Subscription.drain unannotated.
                await asyncio.wait_for(sub.drain(), max(0.01, deadline - self._clock()))  # type: ignore[no-untyped-call]
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        if self._durable is not None:
            await self._durable.close()

    async def _flush(self, deadline: float) -> ShutdownReport:
        if self._sender is None:
            return ShutdownReport(0, timed_out=False)
        self._stopping = True
        self.acc.seal_all()
        self._wake.set()
        self._room.set()
        timed_out = False
        if self.acc.held_entries:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - self._clock()))
            except TimeoutError:
                timed_out = True
        unpublished = await self._abandon()
        spooled = self.spooler.spool.entries if self.spooler is not None else 0
        if spooled:
            log.warning("shutdown: %d entries wait in the spool, to be replayed at the next start", spooled)
        if unpublished:
            fate = "counted as dropped" if self._durable is None else "handed back to the ingest stream"
            log.error("shutdown: %d entries could not be published (%s)", unpublished, fate)
        elif not spooled:
            log.info("shutdown: every buffered entry was published")
        return ShutdownReport(unpublished, timed_out, spooled)

    def _unsettled(self) -> int:
        """Entries not published that shutdown can add to: dropped, could not be spooled, handed back."""
        dropped = self.stats.dropped
        lost = (
            dropped[DropReason.SHUTDOWN] + dropped[DropReason.SPOOL_FULL] + dropped[DropReason.SPOOL_FAILED]
        )
        return lost + self.stats.returned

    async def _abandon(self) -> int:
        """Cancel the sender and unfinished publishes; spool, hand back or drop (counted) what they held."""
        before = self._unsettled()
        tasks = [*self._tasks]
        if self._sender is not None:
            self._sender.cancel()
            tasks.append(self._sender)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.spooler is not None:
            self._spool_queued(self.spooler)
        queued = self.acc.clear()
        if self._durable is None:
            self.stats.drop(DropReason.SHUTDOWN, len(queued))
        else:
            self.stats.returned += len(queued)
            await settle([e.handle for e in queued], Settle.NAK)
        return self._unsettled() - before

    def _spool_queued(self, spooler: Spooler) -> None:
        """Shutdown ran out of time: batches not yet sent go to the spool, for the next start."""
        while (batch := self.acc.take(math.inf)) is not None:
            spooler.put_nowait(self._record(spooler, self._encode(batch)))
            self.acc.release(batch)

    async def _close_spool(self) -> None:
        if self._replayer is not None:
            self._replayer.cancel()
            await asyncio.gather(self._replayer, return_exceptions=True)
        if self.spooler is not None:
            self.spooler.close()


def _oversize(entry: PendingEntry) -> str:
    return f"entry of {len(entry.data)} bytes fits no batch"
