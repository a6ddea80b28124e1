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

The frames are split by :mod:`gateway.ingest.wire` (bytes only). This relies on
nats-py's private API (``Client._process_msg``, ``_ps`` (the protocol parser:
``parse``, ``buf``, ``state``), ``_subs``, ``_error_cb``;
``Subscription._pending_*``; nats-py 2.16, pinned below 3 in pyproject), every
name of it listed, and reached only, through :mod:`gateway.ingest.nats_private`.
:func:`fast_path_supported` checks its shape; where it differs the gateway
falls back to reading the subscription's queue in bursts
(:mod:`gateway.ingest.bursts`), and ``tests/test_nats_private.py`` fails loudly.
It serves the connection it is given; the app gives core ingest a connection of
its own, so the one carrying the batches' PubAcks and the alerts keeps nats-py's
own parser, except under durable ingest, whose pull inbox (:func:`route_inbox`) is
served here on that connection: its other messages (the PubAcks among them) still
go to nats-py's ``_process_msg``, one by one, in the same slices.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError

from gateway.ingest import nats_private as private
from gateway.ingest.bursts import subscribe_in_bursts
from gateway.ingest.wire import Frame, LineCache, Stop, split_frames
from gateway.tasks import Spawn

__all__ = [
    "Headers",
    "InboxHandler",
    "RawHandler",
    "RunHandler",
    "ShedHandler",
    "fast_path_supported",
    "route_inbox",
    "subscribe_fast",
    "take_over",
    "unroute_inbox",
]

log = logging.getLogger("log_gateway")

# A message's headers: the raw NATS header block on the fast path, a mapping on the fallback path.
Headers = bytes | Mapping[str, str] | None
# handler(subject, headers, body) returns None when done with the message, or an
# awaitable when it must wait (the block policy, forwarding a reject).
RawHandler = Callable[[bytes, Headers, bytes], Awaitable[object] | None]
# run_handler(frames, start, stop) handles frames[start:stop] (the messages of one read, all for
# its subscription) in order, as the handler would one by one: None when done with all of them,
# or (awaitable, next) when the message before ``next`` must wait; the reader waits for it, and
# the messages from ``next`` on queue behind it. One call per read instead of one per message.
RunHandler = Callable[[list[Frame], int, int], tuple[Awaitable[object], int] | None]
# on_shed(subject, headers, body): a message the pending limits drop, shown before it goes
# (so the gateway can still look at error entries while it sheds bulk traffic).
ShedHandler = Callable[[bytes, Headers, bytes], None]
# inbox(frames, start, stop): frames[start:stop] (of one read, all for subscriptions routed to
# this handler: their sids tell them apart), handled in the read loop in order, each with its
# reply subject (durable ingest's pull replies): one call per read, as for a RunHandler; it must
# not wait.
InboxHandler = Callable[[list[Frame], int, int], None]
_Item = tuple[bytes, Headers, bytes]
# After a burst this long the reader lets other tasks (the sender) run before the next.
_LONG_BURST = 1024
# The read loop hands the frames of one read (up to 32 KiB, and back to back while nats-py's
# stream buffer holds more) to the handlers without an await in between: everything else on
# the loop (the sender taking a due batch, the PubAcks that free publish slots) waits for it.
# Measured at 70 % of the burst peak, an ack the server sent 2 ms after the take was seen by
# the sender 49 ms later (median; p99 400 ms) and sealed batches waited for slots held by acks
# already read off the socket. So the frames go to the handlers in slices, with a turn of the
# loop in between: a slice of this many frames is about 1 ms of work.
_SLICE_FRAMES = 32
_NO_LIMIT = 1 << 62
# The parser's fast loop copies the read buffer once per read; past this (a
# large message arriving in pieces) nats-py's parser reads it instead.
_MAX_FAST_BUFFER = 1 << 20


def fast_path_supported(nc: Client) -> bool:
    """Does this nats-py client have the private shape the fast path relies on?"""
    return not private.client_problems(nc)


async def subscribe_fast(
    nc: Client,
    subject: str,
    *,
    queue: str,
    handler: RawHandler,
    pending_msgs_limit: int,
    pending_bytes_limit: int,
    on_shed: ShedHandler | None = None,
    run_handler: RunHandler | None = None,
    spawn: Spawn,
) -> tuple[Subscription, asyncio.Task[None] | None]:
    """Subscribe on the fast path (or, where unsupported, in bursts); returns the subscription and reader.
    ``on_shed`` (the messages the pending limits drop) and ``run_handler`` serve the fast path only."""
    sub = None
    if fast_path_supported(nc):
        sub = await nc.subscribe(
            subject,
            queue=queue,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )
        if not private.subscription_problems(sub):
            return sub, take_over(nc, sub, handler, on_shed, spawn=spawn, run_handler=run_handler)
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
        spawn=spawn,
    )


