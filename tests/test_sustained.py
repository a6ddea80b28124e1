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
import random
from urllib.parse import urlsplit

import pytest

from gateway.bench.payloads import Message, encode, entry, messages
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


def _large(count: int) -> list[Message]:
    """Entries of about 1.3 KiB (a stack trace in the metadata): fewer than ``_SLICE_FRAMES``
    of them fit in one 32 KiB read, so a slice has to be counted across reads."""
    rng = random.Random(3)
    out = []
    for n in range(count):
        data = entry(n, rng)
        data["metadata"]["stack"] = "    at handler (/srv/app/dist/worker.js:120:17)\n" * 20
        out.append(encode(data, "bare", n))
    return out


async def _write_at_once(url: str, subject: str, msgs: list[Message]) -> None:
    """``count`` entry messages written to the server in one write, as a busy service's client
    flushes them: the gateway then finds far more than one read's worth waiting."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    await reader.readline()  # INFO
    writer.write(b'CONNECT {"verbose":false,"headers":true,"protocol":1}\r\n')
    writer.write(wire(subject, msgs) + b"PING\r\n")
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
@pytest.mark.parametrize("size", ["mix", "large"])
async def test_a_sealed_batch_is_taken_within_a_slice_of_ingest(nats_server: NatsServer, size: str) -> None:
    cfg = config(
        batch=BatchLimits(max_entries=_BATCH),
        throttle=ThrottleLimits(max_in_flight=_BURST),  # (slots out of the picture: turns only)
    )
    async with running_gateway(nats_server.url, cfg) as (gateway, _nc):
        late = _record_takes(gateway)
        msgs = messages(_BURST, "mix") if size == "mix" else _large(_BURST)
        await _write_at_once(nats_server.url, cfg.subjects.entry, msgs)
        await until(lambda: gateway.stats.published == _BURST, 30)
    # Between two turns of the loop ingest handles at most a slice, and a read may begin a
    # new slice just after one ended: two slices and the batch itself. Before, hundreds.
    bound = 2 * _SLICE_FRAMES + _BATCH
    assert len(late) == _BURST // _BATCH
    assert max(late) <= bound, sorted(late)[-10:]
