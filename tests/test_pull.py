"""Durable ingest's own pull requests (gateway.ingest.pull), its reply-subject and status
parsing (gateway.ingest.jsmeta) and its pipelined acks (gateway.ingest.acks).

The readers run against a real nats-server; each status code is made by the server itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from gateway.config import DurableIngest
from gateway.core.limits import BatchLimits
from gateway.ingest import durable_intake, nats_private
from gateway.ingest.acks import Acks, Settle, commands
from gateway.ingest.durable_intake import ensure_consumer
from gateway.ingest.jsmeta import (
    AckMetadata,
    PullAction,
    PullStatus,
    ack_metadata,
    action_of,
    delivered_count,
    first_delivery_prefix,
    go_duration_s,
    is_first_delivery,
    limit_of,
    read_status,
)
from gateway.ingest.pull import PullError, PullReader, next_subject
from gateway.ingest.wire import Frame
from gateway.logs import RateLimitedLog
from gateway.process.metrics import render_metrics
from gateway.process.natsserver import NatsServer
from gateway.tasks import TaskWatch
from tests.helpers import (
    FAST_PUBLISH,
    config,
    entries,
    ingest_state,
    log_ids,
    publish_entries,
    running_gateway,
    stored_batches,
    until,
    until_ingest,
)

# -- the ack subject ----------------------------------------------------------------------

V1 = b"$JS.ACK.ENTRIES.gw.3.1041.977.1733000000123456789.12"
V2 = b"$JS.ACK.hub.ACCHASH.ENTRIES.gw.3.1041.977.1733000000123456789.12"
V2_RANDOM = V2 + b".x9Qz"
V2_NO_DOMAIN = b"$JS.ACK._.ACCHASH.ENTRIES.gw.1.5.5.1733000000123456789.0.r4nd"


@pytest.mark.parametrize(
    ("reply", "meta"),
    [
        (V1, AckMetadata("ENTRIES", "gw", 3, 1041, 977, 1733000000123456789, 12)),
        (V2, AckMetadata("ENTRIES", "gw", 3, 1041, 977, 1733000000123456789, 12, "hub", "ACCHASH")),
        (V2_RANDOM, AckMetadata("ENTRIES", "gw", 3, 1041, 977, 1733000000123456789, 12, "hub", "ACCHASH")),
        (V2_NO_DOMAIN, AckMetadata("ENTRIES", "gw", 1, 5, 5, 1733000000123456789, 0, "", "ACCHASH")),
    ],
    ids=["9 tokens", "11 tokens", "12 tokens", "no domain"],
)
def test_the_ack_subject_is_read_in_both_forms(reply: bytes, meta: AckMetadata) -> None:
    assert ack_metadata(reply) == meta
    assert delivered_count(reply) == meta.delivered


@pytest.mark.parametrize(
    "reply",
    [
        b"",
        b"_INBOX.abc.1",
        b"$JS.ACK.ENTRIES.gw.3.1041.977.17330",  # 8 tokens
        b"$JS.ACK.a.b.ENTRIES.gw.3.1041.977.1733.12.r.extra",  # 13 tokens
        b"$JS.ACK.ENTRIES.gw.x.1041.977.1733000000123456789.12",  # a count that is no number
        b"$JS.NAK.ENTRIES.gw.3.1041.977.1733000000123456789.12",
    ],
)
def test_what_is_no_ack_subject_has_no_metadata(reply: bytes) -> None:
    assert ack_metadata(reply) is None
    assert delivered_count(reply) == 0


async def test_the_parser_reads_what_a_real_server_sends(nc: Client) -> None:
    spec = DurableIngest(stream="META" + uuid.uuid4().hex[:8].upper(), ack_wait_s=30.0)
    await ensure_consumer(nc.jetstream(), spec, ("meta.test",))
    psub = await nc.jetstream().pull_subscribe_bind(spec.durable, spec.stream)
    await nc.publish("meta.test", b"{}")
    [msg] = await psub.fetch(1, timeout=5)
    await msg.nak()
    [again] = await psub.fetch(1, timeout=5)
    meta = ack_metadata(again.reply.encode())
    assert meta is not None
    # nats-py's own reading of the same subject agrees, field by field.
    assert (meta.stream, meta.consumer, meta.delivered) == (spec.stream, spec.durable, 2)
    assert (meta.stream_seq, meta.consumer_seq) == (
        again.metadata.sequence.stream,
        again.metadata.sequence.consumer,
    )
    assert meta.pending == again.metadata.num_pending
    assert delivered_count(again.reply.encode()) == again.metadata.num_delivered == 2


# -- status lines ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "reply", "action"),
    [
        (b"NATS/1.0 100 Idle Heartbeat\r\n\r\n", b"", PullAction.ALIVE),
        (b"NATS/1.0 100 FlowControl Request\r\n\r\n", b"$JS.FC.x", PullAction.FLOW_CONTROL),
        (b"NATS/1.0 404 No Messages\r\n\r\n", b"", PullAction.ENDED),
        (b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\n\r\n", b"", PullAction.ENDED),
        (b"NATS/1.0 409 Consumer Deleted\r\n\r\n", b"", PullAction.CONSUMER_GONE),
        (b"NATS/1.0 409 Consumer is push based\r\n\r\n", b"", PullAction.FATAL),
        (b"NATS/1.0 409 Exceeded MaxRequestBatch of 5\r\n\r\n", b"", PullAction.SHRINK_BATCH),
        (b"NATS/1.0 409 Exceeded MaxRequestExpires of 1m30s\r\n\r\n", b"", PullAction.SHRINK_EXPIRES),
        (b"NATS/1.0 409 Exceeded MaxAckPending\r\n\r\n", b"", PullAction.SHRINK_BATCH),
        (b"NATS/1.0 409 Exceeded MaxWaiting\r\n\r\n", b"", PullAction.RETRY),
        (b"NATS/1.0 409 Leadership Change\r\n\r\n", b"", PullAction.RETRY),
        (b"NATS/1.0 409 Server Shutdown\r\n\r\n", b"", PullAction.RETRY),
        (b"NATS/1.0 503\r\n\r\n", b"", PullAction.UNAVAILABLE),
        (b"NATS/1.0 400 Bad Request - invalid json\r\n\r\n", b"", PullAction.FATAL),
        (b"NATS/1.0 418 Something New\r\n\r\n", b"", PullAction.RETRY),
    ],
)
def test_each_status_has_its_action(block: bytes, reply: bytes, action: PullAction) -> None:
    status = read_status(block)
    assert status is not None
    assert action_of(status, has_reply=bool(reply)) is action


@pytest.mark.parametrize("block", [None, b"NATS/1.0\r\nce-id: 1\r\n\r\n", b"NATS/1.0 4x8 Nope\r\n\r\n"])
def test_a_message_s_own_headers_are_no_status(block: bytes | None) -> None:
    assert read_status(block) is None


def test_the_limits_a_409_names_are_read() -> None:
    assert limit_of(PullStatus(409, "Exceeded MaxRequestBatch of 5")) == "5"
    assert limit_of(PullStatus(409, "Consumer Deleted")) is None
    assert go_duration_s("1m30s") == 90.0
    assert go_duration_s("500ms") == 0.5
    assert go_duration_s("2h") == 7200.0
    assert go_duration_s("5 s") is None
    assert go_duration_s("") is None


# -- acks -------------------------------------------------------------------------------------


def test_a_batch_s_acks_are_one_piece_of_pub_operations() -> None:
    assert commands([b"$JS.ACK.a", b"$JS.ACK.b"], Settle.ACK) == (
        b"PUB $JS.ACK.a 4\r\n+ACK\r\nPUB $JS.ACK.b 4\r\n+ACK\r\n"
    )
    assert commands([b"r"], Settle.TERM) == b"PUB r 5\r\n+TERM\r\n"
    assert commands([b"r"], Settle.NAK) == b"PUB r 4\r\n-NAK\r\n"


@pytest.mark.parametrize("private", nats_private.WRITE_NAMES, ids=lambda p: p.qualified)
async def test_every_name_the_acks_write_with_exists_with_its_shape(
    nc: Client, private: nats_private.PrivateName
) -> None:
    assert private.check(nc), f"nats-py {nats_private.NATS_PY_VERSION}: {private.qualified} changed"


# -- a reader on a real consumer --------------------------------------------------------------


@dataclass
class Holder:
    """Holds every message handed over until told to ack; records the most it ever held."""

    cap: int
    replies: list[bytes] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)
    most: int = 0
    freed: asyncio.Event = field(default_factory=asyncio.Event)

    def handler(self, messages: list[Frame]) -> None:
        for _subject, _sid, reply, _headers, _body in messages:
            self.replies.append(reply)
            self.delivered.append(delivered_count(reply))
            self.most = max(self.most, len(self.replies))

    def room(self) -> int:
        return self.cap - len(self.replies)

    async def wait_room(self, room: Callable[[], int]) -> None:
        self.freed.clear()
        if room() <= 0:
            await self.freed.wait()

    async def ack_all(self, acks: Acks) -> None:
        replies, self.replies = self.replies, []
        assert await acks.settle(replies, Settle.ACK) == 0
        self.freed.set()


def spec_for(**changes: object) -> DurableIngest:
    name = "PULL" + uuid.uuid4().hex[:8].upper()
    return DurableIngest(**{"stream": name, "ack_wait_s": 30.0, "fetch_timeout_s": 0.3, **changes})  # type: ignore[arg-type]


@asynccontextmanager
async def reading(
    nc: Client, spec: DurableIngest, holder: Holder, ensure: Callable[[], object] | None = None
) -> AsyncIterator[tuple[PullReader, asyncio.Task[None], list[int]]]:
    """A started reader on ``spec``'s consumer (made first unless ``ensure`` is given); stopped after."""
    js = nc.jetstream()
    made: list[int] = []

    async def make() -> None:
        made.append(1)
        if ensure is None:
            await ensure_consumer(js, spec, (spec.stream.lower(),))
        else:
            await ensure()  # type: ignore[misc]

    if ensure is None:
        await ensure_consumer(js, spec, (spec.stream.lower(),))
    tasks = TaskWatch()
    reader = PullReader(
        nc,
        spec,
        holder.handler,
        room=holder.room,
        wait_room=holder.wait_room,
        freed=holder.freed.set,
        ensure=make,
        spawn=tasks.spawn,
        warn=RateLimitedLog(logging.getLogger("test")),
    )
    await reader.start()
    run = asyncio.create_task(reader.run())
    try:
        yield reader, run, made
    finally:
        reader.stop()
        holder.freed.set()
        await asyncio.wait([run], timeout=5)
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await reader.close()


