"""A local append-only spool on disk for batches the bus could not take in time.

When a batch cannot be published within its retry deadline the gateway appends
it here instead of dropping it, and replays it, oldest first and with its
original ``Nats-Msg-Id``, once the bus answers again, also after a restart.
This module is pure: the filesystem only, no asyncio, no NATS. It blocks on
disk I/O (and fsync), and one :class:`Spool` is not safe for concurrent use:
call it from one thread at a time.

On disk (one directory per spool, format version 1)::

    lock                   flock'ed while open, holds the owner's pid
    cursor                 {"segment": S, "offset": O}: the next unconsumed record
    00000000000000000007.seg, ...   segments, appended to in sequence order

A segment is a run of frames::

    version u8 | payload length u32 | CRC32(version, length, payload) u32 | payload
    payload = meta length u32 | orjson [subject, headers, entries, spooled_at] | body

Integers are big-endian. Records are appended to the newest segment until the
next one would take it past ``segment_bytes`` (a record larger than that gets
a segment of its own); consuming the last record of a segment deletes it, and
an empty spool keeps no segment file. ``max_bytes`` caps the unconsumed
records; the files may hold up to one segment more (the consumed start of the
oldest segment).

Crash guarantees:

- A crash mid-append leaves a torn frame at the end of the newest segment. On
  open every frame after the cursor is checked (length, CRC, decoding); from
  the first bad one the segment is truncated, and the bytes cut are counted in
  :attr:`RecoveryReport.corrupt_bytes`. Open never raises for damaged data.
  Records that followed a damaged frame in the same segment are lost with it
  (their bytes are in that count; how many records they were cannot be known);
  later segments are unaffected.
- A failed append (disk full) truncates its partial frame away and raises.
- The cursor is replaced atomically (write a temporary file, rename). Segments
  a commit used up are deleted *before* the cursor is written, so a full disk
  gets their room back for it; that is safe because a cursor naming a missing
  segment means "from the start of the next one", exactly where the records
  not consumed start. A crash after a record was published but before
  :meth:`Spool.commit` replays that record once more after the restart, under
  the same ``Nats-Msg-Id``: JetStream's duplicate window drops it if it is
  still open, so replay is at least once on disk and exactly once in the
  stream within that window.
- A cursor that cannot be written (disk full) does not stop a commit: the
  record is consumed all the same, :attr:`Spool.cursor_error` says why the
  cursor on disk is behind, and the next commit or :meth:`Spool.sync` writes
  it again. Until then a crash replays the records since the old cursor once
  more (duplicates, never a loss).
- Durability against power loss follows :class:`FsyncPolicy`. ``ALWAYS``
  fsyncs each append and each commit (the cursor's temporary file before the
  rename, then the directory), so neither is lost once the call returns.
  ``INTERVAL`` fsyncs everything pending at most every ``fsync_interval_s``
  (checked on each call; call :meth:`Spool.sync` from a timer to bound it in
  wall time), so a power loss may lose that much. ``NEVER`` leaves it to the
  OS. If a power loss leaves the cursor unreadable, replay restarts from the
  start of the oldest segment (:attr:`RecoveryReport.cursor_reset`): records
  consumed from that segment come again (duplicates, never a loss).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import orjson

from contracts.errors import GatewayError
from gateway.core.limits import FsyncPolicy

__all__ = [
    "FsyncPolicy",
    "RecoveryReport",
    "Spool",
    "SpoolCorruptError",
    "SpoolError",
    "SpoolFullError",
    "SpoolLockedError",
    "SpoolRecord",
]

_VERSION = 1
_PREFIX = struct.Struct(">BI")  # format version, payload length
_CRC = struct.Struct(">I")
_HEADER_BYTES = _PREFIX.size + _CRC.size
_META = struct.Struct(">I")
_SEGMENT_NAME = re.compile(r"\d{20}\.seg")
_CURSOR = "cursor"
_CURSOR_TMP = "cursor.tmp"
_LOCK = "lock"


class SpoolError(GatewayError):
    """Root of the spool's errors; raised as itself for misuse (a closed spool, commit when empty)."""


