"""Core NATS ingest: queue-group subscriptions on the entry subjects, read on the fast path.

Core NATS cannot slow a publisher down: what the gateway cannot take is
dropped somewhere, and here it is counted (``slow_consumer`` when nats-py's
pending limits drop it before the gateway sees it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from nats.aio.client import Client
from nats.aio.subscription import Subscription

from contracts.errors import DecodeError, RejectReason
from gateway.core.accumulator import ACCEPTED, BLOCKED, DROPPED, OVERSIZE, Admission
from gateway.core.entry import PendingEntry
from gateway.core.stats import Stats
from gateway.ingest.admission import Gate
from gateway.ingest.decode import EntryDecoder, might_alert
from gateway.ingest.fastpath import Headers, subscribe_fast
from gateway.ingest.reject import Rejects, oversize
from gateway.ingest.wire import Frame
from gateway.tasks import Spawn
from publishers.roundtrip import server_has_read

__all__ = ["CoreIntake"]


class CoreIntake:
    """Subscribes, decodes and admits each message; drains the subscriptions at stop.

    Args:
        nc: the connection ingest subscribes on.
        subjects: the entry subjects.
        queue: the queue group gateways share.
        decoder: message -> entry.
        gate: admission into the batch pipeline.
        rejects: where rejected and failed messages are counted and forwarded.
        stats: ``received`` is counted here.
        pending_msgs_limit, pending_bytes_limit: nats-py's per-subscription limits.
        spawn: starts the readers, watched (a reader that dies takes health down).
    """

    def __init__(
        self,
        nc: Client,
        subjects: tuple[str, ...],
        *,
        queue: str,
        decoder: EntryDecoder,
        gate: Gate,
        rejects: Rejects,
        stats: Stats,
        pending_msgs_limit: int,
        pending_bytes_limit: int,
        spawn: Spawn,
    ) -> None:
        self._nc = nc
        self._spawn = spawn
        self._subjects = subjects
        self._queue = queue
        self.decoder = decoder
        self._gate = gate
        self._rejects = rejects
        self._stats = stats
        self._limits = (pending_msgs_limit, pending_bytes_limit)
        self.subscriptions: list[Subscription] = []
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Subscribe to every entry subject; messages flow from here on."""
        msgs, size = self._limits
        for subject in self._subjects:
            sub, reader = await subscribe_fast(
                self._nc,
                subject,
                queue=self._queue,
                handler=self.on_message,
                pending_msgs_limit=msgs,
                pending_bytes_limit=size,
                on_shed=self.on_shed,
                run_handler=self.on_frames,
                spawn=self._spawn,
            )
            self.subscriptions.append(sub)
            if reader is not None:
                self._readers.append(reader)
        await server_has_read(self._nc)  # (subscribed once the server has the SUBs)

    def on_message(self, subject: bytes, headers: Headers, body: bytes) -> Awaitable[None] | None:
        """Take one message; synchronous unless it must wait (block policy) or be forwarded.

        ``headers`` is the raw NATS header block on the fast path (see ``gateway.ingest.fastpath``).
        """
        self._stats.received += 1
        try:
            entry = self.decoder.decode(headers, body)
        except DecodeError as exc:
            return self._rejects.reject(subject, headers, body, exc.reason, exc.detail)
        except Exception:  # noqa: BLE001 - a bug on one message must neither stop ingest nor go uncounted
            self._rejects.failed(subject)
            return None
        admission = self._gate.admit(entry)
        if admission is ACCEPTED or admission is DROPPED:
            return None
        return self._not_admitted(subject, headers, body, entry, admission)

    def on_frames(self, frames: list[Frame], start: int, stop: int) -> tuple[Awaitable[None], int] | None:
        """Take the messages of one read (``frames[start:stop]``), each as :meth:`on_message`
        takes it, in one loop; from the first that must wait, the fast path queues the rest."""
        stats, decode, offer = self._stats, self.decoder.decode, self._gate.offer
        for index in range(start, stop):
            subject, _, _, headers, body = frames[index]
            try:
                admission = offer(entry := decode(headers, body))
            except DecodeError as exc:
                stats.received += index + 1 - start
                return self._rejects.reject(subject, headers, body, exc.reason, exc.detail), index + 1
            except Exception:  # noqa: BLE001 - a bug on one message must neither stop ingest nor go uncounted
                self._rejects.failed(subject)
                continue
            if admission is not ACCEPTED:
                if admission is DROPPED:
                    self._gate.dropped()
                    continue
                stats.received += index + 1 - start
                return self._not_admitted(subject, headers, body, entry, admission), index + 1
        stats.received += stop - start
        return None

    def _not_admitted(
        self, subject: bytes, headers: Headers, body: bytes, entry: PendingEntry, admission: Admission
    ) -> Awaitable[None]:
        """Wait for room (BLOCKED), or reject an entry too large for any batch (OVERSIZE)."""
        if admission is BLOCKED:
            return self._admit_blocked(subject, headers, body, entry)
        return self._rejects.reject(subject, headers, body, RejectReason.OVERSIZE, oversize(len(entry.data)))

    async def _admit_blocked(
        self, subject: bytes, headers: Headers, body: bytes, entry: PendingEntry
    ) -> None:
        """Wait for room; an entry a live change made too big while it waited is rejected, not lost."""
        if await self._gate.admit_blocking(entry) is OVERSIZE:
            detail = oversize(len(entry.data))
            await self._rejects.reject(subject, headers, body, RejectReason.OVERSIZE, detail)

    def on_shed(self, subject: bytes, headers: Headers, body: bytes) -> None:
        """A message shed at the pending limits (counted there as ``slow_consumer``): if it may be
        an error or fatal entry, decode it, so the pattern detector sees it and alerts still go
        out while bulk traffic is shed. It is not batched."""
        if not (self.decoder.alerting and might_alert(body)):
            return
        with contextlib.suppress(DecodeError):
            self.decoder.decode(headers, body)

    async def stop(self, deadline_s: float) -> None:
        """Drain the subscriptions (every message received is handled) within ``deadline_s``."""
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline_s
        for sub in self.subscriptions if self._nc.is_connected else ():  # draining needs the server
            with contextlib.suppress(Exception):
                # nats-py leaves Subscription.drain unannotated.
                await asyncio.wait_for(sub.drain(), max(0.01, until - loop.time()))  # type: ignore[no-untyped-call]
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