def holding(holder: Holder, count: int) -> Callable[[], bool]:
    return lambda: len(holder.replies) == count


async def publish(nc: Client, subject: str, count: int) -> None:
    for i in range(count):
        await nc.publish(subject, b'{"n": %d}' % i)
    await nc.flush()


async def test_the_reader_holds_no_more_than_the_room_and_acks_free_it(nc: Client) -> None:
    spec = spec_for()
    holder = Holder(cap=100)
    acks = Acks(nc)
    async with reading(nc, spec, holder) as (reader, _, _):
        await publish(nc, spec.stream.lower(), 350)
        await until(lambda: len(holder.replies) == 100)
        # Asked for exactly the room: nothing more comes while it is full.
        await until(lambda: reader.ends["filled"] >= 1)
        assert reader.received == reader.asked == 100
        assert (await ingest_state(nc, spec))[1] == 100
        acked = 0
        while acked < 350:
            await until(holding(holder, min(100, 350 - acked)))
            acked += len(holder.replies)
            await holder.ack_all(acks)
        # Every entry acked in a batch's one write: the work queue is empty, nothing pending.
        await until_ingest(nc, spec, (0, 0))
    # in: 350; handed over: 350, each once, at most 100 at a time; handed back: none.
    assert holder.most <= 100
    assert reader.returned == 0


