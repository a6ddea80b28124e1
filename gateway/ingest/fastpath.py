"""Ingest subscriptions served without nats-py's per-message work.

For every message nats-py parses the header block into a dict, builds a
``Msg``, puts it on the subscription's ``asyncio.Queue`` and (with a callback)
wakes a task: measured on this project's machine, that is most of what a raw
nats-py subscriber costs per message, and the gateway pays it before doing any
work of its own. For the ingest subscriptions only, this module reads the
message frames off the connection's read buffer itself and hands each
``(subject, raw header block, payload)`` to the handler at once, in the read
loop; only while a handler waits (a full buffer under the block policy, a
reject being forwarded) do later messages queue, for a reader task that
catches up one burst per wake-up. The raw header block is read strictly once
(:mod:`gateway.ingest.headers`). Every other subscription (JetStream acks,
inboxes, ...) and every other protocol operation goes through nats-py untouched.

What nats-py would have done is kept: its ``in_msgs``/``in_bytes`` stats and
the subscription's delivered count; the pending limits (a message beyond
``pending_msgs_limit`` or ``pending_bytes_limit`` is dropped and reported to
the connection's error callback as a ``SlowConsumerError`` for that
subscription, exactly as nats-py reports it); and ``Subscription.drain()``,
which waits until every message received before the unsubscribe has been
handled (the sink stands in as the subscription's pending queue).

This reads nats-py's private API (``Client._process_msg``, ``_ps`` (the
protocol parser: ``parse``, ``buf``, ``state``), ``_subs``, ``_error_cb``;
``Subscription._pending_*``; nats-py 2.16, pinned below 3 in pyproject).
:func:`fast_path_supported` checks its shape; where it differs the gateway
falls back to reading the subscription's queue in bursts
(:mod:`gateway.ingest.bursts`), and ``tests/test_fastpath.py`` fails loudly.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError
from nats.protocol.parser import AWAITING_CONTROL_LINE, Parser

from gateway.ingest.bursts import subscribe_in_bursts

__all__ = ["Headers", "RawHandler", "fast_path_supported", "subscribe_fast", "take_over"]

log = logging.getLogger("log_gateway")

# A message's headers: the raw NATS header block on the fast path, a mapping on the fallback path.
Headers = bytes | Mapping[str, str] | None
# handler(subject, headers, body) returns None when done with the message, or an
# awaitable when it must wait (the block policy, forwarding a reject).
RawHandler = Callable[[bytes, Headers, bytes], Awaitable[object] | None]
_Item = tuple[bytes, Headers, bytes]
# A control line read: subject, sid, reply, header bytes, header and payload bytes.
_Frame = tuple[bytes, int, bytes, int, int]
# Control lines of fast-path messages remembered read (most differ only in the size).
_MAX_KNOWN_LINES = 4096
_PROCESS_MSG_PARAMS = ["self", "sid", "subject", "reply", "data", "headers"]
_SUBSCRIPTION_FIELDS = (
    "_id",
    "_pending_queue",
    "_pending_size",
    "_pending_msgs_limit",
    "_pending_bytes_limit",
    "_received",
)
# After a burst this long the reader lets other tasks (the sender) run before the next.
_LONG_BURST = 1024
_NO_LIMIT = 1 << 62
# The parser's fast loop copies the read buffer once per read; past this (a
# large message arriving in pieces) nats-py's parser reads it instead.
_MAX_FAST_BUFFER = 1 << 20


def fast_path_supported(nc: Client) -> bool:
    """Does this nats-py client have the private shape the fast path relies on?"""
    process = getattr(type(nc), "_process_msg", None)
    stats = getattr(nc, "stats", None)
    parser = getattr(nc, "_ps", None)
    return (
        inspect.iscoroutinefunction(process)
        and list(inspect.signature(process).parameters) == _PROCESS_MSG_PARAMS
        and isinstance(parser, Parser)
        and isinstance(getattr(parser, "buf", None), bytearray)
        and hasattr(parser, "state")
        and inspect.iscoroutinefunction(parser.parse)
        and isinstance(getattr(nc, "_subs", None), dict)
        and isinstance(stats, dict)
        and "in_msgs" in stats
        and "in_bytes" in stats
        and callable(getattr(nc, "_error_cb", None))
    )


async def subscribe_fast(
    nc: Client,
    subject: str,
    *,
    queue: str,
    handler: RawHandler,
    pending_msgs_limit: int,
    pending_bytes_limit: int,
) -> tuple[Subscription, asyncio.Task[None] | None]:
    """Subscribe on the fast path (or, where unsupported, in bursts); returns the subscription and reader."""
    sub = None
    if fast_path_supported(nc):
        sub = await nc.subscribe(
            subject,
            queue=queue,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )
        if all(hasattr(sub, name) for name in _SUBSCRIPTION_FIELDS):
            return sub, take_over(nc, sub, handler)
        await sub.unsubscribe()  # pragma: no cover - a nats-py whose subscriptions changed shape
    log.warning("nats-py is not the version the ingest fast path knows; using the slower path")

    def from_msg(msg: Msg) -> Awaitable[object] | None:
        return handler(msg.subject.encode(), msg.headers, msg.data)

    return await subscribe_in_bursts(
        nc,
        subject,
        queue=queue,
        handler=from_msg,
        pending_msgs_limit=pending_msgs_limit,
        pending_bytes_limit=pending_bytes_limit,
    )


def take_over(nc: Client, sub: Subscription, handler: RawHandler) -> asyncio.Task[None]:
    """Serve ``sub`` (subscribed without a callback) on the fast path from now on; returns its reader.

    Messages nats-py already queued for it are handled first. The caller has
    checked :func:`fast_path_supported`.
    """
    sink = _Sink(nc, sub, handler)
    return asyncio.create_task(sink.run(), name=f"intake:{sub.subject}")


class _Router:
    """Stands in for ``Client._process_msg`` and the protocol parser's ``parse``.

    Messages for fast-path subscriptions go to their sinks, everything else to
    nats-py as before. ``parse`` takes the complete ``MSG``/``HMSG`` frames at
    the front of the read buffer in one loop, with no coroutine per message,
    and leaves anything else (``PING``, ``INFO``, ``-ERR``, a frame it cannot
    read, a large buffer) to nats-py's own parser, which takes it from there.
    """

    def __init__(self, nc: Client) -> None:
        self.sinks: dict[int, _Sink] = {}
        self._nc = nc
        self._original: Callable[..., Awaitable[None]] = nc._process_msg
        self._stats: dict[str, int] = nc.stats
        self._parser = nc._ps
        self._parse = nc._ps.parse
        self._known: dict[bytes, _Frame] = {}

    @staticmethod
    def of(nc: Client) -> _Router:
        """The client's router, installed on first use."""
        current = getattr(nc._process_msg, "__self__", None)
        if isinstance(current, _Router):
            return current
        router = _Router(nc)
        # The read loop calls self._ps.parse(...) and the parser self.nc._process_msg(...):
        # instance attributes win over the methods.
        setattr(nc, "_process_msg", router.process_msg)  # noqa: B010 - assigning over a method
        setattr(nc._ps, "parse", router.parse)  # noqa: B010
        return router

    async def process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: Any) -> None:
        sink = self.sinks.get(sid)
        if sink is None:
            await self._original(sid, subject, reply, data, headers)
            return
        stats = self._stats
        stats["in_msgs"] += 1
        stats["in_bytes"] += len(data)
        if not sink.deliver(subject, headers, data):
            await self._slow_consumer(sink, sid, subject, reply)

    async def _slow_consumer(self, sink: _Sink, sid: int, subject: bytes, reply: bytes) -> None:
        """Report a message dropped at the pending limits, as nats-py reports it."""
        await self._nc._error_cb(
            SlowConsumerError(subject=subject.decode(), reply=reply.decode(), sid=sid, sub=sink.sub)
        )

    async def parse(self, data: bytes = b"") -> None:
        parser = self._parser
        buf = parser.buf
        if parser.state != AWAITING_CONTROL_LINE or len(buf) + len(data) > _MAX_FAST_BUFFER:
            await self._parse(data)
            return
        buf.extend(data)
        taken, other = await self._frames(bytes(buf))
        del buf[:taken]
        if other:
            await self._parse()

    async def _frames(self, snap: bytes) -> tuple[int, bool]:
        """Deliver the complete message frames at the front of ``snap``.

        Returns how many bytes they took, and whether something else follows.
        """
        pos, size, sinks, known = 0, len(snap), self.sinks, self._known
        count = payload = 0  # the fast path's messages, added to nats-py's stats once
        try:
            while (end := snap.find(b"\r\n", pos)) >= 0:
                line = snap[pos:end]
                frame = known.get(line)
                if frame is None:
                    if (frame := _frame(line.split())) is None:
                        return pos, True
                    if not frame[2]:  # no reply subject: a line that may come again
                        self._remember(line, frame)
                subject, sid, reply, head, length = frame
                stop = end + 2 + length
                if stop + 2 > size:
                    break
                headers = snap[end + 2 : end + 2 + head] if head else None
                data = snap[end + 2 + head : stop]
                pos = stop + 2
                sink = sinks.get(sid)
                if sink is None:
                    await self._original(sid, subject, reply, data, headers)
                    continue
                count += 1
                payload += length - head
                if not sink.deliver(subject, headers, data):
                    await self._slow_consumer(sink, sid, subject, reply)
            return pos, False
        finally:
            self._stats["in_msgs"] += count
            self._stats["in_bytes"] += payload

    def _remember(self, line: bytes, frame: _Frame) -> None:
        """Keep a control line read: a flood repeats a few (subject, sid and a size)."""
        if len(self._known) >= _MAX_KNOWN_LINES:
            self._known.clear()
        self._known[line] = frame


