"""Goodput under overload: entries stored per second while more is offered than fits.

A paced producer offers ``rate`` entries/s for ``seconds``; an independent
subscriber counts, per second of arrival, the entries in the batches stored.
Goodput is read over the offered load's window only, after a warm-up, and the
weakest second is reported beside the median: a congestion collapse shows as
a median or minimum far below the peak.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass

import nats
from nats.aio.msg import Msg

from gateway.bench.producer import Producer
from gateway.bench.runners import _COUNT, BATCH_SUBJECT, ENTRY_SUBJECT, GatewayProcess, _purge

__all__ = ["GoodputResult", "measure_goodput"]

_WARMUP_S = 2


@dataclass(frozen=True)
class GoodputResult:
    """Entries stored per second while ``offered_per_s`` were offered (``sent_per_s``: what the
    producer got onto the wire of it, lower when the server read slower than it was offered)."""

    offered_per_s: float
    median_per_s: float
    min_per_s: float
    seconds: int
    stored: int
    timeline: tuple[int, ...] = ()
    sent_per_s: float = 0.0

    def ratio_to(self, peak: float) -> float:
        """Median goodput as a share of ``peak``."""
        return self.median_per_s / peak if peak > 0 else float("nan")


class _PerSecond:
    """Entries in the stored batches, by whole second since ``start``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.counts: Counter[int] = Counter()

    async def on_batch(self, msg: Msg) -> None:
        match = _COUNT.search(msg.data, 0, 4096)
        if match:
            self.counts[int(time.perf_counter() - self.start)] += int(match.group(1))


async def measure_goodput(url: str, rate: float, seconds: float, *args: str) -> GoodputResult:
    """Offer ``rate`` entries/s for ``seconds`` to a fresh ``log-gateway run``; per-second goodput."""
    nc = await nats.connect(url)
    await _purge(nc)
    seen = _PerSecond()
    await nc.subscribe(BATCH_SUBJECT, cb=seen.on_batch)
    async with GatewayProcess(url, *args):
        producer = Producer(url, ENTRY_SUBJECT, rate=rate, seconds=seconds)
        await producer.wait_ready()
        seen.start = producer.say_go()
        await producer.join()
    await nc.close()
    window = range(_WARMUP_S, max(_WARMUP_S + 1, int(seconds)))
    per_second = [seen.counts.get(s, 0) for s in window]
    return GoodputResult(
        offered_per_s=rate,
        sent_per_s=producer.sent / seconds,
        median_per_s=statistics.median(per_second),
        min_per_s=min(per_second),
        seconds=len(per_second),
        stored=sum(seen.counts.values()),
        timeline=tuple(seen.counts.get(s, 0) for s in range(max(seen.counts, default=0) + 1)),
    )