async def test_a_message_beyond_what_was_asked_is_handed_back_not_held(nc: Client) -> None:
    """The hard bound: a request the reader did not make (as one it gave up would be) is served,
    and what it brings is nakked at once; once there is room it comes again, redelivered."""
    spec = spec_for()
    holder = Holder(cap=0)
    async with reading(nc, spec, holder) as (reader, _, _):
        await publish(nc, spec.stream.lower(), 10)
        body = b'{"batch":10,"expires":%d}' % int(2e9)
        await nc.publish(next_subject(spec.stream, spec.durable), body, reply=f"{reader.inbox}.999")
        await until(lambda: reader.returned == 10)
        assert holder.replies == []
        holder.cap = 10
        holder.freed.set()
        await until(lambda: len(holder.replies) == 10)
    # in: 10; handed back at once: 10; handed over later, each on its second delivery (or later).
    assert min(holder.delivered) >= 2
    assert reader.received == 10


async def test_a_request_the_stream_cannot_fill_expires_with_408_and_the_next_follows(nc: Client) -> None:
    spec = spec_for(fetch_timeout_s=0.1)
    holder = Holder(cap=50)
    async with reading(nc, spec, holder) as (reader, run, _):
        await until(lambda: reader.ends["408"] >= 2)
        await publish(nc, spec.stream.lower(), 5)
        await until(lambda: len(holder.replies) == 5)
        assert not run.done()
    # Each request of an empty stream ended with 408 and was followed by the next; none given up.
    assert reader.ends["given_up"] == 0