def _frame(args: list[bytes]) -> _Frame | None:
    """``MSG subject sid [reply] size`` or ``HMSG subject sid [reply] hsize size``, split:
    (subject, sid, reply, header bytes, header and payload bytes); None for anything else."""
    count = len(args)
    if count in (4, 5) and args[0] == b"MSG":
        head = b"0"
    elif count in (5, 6) and args[0] == b"HMSG":
        head = args[-2]
        count -= 1
    else:
        return None
    sid, length = args[2], args[-1]
    if not (sid.isdigit() and length.isdigit() and head.isdigit()):
        return None  # nats-py's parser will say what is wrong with it
    return args[1], int(sid), args[3] if count == 5 else b"", int(head), int(length)


class _Sink:
    """One fast-path subscription's messages between the parser and its reader.

    It also stands in as the subscription's pending queue, so nats-py's
    ``pending_msgs`` counts it and ``Subscription.drain()`` waits on its ``join``.
    Pending messages are the list not yet taken, plus (while the reader waits
    on a handler) what is left of the burst in hand, as in nats-py's queue.
    """

    def __init__(self, nc: Client, sub: Subscription, handler: RawHandler) -> None:
        self.sub = sub
        self._handler = handler
        self._router = _Router.of(nc)
        self._items: list[_Item] = []
        self._held = 0  # the rest of the burst in hand, while the reader waits
        self._busy = False  # the reader is handling a burst or waiting on a handler
        self._deferred: Awaitable[object] | None = None  # a handler's wait, left to the reader
        self._waiter: asyncio.Future[None] | None = None
        self._joiners: list[asyncio.Future[None]] = []
        # nats-py: a limit of 0 means none.
        self._msgs_limit: int = sub._pending_msgs_limit or _NO_LIMIT
        self._bytes_limit: int = sub._pending_bytes_limit or _NO_LIMIT
        self._adopt(sub._pending_queue)
        sub._pending_queue = self  # type: ignore[assignment]  # see the class docstring
        # From here on the parser's messages for this subscription come to deliver().
        self._router.sinks[sub._id] = self

    def _adopt(self, queue: asyncio.Queue[Msg]) -> None:
        """Take over what nats-py queued before the route existed (its bytes are already counted)."""
        while not queue.empty():
            msg = queue.get_nowait()
            queue.task_done()
            self._items.append((msg.subject.encode(), msg.headers, msg.data))

    def deliver(self, subject: bytes, headers: bytes | None, data: bytes) -> bool:
        """Take a message from the parser; False when the pending limits say drop it.

        With nothing queued and the reader idle, the message is handled at once,
        in the read loop (no queue, no wake-up); if the handler must wait, the
        reader waits for it, and later messages queue behind it meanwhile.
        """
        self.sub._received += 1
        if self._busy or self._items:
            return self._queue(subject, headers, data)
        try:
            deferred = self._handler(subject, headers, data)
        except Exception:  # a bug in the handler must not stop the read loop
            log.exception("ingest handler failed on a message on %s", subject.decode(errors="replace"))
            return True
        if deferred is not None:
            self._busy = True
            self._deferred = deferred
            self._wake()
        return True

    def _queue(self, subject: bytes, headers: bytes | None, data: bytes) -> bool:
        sub = self.sub
        size = len(data)
        items = self._items
        if len(items) + self._held >= self._msgs_limit or sub._pending_size + size >= self._bytes_limit:
            return False
        sub._pending_size += size
        items.append((subject, headers, data))
        self._wake()
        return True

    def _wake(self) -> None:
        if self._waiter is not None:
            self._waiter.set_result(None)
            self._waiter = None

    # -- the pending-queue face nats-py sees ----------------------------------

    def qsize(self) -> int:
        """Messages received and not yet taken (``Subscription.pending_msgs``)."""
        return len(self._items) + self._held

    def empty(self) -> bool:
        """Nothing is waiting to be taken."""
        return not self.qsize()

    async def join(self) -> None:
        """Wait until every message received so far has been handled (``Subscription.drain``)."""
        if self._items or self._busy:
            joined = asyncio.get_running_loop().create_future()
            self._joiners.append(joined)
            await joined

    # -- the reader -----------------------------------------------------------

    async def run(self) -> None:
        """Wait for what a handler left waiting, then handle what queued meanwhile, until cancelled."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if (deferred := self._deferred) is not None:
                    self._deferred = None
                    await self._finish(deferred)
                if not self._items:
                    self._busy = False
                    self._release_joiners()
                    self._waiter = loop.create_future()
                    await self._waiter
                    continue
                self._busy = True
                items, self._items = self._items, []
                await self._handle(items, self._handler)
                if len(items) > _LONG_BURST:
                    await asyncio.sleep(0)
        finally:
            self._close()

    @staticmethod
    async def _finish(deferred: Awaitable[object]) -> None:
        try:
            await deferred
        except Exception:  # a bug in the handler must not stop intake
            log.exception("ingest handler failed while waiting")

    def _release_joiners(self) -> None:
        joiners, self._joiners = self._joiners, []
        for joined in joiners:
            if not joined.done():
                joined.set_result(None)

    def _close(self) -> None:
        """The reader stopped: later messages go to nats-py, queued as for any subscription."""
        sub = self.sub
        self._router.sinks.pop(sub._id, None)
        sub._pending_size -= sum(len(data) for _, _, data in self._items)
        self._items.clear()
        sub._pending_queue = asyncio.Queue(maxsize=sub._pending_msgs_limit)
        self._busy = False
        self._release_joiners()

    async def _handle(self, items: list[_Item], handler: RawHandler) -> None:
        # The whole burst is taken at once; while a handler waits, what is left of
        # it counts as pending again, as it would in nats-py's queue.
        sub = self.sub
        left, left_bytes = len(items), sub._pending_size
        sub._pending_size = 0
        for subject, headers, data in items:
            left -= 1
            left_bytes -= len(data)
            try:
                pending = handler(subject, headers, data)
                if pending is not None:
                    self._held = left
                    sub._pending_size += left_bytes
                    try:
                        await pending
                    finally:
                        self._held = 0
                        sub._pending_size -= left_bytes
            except Exception:  # a bug in the handler must not stop intake
                log.exception("ingest handler failed on a message on %s", subject.decode(errors="replace"))
