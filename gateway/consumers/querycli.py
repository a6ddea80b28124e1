"""``log-gateway query``: a page as a table for a person, NDJSON for a pipe, or the whole result streamed."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from nats.aio.client import Client

from contracts.events import subject_for
from contracts.models import LogBatchCreated, LogEntryCreated
from contracts.query import LogQuery
from gateway.consumers.query import query_entries, query_page
from gateway.consumers.tail import level_label, place

__all__ = ["QueryOutput", "format_row", "run_query"]


@dataclass(frozen=True, kw_only=True, slots=True)
class QueryOutput:
    """Where to ask and how to print."""

    stream: str = "CORTEX_LOGGING"
    archive_dir: Path | None = None
    subject_prefix: str = ""
    as_json: bool = False
    all: bool = False
    color: bool = False

    @property
    def subject(self) -> str:
        return subject_for(LogBatchCreated.EVENT_TYPE, self.subject_prefix)


def format_row(entry: LogEntryCreated, *, color: bool) -> str:
    """One row: createdAt, level, source/component, message, then metadata as JSON."""
    level = level_label(entry.level, color=color)
    extra = f"  {json.dumps(entry.metadata, separators=(',', ':'))}" if entry.metadata else ""
    return f"{entry.createdAt:24}  {level}  {place(entry):24}  {entry.message}{extra}"


async def run_query(
    nc: Client | None,
    query: LogQuery,
    output: QueryOutput,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> None:
    """Print one page (the next page's cursor on ``err``), or with ``output.all`` every entry as NDJSON.

    Raises:
        QueryError, CursorError: the query cannot be run (the message says why).
        BrokenPipeError: the reader went away.
    """
    stream, archive_dir, subject = output.stream, output.archive_dir, output.subject
    if output.all:
        async for entry in query_entries(nc, query, stream=stream, archive_dir=archive_dir, subject=subject):
            out.write(entry.to_json().decode() + "\n")
        out.flush()
        return
    page = await query_page(nc, query, stream=stream, archive_dir=archive_dir, subject=subject)
    for entry in page.entries:
        out.write(entry.to_json().decode() if output.as_json else format_row(entry, color=output.color))
        out.write("\n")
    out.flush()
    if page.nextCursor is not None:
        err.write(f"log-gateway: more entries: add --cursor {page.nextCursor}\n")
    elif not page.entries and not output.as_json:
        err.write("log-gateway: no entries match\n")
