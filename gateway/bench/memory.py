"""Memory: the gateway's RSS while it holds N entries a throttle keeps off the bus.

``log-gateway run`` is started with a publish rate so low that, once one warm-up
batch has gone out, nothing more is published for days, and a buffer with room
for every entry. The benchmark's producer then offers N mix entries; once the
gateway's own counts say it received and holds all of them (nothing dropped or
rejected), the RSS of its process tree is read. The growth over the RSS read
after the warm-up (the fixed base: interpreter, modules, connections) is set
against the entries' wire bytes: the sum of the message sizes as sent, header
block and body, as NATS counts a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client
from prometheus_client.parser import text_string_to_metric_families

from gateway.bench.cpu import tree_pids
from gateway.bench.payloads import Message
from gateway.bench.producer import Producer, header_block
from gateway.bench.runners import ENTRY_SUBJECT, GatewayProcess

__all__ = ["GatewayCounts", "MemoryResult", "measure_memory", "tree_rss_bytes", "wire_bytes"]

# One batch per ~11.6 days: after the warm-up batch the pacer owes this long.
_ALMOST_NEVER_PER_S = 1e-6
_WAIT_S = 600.0
_POLL_S = 0.1
_HTTP = re.compile(rb"http=(http://\S+)")
_PAGE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class GatewayCounts:
    """The gateway's own counts, read from its ``/metrics``."""

    received: int
    published: int
    buffered: int
    buffered_bytes: int
    dropped: int
    rejected: int


@dataclass(frozen=True, slots=True)
class MemoryResult:
    """RSS of a gateway holding ``entries`` entries, against their wire bytes."""

    entries: int
    wire_bytes: int
    base_rss_bytes: int
    loaded_rss_bytes: int
    counts: GatewayCounts

    @property
    def added_bytes(self) -> int:
        """What holding the entries added to the RSS."""
        return self.loaded_rss_bytes - self.base_rss_bytes

    @property
    def ratio(self) -> float:
        """RSS added per wire byte held."""
        return self.added_bytes / self.wire_bytes

    def as_dict(self) -> dict[str, float]:
        """The row's figures, for ``results.json``."""
        counts = self.counts
        return {
            "entries": self.entries,
            "wire_bytes": self.wire_bytes,
            "wire_bytes_per_entry": self.wire_bytes / self.entries,
            "base_rss_bytes": self.base_rss_bytes,
            "loaded_rss_bytes": self.loaded_rss_bytes,
            "added_bytes": self.added_bytes,
            "added_bytes_per_entry": self.added_bytes / self.entries,
            "ratio_to_wire": self.ratio,
            "received": counts.received,
            "buffered": counts.buffered,
            "buffered_bytes": counts.buffered_bytes,
            "dropped": counts.dropped,
            "rejected": counts.rejected,
        }


def wire_bytes(msgs: list[Message]) -> int:
    """The messages' sizes as sent: header block (as nats-py writes it) plus body."""
    return sum(len(body) + (0 if headers is None else len(header_block(headers))) for headers, body in msgs)


def tree_rss_bytes(pid: int) -> int:
    """Resident bytes of ``pid`` and its live descendants (``/proc/<pid>/statm``)."""
    total = 0
    for each in tree_pids(pid):
        with contextlib.suppress(OSError):  # gone meanwhile
            total += int(Path(f"/proc/{each}/statm").read_text().split()[1]) * _PAGE_BYTES
    return total


def _read_counts(metrics_url: str) -> GatewayCounts:
    with urllib.request.urlopen(metrics_url, timeout=30) as response:  # noqa: S310 - our own gateway
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    p = "log_gateway_"
    return GatewayCounts(
        received=int(values[p + "entries_received_total"]),
        published=int(values[p + "entries_published_total"]),
        buffered=int(values[p + "buffered_entries"]),
        buffered_bytes=int(values[p + "buffered_bytes"]),
        dropped=int(values[p + "entries_dropped_total"]),
        rejected=int(values[p + "entries_rejected_total"]),
    )


async def _counts_when(metrics_url: str, received: int, published: int) -> GatewayCounts:
    """The gateway's counts once it has received ``received`` entries and published ``published``.

    Raises:
        RuntimeError: an entry was dropped or rejected, or the counts never got there.
    """
    deadline = time.monotonic() + _WAIT_S
    loop = asyncio.get_running_loop()
    while True:
        counts = await loop.run_in_executor(None, _read_counts, metrics_url)
        if counts.dropped or counts.rejected:
            raise RuntimeError(f"the gateway lost entries while holding them: {counts}")
        if counts.received >= received and counts.published >= published:
            return counts
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway never held the entries: {counts}")
        await asyncio.sleep(_POLL_S)  # (the gateway's counts are read over HTTP: nothing to wait on)


def _args(count: int, msgs_bytes: int) -> tuple[str, ...]:
    return (
        "--http-port",
        "0",
        "--max-publish-rate",
        str(_ALMOST_NEVER_PER_S),
        "--max-buffered-entries",
        str(count + 1),
        "--max-buffered-bytes",
        str(2 * msgs_bytes + (1 << 20)),
        "--shutdown-timeout-s",
        "1",
    )


async def measure_memory(url: str, msgs: list[Message]) -> MemoryResult:
    """RSS growth of a throttled ``log-gateway run`` holding ``msgs`` (see the module docstring).

    Raises:
        RuntimeError: the gateway dropped or rejected an entry, or did not hold them all.
    """
    sent = wire_bytes(msgs)
    nc = await nats.connect(url)
    try:
        async with GatewayProcess(url, *_args(len(msgs), sent)) as gateway:
            assert gateway.pid is not None  # noqa: S101 - started above
            metrics_url = _metrics_url(gateway.said)
            producer = Producer(url, ENTRY_SUBJECT, msgs)  # (its spawn and setup, before the base is read)
            headers, body = msgs[0]
            await nc.publish(ENTRY_SUBJECT, body, headers=headers)  # the warm-up batch: the pacer's one
            await _counts_when(metrics_url, 1, 1)
            await producer.wait_ready()
            base = tree_rss_bytes(gateway.pid)
            producer.say_go()
            counts = await _counts_when(metrics_url, len(msgs) + 1, 1)
            loaded = tree_rss_bytes(gateway.pid)
            await producer.join()
    finally:
        await _purge_stream(nc)
    if counts.buffered != len(msgs) or counts.published != 1:
        raise RuntimeError(f"the gateway should hold every entry offered, and it does not: {counts}")
    return MemoryResult(len(msgs), sent, base, loaded, counts)


def _metrics_url(said: bytes) -> str:
    match = _HTTP.search(said)
    if match is None:
        raise RuntimeError(f"log-gateway run did not say where it serves /metrics: {said!r}")
    return match.group(1).decode() + "/metrics"


async def _purge_stream(nc: Client) -> None:
    """Leave no batches behind (shutdown published what it could of the held entries)."""
    with contextlib.suppress(Exception):  # no stream: nothing to purge
        await nc.jetstream().purge_stream("BENCH")
    await nc.close()