def take_over(
    nc: Client,
    sub: Subscription,
    handler: RawHandler,
    on_shed: ShedHandler | None = None,
    *,
    spawn: Spawn,
    run_handler: RunHandler | None = None,
) -> asyncio.Task[None]:
    """Serve ``sub`` (subscribed without a callback) on the fast path from now on; returns its reader.

    Messages nats-py already queued for it are handled first; a message the
    pending limits drop is shown to ``on_shed`` first. The caller has checked
    :func:`fast_path_supported`. ``spawn`` starts the reader (watched: if it dies, it is
    logged with its traceback and health goes down). ``run_handler``, if given, takes what
    arrives while nothing is queued one read at a time (see :data:`RunHandler`).
    """
    sink = _Sink(nc, sub, handler, on_shed, run_handler)
    return spawn(sink.run(), name=f"intake:{sub.subject}")


def route_inbox(nc: Client, sub: Subscription, inbox: InboxHandler) -> None:
    """Hand every frame for ``sub`` (subscribed without a callback, nothing received yet) to
    ``inbox``, in the read loop, from now on; frames for several subscriptions routed to the same
    ``inbox`` (the same object) come in one call. The caller has checked :func:`fast_path_supported`."""
    _Router.of(nc).inboxes[private.subscription_id(sub)] = inbox


def unroute_inbox(nc: Client, sub: Subscription) -> None:
    """Frames for ``sub`` go to nats-py again (before unsubscribing it)."""
    _Router.of(nc).inboxes.pop(private.subscription_id(sub), None)


class _Router:
    """Stands in for ``Client._process_msg`` and the protocol parser's ``parse``.

    Messages for fast-path subscriptions go to their sinks, everything else to
    nats-py as before. ``parse`` hands the read buffer to
    :func:`gateway.ingest.wire.split_frames`, delivers the complete ``MSG``/``HMSG``
    frames at its front with no coroutine per message, and leaves anything else
    (``PING``, ``INFO``, ``-ERR``, a frame it cannot read, a large buffer) to
    nats-py's own parser, which takes it from there.
    """

    def __init__(self, nc: Client) -> None:
        self.sinks: dict[int, _Sink] = {}
        self.inboxes: dict[int, InboxHandler] = {}
        self._nc = nc
        self._original = private.process_msg(nc)
        self._stats: dict[str, int] = nc.stats
        self._parse = private.parser_parse(nc)
        self._lines = LineCache()
        # Frames handed over since the loop last had a turn, across reads: nats-py reads the next
        # chunk without yielding while its stream buffer holds more, so a read of fewer than
        # _SLICE_FRAMES frames (entries of 1 KiB and up) must not start the count again.
        self._since_turn = 0

    @staticmethod
    def of(nc: Client) -> _Router:
        """The client's router, installed on first use."""
        current = private.installed(nc)
        if isinstance(current, _Router):
            return current
        router = _Router(nc)
        private.install(nc, router.process_msg, router.parse)
        return router

    async def process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: Any) -> None:
        sink = self.sinks.get(sid)
        if sink is None:
            if (inbox := self.inboxes.get(sid)) is None:
                await self._original(sid, subject, reply, data, headers)
            else:
                self._stats["in_msgs"] += 1
                self._stats["in_bytes"] += len(data)
                _to_inbox(inbox, [(subject, sid, reply, headers, data)], 0, 1)
            return
        stats = self._stats
        stats["in_msgs"] += 1
        stats["in_bytes"] += len(data)
        if not sink.deliver(subject, headers, data):
            await self._slow_consumer(sink, sid, subject, reply)

    async def _slow_consumer(self, sink: _Sink, sid: int, subject: bytes, reply: bytes) -> None:
        """Report a message dropped at the pending limits, as nats-py reports it."""
        await private.report_error(
            self._nc, SlowConsumerError(subject=subject.decode(), reply=reply.decode(), sid=sid, sub=sink.sub)
        )

    async def parse(self, data: bytes = b"") -> None:
        buf = private.read_buffer(self._nc)  # (a reconnect gives the parser a new one)
        if not private.between_operations(self._nc) or len(buf) + len(data) > _MAX_FAST_BUFFER:
            await self._parse(data)
            return
        buf.extend(data)
        split = split_frames(bytes(buf), self._lines)
        await self._deliver(split.frames)
        del buf[: split.consumed]
        if split.stop is Stop.CONTROL:
            await self._parse()

    async def _deliver(self, frames: list[Frame]) -> None:
        """Hand each run of frames for one fast-path subscription to its sink, or for a durable
        pull inbox to its handler, at most ``_SLICE_FRAMES`` at a time with a turn of the loop
        between slices; any other subscription's, one by one, to nats-py."""
        count = payload = 0  # the fast path's messages, added to nats-py's stats once
        start, total, since_turn = 0, len(frames), self._since_turn
        try:
            while start < total:
                if since_turn >= _SLICE_FRAMES:
                    await asyncio.sleep(0)  # (see _SLICE_FRAMES)
                    since_turn = 0
                subject, sid, reply, headers, data = frames[start]
                sink = self.sinks.get(sid)
                inbox = self.inboxes.get(sid) if sink is None else None
                if sink is None and inbox is None:
                    await self._original(sid, subject, reply, data, headers)
                    start, since_turn = start + 1, since_turn + 1
                    continue
                limit = min(total, start + _SLICE_FRAMES - since_turn)
                if inbox is not None:  # (the run goes on across the inboxes of one handler)
                    stop, size = _inbox_run_end(frames, start, limit, self.inboxes, inbox)
                    _to_inbox(inbox, frames, start, stop)
                elif sink is not None:
                    stop, size = _run_end(frames, start, limit, sid)
                    for dropped in sink.deliver_run(frames, start, stop):
                        await self._slow_consumer(sink, sid, dropped[0], dropped[2])
                count, payload = count + stop - start, payload + size
                start, since_turn = stop, since_turn + stop - start
        finally:
            self._since_turn = since_turn
            self._stats["in_msgs"] += count
            self._stats["in_bytes"] += payload