class SpoolFullError(SpoolError):
    """A record does not fit: the spool would hold more than its ``max_bytes``.

    Attributes:
        size: bytes the spool would hold with the record (its frame included).
        limit: the spool's ``max_bytes``.
        record_bytes: the record's framed size on disk.
    """

    def __init__(self, *, size: int, limit: int, record_bytes: int) -> None:
        self.size = size
        self.limit = limit
        self.record_bytes = record_bytes
        super().__init__(f"spool full: {size} bytes with this {record_bytes}-byte record, limit {limit}")


class SpoolLockedError(SpoolError):
    """Another open spool (in this or another process) holds the directory's lock."""

    def __init__(self, directory: Path, holder: str) -> None:
        self.directory = directory
        self.holder = holder
        super().__init__(f"spool directory {directory} is in use by another spool (pid {holder})")


class SpoolCorruptError(SpoolError, ValueError):
    """A record that was intact when spooled no longer reads back (damaged on disk while open).

    ``commit()`` skips it; count its ``entries`` as lost.

    Attributes:
        path: the segment file.
        offset: where the record's frame starts in it.
        entries: log entries the record carried (known from when it was spooled).
    """

    def __init__(self, path: Path, offset: int, entries: int, detail: str) -> None:
        self.path = path
        self.offset = offset
        self.entries = entries
        super().__init__(f"damaged spool record ({entries} entries) in {path} at byte {offset}: {detail}")


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled message: what to publish again, and what it counts for.

    Attributes:
        subject: the subject to publish to.
        headers: the message's headers, ``Nats-Msg-Id`` among them.
        body: the message's payload.
        entries: how many log entries the message carries (0 for others).
        spooled_at: wall-clock epoch seconds when it was spooled (for age).
    """

    subject: str
    headers: dict[str, str]
    body: bytes
    entries: int
    spooled_at: float

    def __post_init__(self) -> None:
        if not isinstance(self.subject, str) or not self.subject:
            raise ValueError(f"a spooled record needs a non-empty subject, got {self.subject!r}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()):
            raise ValueError("spooled record headers must map str to str")
        if not isinstance(self.body, bytes):
            raise TypeError(f"a spooled record's body must be bytes, got {type(self.body).__name__}")
        if isinstance(self.entries, bool) or not isinstance(self.entries, int) or self.entries < 0:
            raise ValueError(f"entries must be an int of at least 0, got {self.entries!r}")
        if not math.isfinite(self.spooled_at):
            raise ValueError(f"spooled_at must be finite, got {self.spooled_at!r}")


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :meth:`Spool.open` found on disk.

    Attributes:
        records: unconsumed records recovered.
        corrupt_bytes: bytes truncated from torn or damaged segment tails.
        damaged_segments: segments that were truncated.
        cursor_reset: the cursor was unreadable; replay restarts at the oldest segment's start.
    """

    records: int = 0
    corrupt_bytes: int = 0
    damaged_segments: int = 0
    cursor_reset: bool = False


@dataclass(slots=True)
class _Segment:
    seq: int
    size: int  # bytes of valid frames, consumed or not


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where one unconsumed record lies, and what it counts for."""

    seq: int
    offset: int
    size: int
    entries: int
    spooled_at: float


@dataclass(frozen=True, slots=True)
class _Recovered:
    segments: list[_Segment]
    slots: list[_Slot]
    next_seq: int
    report: RecoveryReport


# -- frames ------------------------------------------------------------------


def _encode(record: SpoolRecord) -> bytes:
    """The record's frame, checksum included."""
    meta = orjson.dumps([record.subject, record.headers, record.entries, record.spooled_at])
    payload = b"".join((_META.pack(len(meta)), meta, record.body))
    prefix = _PREFIX.pack(_VERSION, len(payload))
    return b"".join((prefix, _CRC.pack(zlib.crc32(payload, zlib.crc32(prefix))), payload))


