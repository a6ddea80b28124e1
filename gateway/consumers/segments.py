"""Archive batches to compressed newline-delimited JSON segments, and read them back.

Each line of a segment is one ``LogEntryCreated`` exactly as it was received.
A segment is written as ``*.part``, rolled by size (uncompressed bytes) or age,
then flushed, fsynced and renamed; only then are its batches acknowledged and a
``LogArchived`` event published, so a crash loses nothing (unacknowledged
batches are redelivered) and a finished file is always complete.
"""

from __future__ import annotations

import gzip
import io
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

import orjson
import zstandard

from contracts.models import LogArchived, LogEntryCreated
from contracts.timestamps import entry_time, now_timestamp
from gateway.consumers.manifest import ManifestBuilder, write_manifest
from gateway.consumers.options import Compression

__all__ = [
    "Compression",
    "SegmentInfo",
    "SegmentWriter",
    "archived_event_data",
    "created_text",
    "is_segment_name",
    "read_segment",
    "segment_chunks",
    "segment_lines",
]


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A finished segment, as ``LogArchived`` reports it."""

    archive_id: str
    path: Path
    entry_count: int
    compressed_size: int
    start: str
    end: str


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def close(self) -> None: ...


@dataclass
class _Open:
    path: Path
    raw: IO[bytes]
    stream: _Sink
    opened_at: float
    first: tuple[float, str]
    last: tuple[float, str]
    entries: int = 0
    size: int = 0
    manifest: ManifestBuilder = field(default_factory=ManifestBuilder)


class SegmentWriter:
    """Writes entries into rolling segment files in ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        compression: Compression,
        fsync: bool = True,
        stream: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self._wall_clock = wall_clock
        self.stream = stream
        self.stream_created: str | None = None
        """When ``stream`` was created (UTC ISO 8601), recorded in each manifest when known."""
        self.compression = compression
        self.fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        self._open: _Open | None = None

    @property
    def entries(self) -> int:
        """Entries in the open segment."""
        return self._open.entries if self._open else 0

    @property
    def size(self) -> int:
        """Uncompressed bytes in the open segment."""
        return self._open.size if self._open else 0

    def opened_at(self) -> float | None:
        """Monotonic time the open segment was started, if one is open."""
        return self._open.opened_at if self._open else None

    def write(self, entry: LogEntryCreated, now: float) -> None:
        """Append one entry (its JSON exactly as received, one line).

        ``createdAt`` is any string (the platform's contract): the segment's first and last
        times take it as the gateway does (:func:`contracts.timestamps.entry_time`), and the
        time of writing where it names no moment, so every entry the gateway took is archived.
        """
        when = entry_time(entry.createdAt, self._wall_clock())
        moment = (when.epoch, when.text)
        seg = self._open or self._start(now, moment)
        line = entry.to_json() + b"\n"
        seg.stream.write(line)
        seg.entries += 1
        seg.size += len(line)
        seg.manifest.entry(entry.level, entry.source)
        if moment[0] < seg.first[0]:
            seg.first = moment
        if moment[0] > seg.last[0]:
            seg.last = moment

    def write_batch(self, entries: Iterable[LogEntryCreated], now: float, *, seq: int | None) -> None:
        """Append a batch's entries; ``seq`` (its stream sequence) goes into the segment's manifest."""
        count = 0
        for entry in entries:
            self.write(entry, now)
            count += 1
        if self._open is not None and count:
            self._open.manifest.batch(seq, count)

    def _start(self, now: float, moment: tuple[float, str]) -> _Open:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        name = f"segment-{stamp}-{uuid.uuid4().hex[:8]}{self.compression.suffix}"
        path = self.directory / (name + ".part")
        raw = path.open("xb")
        stream: _Sink
        if self.compression is Compression.ZSTD:
            stream = zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)
        else:
            stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
        manifest = ManifestBuilder(stream=self.stream, stream_created=self.stream_created)
        self._open = _Open(path, raw, stream, now, moment, moment, manifest=manifest)
        return self._open

    def finish(self) -> SegmentInfo | None:
        """Close the open segment: compress, flush, fsync, rename. None if nothing was open."""
        seg, self._open = self._open, None
        if seg is None:
            return None
        seg.stream.close()
        seg.raw.flush()
        if self.fsync:
            os.fsync(seg.raw.fileno())
        seg.raw.close()
        final = seg.path.with_suffix("")  # drop ".part"
        # The manifest first: a finished segment with a manifest always has its own.
        manifest = seg.manifest.build(final.name, seg.entries, seg.first[1], seg.last[1])
        write_manifest(final, manifest, fsync=self.fsync)
        seg.path.rename(final)
        if self.fsync:
            _fsync_dir(self.directory)
        return SegmentInfo(
            final.name.split(".")[0], final, seg.entries, final.stat().st_size, seg.first[1], seg.last[1]
        )