async def test_a_consumer_deleted_while_fetching_is_made_again(nc: Client) -> None:
    spec = spec_for(fetch_timeout_s=1.0)
    holder = Holder(cap=50)
    async with reading(nc, spec, holder) as (reader, _, made):
        await until(lambda: reader.asked > 0)  # a request waits on the empty stream
        await nc.jetstream().delete_consumer(spec.stream, spec.durable)
        await until(lambda: reader.ends["409"] == 1 and made == [1])
        await publish(nc, spec.stream.lower(), 7)
        await until(lambda: len(holder.replies) == 7)
    # 409 Consumer Deleted: the consumer was made again once, and ingest went on.
    assert (await ingest_state(nc, spec))[1] == 7


async def test_a_consumer_s_batch_cap_is_kept_after_its_409(nc: Client) -> None:
    spec = spec_for()
    js = nc.jetstream()
    await ensure_consumer(js, spec, (spec.stream.lower(),))
    await js.delete_consumer(spec.stream, spec.durable)
    # (nats-py's ConsumerConfig has no max_batch: the API request by hand.)
    config = {"durable_name": spec.durable, "ack_policy": "explicit", "max_batch": 5}
    request = json.dumps({"stream_name": spec.stream, "config": config}).encode()
    reply = await nc.request(f"$JS.API.CONSUMER.CREATE.{spec.stream}.{spec.durable}", request, timeout=5)
    assert json.loads(reply.data)["config"]["max_batch"] == 5

    async def keep() -> None:
        return None

    holder = Holder(cap=50)
    async with reading(nc, spec, holder, ensure=keep) as (reader, _, _):
        await publish(nc, spec.stream.lower(), 23)
        await until(lambda: len(holder.replies) == 23)
    # 409 Exceeded MaxRequestBatch of 5: refused once, then asked for 5 at most.
    assert reader.ends["409"] == 1
    assert reader.max_batch == 5


async def test_requests_ask_within_the_consumer_s_max_ack_pending(nc: Client) -> None:
    """A request asks for no more than the consumer's max_ack_pending (some servers refuse a
    larger batch with 409 Exceeded MaxAckPending, which names no limit: the batch is halved)."""
    spec = spec_for(max_ack_pending=30, fetch_batch=1000)
    holder = Holder(cap=500)
    async with reading(nc, spec, holder) as (reader, _, _):
        assert reader.max_batch == 30
        await publish(nc, spec.stream.lower(), 30)
        await until(holding(holder, 30))
    assert "409" not in reader.ends
    # (A server that refuses a batch above the cap, 409 Exceeded MaxAckPending, names no limit:
    # the batch is halved, the expiry kept; this one clamps the batch instead.)
    reader._shrink(PullAction.SHRINK_BATCH, PullStatus(409, "Exceeded MaxAckPending"))
    assert (reader.max_batch, reader.expires_s) == (15, spec.fetch_timeout_s)
    reader._shrink(PullAction.SHRINK_EXPIRES, PullStatus(409, "Exceeded MaxRequestExpires"))
    assert (reader.max_batch, reader.expires_s) == (15, spec.fetch_timeout_s / 2)


