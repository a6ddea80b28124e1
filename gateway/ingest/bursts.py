"""Reading a subscription in bursts: one wake-up for many messages.

The fallback of :mod:`gateway.ingest.fastpath`, for a nats-py it does not know.
nats-py hands each message to a callback through a queue and a task that wakes
once per message; at tens of thousands of messages a second that wake-up is a
large part of the cost. This subscribes without a callback and drains the
subscription's queue itself, handling every message already waiting before it
sleeps again. This reads nats-py's ``Subscription._pending_queue``
and ``_pending_size`` (through :mod:`gateway.ingest.nats_private`, where every
private name the ingest relies on is listed); if they are missing it falls back
to an ordinary callback. Handled messages are marked
done on the queue, so ``Subscription.drain()`` still waits for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from gateway.ingest import nats_private as private
from gateway.tasks import Spawn

__all__ = ["Handler", "subscribe_in_bursts"]

# A handler returns None when it is done with the message, or an awaitable when
# it must wait (a full buffer under the "block" policy, forwarding a reject).
Handler = Callable[[Msg], Awaitable[object] | None]
_MAX_BURST = 1024
_FIELDS = ("_pending_queue", "_pending_size")  # the private names this reads (see nats_private)


async def subscribe_in_bursts(
    nc: Client,
    subject: str,
    *,
    queue: str,
    handler: Handler,
    pending_msgs_limit: int,
    pending_bytes_limit: int,
    spawn: Spawn,
) -> tuple[Subscription, asyncio.Task[None] | None]:
    """Subscribe and start draining in bursts; returns the subscription and its reader task
    (started by ``spawn``, so a reader that dies is logged and takes health down)."""
    sub = await nc.subscribe(
        subject, queue=queue, pending_msgs_limit=pending_msgs_limit, pending_bytes_limit=pending_bytes_limit
    )
    if private.subscription_problems(sub, only=_FIELDS):  # pragma: no cover
        await sub.unsubscribe()

        async def each(msg: Msg) -> None:
            pending = handler(msg)
            if pending is not None:
                await pending

        return await nc.subscribe(
            subject,
            queue=queue,
            cb=each,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        ), None
    return sub, spawn(_read(sub, handler), name=f"intake:{subject}")


async def _read(sub: Subscription, handler: Handler) -> None:
    queue = private.pending_queue(sub)  # see the module docstring
    while True:
        msg = await queue.get()
        for _ in range(_MAX_BURST):
            private.set_pending_bytes(sub, private.pending_bytes(sub) - len(msg.data))
            try:
                pending = handler(msg)
                if pending is not None:
                    await pending
            finally:
                queue.task_done()
            try:
                msg = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        else:
            continue