def _to_inbox(inbox: InboxHandler, frames: list[Frame], start: int, stop: int) -> None:
    """A run of frames to a pull inbox's handler; a bug there is logged, never raised into the
    read loop (which serves the whole connection: it would stop reading with the client still
    "connected")."""
    try:
        inbox(frames, start, stop)
    except Exception:  # (the handler takes its reader down itself: pull.PullReader._fail)
        subject = frames[start][0].decode(errors="replace")
        log.exception("a pull inbox's handler failed on the frames of a read for %s", subject)


def _inbox_run_end(
    frames: list[Frame], start: int, limit: int, inboxes: dict[int, InboxHandler], inbox: InboxHandler
) -> tuple[int, int]:
    """Where the run of frames for the inboxes routed to ``inbox`` from ``start`` ends (before
    ``limit``), and its payload bytes. (A pull reader's live requests have an inbox each, and
    the server serves them in turn: their frames alternate.)"""
    size = 0
    for stop in range(start, limit):
        frame = frames[stop]
        if inboxes.get(frame[1]) is not inbox:
            return stop, size
        size += len(frame[4])
    return limit, size


def _run_end(frames: list[Frame], start: int, limit: int, sid: int) -> tuple[int, int]:
    """Where the run of frames for ``sid`` from ``start`` ends (before ``limit``), and its payload bytes."""
    size = 0
    for stop in range(start, limit):
        frame = frames[stop]
        if frame[1] != sid:
            return stop, size
        size += len(frame[4])
    return limit, size


