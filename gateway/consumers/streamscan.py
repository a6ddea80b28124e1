"""Reading the gateway's JetStream stream for a query: seek, then read forward or backward.

Nothing here reads the stream from its start to find a time range: a batch is
stored after its entries were created, so the first batch stored at or after
``start`` (less the allowed clock skew) is found by a binary search of direct
gets over the stream's sequences, and a backward read stops at the first batch
stored before it. Reads go through an ephemeral pull consumer that starts at a
sequence and acknowledges nothing; it is deleted when the read ends.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from gateway.consumers.match import QueryStats
from gateway.consumers.segments import created_text

__all__ = ["StoredBatch", "StreamView", "open_view", "read_backward", "read_forward", "seq_at_time"]

_FETCH = 32
_BACK_CHUNK_MAX = 64


@dataclass(frozen=True, slots=True)
class StreamView:
    """A stream's bounds as they were when the query began."""

    stream: str
    subject: str
    first_seq: int
    last_seq: int
    created: str | None = None
    """When the stream was created (as manifests record it)."""

    @property
    def empty(self) -> bool:
        return self.last_seq < self.first_seq


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """One message read from the stream: its sequence, when it was stored, its body."""

    seq: int
    stored: datetime
    body: bytes


async def open_view(nc: Client, stream: str, subject: str) -> StreamView | None:
    """The stream's current bounds, or None if there is no such stream."""
    try:
        info = await nc.jetstream().stream_info(stream)
    except NotFoundError:
        return None
    return StreamView(stream, subject, info.state.first_seq, info.state.last_seq, created_text(info.created))


async def seq_at_time(nc: Client, view: StreamView, moment: datetime, stats: QueryStats) -> int:
    """The sequence of the first batch stored at or after ``moment`` (``last_seq + 1`` if none)."""
    js = nc.jetstream()
    low, high = view.first_seq, view.last_seq + 1
    while low < high:
        mid = (low + high) // 2
        stats.stream_probes += 1
        try:
            msg = await js.get_msg(view.stream, mid, subject=view.subject, next=True)
        except NotFoundError:  # no batch at or after mid
            high = mid
            continue
        if msg.time is not None and msg.time < moment:
            low = max(mid, msg.seq or mid) + 1  # every batch up to this one is older
        else:
            high = mid
    return low


async def read_forward(
    nc: Client, view: StreamView, first: int, last: int, stats: QueryStats
) -> AsyncGenerator[StoredBatch, None]:
    """The batches stored with sequences ``first..last``, oldest first."""
    if first > last:
        return
    js = nc.jetstream()
    name = f"log-query-{uuid.uuid4().hex[:12]}"
    config = ConsumerConfig(
        name=name,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=first,
        ack_policy=AckPolicy.NONE,
        filter_subject=view.subject,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    created = await js.add_consumer(view.stream, config=config)
    sub = await js.pull_subscribe_bind(name, stream=view.stream)
    try:
        if created.num_pending:  # (none: no batch from first on; do not wait out a fetch for one)
            async for batch in _fetch_until(sub, last, stats):
                yield batch
    finally:
        await sub.unsubscribe()
        # Gone already, or the server is slow: inactive_threshold removes it anyway.
        with contextlib.suppress(NotFoundError, NatsTimeoutError):
            await js.delete_consumer(view.stream, name)


async def _fetch_until(sub: object, last: int, stats: QueryStats) -> AsyncIterator[StoredBatch]:
    fetch = sub.fetch  # type: ignore[attr-defined]
    while True:
        try:
            msgs: list[Msg] = await fetch(_FETCH, timeout=2.0)
        except (TimeoutError, NatsTimeoutError):
            return  # nothing more after the last one read
        for msg in msgs:
            meta = msg.metadata
            if meta.sequence.stream > last:
                return
            stats.stream_messages += 1
            yield StoredBatch(meta.sequence.stream, meta.timestamp, msg.data)
            if meta.sequence.stream == last or meta.num_pending == 0:
                return


async def read_backward(
    nc: Client, view: StreamView, last: int, first: int, stats: QueryStats
) -> AsyncGenerator[StoredBatch, None]:
    """The batches stored with sequences ``last`` down to ``first``, newest first.

    Read in chunks that grow (so a first page comes quickly and a long scan costs
    few consumers), each held in memory only while it is handed over.
    """
    chunk = 4
    high = last
    while high >= first:
        low = max(first, high - chunk + 1)
        got = [batch async for batch in read_forward(nc, view, low, high, stats)]
        for batch in reversed(got):
            yield batch
        high = low - 1
        chunk = min(chunk * 2, _BACK_CHUNK_MAX)
