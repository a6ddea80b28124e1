"""Where the logging handler's worker sends records: one ``LogEntryCreated`` CloudEvent per
entry for a gateway to batch, or (library mode) batches made in-process."""

from __future__ import annotations

import contextlib
from typing import Any

import nats.errors
import orjson
from nats.aio.client import Client

from contracts.cloudevents import (
    CONTENT_TYPE_HEADER,
    JSON_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    ContentMode,
    encode_binary,
)
from contracts.models import LogEntryCreated
from publishers.library import LibrarySink
from publishers.rawwrite import header_block, hpub, subject_bytes, write_commands, write_problems
from publishers.records import SLICE, Encoded, RecordFeed, Snapshot
from publishers.tracing import trace_extensions

__all__ = ["EntrySink", "Message", "Sink", "make_sink"]

# One event as it goes out: its NATS headers, those headers as the block nats-py would write, its body.
Message = tuple[dict[str, str], bytes, bytes]

_FLUSH_TIMEOUT_S = 5  # a chunk's round trip; past it the chunk stays with nats-py to send

_STRUCTURED_HEADERS = {CONTENT_TYPE_HEADER: STRUCTURED_CONTENT_TYPE}
_STRUCTURED_BLOCK = header_block(_STRUCTURED_HEADERS)


class EntrySink:
    """One CloudEvent per entry, on the entry subject (a gateway batches them).

    A chunk of records goes out as one write of all its ``HPUB`` operations
    (:mod:`publishers.rawwrite`) while the connection is up and nats-py has the
    names that takes; otherwise one ``publish`` per event, as nats-py buffers
    them while it reconnects. An event larger than the server's payload limit
    is dropped as ``oversize`` (the server would close the connection on it).
    """

    def __init__(self, feed: RecordFeed, nc: Client) -> None:
        self._feed = feed
        self._nc = nc
        self._structured = feed.config.mode is ContentMode.STRUCTURED
        self._source = f"//{feed.config.service}"
        self._subject = subject_bytes(feed.subject)
        self._bulk = not write_problems(nc)

    def idle_timeout(self) -> float | None:
        return None

    async def send(self, items: list[Snapshot]) -> None:
        messages: list[Message] = []
        for start in range(0, len(items), SLICE):
            messages += self.messages(self._feed.encode(items[start : start + SLICE]))
            self._feed.breathe()
        sent = await self._publish(messages)
        with contextlib.suppress(nats.errors.Error):  # written: nats-py sends them when it is back
            await self._nc.flush(timeout=_FLUSH_TIMEOUT_S)
        self._feed.count_published(sent)
        self._feed.done(sent)
        if not self._feed.queued():  # all a flush waited for is out: linger for bulk takes again
            self._feed.flush_requested = False

    def messages(self, entries: list[Encoded]) -> list[Message]:
        """The events of ``entries`` (those over the payload limit counted dropped and settled)."""
        out: list[Message] = []
        source, structured, limit = self._source, self._structured, self._nc.max_payload
        for data, body, trace, _created in entries:
            attrs: dict[str, Any] = {
                "specversion": "1.0",
                "id": data["logId"],
                "source": source,
                "type": LogEntryCreated.EVENT_TYPE,
                "time": data["createdAt"],
                "datacontenttype": JSON_CONTENT_TYPE,
            }
            if trace:
                attrs.update(trace_extensions(trace))
            if structured:  # as encode_structured: the attributes, then the data spliced in
                message = (
                    _STRUCTURED_HEADERS,
                    _STRUCTURED_BLOCK,
                    orjson.dumps(attrs)[:-1] + b',"data":' + body + b"}",
                )
            else:
                headers, payload = encode_binary(attrs, body)
                message = (headers, header_block(headers), payload)
            if len(message[1]) + len(message[2]) > limit:
                self._feed.count_dropped("oversize")
                self._feed.done(1)
                continue
            out.append(message)
        return out

    async def _publish(self, messages: list[Message]) -> int:
        nc = self._nc
        if self._bulk and nc.is_connected:
            subject = self._subject
            commands = [hpub(subject, block, body) for _headers, block, body in messages]
            await write_commands(nc, commands, sum(len(body) for _headers, _block, body in messages))
            return len(messages)
        for index, (headers, _block, body) in enumerate(messages):
            try:
                await nc.publish(self._feed.subject, body, headers=headers)
            except nats.errors.Error:  # the connection went away and its buffer is full
                self._feed.count_dropped("disconnected", len(messages) - index)
                self._feed.done(len(messages) - index)
                return index
        return len(messages)

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
