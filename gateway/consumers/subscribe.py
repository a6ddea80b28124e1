"""Subscribe to batched log events: typed batches or entries, at least once, no surprises.

A durable JetStream pull consumer by default (or core NATS when asked). A batch
is acknowledged only after the handler returns; a handler error leads to a
redelivery with backoff, and after ``max_deliver`` attempts the batch goes to a
dead-letter subject with the error. A batch seen twice (redelivery, a gateway
retry) is recognised by ``batchId``; an entry seen twice (durable ingest can
put a redelivered entry in a second batch) by being the same in every field, a
non-empty ``logId`` included (:mod:`gateway.consumers.identity`: entries that only
share a ``logId``, an empty one too, all come out), and an entry of a batch
handed over again by its place in it; all within a bounded memory of recent
ones, and none is handed over twice. A gap in a gateway's ``sequence``
and any ``droppedSinceLast`` are reported through callbacks and counters.

Example::

    async with BatchSubscriber(nc, SubscriberConfig(durable="billing")) as sub:
        async for entry in sub.entries():
            print(entry.level, entry.message)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from contracts.cloudevents import decode_contract, encode_structured, make_attributes
from contracts.errors import DecodeError
from contracts.models import LogBatchCreated, LogEntryCreated
from gateway.consumers.identity import entry_key

__all__ = ["BatchSubscriber", "Delivery", "Filters", "SubscriberConfig", "SubscriberStats"]

BatchHandler = Callable[[LogBatchCreated], Awaitable[None]]
EntryHandler = Callable[[LogEntryCreated], Awaitable[None]]
GapCallback = Callable[[str, int, int], None]
DroppedCallback = Callable[[str, int, dict[str, int]], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class Filters:
    """Which entries to hand over: by level and by source (``None`` keeps all)."""

    levels: frozenset[str] | None = None
    sources: frozenset[str] | None = None

    def keep(self, entry: LogEntryCreated) -> bool:
        """Does ``entry`` pass?"""
        return (self.levels is None or entry.level in self.levels) and (
            self.sources is None or entry.source in self.sources
        )

    def apply(self, batch: LogBatchCreated) -> LogBatchCreated | None:
        """``batch`` with only the entries that pass (counts recomputed), or None if none do."""
        if self.levels is None and self.sources is None:
            return batch
        kept = [e for e in batch.entries if self.keep(e)]
        if not kept:
            return None
        if len(kept) == len(batch.entries):
            return batch
        levels: dict[str, int] = {}
        for entry in kept:
            levels[entry.level] = levels.get(entry.level, 0) + 1
        return batch.model_copy(update={"entries": kept, "count": len(kept), "levelCounts": levels})


@dataclass(frozen=True, kw_only=True, slots=True)
class SubscriberConfig:
    """Where to read and how hard to try."""

    durable: str | None = "log-subscriber"
    stream: str = "CORTEX_LOGGING"
    subject: str = LogBatchCreated.EVENT_TYPE
    max_deliver: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    ack_wait_s: float = 30.0
    dead_letter_subject: str = "cortex_logging.batch.dead_letter"
    dedup_capacity: int = 100_000
    fetch_batch: int = 16
    max_ack_pending: int = 1000

    def __post_init__(self) -> None:
        if self.max_deliver < 1:
            raise ValueError(f"max_deliver must be at least 1, got {self.max_deliver}")
        if self.dedup_capacity < 1 or self.fetch_batch < 1:
            raise ValueError("dedup_capacity and fetch_batch must be at least 1")


@dataclass
class SubscriberStats:
    """What the subscriber saw."""

    batches: int = 0
    entries: int = 0
    duplicate_batches: int = 0
    duplicate_entries: int = 0
    redeliveries: int = 0
    handler_errors: int = 0
    dead_lettered: int = 0
    invalid: int = 0
    gaps: int = 0
    missing_batches: int = 0
    dropped_reported: int = 0
    last_sequence: dict[str, int] = field(default_factory=dict)


class _Recent:
    """A bounded set of recently seen ids (or entry keys)."""

    def __init__(self, capacity: int) -> None:
        self._ids: OrderedDict[Hashable, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, key: Hashable) -> bool:
        return key in self._ids

    def add(self, key: Hashable) -> None:
        self._ids[key] = None
        self._ids.move_to_end(key)
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


class BatchSubscriber:
    """Delivers ``cortex_logging.batch.created`` to a handler or an async iterator.

    Args:
        nc: a connected nats-py client.
        config: consumer settings (``durable=None`` for core NATS, no acks).
        filters: which entries to hand over.
        on_gap: called with ``(gateway_id, first_missing, last_missing)`` sequences.
        on_dropped: called with ``(gateway_id, count, by_reason)`` when a batch reports drops.
    """

    def __init__(
        self,
        nc: Client,
        config: SubscriberConfig | None = None,
        *,
        filters: Filters | None = None,
        on_gap: GapCallback | None = None,
        on_dropped: DroppedCallback | None = None,
    ) -> None:
        self._nc = nc
        self.config = config or SubscriberConfig()
        self.filters = filters or Filters()
        self._on_gap = on_gap
        self._on_dropped = on_dropped
        self.stats = SubscriberStats()
        self._seen_batches = _Recent(self.config.dedup_capacity)
        self._seen_entries = _Recent(self.config.dedup_capacity)
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._space = asyncio.Event()
        self._closing = False
        self._sub: Subscription | None = None
        self._fetcher: asyncio.Task[None] | None = None
        self._pull: JetStreamContext.PullSubscription | None = None
        self._pending: Msg | None = None

    async def start(self) -> None:
        """Bind the durable consumer (creating it if needed) or subscribe on core NATS."""
        if self.config.durable is None:
            self._sub = await self._nc.subscribe(self.config.subject, cb=self._queue.put)
            return
        consumer = ConsumerConfig(
            durable_name=self.config.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.config.ack_wait_s,
            max_ack_pending=max(self.config.max_ack_pending, self.config.fetch_batch),
            filter_subject=self.config.subject,
        )
        pull = await self._nc.jetstream().pull_subscribe(
            self.config.subject, durable=self.config.durable, stream=self.config.stream, config=consumer
        )
        self._pull = pull
        self._fetcher = asyncio.create_task(self._fetch_loop(pull))

    async def _fetch_loop(self, pull: JetStreamContext.PullSubscription) -> None:
        # Fetch only what the queue has room for, and never cancel a fetch midway:
        # a cancelled fetch would leave its messages to wait out the ack timeout.
        fetch = pull.fetch
        while not self._closing:
            room = self.config.fetch_batch - self._queue.qsize()
            if room <= 0:
                self._space.clear()
                await self._space.wait()
                continue
            try:
                msgs: list[Msg] = await fetch(room, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            for msg in msgs:
                self._queue.put_nowait(msg)

    async def stop(self) -> None:
        """Stop reading; a batch handed over but not finished is released for redelivery."""
        if self._fetcher is not None:
            self._closing = True
            self._space.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._fetcher, 5.0)  # a fetch in flight ends within its 1 s
            self._fetcher = None
        if self._pull is not None:
            # A pull request may still deliver after the last fetch returned; nobody would
            # read those messages, and draining the connection would wait for them in vain.
            # Unsubscribed, they go back to the consumer after ack_wait_s.
            with contextlib.suppress(Exception):
                await self._pull.unsubscribe()
            self._pull = None
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        if self._pending is not None:
            await self._settle(self._pending, ok=False, error="subscriber stopped")
            self._pending = None
        while not self._queue.empty():
            await self._release(self._queue.get_nowait())

    async def __aenter__(self) -> BatchSubscriber:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the two ways to receive ---------------------------------------------

    async def run(self, handler: BatchHandler) -> None:
        """Hand every new batch to ``handler`` until cancelled; ack after it returns."""
        await self._run(handler, count_entries=True)

    async def _run(self, handler: BatchHandler, *, count_entries: bool) -> None:
        while True:
            msg, batch = await self._next()
            try:
                await handler(batch)
            except Exception as exc:  # noqa: BLE001 - any handler error means "not processed"
                self.stats.handler_errors += 1
                await self._settle(msg, ok=False, error=repr(exc))
            else:
                self._mark_handled(batch, count_entries=count_entries)
                await self._settle(msg, ok=True)

    async def run_entries(self, handler: EntryHandler) -> None:
        """Hand every new entry to ``handler`` until cancelled; a batch is acked once all its
        entries are handled; entries already handled are skipped on redelivery."""

        async def each(batch: LogBatchCreated) -> None:
            for key, entry in self._keyed(batch):
                if key in self._seen_entries:
                    self.stats.duplicate_entries += 1
                    continue
                await handler(entry)
                self._seen_entries.add(key)
                self.stats.entries += 1

        await self._run(each, count_entries=False)

    async def batches(self) -> AsyncIterator[LogBatchCreated]:
        """New batches; each is acked when the loop asks for the next one (so a loop body
        that raises leaves its batch unacknowledged, to be redelivered)."""
        async for batch in self._batches(count_entries=True):
            yield batch

    async def _batches(self, *, count_entries: bool) -> AsyncIterator[LogBatchCreated]:
        while True:
            msg, batch = await self._next()
            self._pending = msg
            yield batch
            # Reached only when the consumer asks for the next batch: this one is handled.
            self._pending = None
            self._mark_handled(batch, count_entries=count_entries)
            await self._settle(msg, ok=True)

    async def entries(self) -> AsyncIterator[LogEntryCreated]:
        """New entries one by one; a batch is acked once the loop has moved past its last entry."""
        async for batch in self._batches(count_entries=False):
            for key, entry in self._keyed(batch):
                if key in self._seen_entries:
                    self.stats.duplicate_entries += 1
                    continue
                yield entry
                self._seen_entries.add(key)
                self.stats.entries += 1

    @staticmethod
    def _keyed(batch: LogBatchCreated) -> list[tuple[Hashable, LogEntryCreated]]:
        """Each entry with what tells it from others: its content (a non-empty ``logId``),
        else its place in the batch (so a redelivered batch's handled entries are skipped)."""
        return [(entry_key(e) or (batch.batchId, i), e) for i, e in enumerate(batch.entries)]

    async def deliveries(self) -> AsyncIterator[Delivery]:
        """New batches with their acknowledgement left to the caller (e.g. an archiver that
        acks only once the batch is safely on disk). Unsettled deliveries are redelivered
        after ``ack_wait_s``."""
        while True:
            msg, batch = await self._next()
            yield Delivery(self, msg, batch)

    # -- internals -----------------------------------------------------------

    async def _next(self) -> tuple[Msg, LogBatchCreated]:
        """The next batch to hand over: decoded, new, with matching entries."""
        while True:
            msg = await self._queue.get()
            self._space.set()
            batch = await self._decode(msg)
            if batch is None:
                continue
            if batch.batchId in self._seen_batches:
                self.stats.duplicate_batches += 1
                await self._settle(msg, ok=True)
                continue
            if _delivered(msg) > 1:
                self.stats.redeliveries += 1
            self._observe_sequence(batch)
            kept = self.filters.apply(batch)
            if kept is None:
                self._mark_handled(batch, count_entries=False)
                await self._settle(msg, ok=True)
                continue
            return msg, kept

    async def _decode(self, msg: Msg) -> LogBatchCreated | None:
        try:
            return decode_contract(msg.headers, msg.data, LogBatchCreated, max_depth=64)[1]
        except DecodeError as exc:
            self.stats.invalid += 1
            await self._dead_letter(msg, f"invalid batch: {exc}")
            return None

    def _observe_sequence(self, batch: LogBatchCreated) -> None:
        last = self.stats.last_sequence.get(batch.gatewayId)
        if last is not None and batch.sequence > last + 1:
            self.stats.gaps += 1
            self.stats.missing_batches += batch.sequence - last - 1
            if self._on_gap is not None:
                self._on_gap(batch.gatewayId, last + 1, batch.sequence - 1)
        if last is None or batch.sequence > last:
            self.stats.last_sequence[batch.gatewayId] = batch.sequence
        if batch.droppedSinceLast:
            self.stats.dropped_reported += batch.droppedSinceLast
            if self._on_dropped is not None:
                self._on_dropped(batch.gatewayId, batch.droppedSinceLast, dict(batch.droppedByReason or {}))

    def _mark_handled(self, batch: LogBatchCreated, *, count_entries: bool = True) -> None:
        """``batch`` is handled; its entries count as delivered unless the caller counts them
        one by one (``entries()``, ``run_entries()``, which skip duplicates)."""
        self._seen_batches.add(batch.batchId)
        self.stats.batches += 1
        if count_entries:
            self.stats.entries += len(batch.entries)

    async def _settle(self, msg: Msg, *, ok: bool, error: str = "") -> None:
        if self.config.durable is None:
            return
        if ok:
            await msg.ack()
            return
        attempt = _delivered(msg)
        if attempt >= self.config.max_deliver:
            await self._dead_letter(msg, error)
            return
        delay = min(self.config.backoff_max_s, self.config.backoff_initial_s * 2 ** (attempt - 1))
        await msg.nak(delay=delay)

    async def _release(self, msg: Msg) -> None:
        if self.config.durable is not None:
            await msg.nak()

    async def _dead_letter(self, msg: Msg, error: str) -> None:
        """Forward a batch that cannot be handled, with the error, then stop its redelivery."""
        self.stats.dead_lettered += 1
        data = json.dumps(
            {
                "error": error[:4000],
                "subject": msg.subject,
                "attempts": _delivered(msg),
                "payload": msg.data.decode("utf-8", "replace"),
            }
        ).encode()
        attrs = make_attributes("cortex_logging.batch.dead_letter", "//log-gateway/subscriber")
        headers, body = encode_structured(attrs, data)
        await self._nc.publish(self.config.dead_letter_subject, body, headers=headers)
        if self.config.durable is not None:
            await msg.term()


class Delivery:
    """One batch handed over with :meth:`BatchSubscriber.deliveries`; settle it once."""

    def __init__(self, subscriber: BatchSubscriber, msg: Msg, batch: LogBatchCreated) -> None:
        self._subscriber = subscriber
        self._msg = msg
        self.batch = batch

    @property
    def stream_sequence(self) -> int | None:
        """The batch's sequence in its stream (None on core NATS)."""
        try:
            return int(self._msg.metadata.sequence.stream)
        except Exception:  # noqa: BLE001 - core NATS messages carry no JetStream metadata
            return None

    @property
    def attempt(self) -> int:
        """Which delivery of its message this is (1 the first; more after a nak or an ack wait ran out)."""
        return _delivered(self._msg)

    async def ack(self) -> None:
        """The batch is handled: never hand it over again."""
        self._subscriber._mark_handled(self.batch)
        await self._subscriber._settle(self._msg, ok=True)

    async def nak(self, error: str) -> None:
        """The batch could not be handled: redeliver it with backoff (or dead-letter it)."""
        await self._subscriber._settle(self._msg, ok=False, error=error)


def _delivered(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:  # noqa: BLE001 - core NATS messages carry no JetStream metadata
        return 1