async def test_no_consumer_answering_is_retried_and_the_consumer_made(nc: Client) -> None:
    spec = spec_for()
    js = nc.jetstream()
    await ensure_consumer(js, spec, (spec.stream.lower(),))
    await js.delete_consumer(spec.stream, spec.durable)

    async def make() -> None:
        await ensure_consumer(js, spec, (spec.stream.lower(),))

    holder = Holder(cap=50)
    async with reading(nc, spec, holder, ensure=make) as (reader, _, made):
        await until(lambda: made)
        await publish(nc, spec.stream.lower(), 4)
        await until(lambda: len(holder.replies) == 4)
    # 503 No Responders three times in a row, then the consumer was made and read.
    assert reader.ends["503"] >= 3


async def test_a_push_consumer_under_the_name_takes_health_down(nc: Client) -> None:
    spec = spec_for()
    js = nc.jetstream()
    await ensure_consumer(js, spec, (spec.stream.lower(),))
    await js.delete_consumer(spec.stream, spec.durable)
    await js.add_consumer(
        spec.stream,
        ConsumerConfig(
            durable_name=spec.durable, ack_policy=AckPolicy.EXPLICIT, deliver_subject="push.somewhere"
        ),
    )

    async def keep() -> None:
        return None

    holder = Holder(cap=50)
    async with reading(nc, spec, holder, ensure=keep) as (_, run, _):
        await asyncio.wait([run], timeout=10)
        # 409 Consumer is push based: the reader dies with it (its watch takes health down).
        assert isinstance(run.exception(), PullError)
        assert "push based" in str(run.exception())


class Broken(Holder):
    """A handler with a bug: it raises on the first message."""

    def handler(self, messages: list[Frame]) -> None:
        raise RuntimeError("a bug in the handler")


async def test_a_handler_that_raises_kills_the_reader_not_the_connection(nc: Client) -> None:
    spec = spec_for()
    got: list[bytes] = []

    async def take(msg: Msg) -> None:
        got.append(msg.data)

    await nc.subscribe("after.the.bug", cb=take)
    async with reading(nc, spec, Broken(cap=10)) as (_, run, _):
        await publish(nc, spec.stream.lower(), 1)
        await asyncio.wait([run], timeout=10)
        # The reader's task dies of the bug (its watch logs it and takes health down) ...
        assert isinstance(run.exception(), RuntimeError)
        # ... and the connection, whose read loop ran the handler, still reads.
        await nc.publish("after.the.bug", b"still here")
        await until(lambda: got == [b"still here"])


# -- the gateway on it ------------------------------------------------------------------------