def created_text(moment: datetime | None) -> str | None:
    """A stream's creation time as manifests record it (UTC ISO 8601), None when not known."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def archived_event_data(info: SegmentInfo) -> bytes:
    """The ``LogArchived`` data for a finished segment (validated against the contract)."""
    event = LogArchived.parse(
        {
            "archiveId": info.archive_id,
            "timeRange": {"start": info.start, "end": info.end},
            "entryCount": info.entry_count,
            "compressedSize": info.compressed_size,
            "destination": info.path.resolve().as_uri(),
            "archivedAt": now_timestamp(),
        }
    )
    return event.to_json()


def read_segment(path: Path) -> Iterator[LogEntryCreated]:
    """The entries of a segment file (zstd or gzip, by its suffix), in order.

    Raises:
        OSError: the file cannot be opened or read.
        ValueError: the file is not a segment (its name, compressed data, JSON
            or an entry is not what a segment holds); the message names the file.
    """
    if not path.name.endswith((".zst", ".gz")):
        raise ValueError(f"{path} is not a .ndjson.zst or .ndjson.gz segment")
    with path.open("rb") as raw:
        stream: Iterable[bytes]
        if path.name.endswith(".zst"):
            stream = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))
        else:
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        lines = enumerate(stream, 1)
        while True:
            try:
                number, line = next(lines)
                entry = LogEntryCreated.parse(orjson.loads(line)) if line.strip() else None
            except StopIteration:
                return
            except (zstandard.ZstdError, gzip.BadGzipFile, EOFError) as exc:
                raise ValueError(f"{path} is not a segment: {exc or type(exc).__name__}") from None
            except ValueError as exc:  # orjson.JSONDecodeError, ContractError
                raise ValueError(f"{path}, line {number}: not a segment entry: {exc}") from None
            if entry is not None:
                yield entry


def is_segment_name(name: str) -> bool:
    """Is ``name`` a finished segment's file name (not a ``.part``, not a manifest)?"""
    return name.startswith("segment-") and name.endswith((Compression.ZSTD.suffix, Compression.GZIP.suffix))


def segment_lines(path: Path) -> Iterator[bytes]:
    """A segment's lines as stored (one entry's JSON each, blank lines included), unparsed.

    Raises:
        OSError: the file cannot be opened or read.
        ValueError: the file's compressed data is broken; the message names the file.
    """
    with path.open("rb") as raw:
        stream: Iterable[bytes]
        if path.name.endswith(".zst"):
            stream = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw), 1 << 20)
        else:
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        try:
            yield from stream
        except (zstandard.ZstdError, gzip.BadGzipFile, EOFError) as exc:
            raise ValueError(f"{path} is not a segment: {exc or type(exc).__name__}") from None


def segment_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    """A segment's decompressed bytes in pieces of about ``size`` that end at a line's end.

    Cheaper than line by line for a scan: a piece is split (and searched) at C speed.

    Raises:
        OSError: the file cannot be opened or read.
        ValueError: the file's compressed data is broken; the message names the file.
    """
    with path.open("rb") as raw:
        stream: _Readable
        if path.name.endswith(".zst"):
            stream = zstandard.ZstdDecompressor().stream_reader(raw)
        else:
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        rest = b""
        try:
            while piece := stream.read(size):
                cut = piece.rfind(b"\n")
                if cut == -1:
                    rest += piece
                    continue
                yield rest + piece[: cut + 1]
                rest = piece[cut + 1 :]
        except (zstandard.ZstdError, gzip.BadGzipFile, EOFError) as exc:
            raise ValueError(f"{path} is not a segment: {exc or type(exc).__name__}") from None
        if rest:
            yield rest