def _decode(frame: bytes) -> SpoolRecord:
    """The record in a whole frame; ``ValueError`` if it is damaged."""
    prefix, payload = frame[: _PREFIX.size], frame[_HEADER_BYTES:]
    (crc,) = _CRC.unpack_from(frame, _PREFIX.size)
    if crc != zlib.crc32(payload, zlib.crc32(prefix)):
        raise ValueError("checksum mismatch")
    try:
        (meta_len,) = _META.unpack_from(payload)
        subject, headers, entries, spooled_at = orjson.loads(payload[_META.size : _META.size + meta_len])
        record = SpoolRecord(subject, headers, payload[_META.size + meta_len :], entries, spooled_at)
    except (struct.error, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"undecodable record: {exc}") from exc
    return record


def _read_frame(fd: int, offset: int, end: int) -> tuple[SpoolRecord, int]:
    """The record at ``offset`` and its framed size; ``ValueError`` if torn (past ``end``) or damaged."""
    header = os.pread(fd, _HEADER_BYTES, offset)
    if len(header) < _HEADER_BYTES:
        raise ValueError("torn frame header")
    version, length = _PREFIX.unpack_from(header)
    if version != _VERSION:
        raise ValueError(f"unknown frame version {version}")
    if offset + _HEADER_BYTES + length > end:
        raise ValueError("torn frame")
    frame = header + os.pread(fd, length, offset + _HEADER_BYTES)
    return _decode(frame), len(frame)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


# -- recovery ----------------------------------------------------------------


def _segment_path(directory: Path, seq: int) -> Path:
    return directory / f"{seq:020d}.seg"


def _parse_cursor(raw: bytes) -> tuple[int, int] | None:
    try:
        cursor = orjson.loads(raw)
        seq, offset = cursor["segment"], cursor["offset"]
    except (ValueError, TypeError, KeyError):
        return None
    valid = all(type(n) is int and n >= 0 for n in (seq, offset))
    return (seq, offset) if valid else None


def _read_cursor(directory: Path) -> tuple[int, int, bool]:
    """The persisted cursor (segment, offset) and whether it had to be reset."""
    try:
        raw = (directory / _CURSOR).read_bytes()
    except FileNotFoundError:
        return 0, 0, False
    cursor = _parse_cursor(raw)
    return (0, 0, True) if cursor is None else (*cursor, False)


def _scan(fd: int, seq: int, start: int, end: int) -> tuple[list[_Slot], int]:
    """The intact records from ``start`` on, and where the intact data ends."""
    slots: list[_Slot] = []
    offset = start
    while offset < end:
        try:
            record, size = _read_frame(fd, offset, end)
        except ValueError:
            break
        slots.append(_Slot(seq, offset, size, record.entries, record.spooled_at))
        offset += size
    return slots, min(offset, end)


def _recover_segment(directory: Path, seq: int, start: int) -> tuple[_Segment, list[_Slot], int]:
    """One segment's records from ``start``; a damaged tail is truncated and its bytes returned."""
    fd = os.open(_segment_path(directory, seq), os.O_RDWR)
    try:
        end = os.fstat(fd).st_size
        slots, valid = _scan(fd, seq, start, end)
        if valid < end:
            os.ftruncate(fd, valid)
    finally:
        os.close(fd)
    return _Segment(seq, valid), slots, end - valid


def _recover(directory: Path) -> _Recovered:
    """Everything unconsumed on disk, in order, after truncating damaged tails."""
    cursor_seq, cursor_offset, reset = _read_cursor(directory)
    seqs = sorted(int(p.name[:20]) for p in directory.iterdir() if _SEGMENT_NAME.fullmatch(p.name))
    segments: list[_Segment] = []
    slots: list[_Slot] = []
    corrupt = damaged = 0
    for seq in seqs:
        if seq < cursor_seq:  # consumed; its deletion was cut short
            segments.append(_Segment(seq, 0))
            continue
        segment, found, lost = _recover_segment(directory, seq, cursor_offset if seq == cursor_seq else 0)
        segments.append(segment)
        slots.extend(found)
        corrupt += lost
        damaged += lost > 0
    # A new segment must never take the cursor's number while the cursor points into it.
    next_seq = max([cursor_seq + (cursor_offset > 0)] + [s + 1 for s in seqs])
    report = RecoveryReport(len(slots), corrupt, damaged, reset)
    return _Recovered(segments, slots, next_seq, report)