# A gateway process that is SIGKILLed at the moment its first stored batch's acks would be
# written: after the output stream acknowledged the batch, before any of its entries' acks left.
_KILLED_BEFORE_ACK = """
import asyncio, os, signal, sys
import nats
from gateway.config import DurableIngest, GatewayConfig
from gateway.core.limits import BatchLimits
from gateway.ingest import acks
from gateway.service import Gateway
from publishers import PublishPolicy
from publishers.stream import StreamSpec

real = acks.Acks.settle

async def settle(self, handles, how):
    if how is acks.Settle.ACK:
        os.kill(os.getpid(), signal.SIGKILL)
    return await real(self, handles, how)

acks.Acks.settle = settle

async def main():
    url, stream, ingest = sys.argv[1:4]
    nc = await nats.connect(url)
    gateway = Gateway(GatewayConfig(
        stream=StreamSpec(name=stream),
        durable_ingest=DurableIngest(stream=ingest, ack_wait_s=2.0, fetch_timeout_s=0.2),
        publish=PublishPolicy(timeout_s=0.5, retry_deadline_s=1.0, backoff_max_s=0.2),
        batch=BatchLimits(max_entries=50, max_delay_ms=20),
    ))
    await gateway.start(nc)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_gateway_killed_between_store_and_ack_leaves_its_entries_redelivered(
    nats_server: NatsServer, nc: Client
) -> None:
    spec = spec_for(ack_wait_s=2.0, fetch_timeout_s=0.2)
    cfg = config(
        durable_ingest=spec, publish=FAST_PUBLISH, batch=BatchLimits(max_entries=50, max_delay_ms=20)
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILLED_BEFORE_ACK,
        nats_server.url,
        cfg.stream.name,
        spec.stream,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
    sent = entries(200)
    await publish_entries(nc, sent)
    assert await asyncio.wait_for(proc.wait(), 30) == -signal.SIGKILL
    before = log_ids(await stored_batches(nc.jetstream(), cfg.stream.name))
    # Stored, not acked: every entry the killed gateway took is still pending in the ingest stream.
    assert before
    left, pending = await ingest_state(nc, spec)
    assert left == 200  # (a work queue removes what is acked: nothing was)
    assert pending >= len(before)
    async with running_gateway(nats_server.url, cfg) as (second, _):
        await until_ingest(nc, spec, (0, 0))
        await until(lambda: second.acc.held_entries == 0)
    copies = Counter(log_ids(await stored_batches(nc.jetstream(), cfg.stream.name)))
    # in: 200; stored: every one; the batches stored before the kill are stored again
    # (redelivered, never lost), nothing else twice.
    assert set(copies) == {e["logId"] for e in sent}
    assert {log_id for log_id, n in copies.items() if n > 1} == set(before)
    assert second.stats.redelivered >= len(before)
    assert second.stats.total_dropped == 0


async def test_where_the_fast_path_is_unsupported_nats_py_fetches_as_before(
    nats_server: NatsServer, nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable_intake, "fast_path_supported", lambda _nc: False)
    spec = spec_for(ack_wait_s=5.0, fetch_timeout_s=0.2)
    cfg = config(
        durable_ingest=spec, publish=FAST_PUBLISH, batch=BatchLimits(max_entries=50, max_delay_ms=20)
    )
    sent = entries(300)
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        assert isinstance(gateway.rooms.intake, durable_intake.DurableIntake)
        assert isinstance(gateway.rooms.intake.reader, durable_intake.DurableReader)
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.published == 300)
        await until_ingest(nc, spec, (0, 0))
    stored = log_ids(await stored_batches(nc.jetstream(), cfg.stream.name))
    assert sorted(stored) == sorted(e["logId"] for e in sent)


async def test_a_404_ends_the_request_and_a_100_keeps_it_alive(nc: Client) -> None:
    """Real statuses on the live request's reply subject: a no-wait request on an empty stream
    answers 404 there; one with an idle heartbeat sends 100s there."""
    spec = spec_for(fetch_timeout_s=2.0)
    holder = Holder(cap=50)
    next_ = next_subject(spec.stream, spec.durable)
    async with reading(nc, spec, holder) as (reader, run, _):
        await until(lambda: reader.live_subject is not None)
        live = str(reader.live_subject)
        await nc.publish(next_, b'{"batch":1,"no_wait":true}', reply=live)
        await until(lambda: reader.ends["404"] == 1)
        await until(lambda: reader.live_subject not in (None, live))  # the next request followed
        body = b'{"batch":1,"expires":%d,"idle_heartbeat":%d}' % (int(1.5e9), int(0.1e9))
        await nc.publish(next_, body, reply=str(reader.live_subject))
        await until(lambda: reader.heartbeats >= 2)
        assert not run.done()
    # 404: ended, followed at once; 100: alive, nothing ended by it.
    assert reader.ends["404"] == 1
    assert sum(reader.ends.values()) == 1 + reader.ends["408"]


@pytest.mark.parametrize(
    "reply",
    [
        V1,
        V1.replace(b".gw.3.", b".gw.1."),
        b"$JS.ACK.ENTRIES.gw.1.5.5.1733000000123456789.0",
        b"$JS.ACK.ENTRIES.gw.11.5.5.1733000000123456789.0",
        V2.replace(b".gw.3.", b".gw.1."),
        b"$JS.ACK.ENTRIES.gw.1.ENTRIES.gw.1.5.5.1733000000123456789.0",  # domain, hash named alike
        b"$JS.ACK.ENTRIES.gw.1.ENTRIES.gw.1.5.5.1733000000123456789.0.r4nd",
        b"$JS.ACK.ENTRIES.gw.1.5.5.17330",  # 8 tokens
        b"$JS.ACK.OTHER.gw.1.5.5.1733000000123456789.0",
    ],
)
def test_the_cheap_first_delivery_check_never_contradicts_the_full_parse(reply: bytes) -> None:
    prefix = first_delivery_prefix("ENTRIES", "gw")
    if is_first_delivery(prefix, reply):
        assert delivered_count(reply) == 1
    if delivered_count(reply) == 1 and len(reply.split(b".")) == 9 and b".ENTRIES.gw." in reply:
        assert is_first_delivery(prefix, reply)  # (the 9-token form of this consumer: always caught)


async def test_the_pull_reader_s_counts_reach_metrics(nats_server: NatsServer, nc: Client) -> None:
    spec = spec_for(ack_wait_s=5.0, fetch_timeout_s=0.2)
    cfg = config(
        durable_ingest=spec, publish=FAST_PUBLISH, batch=BatchLimits(max_entries=50, max_delay_ms=20)
    )
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, entries(120))
        await until(lambda: gateway.pull_counts.get("settled_ack") == 120)
        await until_ingest(nc, spec, (0, 0))
        counts = gateway.pull_counts
        text = render_metrics(gateway).decode()
    # in: 120; every one received on a request, acked once its batch was stored; nothing handed back.
    assert counts["requests"] >= 1
    assert counts["received"] == 120
    assert counts["returned"] == 0
    assert 'log_gateway_pull_messages_total{what="received"} 120.0' in text
    assert 'log_gateway_ingest_settled_total{how="ack"} 120.0' in text
    assert f"log_gateway_pull_requests_total {float(counts['requests'])}" in text


async def test_a_stopped_reader_ends_once_its_live_requests_do(nc: Client) -> None:
    """Both requests live on an empty stream: stop sends no more and returns once they end (408)."""
    spec = spec_for(fetch_timeout_s=0.6)
    holder = Holder(cap=2000)
    async with reading(nc, spec, holder) as (reader, run, _):
        await until(lambda: reader.requests >= 2 and reader.live_subject is not None)
        reader.stop()
        await asyncio.wait([run], timeout=3)
        # Ended by its own requests' ends (within fetch_timeout_s), not by the cancel after 5 s.
        assert run.done()
        assert run.exception() is None
    assert reader.ends["given_up"] == 0


async def test_metrics_on_nats_py_s_fetch_count_the_acks_and_no_pull_requests(
    nats_server: NatsServer, nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the fast path (nats-py's fetch reads) there are acks but no pull counters: a scrape
    still answers, with the acks and without the pull rows."""
    monkeypatch.setattr(durable_intake, "fast_path_supported", lambda _nc: False)
    spec = spec_for(ack_wait_s=5.0, fetch_timeout_s=0.2)
    cfg = config(
        durable_ingest=spec, publish=FAST_PUBLISH, batch=BatchLimits(max_entries=50, max_delay_ms=20)
    )
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, entries(10))
        await until(lambda: gateway.pull_counts.get("settled_ack") == 10)
        text = render_metrics(gateway).decode()
    assert 'log_gateway_ingest_settled_total{how="ack"} 10.0' in text
    assert "log_gateway_pull_requests_total" not in text
    assert "log_gateway_entries_published_total 10.0" in text
