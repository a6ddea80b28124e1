"""``log-gateway bench --query``: the query engine over archived segments against DuckDB's ``read_json``.

One archive of realistic entries (mixed levels and sources, a few messages
holding the filtered text), written by the archiver's own segment writer with
manifests; then, on the same files, one query (one source, level ``error``, a
text filter): time to the first page and the full scan, ours and DuckDB's.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.models import LEVELS, LogEntryCreated
from contracts.query import LogQuery
from gateway.consumers.query import QueryStats, query_entries, query_page
from gateway.consumers.segments import Compression, SegmentWriter

__all__ = ["QueryBenchConfig", "format_query_results", "make_archive", "run_query_bench"]

_STREAM = "BENCH"
_BATCH = 500
_WORDS = ("charge", "refund", "session", "cache", "lookup", "render", "sync", "auth")


@dataclass(frozen=True, kw_only=True, slots=True)
class QueryBenchConfig:
    """How big an archive, how it is cut, what is asked."""

    directory: Path
    entries: int = 1_000_000
    segment_entries: int = 100_000
    sources: int = 8
    source: str = "svc-3"
    needle: str = "timeout"

    def __post_init__(self) -> None:
        if self.entries < 1 or self.segment_entries < 1 or self.sources < 1:
            raise ValueError("entries, segment_entries and sources must be at least 1")


def _entry(n: int, rng: random.Random, sources: int) -> dict[str, Any]:
    level = rng.choices(LEVELS, weights=(20, 55, 15, 8, 2))[0]
    word = rng.choice(_WORDS)
    text = (
        f"Timeout after {rng.randint(100, 9000)}ms calling {word}" if rng.random() < 0.1 else f"{word} done"
    )
    second = n // 1000
    return {
        "logId": f"log-{n:09d}",
        "level": level,
        "message": f"{text} for request {n}",
        "source": f"svc-{n % sources}",
        "component": f"{word}.worker",
        "metadata": {"requestId": f"req-{n:x}", "attempt": n % 4, "durationMs": rng.random() * 900},
        "createdAt": f"2025-10-13T{8 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
        f".{n % 1000:03d}Z",
    }


def make_archive(config: QueryBenchConfig) -> int:
    """Write the archive (batches of 500 at stream sequences 1, 2, ...); returns its segment count."""
    rng = random.Random(42)
    config.directory.mkdir(parents=True, exist_ok=True)
    writer = SegmentWriter(config.directory, compression=Compression.ZSTD, fsync=False, stream=_STREAM)
    segments = 0
    for seq, first in enumerate(range(0, config.entries, _BATCH), 1):
        count = min(_BATCH, config.entries - first)
        batch = [LogEntryCreated.parse(_entry(first + i, rng, config.sources)) for i in range(count)]
        writer.write_batch(batch, 0.0, seq=seq)
        if writer.entries >= config.segment_entries:
            writer.finish()
            segments += 1
    if writer.finish() is not None:
        segments += 1
    return segments


def _query(config: QueryBenchConfig, **changes: Any) -> LogQuery:
    return LogQuery(source=config.source, level="error", filter=config.needle, **changes)


async def _ours(config: QueryBenchConfig) -> dict[str, Any]:
    started = time.perf_counter()
    page = await query_page(None, _query(config), stream=_STREAM, archive_dir=config.directory)
    first_page_s = time.perf_counter() - started
    stats = QueryStats()
    started = time.perf_counter()
    matched = 0
    async for _ in query_entries(
        None, _query(config), stream=_STREAM, archive_dir=config.directory, stats=stats
    ):
        matched += 1
    scan_s = time.perf_counter() - started
    return {
        "first_page_s": first_page_s,
        "first_page_entries": len(page.entries),
        "scan_s": scan_s,
        "matched": matched,
        "scanned": stats.entries_scanned,
        "scanned_per_s": stats.entries_scanned / scan_s,
    }


def _duckdb(config: QueryBenchConfig, scanned: int) -> dict[str, Any]:
    import duckdb  # the bench extra

    files = str(config.directory / "segment-*.ndjson.zst")
    source = (
        f"read_json('{files}', format='newline_delimited', compression='zstd', "
        "columns={logId: 'VARCHAR', level: 'VARCHAR', message: 'VARCHAR', source: 'VARCHAR', "
        "createdAt: 'VARCHAR'})"
    )
    where = "source = ? AND level = 'error' AND contains(lower(message), ?)"
    params = [config.source, config.needle.lower()]
    con = duckdb.connect()
    try:
        started = time.perf_counter()
        first = con.execute(f"SELECT logId FROM {source} WHERE {where} LIMIT 100", params).fetchall()  # noqa: S608
        first_page_s = time.perf_counter() - started
        started = time.perf_counter()
        row = con.execute(f"SELECT count(*) FROM {source} WHERE {where}", params).fetchone()  # noqa: S608
        scan_s = time.perf_counter() - started
    finally:
        con.close()
    return {
        "first_page_s": first_page_s,
        "first_page_entries": len(first),
        "scan_s": scan_s,
        "matched": int(row[0]) if row else 0,
        "scanned": scanned,
        "scanned_per_s": scanned / scan_s,
    }


def run_query_bench(config: QueryBenchConfig) -> dict[str, Any]:
    """Write the archive, then measure both; the figures as a dict (see :func:`format_query_results`)."""
    started = time.perf_counter()
    segments = make_archive(config)
    written_s = time.perf_counter() - started
    ours = asyncio.run(_ours(config))
    theirs = _duckdb(config, config.entries)
    return {
        "entries": config.entries,
        "segments": segments,
        "archive_written_s": written_s,
        "query": f"source={config.source} level=error filter={config.needle!r}",
        "ours": ours,
        "duckdb": theirs,
        "scan_ratio": ours["scanned_per_s"] / theirs["scanned_per_s"],
    }


def format_query_results(results: dict[str, Any]) -> str:
    """The results as a markdown table and a line comparing the scans."""
    lines = [
        f"Query over {results['entries']:,} archived entries in {results['segments']} zstd segments "
        f"({results['query']}):",
        "",
        "| engine | first page (s) | full scan (s) | entries scanned/s | matched |",
        "|---|---|---|---|---|",
    ]
    for name, key in (("log-gateway query", "ours"), ("DuckDB read_json", "duckdb")):
        row = results[key]
        lines.append(
            f"| {name} | {row['first_page_s']:.3f} | {row['scan_s']:.2f} | "
            f"{row['scanned_per_s']:,.0f} | {row['matched']:,} |"
        )
    lines += ["", f"Full scan, ours / DuckDB entries per second: {results['scan_ratio']:.2f}"]
    return "\n".join(lines)
