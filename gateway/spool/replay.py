"""The spool at the edge: batches the bus would not take go to disk, and come back in order.

:class:`gateway.spool.store.Spool` stores records; this module decides when.
A batch whose publish failed for a transient reason until its retry deadline
is appended; while anything is spooled, newer batches queue behind it on disk
too, so the stream receives batches in the order they were made. A replay task
publishes the oldest record with its original headers (``Nats-Msg-Id``
included, so JetStream's duplicate window drops a record it already stored)
and removes it only once acknowledged, backing off while the bus is away.

When the spool is full the gateway's overflow policy applies: ``block`` waits
for replay to make room, ``drop_newest`` drops the batch being spooled,
``drop_oldest`` drops the oldest spooled records; either drop is counted under
``spool_full``. Disk I/O runs on the event loop: the spool is written only
while the bus is away, when throughput is gated by the bus anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.config import SpoolConfig
from gateway.core.limits import DropReason, OverflowPolicy
from gateway.core.stats import Stats
from gateway.spool.store import Spool, SpoolCorruptError, SpoolError, SpoolFullError, SpoolRecord

__all__ = ["PublishRecord", "Spooler", "open_spool"]

log = logging.getLogger("log_gateway")

PublishRecord = Callable[[SpoolRecord], Awaitable[object]]


def open_spool(config: SpoolConfig) -> Spool:
    """Open (lock, recover) the spool directory.

    Raises:
        SpoolError: it is in use, or cannot be created, read or written.
    """
    try:
        spool = Spool.open(
            config.directory,
            max_bytes=config.max_bytes,
            fsync=config.fsync,
            fsync_interval_s=config.fsync_interval_s,
        )
    except OSError as exc:
        raise SpoolError(f"cannot open the spool directory {config.directory}: {exc}") from exc
    if spool.recovery.corrupt_bytes:
        log.error("spool: cut %d damaged bytes found at start", spool.recovery.corrupt_bytes)
    if spool.cursor_error is not None:
        log.error(
            "spool: cannot write the replay cursor at start (%s); it is written again later",
            spool.cursor_error,
        )
    return spool


class Spooler:
    """Puts batches into the spool and replays them, counting what it does in ``stats``.

    Args:
        spool: the open spool.
        config: backoff and sizes.
        publish: publishes one record (raises on failure).
        stats: ``spooled``, ``replayed`` and ``spool_full`` drops are counted here.
        policy: the overflow policy for a full spool.
    """

    def __init__(
        self,
        spool: Spool,
        config: SpoolConfig,
        publish: PublishRecord,
        stats: Stats,
        policy: OverflowPolicy,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self._config = config
        self._publish = publish
        self._stats = stats
        self._policy = policy
        self._wall_clock = wall_clock
        self._head = asyncio.Lock()  # held while the oldest record is being replayed
        self._changed = asyncio.Event()
        stats.recovered += spool.entries

    def retune(self, policy: OverflowPolicy) -> None:
        """The overflow policy for a full spool, from the next batch spooled on."""
        self._policy = policy

    @property
    def backlog(self) -> bool:
        """Is anything spooled? New batches then queue behind it."""
        return self.spool.records > 0

    def record(self, subject: str, headers: dict[str, str], body: bytes, entries: int) -> SpoolRecord:
        """A record of a message, stamped now."""
        return SpoolRecord(subject, dict(headers), body, entries, self._wall_clock())

    async def put(self, record: SpoolRecord) -> bool:
        """Spool ``record`` under the overflow policy; False when it was dropped (counted)."""
        while True:
            try:
                self._append(record)
            except SpoolFullError as exc:
                if not await self._make_room(record, exc):
                    return False
            except OSError as exc:
                self._failed(record.entries, exc)
                return False
            else:
                return True

    def put_nowait(self, record: SpoolRecord) -> bool:
        """Spool ``record`` now, or count it dropped (shutdown cannot wait for room)."""
        try:
            self._append(record)
        except SpoolFullError as exc:
            self._stats.drop(DropReason.SPOOL_FULL, record.entries)
            problem: Exception = exc
        except OSError as exc:
            self._failed(record.entries, exc)
            return False
        else:
            return True
        log.error("could not spool a batch of %d entries: %s", record.entries, problem)
        return False

    def _failed(self, entries: int, exc: Exception) -> None:
        self._stats.drop(DropReason.SPOOL_FAILED, entries)
        log.error("the spool failed; %d entries lost: %s", entries, exc)

    def _append(self, record: SpoolRecord) -> None:
        self.spool.append(record)
        self._stats.spooled += record.entries
        self._changed.set()

    async def _make_room(self, record: SpoolRecord, full: SpoolFullError) -> bool:
        if self._policy is OverflowPolicy.DROP_NEWEST or Spool.framed_size(record) > self._config.max_bytes:
            self._stats.drop(DropReason.SPOOL_FULL, record.entries)
            log.error("spool full (%d of %d bytes): dropped the newest batch", full.size, full.limit)
            return False
        if self._policy is OverflowPolicy.BLOCK:
            self._changed.clear()
            await self._changed.wait()
            return True
        async with self._head:  # never drop the record a replay is publishing right now
            oldest = self._oldest()
            if oldest is not None:
                self.spool.commit()
                self._stats.drop(DropReason.SPOOL_FULL, oldest.entries)
                log.error("spool full: dropped its oldest batch (%d entries)", oldest.entries)
        return True

    def _oldest(self) -> SpoolRecord | None:
        """The oldest record, skipping (and counting) any damaged on disk since it was written."""
        while True:
            try:
                return self.spool.peek()
            except SpoolCorruptError as exc:
                self.spool.commit()
                self._failed(exc.entries, exc)

    async def run(self) -> None:
        """Replay until cancelled: oldest first, removed once acknowledged, backing off on failure."""
        backoff = 0.05
        while True:
            if not self.backlog:
                self._changed.clear()
                await self._idle()
                continue
            if await self._replay_oldest():
                backoff = 0.05
                continue
            await asyncio.sleep(backoff)  # the bus is away: ask again later
            backoff = min(backoff * 2, self._config.replay_backoff_max_s)

    async def _idle(self) -> None:
        """Wait for a record; meanwhile, while the cursor on disk is behind, try to write it again."""
        if self.spool.cursor_error is None:
            await self._changed.wait()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), self._config.replay_backoff_max_s)
        owed = self.spool.cursor_error
        with contextlib.suppress(OSError):
            self.spool.sync()
        self._said_cursor(owed)

    async def _replay_oldest(self) -> bool:
        async with self._head:
            record = self._oldest()
            if record is None:
                return True
            try:
                await self._publish(record)
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"; the record stays
                log.debug("replaying a spooled batch failed: %r", exc)
                return False
            self._commit()
            self._stats.replayed += record.entries
            self._stats.published += record.entries
            self._changed.set()
            return True

    def _commit(self) -> None:
        """Consume the record just replayed; a disk that fails here cannot undo the publish."""
        owed = self.spool.cursor_error
        try:
            self.spool.commit()
        except OSError as exc:  # consumed all the same: only forcing it to disk failed
            why = "spool: could not sync after a replayed batch (it may come again after a crash): %r"
            log.error(why, exc)  # noqa: TRY400 - the reason is enough; not a bug
        self._said_cursor(owed)

    def _said_cursor(self, owed: OSError | None) -> None:
        """Log when the cursor on disk falls behind (a full disk) and when it is written again."""
        now = self.spool.cursor_error
        if now is not None and owed is None:
            log.error(
                "spool: cannot write the replay cursor (%s); replay goes on, and after a crash "
                "batches since the last cursor come again (same Nats-Msg-Id)",
                now,
            )
        elif now is None and owed is not None:
            log.warning("spool: the replay cursor is written again")

    def age_s(self) -> float:
        """Seconds since the oldest spooled record was written (0 when empty)."""
        oldest = self.spool.oldest_spooled_at()
        return 0.0 if oldest is None else max(0.0, self._wall_clock() - oldest)

    def close(self) -> None:
        """Force what is pending to disk and release the directory."""
        with contextlib.suppress(OSError):
            self.spool.sync()
        self.spool.close()
