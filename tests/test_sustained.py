"""Sustained load, on a real nats-server: a due batch is taken while ingest is still reading.

The read loop hands a read's frames to ingest without an await in between, and
nats-py reads on without yielding while its stream buffer holds more: a burst of
a few hundred kilobytes was handled in one go while the sender waited for a
turn of the loop to take the batches it had sealed (and PubAcks waited to free
publish slots). Under a steady load near capacity, that is where p99 went
(docs/benchmark.md, "Sustained capacity"). Now ingest yields every
``_SLICE_FRAMES`` frames; these tests hold it to that, counting frames, not
milliseconds, so they mean the same on a loaded machine.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from gateway.bench.payloads import messages
from gateway.bench.producer import wire
from gateway.config import ThrottleLimits
from gateway.core.accumulator import SealedBatch
from gateway.core.limits import BatchLimits
from gateway.ingest.fastpath import _SLICE_FRAMES
from gateway.process.natsserver import NatsServer
from gateway.service import Gateway
from tests.helpers import config, running_gateway, until

_BURST = 3000
_BATCH = 10


async def _write_at_once(url: str, subject: str, count: int) -> None:
    """``count`` entry messages written to the server in one write, as a busy service's client
    flushes them: the gateway then finds far more than one read's worth waiting."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    await reader.readline()  # INFO
    writer.write(b'CONNECT {"verbose":false,"headers":true,"protocol":1}\r\n')
    writer.write(wire(subject, messages(count, "mix")) + b"PING\r\n")
    await writer.drain()
    while (line := await reader.readline()) != b"PONG\r\n":
        assert line, "nats-server closed the producer's connection"
    writer.close()
    await writer.wait_closed()


def _record_takes(gateway: Gateway) -> list[int]:
    """At each batch taken, how many entries had been received after that batch was complete."""
    acc, stats = gateway.acc, gateway.stats
    take = acc.take
    taken = 0
    late: list[int] = []

    def recording(now: float) -> SealedBatch | None:
        nonlocal taken
        batch = take(now)
        if batch is not None:
            taken += len(batch.entries)
            late.append(stats.received - taken)
        return batch

    acc.take = recording  # type: ignore[method-assign]
    return late


@pytest.mark.timeout(60)
async def test_a_sealed_batch_is_taken_within_a_slice_of_ingest(nats_server: NatsServer) -> None:
    cfg = config(
        batch=BatchLimits(max_entries=_BATCH),
        throttle=ThrottleLimits(max_in_flight=_BURST),  # (slots out of the picture: turns only)
    )
    async with running_gateway(nats_server.url, cfg) as (gateway, _nc):
        late = _record_takes(gateway)
        await _write_at_once(nats_server.url, cfg.subjects.entry, _BURST)
        await until(lambda: gateway.stats.published == _BURST, 30)
    # Between two turns of the loop ingest handles at most a slice, and a read may begin a
    # new slice just after one ended: two slices and the batch itself. Before, hundreds.
    bound = 2 * _SLICE_FRAMES + _BATCH
    assert len(late) == _BURST // _BATCH
    assert max(late) <= bound, sorted(late)[-10:]