def _lock(directory: Path) -> int:
    """The lock file's descriptor, exclusively flock'ed and stamped with this pid; creates ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / _LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise SpoolLockedError(directory, path.read_text().strip() or "unknown") from exc
    os.ftruncate(fd, 0)
    _pwrite_all(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@dataclass(frozen=True, kw_only=True, slots=True)
class _Options:
    max_bytes: int
    segment_bytes: int
    fsync: FsyncPolicy
    fsync_interval_s: float
    clock: Callable[[], float]

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError(f"spool max_bytes must be at least 1, got {self.max_bytes}")
        if self.segment_bytes < 1:
            raise ValueError(f"spool segment_bytes must be at least 1, got {self.segment_bytes}")
        if not self.fsync_interval_s > 0:
            raise ValueError(f"spool fsync_interval_s must be above 0, got {self.fsync_interval_s}")
        FsyncPolicy(self.fsync)  # a clear ValueError for an unknown policy


# -- the spool ---------------------------------------------------------------


class Spool:
    """A size-capped, crash-safe FIFO of records on disk; see the module docstring.

    Make one with :meth:`Spool.open`. Replay is ``peek()`` then, once the
    record is published, ``commit()``: strictly in order.
    """

    def __init__(self, directory: Path, lock_fd: int, recovered: _Recovered, options: _Options) -> None:
        """Use :meth:`Spool.open`; this takes the directory already locked and recovered."""
        self.directory = directory
        self.max_bytes = options.max_bytes
        self.segment_bytes = options.segment_bytes
        self.policy = FsyncPolicy(options.fsync)
        self.recovery = recovered.report
        self._interval = options.fsync_interval_s
        self._clock = options.clock
        self._lock_fd = lock_fd
        self._segments = deque(recovered.segments)
        self._slots = deque(recovered.slots)
        self._next_seq = recovered.next_seq
        self._size = sum(s.size for s in self._slots)
        self._entries = sum(s.entries for s in self._slots)
        self._fds: dict[int, int] = {}
        self._peeked: SpoolRecord | None = None
        self.cursor_error: OSError | None = None  # why the cursor on disk is behind, while it is
        self._dirty_tail = self._dirty_cursor = self._dirty_dir = False
        self._last_sync = self._clock()
        self._fsyncs = 0
        self._closed = False

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int,
        segment_bytes: int = 8 * 1024 * 1024,
        fsync: FsyncPolicy = FsyncPolicy.ALWAYS,
        fsync_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> Spool:
        """Lock ``directory`` (created if missing) and recover what it holds.

        Args:
            max_bytes: cap on the framed bytes of unconsumed records.
            segment_bytes: size at which appends move on to a new segment file.
            fsync: when writes are forced to stable storage.
            fsync_interval_s: the most time between fsyncs under ``INTERVAL``.
            clock: monotonic seconds, for the ``INTERVAL`` policy.

        Raises:
            SpoolLockedError: another open spool holds the directory.
            ValueError: an option is out of range.
            OSError: the directory cannot be created, read or written.
        """
        options = _Options(
            max_bytes=max_bytes,
            segment_bytes=segment_bytes,
            fsync=fsync,
            fsync_interval_s=fsync_interval_s,
            clock=clock,
        )
        path = Path(directory)
        lock_fd = _lock(path)
        try:
            spool = cls(path, lock_fd, _recover(path), options)
            spool._advance(0)  # persist the normalized position, delete consumed segments
        except BaseException:
            os.close(lock_fd)
            raise
        return spool

    # -- metrics ---------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        """Framed bytes of the unconsumed records on disk."""
        return self._size

    @property
    def records(self) -> int:
        """Unconsumed records."""
        return len(self._slots)

    @property
    def entries(self) -> int:
        """Log entries the unconsumed records carry."""
        return self._entries

    @property
    def recovered_corrupt_bytes(self) -> int:
        """Bytes truncated at open from torn or damaged tails (see :class:`RecoveryReport`)."""
        return self.recovery.corrupt_bytes

    @property
    def fsync_count(self) -> int:
        """fsync calls made since open (segments, cursor and directory)."""
        return self._fsyncs

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._closed

    def oldest_spooled_at(self) -> float | None:
        """``spooled_at`` of the oldest unconsumed record, or ``None`` when empty."""
        return self._slots[0].spooled_at if self._slots else None

    @staticmethod
    def framed_size(record: SpoolRecord) -> int:
        """Bytes ``record`` takes on disk and counts against ``max_bytes``."""
        return len(_encode(record))

    # -- append ----------------------------------------------------------------

    def append(self, record: SpoolRecord) -> None:
        """Add ``record`` at the end; durable on return under ``FsyncPolicy.ALWAYS``.

        Raises:
            SpoolFullError: it would take the spool past ``max_bytes``.
            OSError: the write failed (no partial record is left behind).
        """
        self._check_open()
        frame = _encode(record)
        if self._size + len(frame) > self.max_bytes:
            raise SpoolFullError(size=self._size + len(frame), limit=self.max_bytes, record_bytes=len(frame))
        segment = self._tail_for(len(frame))
        offset = segment.size
        fd = self._fd(segment.seq)
        try:
            _pwrite_all(fd, frame, offset)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, offset)  # leave no torn frame behind the failed append
            raise
        segment.size += len(frame)
        self._slots.append(_Slot(segment.seq, offset, len(frame), record.entries, record.spooled_at))
        self._size += len(frame)
        self._entries += record.entries
        self._dirty_tail = True
        if self._sync_due():
            self._sync()

    def _tail_for(self, frame_bytes: int) -> _Segment:
        """The segment to append to, a new one when the record would overflow the current one."""
        if self._segments:
            tail = self._segments[-1]
            if tail.size == 0 or tail.size + frame_bytes <= self.segment_bytes:
                return tail
            if self.policy is not FsyncPolicy.NEVER:
                self._sync()  # the retired segment is never synced again
            self._release(tail.seq)
            self._dirty_tail = False
        fd = os.open(_segment_path(self.directory, self._next_seq), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._fds[self._next_seq] = fd
        segment = _Segment(self._next_seq, 0)
        self._segments.append(segment)
        self._next_seq += 1
        self._dirty_dir = True
        return segment

    # -- replay ----------------------------------------------------------------

    def peek(self) -> SpoolRecord | None:
        """The oldest unconsumed record (the same one until :meth:`commit`), or ``None``.

        Raises:
            SpoolCorruptError: the record was damaged on disk since it was spooled.
        """
        self._check_open()
        if not self._slots:
            return None
        if self._peeked is None:
            slot = self._slots[0]
            try:
                self._peeked, _ = _read_frame(self._fd(slot.seq), slot.offset, slot.offset + slot.size)
            except ValueError as exc:
                path = _segment_path(self.directory, slot.seq)
                raise SpoolCorruptError(path, slot.offset, slot.entries, str(exc)) from exc
        return self._peeked

    def commit(self) -> None:
        """Mark the oldest record consumed (it was published); durable on return under ``ALWAYS``.

        A crash before this call replays the record after a restart. When the cursor
        cannot be written the record is consumed all the same and :attr:`cursor_error`
        is set (see the module docstring).

        Raises:
            SpoolError: nothing is spooled.
            OSError: forcing the commit to disk failed (the record is consumed all the same).
        """
        self._check_open()
        if not self._slots:
            raise SpoolError("commit() on an empty spool: nothing was peeked")
        self._advance(1)

    def _advance(self, consumed: int) -> None:
        """Consume ``consumed`` records: delete the segments they used up, then persist the cursor.

        The segments go first, so a full disk has their room for the cursor; a crash
        in between leaves a cursor naming a deleted segment, which the next open reads
        as "from the start of the next one": where the unconsumed records start.
        """
        due = self._sync_due()
        for _ in range(consumed):
            slot = self._slots.popleft()
            self._size -= slot.size
            self._entries -= slot.entries
            self._peeked = None
        self._drop_consumed()
        self._persist_cursor(durable=due)
        if due:
            self._sync()

    def _persist_cursor(self, *, durable: bool) -> None:
        """Write the cursor at the oldest unconsumed record; a failure is kept in :attr:`cursor_error`
        (the cursor is then owed, and written again by the next commit or sync)."""
        head = self._slots[0] if self._slots else None
        try:
            if head is None:
                self._write_cursor(self._next_seq, 0, durable=durable)
            else:
                self._write_cursor(head.seq, head.offset, durable=durable)
        except OSError as exc:
            with contextlib.suppress(OSError):
                (self.directory / _CURSOR_TMP).unlink(missing_ok=True)  # no stray half-written file
            self.cursor_error = exc
        else:
            self.cursor_error = None

    def _write_cursor(self, seq: int, offset: int, *, durable: bool) -> None:
        """Replace the cursor atomically; with ``durable`` its content is synced before the rename."""
        fd = os.open(self.directory / _CURSOR_TMP, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _pwrite_all(fd, orjson.dumps({"segment": seq, "offset": offset}), 0)
            if durable:
                self._fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.directory / _CURSOR_TMP, self.directory / _CURSOR)
        self._dirty_cursor = not durable
        self._dirty_dir = True

    def _drop_consumed(self) -> None:
        """Delete the segments before the oldest unconsumed record (all of them when empty)."""
        head = self._slots[0].seq if self._slots else self._next_seq
        while self._segments and self._segments[0].seq < head:
            seq = self._segments.popleft().seq
            self._release(seq)
            _segment_path(self.directory, seq).unlink(missing_ok=True)
            self._dirty_dir = True
        self._dirty_tail = self._dirty_tail and bool(self._segments)

    # -- durability --------------------------------------------------------------

    def sync(self) -> None:
        """fsync whatever is pending (tail segment, cursor, directory), whatever the policy.

        Cheap when nothing is pending; under ``INTERVAL`` call it from a timer to
        bound in wall time what a power loss can take.
        """
        self._check_open()
        self._sync()

    def _sync_due(self) -> bool:
        if self.policy is FsyncPolicy.INTERVAL:
            return self._clock() - self._last_sync >= self._interval
        return self.policy is FsyncPolicy.ALWAYS

    def _sync(self) -> None:
        if self.cursor_error is not None:
            self._persist_cursor(durable=True)
        if self._dirty_tail:
            self._fsync(self._fd(self._segments[-1].seq))
        if self._dirty_cursor:
            self._fsync_path(self.directory / _CURSOR)
        if self._dirty_dir:
            self._fsync_path(self.directory)
        self._dirty_tail = self._dirty_cursor = self._dirty_dir = False
        self._last_sync = self._clock()

    def _fsync(self, fd: int) -> None:
        os.fsync(fd)
        self._fsyncs += 1

    def _fsync_path(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)

    # -- descriptors and lifetime --------------------------------------------------

    def _fd(self, seq: int) -> int:
        """An open descriptor on segment ``seq`` (at most the head's and the tail's are kept)."""
        if seq not in self._fds:
            self._fds[seq] = os.open(_segment_path(self.directory, seq), os.O_RDWR)
        return self._fds[seq]

    def _release(self, seq: int) -> None:
        fd = self._fds.pop(seq, None)
        if fd is not None:
            os.close(fd)

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolError(f"spool {self.directory} is closed")

    def close(self) -> None:
        """Sync what is pending (unless ``NEVER``), close the files, release the lock; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.policy is not FsyncPolicy.NEVER:
                self._sync()
            elif self.cursor_error is not None:
                self._persist_cursor(durable=False)
        finally:
            for seq in list(self._fds):
                self._release(seq)
            os.close(self._lock_fd)  # releases the flock

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
