"""Durable ingest's pull requests, issued by hand and read on the ingest fast path.

nats-py's ``fetch`` costs a task and a uuid per request, a ``Msg`` per message, the generic
header parser, and the metadata parse (a ``datetime`` per message) before the gateway does
any work. Here the reader asks the consumer itself: a request
``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`` with the JSON body ``{"batch": N,
"expires": ns, "idle_heartbeat": ns}``, its reply subject ``<inbox>.<n>`` or ``<inbox>.1.<n>``
(a new ``n`` for each request) on one of two wildcard subscriptions served by
:func:`gateway.ingest.fastpath.route_inbox`: the frames (``(subject, sid, reply, header block,
body)``) come straight from the read loop, a run of them per call. A message's
delivery count is read from its ack subject (:func:`gateway.ingest.jsmeta.delivered_count`),
and the ack subject itself is the entry's handle (:class:`gateway.ingest.acks.Acks`).

**Two requests are live at once**, one on each subscription, so the consumer never waits for
the gateway to ask again. (The server serves waiting requests in turn, so their messages
interleave, and delivers each message under its own subject; only the subscription tells which
request a message answers, hence one subscription per live request. Both subscriptions' frames
come to the reader in one run per read.)
A second request goes out only for at least a quarter of ``fetch_batch``.

**The room is a hard bound.** A request asks for at most what is free: ``room()`` less what
was received and not yet handled, less what the live requests may still bring. Each message
counts against the live request of its subscription; when it has all it asked for, or a status
ends it, what it did not bring is free again and the next is sent. A message beyond what was
asked (a request given up after a lost connection that the server served after all) is handed
back at once (nak), so what is held never exceeds the room; it is not received, so it is not
counted.

**Status messages** (``NATS/1.0 <code>`` on the request's own reply subject, so a late one
for an earlier request is told apart and ignored); the rules are in
:func:`gateway.ingest.jsmeta.action_of`:

- 100 Idle Heartbeat: the request is alive; its local deadline moves on. A request living
  0.5 s or more asks for one every quarter of its life (the server allows at most half), so
  a lost request is noticed after three missed. 100 with a reply (flow control, which pull
  consumers do not send) is answered all the same.
- 404 No Messages, 408 Request Timeout: the request ended early; the next follows at once.
- 409: Consumer Deleted: the consumer is made again (``ensure``); if that fails the reader
  dies, logged with its traceback, and health goes down: never a silent stall. Exceeded
  MaxRequestBatch of N / MaxRequestExpires of D: the next requests ask within the limit.
  Consumer is push based: the reader dies (health down). Any other (Leadership Change, Server
  Shutdown, Exceeded MaxWaiting, ...): the request ended; the next follows after a short pause.
- 503 No Responders: no consumer answers (JetStream is electing a leader, or the consumer is
  gone): a short pause, and every third one in a row the consumer is made again if missing.
- 400 Bad Request: the reader dies (health down): asking again would be refused again.

A request whose end never comes (the connection dropped) is given up at its local deadline:
three heartbeats and a quarter second without a message or a heartbeat (without heartbeats,
``expires`` plus half of it plus half a second).

**Why ``AckPolicy.EXPLICIT`` stays.** Several gateways fetch from one consumer; each holds the
messages of its own open batches. ``AckAll`` acks every message up to the one acked, across
the consumer, so one gateway's ack would also ack messages another gateway still holds
unstored, which a crash of that gateway would then lose. ``AckNone`` loses whatever a crash
catches in memory. Explicit acks, one per message, are what make a SIGKILL lose nothing; what
made them costly was the awaited publish per entry, and :class:`gateway.ingest.acks.Acks`
writes a batch's acks in one piece instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from contracts.errors import GatewayError
from gateway.config import DurableIngest
from gateway.ingest import nats_private as private
from gateway.ingest.acks import Settle, commands
from gateway.ingest.fastpath import route_inbox, unroute_inbox
from gateway.ingest.jsmeta import (
    ACK_PREFIX,
    PullAction,
    PullStatus,
    action_of,
    go_duration_s,
    limit_of,
    read_status,
)
from gateway.ingest.wire import Frame
from gateway.logs import RateLimitedLog
from gateway.tasks import Spawn

__all__ = ["FrameHandler", "PullError", "PullReader", "next_subject"]

log = logging.getLogger("log_gateway")

# handler(messages): takes messages (frames whose reply is their ack subject) in order, as
# core ingest's run handler does: None when done with all of them, or (awaitable, next) when
# the message before ``next`` must wait (the block policy, a reject being forwarded); the
# reader waits for it, and the messages from ``next`` on queue behind it.
FrameHandler = Callable[[list[Frame]], tuple[Awaitable[object], int] | None]
_PAUSE_S: Final = 0.2  # before the next request, after one the server refused for now
_CHECK_EVERY: Final = 3  # 503s in a row before the consumer is looked at
_DEPTH: Final = 2  # pull requests live at once (served in turn: one ending leaves one being served)
_HEARTBEAT_FROM_S: Final = 0.5  # requests that live this long ask for idle heartbeats


def _none() -> int:
    return 0


class PullError(GatewayError, RuntimeError):
    """The consumer refused pull requests in a way asking again cannot mend."""

    def __init__(self, status: PullStatus) -> None:
        super().__init__(f"the ingest consumer refused a pull request: {status.code} {status.description}")
        self.status = status


def next_subject(stream: str, durable: str) -> str:
    """Where pull requests for ``durable`` on ``stream`` go (the default JetStream API prefix)."""
    return f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"


class _End(NamedTuple):
    """How a request ended: what to do next, and the status that said so (None: no status)."""

    action: PullAction
    status: PullStatus | None = None


_FILLED: Final = _End(PullAction.ENDED)  # every message asked for came
_GIVEN_UP: Final = _End(PullAction.RETRY)  # no end came by the local deadline


@dataclass(slots=True)
class _Request:
    subject: bytes
    left: int  # messages asked for and not yet come
    deadline: float  # loop time: given up unless a sign of life (a message, a 100) comes first
    seen: int  # ``left`` when the deadline was last set (fewer left since: messages came)
    number: int  # the n of its reply subject: the order requests were sent in


class _Slot:
    """One reply subscription (``<inbox>.*``, ``<inbox>.<k>.*``) with at most one request live on it.

    JetStream delivers a pull request's messages under their own subjects, so only the
    subscription (the sid) tells which request a message answers; with one subscription per
    live request the count of each is exact, though the server serves waiting requests in turn.
    """

    __slots__ = ("live", "prefix", "sub")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # reply subjects ``<prefix>.<n>``
        self.sub: Subscription | None = None
        self.live: _Request | None = None


class PullReader:
    """Asks the durable consumer for as many messages as there is room for; see the module docstring.

    Args:
        nc: the connection (its fast path supported: see ``fastpath.fast_path_supported``).
        spec: the stream, consumer, request size and expiry.
        handler: takes messages' frames in order (see :data:`FrameHandler`).
        room: how many more entries the buffer takes now.
        wait_room: returns once the buffer may have room again.
        freed: wakes ``wait_room`` (called when a message that waited is done with).
        ensure: makes the stream and the consumer if missing.
        spawn: starts the reader's background task, watched.
        warn: rate-limited warnings.
    """

    def __init__(
        self,
        nc: Client,
        spec: DurableIngest,
        handler: FrameHandler,
        *,
        room: Callable[[], int],
        wait_room: Callable[[Callable[[], int]], Awaitable[None]],
        freed: Callable[[], None],
        ensure: Callable[[], Awaitable[object]],
        spawn: Spawn,
        warn: RateLimitedLog,
    ) -> None:
        self._nc, self._next, self._handler = nc, next_subject(spec.stream, spec.durable), handler
        self._room, self._wait_room, self._freed = room, wait_room, freed
        self._ensure, self._spawn, self._warn = ensure, spawn, warn
        # (409s may lower them; the server refuses a batch above the consumer's max_ack_pending)
        self.max_batch = min(spec.fetch_batch, spec.max_ack_pending)
        self.expires_s = spec.fetch_timeout_s
        self._inbox, self._seq = "", 0
        self._slots: list[_Slot] = []
        self._slot_of: dict[int, _Slot] = {}  # by the sid of its subscription
        self._frames_handler = self._on_frames  # (one object for every slot: see fastpath.route_inbox)
        self._coming = 0  # asked for by the live requests and not yet come
        self._ended: deque[_End] = deque()  # requests ended in the read loop, for run() to act on
        self._change: asyncio.Future[None] | None = None  # run() waits on it
        self._unhandled = 0  # received, not yet done with by the handler
        self._queue: deque[Frame] = deque()  # received while the handler waits, in order
        self._busy = False  # the drainer holds a message the handler waits on
        self._waiting: Awaitable[object] | None = None
        self._wake, self._idle = asyncio.Event(), asyncio.Event()  # (a message to wait on; none held)
        self._idle.set()
        self._unavailable = 0  # 503s in a row
        self._stopping = False
        self._failure: Exception | None = None  # a bug the reader's task dies of
        self.asked = self.received = self.returned = 0  # messages asked for, come, handed back
        self.ends: Counter[str] = Counter()  # how requests ended: "filled", "given_up" or the status code
        self.heartbeats = self.requests = 0  # 100 statuses on a live request; pull requests sent
        self._tasks: set[asyncio.Task[None]] = set()
        self._drainer: asyncio.Task[None] | None = None

    @property
    def inbox(self) -> str:
        """The prefix of the requests' reply subjects (``<inbox>.<n>``), once started."""
        return self._inbox

    @property
    def live_subject(self) -> str | None:
        """The reply subject of the oldest request waiting now, if one is."""
        live = [slot.live for slot in self._slots if slot.live is not None]
        return min(live, key=lambda request: request.number).subject.decode() if live else None

    def free(self) -> int:
        """How many messages the next request may ask for: the room, less what was received and
        not yet handled, less what the live requests may still bring."""
        return self._room() - self._unhandled - self._coming

    def counts(self) -> dict[str, int]:
        """The reader's counters (for /metrics and stats): requests, messages, statuses by code."""
        ends = {f"ended_{how}": n for how, n in sorted(self.ends.items())}
        return {
            "requests": self.requests,
            "asked": self.asked,
            "received": self.received,
            "returned": self.returned,
            "heartbeats": self.heartbeats,
            **ends,
        }

    async def start(self) -> None:
        """Subscribe the reply inboxes on the fast path (one per request live at once) and start
        the drainer."""
        self._inbox = self._nc.new_inbox()
        for k in range(_DEPTH):
            slot = _Slot(self._inbox if k == 0 else f"{self._inbox}.{k}")
            slot.sub = await self._nc.subscribe(f"{slot.prefix}.*")
            self._slot_of[private.subscription_id(slot.sub)] = slot
            route_inbox(self._nc, slot.sub, self._frames_handler)
            self._slots.append(slot)
        self._drainer = self._spawn(self._drain(), name="intake:durable-drain")
        self._tasks.add(self._drainer)

    async def run(self) -> None:
        """Ask and hand over until :meth:`stop`; requests in progress are finished, not abandoned.

        Up to ``_DEPTH`` requests are live at once: the next is waiting on the server before the
        current one is drained, so the consumer never waits for the gateway to ask.
        """
        loop = asyncio.get_running_loop()
        while not self._stopping or self._ended or self._live_count():
            if self._failure is not None:
                raise self._failure
            while self._ended:
                await self._after(self._ended.popleft())
            self._expire(loop.time())
            if self._stopping:  # (no new request: wait for the live ones to end)
                if self._live_count():
                    await self._wait(loop, room=False)
                continue
            want, idle = min(self.free(), self.max_batch), self._idle_slot()
            if idle is not None and want > 0 and (not self._live_count() or want * 4 >= self.max_batch):
                await self._request(idle, want)  # (a small request only when none is live)
            elif self._live_count():
                await self._wait(loop, room=idle is not None)
            else:
                await self._wait_room(self.free)

    def stop(self) -> None:
        """Ask no more; the requests in progress end within ``fetch_timeout_s``."""
        self._stopping = True
        self._changed()

    async def handled(self) -> None:
        """Return once every message received so far is done with by the handler."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop serving the inbox; unacknowledged messages go back after ``ack_wait_s``."""
        writes = [task for task in self._tasks if task is not self._drainer]
        if writes:  # (naks just written go out, so their messages come back at once)
            await asyncio.wait(writes, timeout=1.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for slot in self._slots:
            if slot.sub is None:
                continue
            unroute_inbox(self._nc, slot.sub)
            try:
                await slot.sub.unsubscribe()
            except NatsError as exc:
                log.debug("unsubscribing the pull inbox failed: %r", exc)

    # -- requests -------------------------------------------------------------

    async def _request(self, slot: _Slot, want: int) -> None:
        """Send one request for ``want`` messages on ``slot``; its end comes to :meth:`_end`."""
        loop = asyncio.get_running_loop()
        self._seq += 1
        subject = f"{slot.prefix}.{self._seq}"
        heartbeat = self._heartbeat_s()
        body = b'{"batch":%d,"expires":%d' % (want, int(self.expires_s * 1e9))
        body += b',"idle_heartbeat":%d}' % int(heartbeat * 1e9) if heartbeat else b"}"
        request = _Request(subject.encode(), want, loop.time() + self._silence_s(), want, self._seq)
        slot.live = request
        self._coming += want
        self.asked += want
        self.requests += 1
        try:
            await self._nc.publish(self._next, body, reply=subject)
        except NatsError as exc:  # reconnecting: ask again shortly
            self._warn.warning("pull", "a pull request to the ingest consumer failed: %r", exc)
            self._end(slot, request, _GIVEN_UP)

    def _heartbeat_s(self) -> float:
        """The idle heartbeat asked for (the server wants it at most half the expiry); 0 for none."""
        return min(self.expires_s / 4, 5.0) if self.expires_s >= _HEARTBEAT_FROM_S else 0.0

    def _silence_s(self) -> float:
        """How long a live request may say nothing (no message, no 100) before it is given up:
        three heartbeats and a little, or, without heartbeats, its expiry and half again."""
        heartbeat = self._heartbeat_s()
        return 3 * heartbeat + 0.25 if heartbeat else self.expires_s * 1.5 + 0.5

    def _live_count(self) -> int:
        return sum(slot.live is not None for slot in self._slots)

    def _idle_slot(self) -> _Slot | None:
        return next((slot for slot in self._slots if slot.live is None), None)

    def _end(self, slot: _Slot, request: _Request, how: _End) -> None:
        """``request`` ended (filled, a status, given up): what it still may bring is not counted."""
        if slot.live is not request:
            return
        slot.live = None
        self._coming -= request.left
        self._ended.append(how)
        self._changed()

    def _changed(self) -> None:
        """Wake :meth:`run` (a request ended, the reader stops, or a bug)."""
        if self._change is not None and not self._change.done():
            self._change.set_result(None)

    def _expire(self, now: float) -> None:
        """Give up the live requests silent past their deadline; move on those that made progress."""
        for slot in self._slots:
            request = slot.live
            if request is None or request.deadline > now:
                continue
            if request.left < request.seen:  # (messages came: it is alive)
                request.seen, request.deadline = request.left, now + self._silence_s()
            else:
                self._end(slot, request, _GIVEN_UP)

    async def _wait(self, loop: asyncio.AbstractEventLoop, *, room: bool) -> None:
        """Until a request ends, the earliest deadline passes, or (``room``) the buffer frees room."""
        change = self._change = loop.create_future()
        waits: list[asyncio.Future[None]] = [change]
        if room:  # (returns on the next freed(): then run() looks at free() again)
            waits.append(asyncio.ensure_future(self._wait_room(_none)))
        deadlines = [slot.live.deadline for slot in self._slots if slot.live is not None]
        timeout = max(0.0, min(deadlines) - loop.time()) if deadlines else None
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._change = None
            for wait in waits[1:]:
                wait.cancel()

    async def _after(self, end: _End) -> None:
        """Act on how a request ended, before the next one."""
        action, status = end
        self.ends[str(status.code) if status else "filled" if end is _FILLED else "given_up"] += 1
        if action is not PullAction.UNAVAILABLE:
            self._unavailable = 0
        if action is PullAction.ENDED:
            return
        if action is PullAction.FATAL:
            if status is None:  # (a bug on the way to the handler: see _fail)
                return
            raise PullError(status)
        if action is PullAction.CONSUMER_GONE:
            log.warning("the ingest consumer was deleted; making it again")
            await self._ensure()  # (if that fails the reader dies: health goes down)
            return
        if action in (PullAction.SHRINK_BATCH, PullAction.SHRINK_EXPIRES):
            assert status is not None  # noqa: S101 - both come from a status only
            self._shrink(action, status)
            return
        if action is PullAction.UNAVAILABLE:
            await self._unanswered()
        elif status is not None:
            self._warn.warning("pull", "the ingest consumer ended a pull request: %d %s", *status)
        else:
            self._warn.warning("pull", "a pull request got no end by its deadline; asking again")
        await asyncio.sleep(_PAUSE_S)

    def _shrink(self, action: PullAction, status: PullStatus) -> None:
        """Ask within a limit the consumer set (``Exceeded MaxRequestBatch of 5``)."""
        limit = limit_of(status) or ""
        if action is PullAction.SHRINK_BATCH:  # (no limit named: Exceeded MaxAckPending)
            named = int(limit) if limit.isdigit() and int(limit) > 0 else 0
            self.max_batch = min(self.max_batch, named) if named else max(1, self.max_batch // 2)
        elif seconds := go_duration_s(limit):
            self.expires_s = min(self.expires_s, seconds * 0.9)
        else:
            self.expires_s = max(0.01, self.expires_s / 2)
        log.warning(
            "the ingest consumer limits pull requests (%s): asking for %d at most, for %g s",
            status.description,
            self.max_batch,
            self.expires_s,
        )

    async def _unanswered(self) -> None:
        """503: nobody answers the request; every few in a row, make sure the consumer exists."""
        self._unavailable += 1
        self._warn.warning("pull", "no ingest consumer answers pull requests (503); asking again")
        if self._unavailable % _CHECK_EVERY == 0:
            try:
                await self._ensure()
            except NatsError as exc:  # JetStream itself is away: keep asking
                self._warn.warning("pull-ensure", "could not check the ingest consumer: %r", exc)

    # -- frames, in the read loop ----------------------------------------------

    def _on_frames(self, frames: list[Frame], start: int, stop: int) -> None:
        """The frames of one read for the slots' inboxes, in the read loop, in order: statuses
        and messages (their reply is an ack subject), the messages handed over in one call.

        Nothing raised here reaches the read loop, which serves the whole connection: a bug goes
        to :meth:`_fail`, which takes the reader down; the messages left in the run stay
        unacknowledged, and come again after ``ack_wait_s``.
        """
        try:
            messages = self._count(frames, start, stop)
            if not messages:
                return
            if self._busy or self._queue:  # (behind the one the handler waits on)
                self._unhandled += len(messages)
                self._queue.extend(messages)
                return
            if (waiting := self._handler(messages)) is None:
                return
            pending, after = waiting
            self._unhandled += 1 + len(messages) - after
            self._queue.extend(messages[after:])
            self._busy = True
            self._idle.clear()
            self._waiting = pending
            self._wake.set()
        except Exception as exc:  # noqa: BLE001 - a bug: raised in the reader (see _fail)
            self._fail(exc)

    def _count(self, frames: list[Frame], start: int, stop: int) -> list[Frame]:
        """The messages among ``frames[start:stop]``, each counted against its slot's request;
        statuses acted on, and a message no request waits for handed back. (This loop runs once
        per entry.)"""
        slot_of, messages = self._slot_of, []
        try:
            for frame in frames[start:stop]:
                slot, reply = slot_of[frame[1]], frame[2]
                if not reply.startswith(ACK_PREFIX):
                    self._status(slot, frame[0], reply, frame[3])
                    continue
                request = slot.live
                if request is None or request.left <= 0:
                    self._hand_back(reply)
                    continue
                request.left -= 1
                if request.left == 0:
                    self._end(slot, request, _FILLED)
                messages.append(frame)
        finally:  # (also when a bug stops the loop: what was counted against a request stays so)
            self._coming -= len(messages)
            self.received += len(messages)
        return messages

    def _call(self, frame: Frame) -> Awaitable[object] | None:
        """The handler on one message; None once done with it (counted so), else what it waits on."""
        try:
            waiting = self._handler([frame])
        except Exception as exc:  # noqa: BLE001 - a bug: raised in the reader (see _fail)
            self._fail(exc)
            waiting = None
        if waiting is None:
            self._unhandled -= 1
            return None
        return waiting[0]

    def _hand_back(self, reply: bytes) -> None:
        """A message beyond what was asked: nak it at once, so the room stays a hard bound."""
        self.returned += 1
        self._warn.warning("pull-excess", "handed back a message no pull request was waiting for")
        self._write_soon(commands([reply], Settle.NAK), 4)

    def _write_soon(self, command: bytes, payload: int) -> None:
        """:meth:`_write` in a task of its own (the read loop never waits), held until it ends."""
        task = asyncio.get_running_loop().create_task(self._write(command, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, command: bytes, payload: int) -> None:
        """Write one PUB (a nak, or a flow-control answer) without waiting in the read loop."""
        try:
            await private.write_commands(self._nc, command, 1, payload)
        except Exception as exc:  # noqa: BLE001 - a lost nak: the message comes back after ack_wait_s
            log.debug("writing to the ingest consumer failed: %r", exc)

    def _status(self, slot: _Slot, subject: bytes, reply: bytes, headers: bytes | None) -> None:
        status = read_status(headers)
        request = slot.live
        if status is None or request is None or subject != request.subject:
            return  # (a late status for a request already ended or given up)
        action = action_of(status, has_reply=bool(reply))
        if action is PullAction.FLOW_CONTROL:
            self._write_soon(b"PUB %s 0\r\n\r\n" % reply, 0)
        if action in (PullAction.ALIVE, PullAction.FLOW_CONTROL):
            self.heartbeats += 1
            request.deadline = asyncio.get_running_loop().time() + self._silence_s()
            return
        self._end(slot, request, _End(action, status))

    def _fail(self, exc: Exception) -> None:
        """A bug on a message's way to the handler (the handler catches what a message can cause):
        raised in the reader's task, which dies of it, logged with its traceback, and takes health
        down, as nats-py's fetch loop did. Its message, and the rest of its run, are left
        unacknowledged (redelivered after ``ack_wait_s``); the read loop, which serves the whole
        connection, goes on."""
        if self._failure is None:
            self._failure = exc
        for slot in self._slots:
            if slot.live is not None:
                self._end(slot, slot.live, _End(PullAction.FATAL))
        self._changed()
        self._freed()  # (a reader waiting for room looks again, and finds the failure)

    # -- the drainer -----------------------------------------------------------

    async def _drain(self) -> None:
        """Wait on what the handler waits on, then hand over what queued meanwhile, in order."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if (waiting := self._waiting) is not None:
                self._waiting = None
                await self._finish(waiting)
            while self._queue:
                if (pending := self._call(self._queue.popleft())) is not None:
                    await self._finish(pending)
            self._busy = False
            self._idle.set()

    async def _finish(self, pending: Awaitable[object]) -> None:
        try:
            await pending
        except Exception as exc:  # noqa: BLE001 - a bug: raised in the reader (see _fail)
            self._fail(exc)
        self._unhandled -= 1
        self._freed()
