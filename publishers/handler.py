"""A ``logging.Handler`` that ships records to NATS without blocking or raising into the caller.

``emit`` only takes a snapshot of the record (message, exception, trace context)
and puts it on a bounded queue; a background thread with its own event loop
turns snapshots into ``LogEntryCreated`` events and publishes them, one
CloudEvent per entry for a gateway to batch, or, in library mode, batched
in-process with the gateway's core and published to JetStream as
``logBatchCreated``. When the queue is full the overflow policy drops (and
counts) an entry; ``flush()`` and ``close()`` drain within a deadline, and
``logging.shutdown()`` (run at interpreter exit) calls both.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import nats
import orjson

from contracts.cloudevents import ContentMode
from contracts.events import subject_for
from contracts.models import LogEntryCreated
from gateway.core.limits import BatchLimits, OverflowPolicy
from publishers.entrysink import make_sink
from publishers.records import Snapshot
from publishers.tracing import current_trace, trace_ids

__all__ = ["HandlerConfig", "HandlerStats", "NatsLogHandler", "level_name"]

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_TOP_LEVEL = ("userId", "sessionId")


def level_name(levelno: int) -> str:
    """The platform level for a stdlib level (custom levels fall to the nearest below)."""
    if levelno >= logging.CRITICAL:
        return "fatal"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    return "info" if levelno >= logging.INFO else "debug"


@dataclass(frozen=True, kw_only=True, slots=True)
class HandlerConfig:
    """Where records go and how the handler behaves under pressure.

    ``batching`` switches on library mode: batch in-process and publish
    ``logBatchCreated`` to JetStream, for a service with no gateway beside it.
    """

    servers: tuple[str, ...]
    service: str
    subject_prefix: str = ""
    mode: ContentMode = ContentMode.STRUCTURED
    queue_size: int = 10_000
    overflow: OverflowPolicy = OverflowPolicy.DROP_NEWEST
    flush_timeout_s: float = 5.0
    batching: BatchLimits | None = None
    connect: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.overflow is OverflowPolicy.BLOCK:
            raise ValueError("a logging handler must never block its caller: use drop_newest or drop_oldest")
        if self.queue_size < 1 or not self.flush_timeout_s > 0:
            raise ValueError("queue_size must be at least 1 and flush_timeout_s positive")
        if self.mode is ContentMode.BARE:
            raise ValueError("mode must be structured or binary")


@dataclass
class HandlerStats:
    """Records taken, published, dropped (by reason) and failed."""

    emitted: int = 0
    published: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


class NatsLogHandler(logging.Handler):
    """Ships log records to NATS from a background thread; see the module docstring."""

    def __init__(self, config: HandlerConfig, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.config = config
        self.stats = HandlerStats()
        self._queue: queue.Queue[Snapshot] = queue.Queue(maxsize=config.queue_size)
        self._count_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self.flush_requested = False
        self._id_prefix = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        subject = subject_for(LogEntryCreated.EVENT_TYPE, config.subject_prefix)
        service_token = "".join(c if c.isalnum() or c in "-_" else "_" for c in config.service)
        self.subject = f"{subject}.{service_token}" if service_token else subject

    # -- the caller's side: cheap, never blocks, never raises ------------------

    def emit(self, record: logging.LogRecord) -> None:
        """Snapshot the record and queue it; when the queue is full, drop per the policy."""
        try:
            self._ensure_worker()
            item = Snapshot(record, record.getMessage(), current_trace())
            self._offer(item)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.count_dropped("error")

    def _offer(self, item: Snapshot) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if self.config.overflow is OverflowPolicy.DROP_OLDEST:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
                    self._queue.task_done()
                    self.count_dropped("overflow_oldest")
                try:
                    self._queue.put_nowait(item)
                except queue.Full:  # other threads refilled it first
                    self.count_dropped("overflow_newest")
                else:
                    self._count(emitted=1)
            else:
                self.count_dropped("overflow_newest")
            return
        self._count(emitted=1)
        wake = self._wake
        if wake is not None and not wake.is_set():
            self._poke()

    def _poke(self) -> None:
        """Wake the worker's event loop from any thread (a closed loop needs no waking)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def _count(self, *, emitted: int = 0, published: int = 0) -> None:
        with self._count_lock:
            self.stats.emitted += emitted
            self.stats.published += published

    def count_published(self, count: int) -> None:
        """Count ``count`` entries that reached the bus (any thread)."""
        self._count(published=count)

    def count_dropped(self, reason: str, count: int = 1) -> None:
        """Count ``count`` entries dropped for ``reason`` (any thread)."""
        with self._count_lock:
            self.stats.dropped[reason] += count

    def _ensure_worker(self) -> None:
        if self._thread is None:
            with self._count_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="nats-log-handler", daemon=True)
                    self._thread.start()

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait (at most ``timeout_s``, default ``flush_timeout_s``) until queued records are published."""
        if self._thread is None or not self._thread.is_alive():
            return  # nothing started, or already closed (logging.shutdown flushes again at exit)
        deadline = time.monotonic() + (timeout_s or self.config.flush_timeout_s)
        self.flush_requested = True
        self._poke()
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks and (left := deadline - time.monotonic()) > 0:
                self._queue.all_tasks_done.wait(left)

    def close(self) -> None:
        """Flush within the deadline, stop the thread; what could not be sent is counted as dropped."""
        if self._thread is not None and not self._stopping:
            self.flush()
            self._stopping = True
            self._poke()
            self._thread.join(self.config.flush_timeout_s)
            left = self._queue.qsize()
            if left:
                self.count_dropped("shutdown", left)
        super().close()

    # -- the worker's side ------------------------------------------------------

    def _run(self) -> None:
        asyncio.run(self._work())

    async def _work(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        nc = await nats.connect(list(self.config.servers), max_reconnect_attempts=-1, **self.config.connect)
        sink = await make_sink(self, nc)
        try:
            while not (self._stopping and self._queue.empty()):
                items = self._take(1000)
                if items:
                    await sink.send(items)
                    continue
                self._wake.clear()
                if self._queue.empty() and not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), sink.idle_timeout())
                    await sink.tick()
            await sink.tick(final=True)
        finally:
            with contextlib.suppress(Exception):
                await nc.drain()

    def _take(self, most: int) -> list[Snapshot]:
        items: list[Snapshot] = []
        with contextlib.suppress(queue.Empty):
            while len(items) < most:
                items.append(self._queue.get_nowait())
        return items

    def done(self, count: int) -> None:
        """``count`` queued records are settled: :meth:`flush` may return once all are."""
        for _ in range(count):
            self._queue.task_done()

    def entry_data(self, item: Snapshot) -> dict[str, Any]:
        """The ``LogEntryCreated`` data for a queued record (valid by construction: level
        from the mapping, strings from the record, the timestamp formatted here)."""
        record = item.record
        created = record.created
        data: dict[str, Any] = {
            "logId": f"{self._id_prefix}-{next(self._ids)}",
            "level": level_name(record.levelno),
            "message": item.message,
            "source": self.config.service,
            "component": record.name,
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
            + f".{int(created * 1000) % 1000:03d}Z",
        }
        metadata = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        for key in _TOP_LEVEL:
            if isinstance(metadata.get(key), str):
                data[key] = metadata.pop(key)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            metadata["exception"] = {
                "type": exc_type.__name__,
                "message": str(exc),
                "stack": "".join(traceback.format_exception(exc_type, exc, tb)),
            }
        metadata.setdefault("pid", os.getpid())
        data["metadata"] = metadata
        data.update(trace_ids(item.trace))
        return data

    def entry_json(self, item: Snapshot) -> tuple[dict[str, Any], bytes] | None:
        """The entry and its JSON (values that are not JSON become text); None if it cannot be
        encoded (e.g. a lone surrogate in the message), counted as dropped ``invalid``."""
        data = self.entry_data(item)
        try:
            return data, orjson.dumps(data, default=str)
        except (orjson.JSONEncodeError, TypeError):
            self.count_dropped("invalid")
            return None
