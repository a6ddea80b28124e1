"""Durable ingest: per-entry subjects captured by a work-queue stream, read by a durable pull consumer.

With ``--ingest jetstream`` services keep publishing entries on the same
subjects; a JetStream stream with work-queue retention stores them, and every
gateway fetches from one shared durable consumer (several processes share the
work). An entry's message is acknowledged only after the batch holding it is
acknowledged by the output stream (or written to the spool), so a gateway
killed with SIGKILL loses nothing: what it held is redelivered to the next
fetcher once ``ack_wait_s`` passes.

Redelivery can put an entry in a second batch: when a gateway dies after its
batch was stored but before its acks reached the server, or when a batch takes
longer than ``ack_wait_s``. Such duplicates are bounded by ``max_ack_pending``
per failure, keep their ``logId``, and :class:`gateway.consumers.subscribe.BatchSubscriber`
drops them by ``logId``. Redelivered messages are counted.

Where nats-py has the shape the ingest fast path knows, the consumer is read by
:class:`gateway.ingest.pull.PullReader` (requests issued by hand, frames straight from the
read loop, a batch's acks written at once by :class:`gateway.ingest.acks.Acks`); elsewhere by
:class:`DurableReader`, on nats-py's ``fetch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.errors import DecodeError, RejectReason
from gateway.config import DurableIngest
from gateway.core.accumulator import BLOCKED, OVERSIZE
from gateway.core.entry import PendingEntry
from gateway.core.stats import Stats
from gateway.ingest.acks import Acks, Settle, settle
from gateway.ingest.admission import Gate
from gateway.ingest.bursts import Handler
from gateway.ingest.decode import EntryDecoder
from gateway.ingest.fastpath import Headers, fast_path_supported
from gateway.ingest.jsmeta import delivered_count, first_delivery_prefix, is_first_delivery
from gateway.ingest.pull import PullReader
from gateway.ingest.reject import Rejects, oversize
from gateway.ingest.wire import Frame
from gateway.logs import RateLimitedLog
from gateway.tasks import Spawn

__all__ = ["DurableIntake", "DurableReader", "Settle", "ensure_consumer", "ensure_ingest", "settle"]

log = logging.getLogger("log_gateway")


async def ensure_ingest(
    js: JetStreamContext, spec: DurableIngest, subjects: Iterable[str]
) -> JetStreamContext.PullSubscription:
    """Create the work-queue stream and the durable consumer if missing; bind a pull subscription."""
    await ensure_consumer(js, spec, subjects)
    return await js.pull_subscribe_bind(spec.durable, spec.stream)


async def ensure_consumer(js: JetStreamContext, spec: DurableIngest, subjects: Iterable[str]) -> None:
    """Create the work-queue stream and the durable consumer if missing (the same consumer
    again is no change)."""
    try:
        await js.stream_info(spec.stream)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=spec.stream,
                subjects=list(subjects),
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                max_age=spec.max_age_s,
                num_replicas=spec.replicas,
            )
        )
    await js.add_consumer(
        spec.stream,
        ConsumerConfig(
            name=spec.durable,
            durable_name=spec.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=spec.ack_wait_s,
            max_ack_pending=spec.max_ack_pending,
            max_deliver=-1,
        ),
    )


class DurableReader:
    """Fetches from the durable consumer only as many entries as the buffer has room for.

    Args:
        psub: the bound pull subscription.
        spec: fetch sizes and timeouts.
        handler: takes one message (as core ingest does).
        room: how many more entries the buffer takes now.
        wait_room: returns once the buffer may have room again.
    """

    def __init__(
        self,
        psub: JetStreamContext.PullSubscription,
        spec: DurableIngest,
        handler: Handler,
        room: Callable[[], int],
        wait_room: Callable[[], Awaitable[None]],
    ) -> None:
        self._psub = psub
        self._spec = spec
        self._handler = handler
        self._room = room
        self._wait_room = wait_room
        self._stopping = False

    async def run(self) -> None:
        """Fetch and hand over until :meth:`stop`; a fetch in progress is finished, not abandoned."""
        while not self._stopping:
            want = min(self._room(), self._spec.fetch_batch)
            if want <= 0:
                await self._wait_room()
                continue
            for msg in await self._fetch(want):
                pending = self._handler(msg)
                if pending is not None:
                    await pending

    async def _fetch(self, want: int) -> list[Msg]:
        try:
            return await self._psub.fetch(want, timeout=self._spec.fetch_timeout_s)
        except TimeoutError:
            return []
        except NatsError as exc:
            # Reconnecting, or the consumer is being moved: try again shortly.
            log.warning("fetching from the ingest consumer failed: %r", exc)
            await asyncio.sleep(min(1.0, self._spec.fetch_timeout_s))
            return []

    def stop(self) -> None:
        """Fetch no more; the current fetch ends within ``fetch_timeout_s``."""
        self._stopping = True

    async def close(self) -> None:
        """Unsubscribe; unacknowledged messages go back to the consumer after ``ack_wait_s``."""
        with contextlib.suppress(Exception):
            await self._psub.unsubscribe()


class DurableIntake:
    """Durable ingest: entries fetched from the work-queue stream, held unacknowledged until
    their batch is stored (the fate acks them), rejected ones terminated.

    Args:
        nc: the connection the consumer is read on (the main one).
        js: its JetStream context.
        spec: the ingest stream and consumer.
        subjects: the entry subjects the stream captures.
        decoder, gate, rejects, stats: as for core ingest.
        acks: settles messages (rejected ones here; the fate settles the rest).
        room: how many more entries to fetch now.
        spawn: starts the reader, watched (a reader that dies takes health down).
    """

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        spec: DurableIngest,
        subjects: tuple[str, ...],
        *,
        decoder: EntryDecoder,
        gate: Gate,
        rejects: Rejects,
        stats: Stats,
        acks: Acks,
        room: Callable[[], int],
        spawn: Spawn,
    ) -> None:
        self._nc = nc
        self._js = js
        self._spawn = spawn
        self._spec = spec
        self._subjects = subjects
        self.decoder = decoder
        self._gate = gate
        self._rejects = rejects
        self._stats = stats
        self._acks = acks
        self._room = room
        self._warn = RateLimitedLog(log)
        self._reader: DurableReader | PullReader | None = None
        self._first = first_delivery_prefix(spec.stream, spec.durable)
        self._task: asyncio.Task[None] | None = None
        self.subscriptions: list[Subscription] = []  # nats-py's pending limits do not apply here

    async def start(self) -> None:
        """Make sure the stream and consumer exist, then fetch as room allows."""
        if not fast_path_supported(self._nc):
            log.warning("nats-py is not the version the ingest fast path knows; durable ingest fetches")
            psub = await ensure_ingest(self._js, self._spec, self._subjects)
            reader: DurableReader | PullReader = DurableReader(
                psub, self._spec, self.on_message, self._room, self._wait_room
            )
        else:
            await self._ensure()
            reader = PullReader(
                self._nc,
                self._spec,
                self.on_frames,
                room=self._room,
                wait_room=self._gate.wait_room,
                freed=self._gate.freed,
                ensure=self._ensure,
                spawn=self._spawn,
                warn=self._warn,
            )
            await reader.start()
        self._reader = reader
        self._task = self._spawn(self._read(reader), name="intake:durable")

    @property
    def reader(self) -> DurableReader | PullReader | None:
        """What reads the consumer (a :class:`PullReader` where the fast path is supported), once started."""
        return self._reader

    def pull_counts(self) -> dict[str, int]:
        """The pull reader's counters (see :meth:`PullReader.counts`; none on nats-py's fetch) and
        the acks, naks and terms written (``settled_ack``, ...)."""
        reader = self._reader
        counts = reader.counts() if isinstance(reader, PullReader) else {}
        return {**counts, **{f"settled_{how}": n for how, n in sorted(self._acks.sent.items())}}

    async def _ensure(self) -> None:
        await ensure_consumer(self._js, self._spec, self._subjects)

    @staticmethod
    async def _read(reader: DurableReader | PullReader) -> None:
        """The reader, watched: it returns only once :meth:`stop` asked, and then ends as a
        cancelled task, so the watch counts only a reader that died as a failure."""
        await reader.run()
        raise asyncio.CancelledError

    async def _wait_room(self) -> None:
        await self._gate.wait_room(self._room)

    def on_frames(self, messages: list[Frame]) -> tuple[Awaitable[object], int] | None:
        """Take the messages of one read off the pull fast path (each frame's reply: its ack
        subject, its handle), in order; from the first that must wait, the reader queues the
        rest (see :data:`gateway.ingest.pull.FrameHandler`)."""
        first, take = self._first, self._take
        for index, (subject, _, reply, headers, body) in enumerate(messages):
            # (is_first_delivery: the common case, without a split)
            delivered = 1 if is_first_delivery(first, reply) else delivered_count(reply)
            if (pending := take(subject, headers, body, reply, delivered)) is not None:
                return pending, index + 1
        return None

    def on_message(self, msg: Msg) -> Awaitable[object] | None:
        """Take one message fetched by nats-py; settled once its batch is stored."""
        return self._take(msg.subject.encode(), msg.headers, msg.data, msg, msg.metadata.num_delivered)

    def _take(
        self, subject: bytes, headers: Headers, body: bytes, handle: object, delivered: int
    ) -> Awaitable[object] | None:
        self._stats.received += 1
        if delivered > 1:
            self._stats.redelivered += 1
        try:
            entry = self.decoder.decode(headers, body)
        except DecodeError as exc:
            return self._terminate(subject, headers, body, handle, reason=exc.reason, detail=exc.detail)
        except Exception:  # noqa: BLE001 - as on core ingest; a redelivery would fail again
            self._rejects.failed(subject)
            return self._acks.settle([handle], Settle.TERM)
        entry.handle = handle
        admission = self._gate.admit(entry)
        if admission is BLOCKED:
            return self._admit_blocked(subject, headers, body, entry)
        if admission is OVERSIZE:
            detail = oversize(len(entry.data))
            return self._terminate(
                subject, headers, body, handle, reason=RejectReason.OVERSIZE, detail=detail
            )
        return None

    async def _admit_blocked(
        self, subject: bytes, headers: Headers, body: bytes, entry: PendingEntry
    ) -> None:
        """Wait for room; an entry a live change made too big while it waited is terminated, not
        left unacknowledged until redelivery."""
        if await self._gate.admit_blocking(entry) is OVERSIZE:
            detail = oversize(len(entry.data))
            await self._terminate(
                subject, headers, body, entry.handle, reason=RejectReason.OVERSIZE, detail=detail
            )

    async def _terminate(
        self, subject: bytes, headers: Headers, body: bytes, handle: object, *, reason: str, detail: str
    ) -> None:
        """Reject a message from the ingest stream for good: a redelivery would be rejected again."""
        await self._rejects.reject(subject, headers, body, reason, detail)
        await self._acks.settle([handle], Settle.TERM)

    async def stop(self, deadline_s: float) -> None:
        """Let the fetch in progress finish (what it brings is batched, not left unacknowledged)."""
        if self._reader is None or self._task is None:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline_s
        self._reader.stop()
        self._gate.freed()
        await asyncio.wait([self._task], timeout=max(0.01, deadline_s))
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if isinstance(self._reader, PullReader):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reader.handled(), max(0.01, until - loop.time()))
        await self._reader.close()
