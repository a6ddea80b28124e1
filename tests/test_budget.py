"""The publish budget as the bus sees it: an independent subscriber times every batch.

The promise: in any window of ``WINDOW_S`` the gateway puts at most
``max_publish_bytes_rate * WINDOW_S`` bytes plus one batch, and at most
``max_publish_rate * WINDOW_S + 1`` batches, on the batch subject: at the
start of a flood, in steady flow and after an ack stall.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import PubAck

from gateway.config import ThrottleLimits
from gateway.core.encode import header_size
from gateway.core.limits import BatchLimits
from gateway.process.natsserver import NatsServer
from publishers.jetstream import JetStreamPublisher
from tests.helpers import config, entries, publish_entries, running_gateway, until

__all__: list[str] = []

WINDOW_S = 1.0
RATE = 5.0  # batches/s: not the binding limit here
BYTES_RATE = 60_000.0  # bytes/s: about 3.7 full batches a second
BATCH_BYTES = 16 * 1024
# Arrival times carry delivery jitter, which can bring two publishes closer together than
# they left; a window this much shorter than the budget's covers that jitter.
JITTER_S = 0.05
STALL_S = 2.0  # how long the stream's acks are held back (the fault, not a synchronisation)


@dataclass(frozen=True, slots=True)
class Window:
    """The busiest sliding window: where it starts, its bytes, its batches, its largest batch."""

    start: float
    size: int
    count: int
    largest: int


def busiest(seen: list[tuple[float, int]], length: float) -> tuple[Window, Window]:
    """The windows of ``length`` with the most bytes above the byte budget and the most batches.

    Every window can be slid forward to start at its first arrival, so only those are looked at.
    """
    by_bytes = by_count = Window(0.0, 0, 0, 0)
    for i, (start, _) in enumerate(seen):
        inside = [size for at, size in seen[i:] if at - start <= length]
        here = Window(start, sum(inside), len(inside), max(inside))
        if here.size - here.largest > by_bytes.size - by_bytes.largest:
            by_bytes = here
        by_count = max(by_count, here, key=lambda w: w.count)
    return by_bytes, by_count


def test_busiest_window_slides_over_every_start() -> None:
    seen = [(0.0, 10), (0.5, 10), (1.2, 50), (1.3, 50), (3.0, 1)]
    by_bytes, by_count = busiest(seen, 1.0)
    assert by_bytes == Window(0.5, 110, 3, 50)
    assert by_count == Window(0.5, 110, 3, 50)
    assert busiest([], 1.0) == (Window(0.0, 0, 0, 0), Window(0.0, 0, 0, 0))


def hold_acks(monkeypatch: pytest.MonkeyPatch, acks: asyncio.Event) -> None:
    """While ``acks`` is clear, a publish is on the bus but its ack does not come back."""
    publish = JetStreamPublisher.publish

    async def stalled(self: JetStreamPublisher, subject: str, *args: Any, **kwargs: Any) -> PubAck:
        ack = await publish(self, subject, *args, **kwargs)
        await acks.wait()
        return ack

    monkeypatch.setattr(JetStreamPublisher, "publish", stalled)


async def watch(url: str, subject: str) -> tuple[Client, list[tuple[float, int]]]:
    """An independent subscriber on its own connection: (arrival time, NATS size) of each message."""
    seen: list[tuple[float, int]] = []

    async def on_msg(msg: Msg) -> None:
        seen.append((time.monotonic(), header_size(dict(msg.headers or {})) + len(msg.data)))

    watcher = await nats.connect(url)
    await watcher.subscribe(subject, cb=on_msg)
    await watcher.flush()
    return watcher, seen


async def test_budget_holds_in_every_sliding_window_through_a_flood_and_an_ack_stall(
    nats_server: NatsServer, nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    acks = asyncio.Event()
    acks.set()
    hold_acks(monkeypatch, acks)
    cfg = config(
        batch=BatchLimits(max_entries=1000, max_bytes=BATCH_BYTES, max_delay_ms=20),
        throttle=ThrottleLimits(max_publish_rate=RATE, max_publish_bytes_rate=BYTES_RATE, max_in_flight=2),
    )
    watcher, seen = await watch(nats_server.url, cfg.subjects.batch)
    flood = entries(500, level="info", message="x" * 900)  # about 500 kB: the backlog outlasts the test
    async with running_gateway(nats_server.url, cfg):
        await publish_entries(nc, flood)
        await until(lambda: len(seen) >= 5, timeout_s=20)
        acks.clear()
        stalled_at = time.monotonic()
        asyncio.get_running_loop().call_later(STALL_S, acks.set)
        await until(lambda: acks.is_set() and len(seen) >= 5 + 2 + 8, timeout_s=30)
        await watcher.close()  # measured: what shutdown drains is not part of this test
    length = WINDOW_S - JITTER_S
    after = [(at, size) for at, size in seen if at >= stalled_at + STALL_S]
    by_bytes, by_count = busiest(seen, length)
    first = busiest([(at, size) for at, size in seen if at - seen[0][0] <= length], length)[0]
    report = (
        f"{len(seen)} batches; first window {first}; after the stall {busiest(after, length)[0]}; "
        f"busiest {by_bytes}; most batches {by_count}"
    )
    print(report)
    assert len(after) >= 8, report
    assert max(size for _, size in seen) <= BATCH_BYTES, report
    # The stall was real: once the publish slots were full nothing went out until the acks came back.
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(seen) if a >= stalled_at]
    assert max(gaps) >= STALL_S / 2, report
    assert by_bytes.size <= BYTES_RATE * WINDOW_S + by_bytes.largest, report
    assert by_count.count <= RATE * WINDOW_S + 1, report
