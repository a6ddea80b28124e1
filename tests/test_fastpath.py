"""The ingest fast path against a real nats-server: what nats-py would have done, kept.

The first test reads nats-py's private shape directly: if an upgrade changes
it, this fails loudly here instead of the gateway quietly falling back.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable
from pathlib import Path
from urllib.parse import urlsplit

import nats
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError
from nats.protocol.parser import Parser

from gateway.config import DurableIngest
from gateway.core import DropReason
from gateway.ingest import fastpath, nats_private
from gateway.ingest.fastpath import Headers, fast_path_supported, subscribe_fast, take_over
from gateway.ingest.wire import Frame
from gateway.process import app as app_module
from gateway.process.app import build_app
from gateway.process.connection import ConnectionSettings
from gateway.process.natsserver import NatsServer
from gateway.tasks import TaskWatch
from publishers.roundtrip import server_has_read
from tests import samples
from tests.helpers import (
    collect,
    config,
    entries,
    log_ids,
    publish_entries,
    running_gateway,
    stored_batches,
    until,
)

Received = list[tuple[bytes, Headers, bytes]]


def recorder(got: Received) -> fastpath.RawHandler:
    def handler(subject: bytes, headers: Headers, body: bytes) -> None:
        got.append((subject, headers, body))

    return handler


async def test_nats_py_still_has_the_private_shape_the_fast_path_reads(nc: Client, subject: str) -> None:
    assert "await self.nc._process_msg(sid, subject, reply, payload, hdr)" in inspect.getsource(Parser.parse)
    assert "await self._ps.parse(b)" in inspect.getsource(Client._read_loop)
    assert fast_path_supported(nc)
    sub = await nc.subscribe(subject)
    assert isinstance(sub._pending_queue, asyncio.Queue)
    names = [private.name for private in nats_private.SUBSCRIPTION_NAMES if private.at_runtime]
    assert all(hasattr(sub, name) for name in names)
    assert "await self._pending_queue.join()" in inspect.getsource(type(sub)._drain)
    # The whole list, the names only a reading of the source confirms included.
    assert nats_private.client_problems(nc, everything=True) == []
    assert nats_private.subscription_problems(sub, everything=True) == []


async def test_the_fast_path_serves_its_subscription_and_leaves_the_others_alone(
    nc: Client, subject: str
) -> None:
    got: Received = []
    sub, reader = await subscribe_fast(
        nc,
        subject,
        queue="",
        handler=recorder(got),
        pending_msgs_limit=100,
        pending_bytes_limit=1 << 20,
        spawn=TaskWatch().spawn,
    )
    assert reader is not None
    others = await collect(nc, subject + ".other")
    in_msgs, in_bytes = nc.stats["in_msgs"], nc.stats["in_bytes"]
    for i in range(10):
        await nc.publish(subject, str(i).encode(), headers={"Ce-Id": f"id {i}"})
        await nc.publish(subject + ".other", b"x", headers={"Ce-Id": "other"})
    await nc.publish(subject, b"bare")
    await nc.flush()
    await until(lambda: len(got) == 11 and len(others) == 10)
    assert got[0] == (subject.encode(), b"NATS/1.0\r\nCe-Id: id 0\r\n\r\n", b"0")
    assert got[10] == (subject.encode(), None, b"bare")
    assert [body for _, _, body in got[:10]] == [str(i).encode() for i in range(10)]
    assert others[0].headers == {"Ce-Id": "other"}  # nats-py's own parsing, untouched
    assert nc.stats["in_msgs"] - in_msgs == 21
    assert nc.stats["in_bytes"] - in_bytes == 10 + 4 + 10
    assert (sub.delivered, sub.pending_msgs, sub.pending_bytes) == (11, 0, 0)
    reader.cancel()


class Holding:
    """A handler whose first message holds the reader until released; connection errors kept."""

    def __init__(self) -> None:
        self.errors: list[Exception] = []
        self.handled: list[bytes] = []
        self.release = asyncio.Event()

    async def on_error(self, exc: Exception) -> None:
        self.errors.append(exc)

    def handler(self, _subject: bytes, _headers: Headers, body: bytes) -> Awaitable[bool] | None:
        self.handled.append(body)
        return None if self.release.is_set() else self.release.wait()

    async def subscribe(self, url: str, subject: str, *, msgs: int, size: int) -> tuple[Client, Subscription]:
        """A connection whose errors come here, and a fast-path subscription this handler serves."""
        nc = await nats.connect(url, error_cb=self.on_error)
        sub, _ = await subscribe_fast(
            nc,
            subject,
            queue="",
            handler=self.handler,
            pending_msgs_limit=msgs,
            pending_bytes_limit=size,
            spawn=TaskWatch().spawn,
        )
        return nc, sub


async def test_past_the_pending_limit_messages_are_dropped_as_slow_consumer(
    nats_server: NatsServer, subject: str
) -> None:
    held_reader = Holding()
    errors, handled, release = held_reader.errors, held_reader.handled, held_reader.release
    nc, sub = await held_reader.subscribe(nats_server.url, subject, msgs=5, size=0)
    for i in range(50):
        await nc.publish(subject, b"%d" % i)
    await nc.flush()
    await until(lambda: sub.delivered == 50 and len(handled) == 1)
    # As with nats-py's bounded queue: at most 5 wait (4 if the first was still
    # waiting when the reader took it), the one being handled aside.
    held = sub.pending_msgs
    assert held in (4, 5)
    assert len(errors) == 50 - 1 - held
    assert all(isinstance(e, SlowConsumerError) and e.sub is sub for e in errors)
    release.set()
    await until(lambda: len(handled) == 1 + held)
    assert len(handled) + len(errors) == 50
    assert (sub.pending_msgs, sub.pending_bytes) == (0, 0)
    await nc.close()


async def test_the_byte_limit_drops_too(nats_server: NatsServer, subject: str) -> None:
    held_reader = Holding()
    errors, handled, release = held_reader.errors, held_reader.handled, held_reader.release
    nc, sub = await held_reader.subscribe(nats_server.url, subject, msgs=0, size=1000)
    for _ in range(30):
        await nc.publish(subject, b"x" * 100)
    await nc.flush()
    await until(lambda: sub.delivered == 30 and len(handled) == 1)
    # 9 x 100 bytes stay below the 1000-byte limit; the 10th would reach it.
    held = sub.pending_msgs
    assert held in (8, 9)
    assert sub.pending_bytes == held * 100
    assert len(errors) == 30 - 1 - held
    release.set()
    await until(lambda: len(handled) == 1 + held)
    assert len(handled) + len(errors) == 30
    await nc.close()


async def test_drain_returns_only_when_every_message_received_before_it_is_handled(
    nc: Client, subject: str
) -> None:
    gate = asyncio.Event()
    handled: list[bytes] = []

    def handler(_subject: bytes, _headers: Headers, body: bytes) -> Awaitable[bool] | None:
        handled.append(body)
        return gate.wait() if len(handled) == 1 else None

    sub, _ = await subscribe_fast(
        nc,
        subject,
        queue="",
        handler=handler,
        pending_msgs_limit=0,
        pending_bytes_limit=0,
        spawn=TaskWatch().spawn,
    )
    for i in range(20):
        await nc.publish(subject, b"%d" % i)
    await nc.flush()
    await until(lambda: sub.delivered == 20)
    drain = asyncio.create_task(sub.drain())  # type: ignore[no-untyped-call]
    handled_when_drained: list[int] = []
    drain.add_done_callback(lambda _: handled_when_drained.append(len(handled)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not drain.done()
    gate.set()
    await asyncio.wait_for(drain, 10)
    assert handled_when_drained == [20]


async def test_messages_nats_py_queued_before_the_take_over_come_first(nc: Client, subject: str) -> None:
    sub = await nc.subscribe(subject)
    for i in range(5):
        await nc.publish(subject, b"%d" % i, headers={"n": str(i)})
    await nc.flush()
    await until(lambda: sub.pending_msgs == 5)
    got: Received = []
    reader = take_over(nc, sub, recorder(got), spawn=TaskWatch().spawn)
    for i in range(5, 10):
        await nc.publish(subject, b"%d" % i)
    await nc.flush()
    await until(lambda: len(got) == 10)
    assert [body for _, _, body in got] == [b"%d" % i for i in range(10)]
    assert got[0][1] == {"n": "0"}  # queued by nats-py: its parsed headers come along
    assert (sub.pending_msgs, sub.pending_bytes) == (0, 0)
    reader.cancel()


async def test_a_failing_handler_is_logged_and_intake_goes_on(
    nc: Client, subject: str, caplog: pytest.LogCaptureFixture
) -> None:
    handled: list[bytes] = []

    def handler(_subject: bytes, _headers: Headers, body: bytes) -> None:
        if body == b"boom":
            raise RuntimeError("boom")
        handled.append(body)

    sub, _ = await subscribe_fast(
        nc,
        subject,
        queue="",
        handler=handler,
        pending_msgs_limit=0,
        pending_bytes_limit=0,
        spawn=TaskWatch().spawn,
    )
    for body in (b"a", b"boom", b"b"):
        await nc.publish(subject, body)
    await nc.flush()
    await until(lambda: len(handled) == 2)
    assert "ingest handler failed" in caplog.text
    await asyncio.wait_for(sub.drain(), 10)  # type: ignore[no-untyped-call]


async def _send_raw(url: str, subject: str, header_block: bytes, body: bytes) -> None:
    """Publish with a header block as given: nats-py would only write well-formed ones."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    await reader.readline()  # INFO
    connect = {"verbose": False, "pedantic": False, "headers": True, "protocol": 1}
    writer.write(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
    size = len(header_block) + len(body)
    writer.write(b"HPUB %s %d %d\r\n" % (subject.encode(), len(header_block), size))
    writer.write(header_block + body + b"\r\nPING\r\n")
    await writer.drain()
    assert b"PONG" in await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize(
    ("block", "detail"),
    [
        (b"NATS/1.0\r\ncontent-type application/json\r\n\r\n", "has no colon"),
        (b"NATS/1.0\r\nbad name: x\r\n\r\n", "is not a token"),
        (b"NATS/1.0\r\nce-id: 1\r\nCE-ID: 2\r\n\r\n", "appears more than once"),
        (b"NATS/1.0\r\nce-source: caf\xe9\r\n\r\n", "not UTF-8"),
    ],
)
async def test_a_malformed_header_block_is_rejected_with_a_reason(
    nats_server: NatsServer, nc: Client, block: bytes, detail: str
) -> None:
    cfg = config()
    forwarded = await collect(nc, cfg.subjects.rejected)
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await _send_raw(nats_server.url, cfg.subjects.entry, block, orjson.dumps(samples.ENTRY))
        await publish_entries(nc, entries(3))
        await until(lambda: gateway.stats.received == 4 and len(forwarded) == 1)
    assert gateway.stats.rejected == {"invalid_envelope": 1}
    assert gateway.stats.published == 3
    rejected = json.loads(forwarded[0].data)["data"]
    assert rejected["reason"] == "invalid_envelope"
    assert detail in rejected["detail"]


async def test_without_the_fast_path_the_gateway_reads_nats_py_messages(
    nats_server: NatsServer, nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastpath, "fast_path_supported", lambda _nc: False)
    cfg = config()
    sent = entries(60)
    async with running_gateway(nats_server.url, cfg) as (gateway, gateway_nc):
        assert not isinstance(getattr(gateway_nc._process_msg, "__self__", None), fastpath._Router)
        await publish_entries(nc, sent)  # every wire form
        await until(lambda: gateway.stats.received == len(sent))
        await gateway.stop()
    stored = await stored_batches(nc.jetstream(), cfg.stream.name)
    assert sorted(log_ids(stored)) == sorted(e["logId"] for e in sent)


async def test_the_gateway_takes_the_fast_path(nats_server: NatsServer, nc: Client) -> None:
    cfg = config()
    async with running_gateway(nats_server.url, cfg) as (gateway, gateway_nc):
        router = getattr(gateway_nc._process_msg, "__self__", None)
        assert isinstance(router, fastpath._Router)
        assert set(router.sinks) == {sub._id for sub in gateway.subscriptions}
        await publish_entries(nc, entries(30))
        await until(lambda: gateway.stats.published == 30)


def wire_stream() -> tuple[bytes, Received]:
    """Server frames for the fast-path sid 7, another sid, and other operations between them."""
    frames: list[bytes] = []
    expected: Received = []
    for i in range(12):
        body = b"body-%d" % i
        if i % 3 == 0:
            head = b"NATS/1.0\r\nce-id: %d\r\n\r\n" % i
            frames.append(b"HMSG in 7 %d %d\r\n" % (len(head), len(head) + len(body)) + head + body + b"\r\n")
            expected.append((b"in", head, body))
        elif i % 3 == 1:
            frames.append(b"MSG in  7 reply.%d\t%d\r\n" % (i, len(body)) + body + b"\r\n")
            expected.append((b"in", None, body))
        else:
            frames.append(b"MSG other 9 %d\r\n" % len(body) + body + b"\r\n")
        if i % 4 == 3:
            frames.append(b"PONG\r\n" if i % 8 == 3 else b"+OK\r\n")
    return b"".join(frames), expected


async def _feed(cuts: list[int]) -> tuple[Received, Received, Client]:
    nc = Client()
    sub = Subscription(nc, id=7, subject="in")
    got: Received = []
    reader = take_over(nc, sub, recorder(got), spawn=TaskWatch().spawn)
    stream, expected = wire_stream()
    pos, turn = 0, 0
    while pos < len(stream):
        size = cuts[turn % len(cuts)]
        await nc._ps.parse(stream[pos : pos + size])
        pos, turn = pos + size, turn + 1
    await until(lambda: len(got) >= len(expected), timeout_s=10)
    reader.cancel()
    return got, expected, nc


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 90), min_size=1, max_size=30))
def test_frames_split_anywhere_arrive_whole_and_in_order(cuts: list[int]) -> None:
    # The real parser of an unconnected client, fed protocol bytes in pieces:
    # the fast loop and nats-py's parser take turns wherever the cuts fall.
    got, expected, nc = asyncio.run(_feed(cuts))
    assert got == expected
    assert nc.stats["in_msgs"] == 12  # the other sid's messages are counted by nats-py itself
    assert nc._ps.buf == bytearray()


