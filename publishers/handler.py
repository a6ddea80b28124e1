"""A ``logging.Handler`` that ships records to NATS without blocking or raising into the caller.

``emit`` does the least it can on the caller's thread: it takes the record, its
message only when the arguments could change later (the worker formats plain
ones), and the caller's trace context, and appends them to a bounded deque,
with no lock on the way. A background thread with its own event loop takes
them a thousand at a time, a few milliseconds after the first one arrived,
turns them into ``LogEntryCreated`` events and publishes them: one CloudEvent
per entry for a gateway to batch (a chunk's events in one write), or, in
library mode, batched in-process with the gateway's core and published to
JetStream as ``logBatchCreated``. While the queue has room the worker holds the
GIL only in short slices and stays away from a thread that is busy logging
(:meth:`NatsLogHandler.breathe`). When the queue is full the overflow policy
drops (and counts) an entry; ``flush()`` and ``close()`` drain within a
deadline, and ``logging.shutdown()`` (run at interpreter exit) calls both.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nats
import orjson

from contracts.cloudevents import ContentMode
from contracts.events import subject_for
from contracts.models import LogEntryCreated
from gateway.core.limits import BatchLimits, OverflowPolicy
from publishers.entrysink import make_sink
from publishers.records import SLICE, Encoded, Snapshot
from publishers.tracing import capture_context, trace_ids, trace_of

try:  # the OpenTelemetry API is optional (publishers.tracing)
    from opentelemetry.context import get_current as _otel_context
except ImportError:  # pragma: no cover - exercised only without the bench/dev extra
    _otel_context = None  # type: ignore[assignment]

__all__ = ["HandlerConfig", "HandlerStats", "NatsLogHandler", "level_name"]

# What the LogRecord constructor sets: always the first keys of a record's __dict__.
_CONSTRUCTED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)
_STANDARD = _CONSTRUCTED | {
    "message",
    "asctime",
    "taskName",
}
_TOP_LEVEL = ("userId", "sessionId")
# Arguments of these types cannot change after the call, so the worker may format the message.
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})
_CHUNK = 1000  # records the worker takes at a time
_LINGER_S = 0.005  # how long the worker waits, once woken, for more records to come
_OUTAGE_POLL_S = 0.05  # how often the worker looks whether the connection is back
_BACKOFF_S = 0.02  # how long the worker stays away from a thread that is busy logging (breathe)
# Handler.handle gives back what Filterer.filter gave: the record itself from Python 3.12 on.
_FILTER_GIVES_RECORD = sys.version_info >= (3, 12)
# tracing.capture_context without its own frame: the caller's OpenTelemetry context (None without the API).
_capture_context: Callable[[], object] = capture_context if _otel_context is None else _otel_context
_NO_CONTEXT = object()  # no context seen yet (None is the context without the OpenTelemetry API)


def level_name(levelno: int) -> str:
    """The platform level for a stdlib level (custom levels fall to the nearest below)."""
    if levelno >= logging.CRITICAL:
        return "fatal"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    return "info" if levelno >= logging.INFO else "debug"


_LEVELS = {n: level_name(n) for n in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, 50)}


def _extra_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The record's attributes that ``logging`` did not set (``extra``), in the order they were
    set. The constructor's come first and ``makeRecord`` sets ``extra`` after them, so the keys
    are read from the end back to the last of the constructor's; a record whose keys before that
    are not just the constructor's (a factory that sets attributes first) is read whole."""
    keys = list(fields)  # one C call: the caller's thread may add keys (a Formatter's) meanwhile
    found = []
    tail = 0
    for key in reversed(keys):
        if key in _CONSTRUCTED:
            break
        tail += 1
        if key not in _STANDARD:
            found.append(key)
    if len(keys) - tail != len(_CONSTRUCTED):
        return {k: v for k, v in list(fields.items()) if k not in _STANDARD}
    return {k: fields[k] for k in reversed(found)}


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
        self._pending: deque[Snapshot] = deque()
        # Guards the accounts below; callers append to _pending without it, the worker and
        # overflow take from it only with it held, so emitted = taken + held + dropped oldest.
        self._count_lock = threading.Lock()
        self._settled_cond = threading.Condition(self._count_lock)
        self._taken = self._dropped_oldest = self._settled = self._published = 0
        self._dropped: Counter[str] = Counter()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._asleep = False
        self._stopping = False
        self.flush_requested = False
        self._id_prefix = uuid.uuid4().hex[:12] + "-"
        self._ids = itertools.count(1)
        self._second, self._stamp = -1, ""
        # While the queue is less than three quarters full the worker gives way to the threads
        # that log (breathe); past that it takes its full share of the GIL, so a sustained flood
        # slows them rather than filling the queue (and dropping).
        self._breathe_below = config.queue_size * 3 // 4
        self._waiting = 0  # threads waiting in flush (the worker then takes its full share)
        self._queue_size = config.queue_size
        subject = subject_for(LogEntryCreated.EVENT_TYPE, config.subject_prefix)
        service_token = "".join(c if c.isalnum() or c in "-_" else "_" for c in config.service)
        self.subject = f"{subject}.{service_token}" if service_token else subject

    @property
    def stats(self) -> HandlerStats:
        """Records taken, published, dropped (by reason), as of now."""
        with self._count_lock:
            emitted = self._taken + len(self._pending) + self._dropped_oldest
            return HandlerStats(emitted, self._published, Counter(self._dropped))

    # -- the caller's side: cheap, never blocks, never raises ------------------

    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:  # type: ignore[override]
        """Filter and emit, without the handler lock ``logging`` takes by default: ``emit``
        is safe from any thread as it is, and the lock would be the costliest part of a call."""
        if not self.filters:
            self.emit(record)
            return record if _FILTER_GIVES_RECORD else True
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may return a new record
            record = rv
        if rv:
            self.emit(record)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        """Take the record onto the queue; when the queue is full, drop per the policy."""
        try:
            if self._thread is None:
                self._ensure_worker()
            message = None
            args = record.args
            if type(record.msg) is not str or type(args) is not tuple:
                message = record.getMessage()
            else:
                for arg in args:
                    if type(arg) not in _IMMUTABLE:
                        message = record.getMessage()
                        break
            item = (record, message, _capture_context())
            pending = self._pending
            if len(pending) >= self._queue_size:
                self._overflow(item)
                return
            pending.append(item)
            if self._asleep:
                self._asleep = False
                self._poke()
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.count_dropped("error")

    def _overflow(self, item: Snapshot) -> None:
        if self.config.overflow is not OverflowPolicy.DROP_OLDEST:
            self.count_dropped("overflow_newest")
            return
        with self._settled_cond:
            with contextlib.suppress(IndexError):  # the worker may have just taken them all
                self._pending.popleft()
                self._dropped_oldest += 1
                self._dropped["overflow_oldest"] += 1
                self._settled += 1
                self._settled_cond.notify_all()
            self._pending.append(item)

    def _poke(self) -> None:
        """Wake the worker's event loop from any thread (a closed loop needs no waking)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def count_published(self, count: int) -> None:
        """Count ``count`` entries that reached the bus (any thread)."""
        with self._count_lock:
            self._published += count

    def count_dropped(self, reason: str, count: int = 1) -> None:
        """Count ``count`` entries dropped for ``reason`` (any thread)."""
        with self._count_lock:
            self._dropped[reason] += count

    def _ensure_worker(self) -> None:
        with self._count_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nats-log-handler", daemon=True)
                self._thread.start()

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait (at most ``timeout_s``, default ``flush_timeout_s``) until the records emitted
        so far are published (or dropped, and counted)."""
        if self._thread is None or not self._thread.is_alive():
            return  # nothing started, or already closed (logging.shutdown flushes again at exit)
        deadline = time.monotonic() + (timeout_s or self.config.flush_timeout_s)
        with self._count_lock:
            target = self._taken + len(self._pending) + self._dropped_oldest
        self.flush_requested = True
        self._poke()
        with self._settled_cond:
            self._waiting += 1
            try:
                while self._settled < target and (left := deadline - time.monotonic()) > 0:
                    self._settled_cond.wait(left)
            finally:
                self._waiting -= 1

    def close(self) -> None:
        """Flush within the deadline, stop the thread; what could not be sent is counted as dropped."""
        if self._thread is not None and not self._stopping:
            self.flush()
            self._stopping = True
            self._poke()
            self._thread.join(self.config.flush_timeout_s)
            left = len(self._pending)
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
            # Stopping while the server is away: what is queued is counted by close() as shutdown.
            while not (self._stopping and (not self._pending or not nc.is_connected)):
                if not nc.is_connected:  # records wait in the queue, under its overflow policy
                    await asyncio.sleep(_OUTAGE_POLL_S)
                    continue
                items = self._take(_CHUNK)
                if items:
                    await sink.send(items)
                    continue
                await self._idle(self._wake, sink.idle_timeout())
                await sink.tick()
            await sink.tick(final=True)
        finally:
            with contextlib.suppress(Exception):
                await nc.drain()

    async def _idle(self, wake: asyncio.Event, due_in: float | None) -> None:
        """Sleep until a record comes (or ``due_in`` seconds pass), then linger a moment so that the worker
        takes records in bulk rather than one by one between the caller's calls."""
        self._asleep = True
        wake.clear()
        if not self._pending and not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), due_in)
            wake.clear()  # from here on only flush and close wake the worker early
            if 0 < len(self._pending) < _CHUNK and not (self.flush_requested or self._stopping):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), _LINGER_S)
        self._asleep = False

    def _take(self, most: int) -> list[Snapshot]:
        pending = self._pending
        with self._count_lock:
            items = [pending.popleft() for _ in range(min(most, len(pending)))]
            self._taken += len(items)
        return items

    def queued(self) -> int:
        """Records waiting in the queue, not yet taken by the worker."""
        return len(self._pending)

    def breathe(self) -> None:
        """Let the threads that log run while the queue has room (under three quarters full).

        ``sleep(0)`` releases the GIL; a thread that logs takes it and keeps it for the
        interpreter's switch interval (5 ms), so the worker holds it only in short slices of
        ``SLICE`` records. When that sleep lasted more than half a switch interval and a slice's
        worth of records came in meanwhile, a thread is busy logging: the worker then stays away
        ``_BACKOFF_S`` more (asking nothing of the GIL), so that a burst costs its callers little
        more than ``emit``. Past three quarters, and while a thread waits in :meth:`flush` or
        :meth:`close`, the worker takes its full share."""
        pending = self._pending
        queued = len(pending)
        if queued >= self._breathe_below:
            return
        started = time.perf_counter()
        time.sleep(0)
        if self._waiting or self._stopping or len(pending) - queued < SLICE:
            return
        if time.perf_counter() - started > sys.getswitchinterval() / 2:
            time.sleep(_BACKOFF_S)

    def done(self, count: int) -> None:
        """``count`` queued records are settled: :meth:`flush` may return once all are."""
        with self._settled_cond:
            self._settled += count
            self._settled_cond.notify_all()

    def encode(self, items: list[Snapshot]) -> list[Encoded]:
        """The entries of ``items`` with their JSON (values that are not JSON become text); a
        record whose message cannot be formatted is dropped as ``error``, one that cannot be
        encoded (e.g. a lone surrogate in the message) as ``invalid``; both are settled."""
        out: list[Encoded] = []
        failed: Counter[str] = Counter()
        last_context: object = _NO_CONTEXT
        trace: dict[str, str] = {}
        pid = os.getpid()
        for record, message, context in items:
            try:
                if context is not last_context:  # contexts are immutable: one span per context
                    last_context, trace = context, trace_of(context)
                text = record.getMessage() if message is None else message
                data = self.entry_data(record, text, trace, pid)
            except Exception:  # noqa: BLE001 - a bad format string or a failing __str__
                last_context = _NO_CONTEXT
                failed["error"] += 1
                continue
            try:
                out.append((data, orjson.dumps(data, default=str), trace, record.created))
            except (orjson.JSONEncodeError, TypeError):
                failed["invalid"] += 1
        if failed:
            for reason, count in failed.items():
                self.count_dropped(reason, count)
            self.done(sum(failed.values()))
        return out

    def entry_data(
        self, record: logging.LogRecord, message: str, trace: dict[str, str], pid: int
    ) -> dict[str, Any]:
        """The ``LogEntryCreated`` data for a record (valid by construction: level from the
        mapping, strings from the record, the timestamp formatted here); ``pid``: this process's."""
        created = record.created
        if int(created) != self._second:  # records come in bursts: one strftime per second
            self._second = int(created)
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        data: dict[str, Any] = {
            "logId": f"{self._id_prefix}{next(self._ids)}",
            "level": _LEVELS.get(record.levelno) or level_name(record.levelno),
            "message": message,
            "source": self.config.service,
            "component": record.name,
            "createdAt": f"{self._stamp}.{int(created * 1000) % 1000:03d}Z",
        }
        metadata = _extra_fields(record.__dict__)
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
        metadata.setdefault("pid", pid)
        data["metadata"] = metadata
        if trace:
            data.update(trace_ids(trace))
        return data
