"""Shared test helpers: run a gateway in-process, publish entries, read what was stored."""

from __future__ import annotations

import ast
import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from contracts import LogBatchCreated, LogEntryCreated, encode_binary, encode_structured, make_attributes
from gateway.config import DurableIngest, GatewayConfig
from gateway.core.encode import header_size
from gateway.core.entry import PendingEntry
from gateway.ingest.fastpath import Headers
from gateway.service import Gateway
from publishers.jetstream import PublishPolicy
from publishers.roundtrip import server_has_read
from publishers.stream import StreamSpec
from tests import samples

FORMS = ("structured", "binary", "bare")

# Publishing that gives up fast: a test of a failure sees it within a second or two.
FAST_PUBLISH = PublishPolicy(timeout_s=0.5, retry_deadline_s=1.0, backoff_max_s=0.2)


def config(**changes: Any) -> GatewayConfig:
    """A gateway config with a stream name and a queue group unique to the test.

    The queue group is the test's own: the tests share one nats-server, and a gateway of
    another test still subscribed in a shared group would take this test's messages."""
    token = uuid.uuid4().hex[:12]
    stream = StreamSpec(name="T" + token.upper())
    base: dict[str, Any] = {"stream": stream, "shutdown_timeout_s": 30.0, "queue_group": "q" + token}
    base.update(changes)
    return GatewayConfig(**base)


def fail_decoding(gateway: Gateway, marker: bytes) -> None:
    """Give a started gateway's decoder a bug: it raises (not a DecodeError) on bodies holding ``marker``."""
    decode = gateway.decoder.decode

    def buggy(headers: Headers, body: bytes) -> PendingEntry:
        if marker in body:
            raise KeyError("a bug in the decoder")
        return decode(headers, body)

    gateway.decoder.decode = buggy  # type: ignore[method-assign]


@asynccontextmanager
async def running_gateway(
    url: str, cfg: GatewayConfig, **connect: Any
) -> AsyncIterator[tuple[Gateway, Client]]:
    """A started gateway on its own connection; stopped (flushed) on exit if the test did not."""
    gateway = Gateway(cfg)

    async def on_error(exc: Exception) -> None:
        gateway.on_error(exc)

    nc = await nats.connect(
        servers=url.split(","),
        error_cb=on_error,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        **connect,
    )
    try:
        await gateway.start(nc)
    except BaseException:
        await nc.close()
        raise
    try:
        yield gateway, nc
    finally:
        await gateway.stop()
        await nc.close()


def message(form: str, data: dict[str, Any]) -> tuple[dict[str, str] | None, bytes]:
    """An entry message in one of the three wire forms."""
    body = orjson.dumps(data)
    if form == "bare":
        return None, body
    attrs = make_attributes(LogEntryCreated.EVENT_TYPE, "//test/producer")
    return (encode_structured if form == "structured" else encode_binary)(attrs, body)


async def publish_entries(
    nc: Client, entries: list[dict[str, Any]], subject: str = LogEntryCreated.EVENT_TYPE
) -> None:
    """Publish entries cycling through the wire forms, then flush."""
    for i, data in enumerate(entries):
        headers, body = message(FORMS[i % 3], data)
        await nc.publish(subject, body, headers=headers)
        if i % 500 == 499:
            await nc.flush()
    await nc.flush()


@dataclass
class StoredBatch:
    """One stored logBatchCreated message."""

    headers: dict[str, str]
    body: bytes
    batch: LogBatchCreated

    @property
    def size(self) -> int:
        return header_size(self.headers) + len(self.body)


async def stored_batches(js: JetStreamContext, stream: str) -> list[StoredBatch]:
    """Every batch in ``stream``, in stream order."""
    info = await js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        if msg.subject != LogBatchCreated.EVENT_TYPE:
            continue
        data = json.loads(msg.data or b"")["data"]
        out.append(StoredBatch(dict(msg.headers or {}), msg.data or b"", LogBatchCreated.parse(data)))
    return out


def log_ids(batches: list[StoredBatch]) -> list[str]:
    return [entry.logId for stored in batches for entry in stored.batch.entries]


async def until(predicate: Any, timeout_s: float = 60.0) -> None:
    """Wait (yielding to the loop) until ``predicate()`` holds."""
    async with asyncio.timeout(timeout_s):
        # The gateway's counters change inside its callbacks; there is no event
        # to wait on from outside, so yield to the loop until the condition holds.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def collect(nc: Client, subject: str) -> list[Msg]:
    """Subscribe to ``subject``; the returned list fills with every message that arrives."""
    got: list[Msg] = []

    async def on_msg(msg: Msg) -> None:
        got.append(msg)

    await nc.subscribe(subject, cb=on_msg)
    await server_has_read(nc)
    return got


def entries(n: int, start: int = 0, **changes: Any) -> list[dict[str, Any]]:
    return [samples.entry(i, **changes) for i in range(start, start + n)]


async def ingest_state(nc: Client, spec: DurableIngest) -> tuple[int, int]:
    """Messages left in the ingest stream, and the consumer's unacknowledged count."""
    js = nc.jetstream()
    stream = await js.stream_info(spec.stream)
    consumer = await js.consumer_info(spec.stream, spec.durable)
    return stream.state.messages, consumer.num_ack_pending or 0


async def until_ingest(nc: Client, spec: DurableIngest, want: tuple[int, int], timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                if await ingest_state(nc, spec) == want:
                    return
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                pass  # JetStream is still recovering after a restart: ask again
            await asyncio.sleep(0.02)


def parse_python(source: str) -> ast.Module:
    """``ast.parse``, tried once more on CPython 3.11's spurious "AST constructor recursion depth
    mismatch" SystemError (python/cpython#106905, fixed in later releases; seen once in a full
    run here, never alone)."""
    try:
        return ast.parse(source)
    except SystemError:
        return ast.parse(source)