async def test_a_message_larger_than_the_fast_buffer_arrives_whole(tmp_path: Path) -> None:
    with NatsServer(store_dir=tmp_path, config="max_payload: 4194304") as server:
        nc = await nats.connect(server.url)
        got: Received = []
        sub, reader = await subscribe_fast(
            nc,
            "big",
            queue="",
            handler=recorder(got),
            pending_msgs_limit=0,
            pending_bytes_limit=0,
            spawn=TaskWatch().spawn,
        )
        big = bytes(range(256)) * (3 * 4096)  # 3 MiB
        for body in (b"before", big, b"after"):
            await nc.publish("big", body, headers={"ce-id": str(len(body))})
        await nc.flush()
        await until(lambda: len(got) == 3)
        await nc.close()
    assert [body for _, _, body in got] == [b"before", big, b"after"]
    assert got[1][1] == b"NATS/1.0\r\nce-id: %d\r\n\r\n" % len(big)
    assert sub.delivered == 3
    assert reader is not None


async def test_after_the_reader_stops_messages_queue_as_for_any_subscription(
    nc: Client, subject: str
) -> None:
    got: Received = []
    sub, reader = await subscribe_fast(
        nc,
        subject,
        queue="",
        handler=recorder(got),
        pending_msgs_limit=3,
        pending_bytes_limit=0,
        spawn=TaskWatch().spawn,
    )
    assert reader is not None
    await nc.publish(subject, b"first")
    await nc.flush()
    await until(lambda: len(got) == 1)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    for i in range(5):
        await nc.publish(subject, b"%d" % i)
    await nc.flush()
    await until(lambda: sub.delivered == 6)
    assert len(got) == 1
    assert sub.pending_msgs == 3  # nats-py's own bounded queue again
    assert isinstance(sub._pending_queue, asyncio.Queue)


