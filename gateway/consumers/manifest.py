"""A segment's manifest: what a query needs to know to skip the segment, or to place its entries.

``DIR/segment-X.ndjson.zst`` gets ``DIR/manifests/segment-X.ndjson.zst.json``
(a folder of its own, so globs of ``segment-*`` still name segments only),
written (and fsynced) before the segment is renamed into place, so a finished
segment with a manifest always has the right one. It holds the entry count,
the earliest and latest ``createdAt``, the count per level, the sources (up to
:data:`MAX_SOURCES`; beyond that ``null``: any), the stream the batches came
from (and when that stream was created: a stream made again numbers from 1 anew) and
each batch's stream sequence and entry count in line order. Segments
without one (written before manifests existed) are still read, only never
skipped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "MANIFEST_DIR",
    "MAX_SOURCES",
    "Manifest",
    "ManifestBuilder",
    "manifest_path",
    "read_manifest",
    "write_manifest",
]

log = logging.getLogger("log_gateway.consumers.manifest")

MAX_SOURCES = 1000
MANIFEST_DIR = "manifests"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a segment holds, without opening it."""

    segment: str
    count: int
    start: str
    end: str
    levels: dict[str, int]
    sources: frozenset[str] | None
    stream: str | None
    batches: tuple[tuple[int, int], ...] | None
    """``(stream sequence, entries)`` per batch in line order; None when not known."""
    stream_created: str | None = None
    """When the stream was created (UTC ISO 8601), telling one life of a stream name from the next."""

    @property
    def seq_first(self) -> int | None:
        return min(seq for seq, _ in self.batches) if self.batches else None

    @property
    def seq_last(self) -> int | None:
        return max(seq for seq, _ in self.batches) if self.batches else None

    def to_data(self) -> dict[str, Any]:
        return {
            "version": _VERSION,
            "segment": self.segment,
            "count": self.count,
            "start": self.start,
            "end": self.end,
            "levels": self.levels,
            "sources": None if self.sources is None else sorted(self.sources),
            "stream": self.stream,
            "streamCreated": self.stream_created,
            "seqFirst": self.seq_first,
            "seqLast": self.seq_last,
            "batches": None if self.batches is None else [list(b) for b in self.batches],
        }


@dataclass
class ManifestBuilder:
    """Collects a segment's manifest as its entries are written."""

    stream: str | None = None
    stream_created: str | None = None
    levels: dict[str, int] = field(default_factory=dict)
    sources: set[str] | None = field(default_factory=set)
    batches: list[tuple[int, int]] | None = field(default_factory=list)

    def entry(self, level: str, source: str) -> None:
        self.levels[level] = self.levels.get(level, 0) + 1
        if self.sources is not None:
            self.sources.add(source)
            if len(self.sources) > MAX_SOURCES:
                self.sources = None

    def batch(self, seq: int | None, count: int) -> None:
        """``count`` entries just written came from the batch stored at ``seq`` (None: unknown)."""
        if seq is None or self.batches is None:
            self.batches = None
        else:
            self.batches.append((seq, count))

    def build(self, segment: str, count: int, start: str, end: str) -> Manifest:
        known = self.batches is not None and sum(n for _, n in self.batches) == count
        return Manifest(
            segment=segment,
            count=count,
            start=start,
            end=end,
            levels=dict(self.levels),
            sources=None if self.sources is None else frozenset(self.sources),
            stream=self.stream if known else None,
            stream_created=self.stream_created if known else None,
            batches=tuple(self.batches) if known and self.batches is not None else None,
        )


def manifest_path(segment: Path) -> Path:
    """Where ``segment``'s manifest lives."""
    return segment.parent / MANIFEST_DIR / (segment.name + ".json")


def write_manifest(segment: Path, manifest: Manifest, *, fsync: bool) -> Path:
    """Write ``segment``'s manifest atomically (temporary file, fsync, rename)."""
    path = manifest_path(segment)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        out.write(orjson.dumps(manifest.to_data()))
        out.flush()
        if fsync:
            os.fsync(out.fileno())
    tmp.replace(path)
    if fsync:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def read_manifest(segment: Path) -> Manifest | None:
    """``segment``'s manifest, or None when it has none (or one that cannot be read: logged)."""
    path = manifest_path(segment)
    try:
        data = orjson.loads(path.read_bytes())
        return _from_data(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the unreadable manifest %s (the segment is read in full): %s", path, exc)
        return None


def _from_data(data: dict[str, Any]) -> Manifest:
    if data.get("version") != _VERSION:
        raise ValueError(f"unknown manifest version {data.get('version')!r}")
    batches = data.get("batches")
    sources = data.get("sources")
    return Manifest(
        segment=str(data["segment"]),
        count=int(data["count"]),
        start=str(data["start"]),
        end=str(data["end"]),
        levels={str(k): int(v) for k, v in data["levels"].items()},
        sources=None if sources is None else frozenset(str(s) for s in sources),
        stream=None if data.get("stream") is None else str(data["stream"]),
        stream_created=None if data.get("streamCreated") is None else str(data["streamCreated"]),
        batches=None if batches is None else tuple((int(s), int(n)) for s, n in batches),
    )
