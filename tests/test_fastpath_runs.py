"""The fast path hands the messages of one read to a run handler together, against a real server.

What a run handler does not take at once (from a message it must wait on) queues behind
it under the pending limits, exactly as single messages do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import nats
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError

from gateway.ingest.fastpath import Headers, subscribe_fast
from gateway.ingest.wire import Frame
from gateway.process.natsserver import NatsServer
from gateway.tasks import TaskWatch
from tests.helpers import until


class Runs:
    """Records each run handed over and each message handled one by one; can hold at one body."""

    def __init__(self, hold_at: bytes | None = None) -> None:
        self.runs: list[list[bytes]] = []
        self.singles: list[bytes] = []
        self.handled: list[bytes] = []  # both ways, in the order handled
        self.hold_at = hold_at
        self.release = asyncio.Event()
        self.errors: list[Exception] = []

    def on_frames(self, frames: list[Frame], start: int, stop: int) -> tuple[Awaitable[object], int] | None:
        run: list[bytes] = []
        self.runs.append(run)
        for index in range(start, stop):
            body = frames[index][4]
            run.append(body)
            self.handled.append(body)
            if body == self.hold_at:
                return self.release.wait(), index + 1
        return None

    def on_message(self, _subject: bytes, _headers: Headers, body: bytes) -> Awaitable[object] | None:
        # (nats-py's own parser hands a message over one by one where the fast loop does not)
        self.singles.append(body)
        self.handled.append(body)
        return self.release.wait() if body == self.hold_at else None

    async def on_error(self, exc: Exception) -> None:
        self.errors.append(exc)


async def subscribed(runs: Runs, url: str, subject: str, msgs: int) -> tuple[Client, Subscription]:
    nc = await nats.connect(url, error_cb=runs.on_error)
    sub, reader = await subscribe_fast(
        nc,
        subject,
        queue="",
        handler=runs.on_message,
        run_handler=runs.on_frames,
        pending_msgs_limit=msgs,
        pending_bytes_limit=1 << 20,
        spawn=TaskWatch().spawn,
    )
    assert reader is not None
    return nc, sub


async def test_the_messages_of_a_read_arrive_in_one_call_in_order(
    nats_server: NatsServer, nc: Client, subject: str
) -> None:
    runs = Runs()
    reader, sub = await subscribed(runs, nats_server.url, subject, msgs=10_000)
    in_msgs = reader.stats["in_msgs"]
    bodies = [b"%d" % i for i in range(500)]
    for body in bodies:
        await nc.publish(subject, body)
    await nc.flush()
    await until(lambda: len(runs.handled) == len(bodies))
    assert runs.handled == bodies
    assert len(runs.runs) < len(bodies) // 10  # reads, not messages
    assert sub.delivered == len(bodies)
    assert reader.stats["in_msgs"] - in_msgs == len(bodies)
    await reader.close()


async def test_from_a_message_that_must_wait_the_rest_queue_behind_it_under_the_limits(
    nats_server: NatsServer, nc: Client, subject: str
) -> None:
    runs = Runs(hold_at=b"9")
    reader, sub = await subscribed(runs, nats_server.url, subject, msgs=20)
    bodies = [b"%d" % i for i in range(100)]
    for body in bodies:
        await nc.publish(subject, body)
    await nc.flush()
    await until(lambda: len(runs.errors) == 100 - 10 - 20)  # 10 handled up to the hold, 20 queued
    assert runs.handled == bodies[:10]
    assert sub.pending_msgs == 20
    assert all(isinstance(error, SlowConsumerError) for error in runs.errors)
    runs.release.set()
    await until(lambda: len(runs.handled) == 30)
    assert runs.handled == bodies[:30]  # the queued ones next, one by one
    assert runs.singles[-20:] == bodies[10:30]
    assert sub.pending_msgs == 0
    assert sub.delivered == 100
    # Idle again: the next read goes to the run handler once more.
    await nc.publish(subject, b"after")
    await nc.flush()
    await until(lambda: runs.runs[-1] == [b"after"])
    await reader.close()