async def test_the_app_runs_core_ingest_on_a_connection_of_its_own(
    nats_server: NatsServer, nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "_tune_collector", lambda: None)  # not in the test process
    cfg = config()
    holder = build_app(cfg, ConnectionSettings(servers=(nats_server.url,)))
    assert holder.ingest is not None
    async with holder.app:
        await asyncio.wait_for(holder.ready.wait(), 30)
        main_nc, ingest_nc = holder.broker.connection, holder.ingest.connection
        assert ingest_nc is not main_nc
        assert ingest_nc.options["name"] == f"{cfg.gateway_id}-ingest"
        assert isinstance(nats_private.installed(ingest_nc), fastpath._Router)
        assert nats_private.installed(main_nc) is main_nc  # the PubAcks' connection: nats-py's own parser
        assert {sub._conn for sub in holder.gateway.subscriptions} == {ingest_nc}
        await publish_entries(nc, entries(30))
        await until(lambda: holder.gateway.stats.published == 30)
        # The ingest connection's errors reach the gateway (slow consumers are counted there).
        sub = holder.gateway.subscriptions[0]
        await ingest_nc._error_cb(SlowConsumerError(subject=sub.subject, reply="", sid=sub._id, sub=sub))
        assert holder.gateway.stats.dropped[DropReason.SLOW_CONSUMER] == 1
    assert holder.report is not None
    assert holder.report.unpublished == 0
    assert ingest_nc.is_closed