class _Sink:
    """One fast-path subscription's messages between the parser and its reader.

    It also stands in as the subscription's pending queue, so nats-py's
    ``pending_msgs`` counts it and ``Subscription.drain()`` waits on its ``join``.
    Pending messages are the list not yet taken, plus (while the reader waits
    on a handler) what is left of the burst in hand, as in nats-py's queue.
    """

    def __init__(
        self,
        nc: Client,
        sub: Subscription,
        handler: RawHandler,
        on_shed: ShedHandler | None = None,
        run_handler: RunHandler | None = None,
    ) -> None:
        self.sub = sub
        self._handler = handler
        self._on_shed = on_shed
        self._run_handler = run_handler
        self._router = _Router.of(nc)
        self._items: list[_Item] = []
        self._held = 0  # the rest of the burst in hand, while the reader waits
        self._busy = False  # the reader is handling a burst or waiting on a handler
        self._deferred: Awaitable[object] | None = None  # a handler's wait, left to the reader
        self._waiter: asyncio.Future[None] | None = None
        self._joiners: list[asyncio.Future[None]] = []
        # nats-py: a limit of 0 means none.
        msgs_limit, bytes_limit = private.pending_limits(sub)
        self._msgs_limit = msgs_limit or _NO_LIMIT
        self._bytes_limit = bytes_limit or _NO_LIMIT
        self._adopt(private.take_queued(sub))
        private.set_pending_queue(sub, self)  # see the class docstring
        # From here on the parser's messages for this subscription come to deliver().
        self._router.sinks[private.subscription_id(sub)] = self

    def _adopt(self, queued: list[Msg]) -> None:
        """Take over what nats-py queued before the route existed (its bytes are already counted)."""
        self._items.extend((msg.subject.encode(), msg.headers, msg.data) for msg in queued)

    def deliver(self, subject: bytes, headers: bytes | None, data: bytes) -> bool:
        """Take a message from the parser; False when the pending limits say drop it.

        With nothing queued and the reader idle, the message is handled at once,
        in the read loop (no queue, no wake-up); if the handler must wait, the
        reader waits for it, and later messages queue behind it meanwhile.
        """
        private.count_received(self.sub)
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

    def deliver_run(self, frames: list[Frame], start: int, stop: int) -> list[Frame]:
        """Take ``frames[start:stop]`` from the parser, as :meth:`deliver` takes each; returns
        the frames the pending limits drop.

        With nothing queued and the reader idle, the run handler takes them all at once; from
        a message it must wait on, the rest queue behind it.
        """
        run = self._run_handler
        if run is None or self._busy or self._items:
            return [frame for frame in frames[start:stop] if not self.deliver(frame[0], frame[3], frame[4])]
        private.count_received(self.sub, stop - start)
        try:
            waiting = run(frames, start, stop)
        except Exception:  # a bug in the handler must not stop the read loop
            log.exception("ingest handler failed on the messages of a read on %s", self.sub.subject)
            return []
        if waiting is None:
            return []
        self._busy = True
        self._deferred, start = waiting
        self._wake()
        return [frame for frame in frames[start:stop] if not self._queue(frame[0], frame[3], frame[4])]

    def _queue(self, subject: bytes, headers: bytes | None, data: bytes) -> bool:
        sub = self.sub
        size = len(data)
        items = self._items
        held = private.pending_bytes(sub)
        if len(items) + self._held >= self._msgs_limit or held + size >= self._bytes_limit:
            if self._on_shed is not None:
                self._shed(subject, headers, data)
            return False
        private.set_pending_bytes(sub, held + size)
        items.append((subject, headers, data))
        self._wake()
        return True

    def _shed(self, subject: bytes, headers: bytes | None, data: bytes) -> None:
        assert self._on_shed is not None  # noqa: S101 - checked by the caller
        try:
            self._on_shed(subject, headers, data)
        except Exception:  # a bug there must not stop the read loop
            log.exception("ingest shed handler failed on a message on %s", subject.decode(errors="replace"))

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
        self._router.sinks.pop(private.subscription_id(sub), None)
        private.set_pending_bytes(
            sub, private.pending_bytes(sub) - sum(len(data) for _, _, data in self._items)
        )
        self._items.clear()
        private.restore_pending_queue(sub)
        self._busy = False
        self._release_joiners()

    async def _handle(self, items: list[_Item], handler: RawHandler) -> None:
        # The whole burst is taken at once; while a handler waits, what is left of
        # it counts as pending again, as it would in nats-py's queue.
        sub = self.sub
        left, left_bytes = len(items), private.pending_bytes(sub)
        private.set_pending_bytes(sub, 0)
        for subject, headers, data in items:
            left -= 1
            left_bytes -= len(data)
            try:
                pending = handler(subject, headers, data)
                if pending is not None:
                    self._held = left
                    private.set_pending_bytes(sub, private.pending_bytes(sub) + left_bytes)
                    try:
                        await pending
                    finally:
                        self._held = 0
                        private.set_pending_bytes(sub, private.pending_bytes(sub) - left_bytes)
            except Exception:  # a bug in the handler must not stop intake
                log.exception("ingest handler failed on a message on %s", subject.decode(errors="replace"))
