"""Reading the archive's segments for a query: open only what can match, place each entry.

A segment with a manifest from the queried stream places each line at its
batch's stream sequence and its index in the batch, so its entries interleave
with the stream's by position and an entry the stream still holds is read from
there instead (each comes out once). Segments that overlap in sequences (a
batch archived again after a crash) are merged, so positions only rise. A
segment without a manifest is read in full, in name order, before (oldest
first) or after (newest first) the sequenced entries.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from contracts.query import Position, QueryError
from gateway.consumers.manifest import Manifest, read_manifest
from gateway.consumers.match import Matcher, QueryStats, time_key
from gateway.consumers.segments import is_segment_name, segment_chunks

__all__ = ["Found", "Segment", "legacy_entries", "list_segments", "sequenced_entries"]

log = logging.getLogger("log_gateway.consumers.query")

Found = tuple[Position, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Segment:
    """A finished segment file and its manifest, if it has one."""

    path: Path
    manifest: Manifest | None

    def sequenced(self, stream: str, created: str | None = None) -> bool:
        """Are this segment's entries placed by the sequences of ``stream`` (created at ``created``)?

        A segment of an earlier life of the stream (deleted, made again, numbered anew) is not.
        """
        m = self.manifest
        if m is None or m.batches is None or m.stream != stream:
            return False
        return created is None or m.stream_created is None or m.stream_created == created

    @property
    def order_key(self) -> str:
        """Where the segment stands among those not placed by the queried stream's sequences.

        Segments without a manifest first (by name), then those of an earlier life of a stream,
        by when it was created and by sequence.
        """
        m = self.manifest
        if m is None or m.seq_first is None:
            return f"/{0:020d}/{self.path.name}"
        return f"{m.stream_created or ''}/{m.seq_first:020d}/{self.path.name}"

    def may_match(self, matcher: Matcher) -> bool:
        """False when the manifest shows no entry of this segment can match."""
        m = self.manifest
        if m is None:
            return True
        if matcher.source is not None and m.sources is not None and matcher.source not in m.sources:
            return False
        try:
            first, last = time_key(m.start), time_key(m.end)
        except ValueError:
            return True
        return matcher.any_level(m.levels) and matcher.spans(first, last)


def list_segments(directory: Path) -> list[Segment]:
    """The finished segments in ``directory`` (not its sub-directories), by name.

    Raises:
        QueryError: ``directory`` is not a directory.
    """
    if not directory.is_dir():
        raise QueryError(f"archive directory {directory} does not exist (--archive-dir)")
    paths = sorted(p for p in directory.iterdir() if is_segment_name(p.name))
    return [Segment(path, read_manifest(path)) for path in paths]


def _matching_lines(
    seg: Segment, matcher: Matcher, stats: QueryStats
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line index, entry data)`` of each matching entry (blank lines count as lines)."""
    stats.segments_opened += 1
    base = 0
    try:
        for chunk in segment_chunks(seg.path):
            count, candidates = matcher.candidates(chunk)
            stats.entries_scanned += count
            for index, line in candidates:
                data = _loads(line, stats)
                if data is not None and matcher.keep(data):
                    yield base + index, data
            base += count
    except (OSError, ValueError) as exc:
        stats.invalid += 1
        log.warning("query: could not read segment %s: %s", seg.path, exc)


def _loads(line: bytes, stats: QueryStats) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        stats.invalid += line.strip() != b""
        return None


def legacy_entries(
    segments: list[Segment], matcher: Matcher, stats: QueryStats, *, newest: bool
) -> Generator[Found, None, None]:
    """Matching entries of segments not placed by stream sequences, at ``(0, order key, line)``."""
    ordered = sorted(segments, key=lambda s: s.order_key)
    for seg in reversed(ordered) if newest else ordered:
        if not seg.may_match(matcher):
            stats.segments_skipped += 1
            continue
        found = [((0, seg.order_key, n), data) for n, data in _matching_lines(seg, matcher, stats)]
        yield from reversed(found) if newest else found


def _placed(seg: Segment, matcher: Matcher, stats: QueryStats, lo: int, hi: int) -> Iterator[Found]:
    """Matching entries of a sequenced segment at ``(1, seq, index)``, in line order, within lo..hi."""
    assert seg.manifest is not None  # noqa: S101 - sequenced() held
    assert seg.manifest.batches is not None  # noqa: S101
    seqs = [seq for seq, _ in seg.manifest.batches]
    ends = list(itertools.accumulate(count for _, count in seg.manifest.batches))
    for number, data in _matching_lines(seg, matcher, stats):
        batch = bisect.bisect_right(ends, number)
        if batch < len(seqs) and lo <= seqs[batch] <= hi:
            index = number - (ends[batch - 1] if batch else 0)
            yield (1, seqs[batch], index), data


def _groups(segments: list[Segment]) -> list[list[Segment]]:
    """Segments by first sequence, those whose sequence ranges overlap in one group."""
    ordered = sorted(segments, key=lambda s: s.manifest.seq_first or 0 if s.manifest else 0)
    groups: list[list[Segment]] = []
    reach = -1
    for seg in ordered:
        assert seg.manifest is not None  # noqa: S101 - sequenced segments only
        first, last = seg.manifest.seq_first or 0, seg.manifest.seq_last or 0
        if groups and first <= reach:
            groups[-1].append(seg)
        else:
            groups.append([seg])
        reach = max(reach, last)
    return groups


def sequenced_entries(
    segments: list[Segment], matcher: Matcher, stats: QueryStats, *, lo: int, hi: int, newest: bool
) -> Generator[Found, None, None]:
    """Matching entries of sequenced segments placed within stream sequences ``lo..hi``, in order."""
    chosen = []
    for seg in segments:
        m = seg.manifest
        assert m is not None  # noqa: S101 - sequenced segments only
        if (m.seq_last or 0) < lo or (m.seq_first or 0) > hi:
            continue
        if not seg.may_match(matcher):
            stats.segments_skipped += 1
            continue
        chosen.append(seg)
    groups = _groups(chosen)
    for group in reversed(groups) if newest else groups:
        if not newest and len(group) == 1 and _ascending(group[0]):
            yield from _placed(group[0], matcher, stats, lo, hi)  # read as it goes: a quick first page
            continue
        found = sorted(
            (f for seg in group for f in _placed(seg, matcher, stats, lo, hi)),
            key=lambda f: f[0],
            reverse=newest,
        )
        yield from found


def _ascending(seg: Segment) -> bool:
    """Are the segment's batches in stream order (as one archiver writes them)?"""
    batches = seg.manifest.batches if seg.manifest is not None else None
    return batches is not None and all(a[0] < b[0] for a, b in itertools.pairwise(batches))