def test_the_ingest_connection_is_made_as_the_brokers_is() -> None:
    cfg = config()
    settings = ConnectionSettings(servers=("nats://localhost:1",), user="u", password="pw")  # noqa: S106 - a test's
    holder = build_app(cfg, settings)
    assert holder.ingest is not None
    main, ingest = holder.broker._connection_kwargs, holder.ingest._connection_kwargs
    assert ingest.pop("name") == f"{cfg.gateway_id}-ingest"
    main.pop("name")
    callbacks = {key for key, value in main.items() if callable(value)}
    assert {"error_cb", "reconnected_cb"} <= callbacks
    assert {k: v for k, v in ingest.items() if k not in callbacks} == {
        k: v for k, v in main.items() if k not in callbacks
    }
    assert ingest["user"] == "u"
    assert callbacks == {key for key, value in ingest.items() if callable(value)}


def test_durable_ingest_opens_no_second_connection() -> None:
    holder = build_app(
        config(durable_ingest=DurableIngest()), ConnectionSettings(servers=("nats://localhost:1",))
    )
    assert holder.ingest is None


async def test_a_pull_inbox_handler_that_raises_does_not_stop_the_connection_reading(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The inbox handler runs in the read loop, which serves the whole connection: a bug there
    is logged with its traceback and the loop reads on (it stopped, with the client still
    "connected", before)."""
    nc, talker = await nats.connect(nats_server.url), await nats.connect(nats_server.url)
    got: list[bytes] = []

    async def take(msg: Msg) -> None:
        got.append(msg.data)

    def broken(_frames: list[Frame], _start: int, _stop: int) -> None:
        raise RuntimeError("a bug in the inbox handler")

    try:
        await nc.subscribe("other", cb=take)
        fastpath.route_inbox(nc, await nc.subscribe("inbox.*"), broken)
        await server_has_read(nc)
        await talker.publish("inbox.1", b"x")
        await talker.publish("other", b"after")
        await server_has_read(talker)
        await until(lambda: got == [b"after"])
    finally:
        await nc.close()
        await talker.close()
    assert "a pull inbox's handler failed" in caplog.text
    assert "a bug in the inbox handler" in caplog.text
