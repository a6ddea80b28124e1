"""Where the logging handler's worker sends records: one ``LogEntryCreated`` CloudEvent per
entry for a gateway to batch, or (library mode) batches made in-process."""

from __future__ import annotations

from nats.aio.client import Client

from contracts.cloudevents import ContentMode, encode_binary, encode_structured, make_attributes
from contracts.models import LogEntryCreated
from publishers.library import LibrarySink
from publishers.records import SLICE, Encoded, RecordFeed, Snapshot
from publishers.tracing import trace_extensions

__all__ = ["EntrySink", "Sink", "make_sink"]


class EntrySink:
    """One CloudEvent per entry, on the entry subject (a gateway batches them)."""

    def __init__(self, feed: RecordFeed, nc: Client) -> None:
        self._feed = feed
        self._nc = nc
        self._encode = encode_structured if feed.config.mode is ContentMode.STRUCTURED else encode_binary

    def idle_timeout(self) -> float | None:
        return None

    async def send(self, items: list[Snapshot]) -> None:
        sent = 0
        for start in range(0, len(items), SLICE):
            sent += await self._publish(self._feed.encode(items[start : start + SLICE]))
            self._feed.breathe()
        await self._nc.flush()
        self._feed.count_published(sent)
        self._feed.done(sent)

    async def _publish(self, entries: list[Encoded]) -> int:
        source, encode, publish = f"//{self._feed.config.service}", self._encode, self._nc.publish
        subject = self._feed.subject
        for data, body, trace, _created in entries:
            attrs = make_attributes(
                LogEntryCreated.EVENT_TYPE,
                source,
                event_id=data["logId"],
                time=data["createdAt"],
                extensions=trace_extensions(trace) if trace else None,
            )
            headers, message = encode(attrs, body)
            await publish(subject, message, headers=headers)
        return len(entries)

    async def tick(self, *, final: bool = False) -> None:
        return None


Sink = EntrySink | LibrarySink


async def make_sink(feed: RecordFeed, nc: Client) -> Sink:
    """The handler's sink: one event per entry, or, in library mode, batches."""
    if feed.config.batching is None:
        return EntrySink(feed, nc)
    sink = LibrarySink(feed, nc)
    await sink.start()
    return sink
