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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum

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
from gateway.ingest.admission import Gate
from gateway.ingest.bursts import Handler
from gateway.ingest.decode import EntryDecoder
from gateway.ingest.reject import Rejects, oversize
from gateway.tasks import Spawn

__all__ = ["DurableIntake", "DurableReader", "Settle", "ensure_ingest", "settle"]

log = logging.getLogger("log_gateway")


async def ensure_ingest(
    js: JetStreamContext, spec: DurableIngest, subjects: Iterable[str]
) -> JetStreamContext.PullSubscription:
    """Create the work-queue stream and the durable consumer if missing; bind a pull subscription."""
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
    return await js.pull_subscribe_bind(spec.durable, spec.stream)


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


class Settle(StrEnum):
    """What to tell JetStream about an entry's message."""

    ACK = "ack"  # stored in a batch (or spooled): done
    NAK = "nak"  # not stored: redeliver it
    TERM = "term"  # rejected: never redeliver


async def settle(handles: Iterable[object], how: Settle) -> int:
    """Tell JetStream what became of entries' messages (handles that are not messages are skipped).

    Returns:
        How many could not be settled (the connection is gone): those are
        redelivered once ``ack_wait_s`` passes.
    """
    failed = 0
    for msg in handles:
        if not isinstance(msg, Msg):
            continue
        try:
            await getattr(msg, how.value)()
        except Exception:  # noqa: BLE001 - redelivery covers it; the caller counts it
            failed += 1
    return failed


class DurableIntake:
    """Durable ingest: entries fetched from the work-queue stream, held unacknowledged until
    their batch is stored (the fate acks them), rejected ones terminated.

    Args:
        js: the JetStream context of the main connection.
        spec: the ingest stream and consumer.
        subjects: the entry subjects the stream captures.
        decoder, gate, rejects, stats: as for core ingest.
        room: how many more entries to fetch now.
        spawn: starts the reader, watched (a reader that dies takes health down).
    """

    def __init__(
        self,
        js: JetStreamContext,
        spec: DurableIngest,
        subjects: tuple[str, ...],
        *,
        decoder: EntryDecoder,
        gate: Gate,
        rejects: Rejects,
        stats: Stats,
        room: Callable[[], int],
        spawn: Spawn,
    ) -> None:
        self._js = js
        self._spawn = spawn
        self._spec = spec
        self._subjects = subjects
        self.decoder = decoder
        self._gate = gate
        self._rejects = rejects
        self._stats = stats
        self._room = room
        self._reader: DurableReader | None = None
        self._task: asyncio.Task[None] | None = None
        self.subscriptions: list[Subscription] = []  # nats-py's pending limits do not apply here

    async def start(self) -> None:
        """Make sure the stream and consumer exist, then fetch as room allows."""
        psub = await ensure_ingest(self._js, self._spec, self._subjects)
        self._reader = DurableReader(psub, self._spec, self.on_message, self._room, self._wait_room)
        self._task = self._spawn(self._read(self._reader), name="intake:durable")

    @staticmethod
    async def _read(reader: DurableReader) -> None:
        """The reader, watched: it returns only once :meth:`stop` asked, and then ends as a
        cancelled task, so the watch counts only a reader that died as a failure."""
        await reader.run()
        raise asyncio.CancelledError

    async def _wait_room(self) -> None:
        await self._gate.wait_room(self._room)

    def on_message(self, msg: Msg) -> Awaitable[object] | None:
        """Take one message fetched from the ingest stream; settled once its batch is stored."""
        self._stats.received += 1
        if msg.metadata.num_delivered > 1:
            self._stats.redelivered += 1
        try:
            entry = self.decoder.decode(msg.headers, msg.data)
        except DecodeError as exc:
            return self._terminate(msg, exc.reason, exc.detail)
        except Exception:  # noqa: BLE001 - as on core ingest; a redelivery would fail again
            self._rejects.failed(msg.subject.encode())
            return settle([msg], Settle.TERM)
        entry.handle = msg
        admission = self._gate.admit(entry)
        if admission is BLOCKED:
            return self._admit_blocked(msg, entry)
        if admission is OVERSIZE:
            return self._terminate(msg, RejectReason.OVERSIZE, oversize(len(entry.data)))
        return None

    async def _admit_blocked(self, msg: Msg, entry: PendingEntry) -> None:
        """Wait for room; an entry a live change made too big while it waited is terminated, not
        left unacknowledged until redelivery."""
        if await self._gate.admit_blocking(entry) is OVERSIZE:
            await self._terminate(msg, RejectReason.OVERSIZE, oversize(len(entry.data)))

    async def _terminate(self, msg: Msg, reason: str, detail: str) -> None:
        """Reject a message from the ingest stream for good: a redelivery would be rejected again."""
        await self._rejects.reject(msg.subject.encode(), msg.headers, msg.data, reason, detail)
        await settle([msg], Settle.TERM)

    async def stop(self, deadline_s: float) -> None:
        """Let the fetch in progress finish (what it brings is batched, not left unacknowledged)."""
        if self._reader is None or self._task is None:
            return
        self._reader.stop()
        self._gate.freed()
        await asyncio.wait([self._task], timeout=max(0.01, deadline_s))
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._reader.close()
