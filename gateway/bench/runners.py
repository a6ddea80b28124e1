"""Each contender, measured against the same nats-server and the same messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import nats
import orjson
from nats.aio.msg import Msg

from gateway.bench.cpu import tree_cpu_s
from gateway.bench.payloads import Message, entry
from gateway.bench.producer import Producer

__all__ = [
    "GatewayProcess",
    "LatencyResult",
    "measure_gateway",
    "measure_latency",
    "measure_naive",
    "measure_otel",
    "measure_raw",
    "naive_rate",
    "otel_processor",
    "raw_limit",
]

ENTRY_SUBJECT = "cortex_logging.entry.created"
BATCH_SUBJECT = "cortex_logging.batch.created"
_COUNT = re.compile(rb'"count":(\d+)')


async def measure_raw(url: str, msgs: list[Message]) -> dict[str, float]:
    """The limit: a raw nats-py subscriber receiving the messages and doing nothing else.

    Returns messages/s and the subscriber's CPU microseconds per message.
    """
    nc = await nats.connect(url)
    done = asyncio.Event()
    count = 0
    last = 0.0

    async def on_msg(_msg: Msg) -> None:
        nonlocal count, last
        count += 1
        if count == len(msgs):
            last = time.perf_counter()
            done.set()

    await nc.subscribe("bench.raw", cb=on_msg, pending_msgs_limit=0, pending_bytes_limit=0)
    await nc.flush()
    producer = Producer(url, "bench.raw", msgs)
    started = await producer.start()
    cpu_before = time.process_time()
    await asyncio.wait_for(done.wait(), 300)
    cpu_used = time.process_time() - cpu_before
    await producer.join()
    await nc.close()
    return {"per_s": len(msgs) / (last - started), "cpu_us": cpu_used / len(msgs) * 1e6}


class GatewayProcess:
    """``log-gateway run`` as users run it, in its own process."""

    def __init__(self, url: str, *args: str) -> None:
        self.url = url
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.said = b""  # what it printed until ready (the ready lines: where it listens)

    async def __aenter__(self) -> GatewayProcess:
        argv = [
            "-m",
            "gateway.process.cli",
            "run",
            "--nats-url",
            self.url,
            "--stream-name",
            "BENCH",
            "--log-level",
            "error",
        ]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        ready = 0
        workers = int(self.args[self.args.index("--workers") + 1]) if "--workers" in self.args else 1
        assert self.proc.stdout is not None  # noqa: S101 - set just above
        while ready < workers:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
            if not line:
                raise RuntimeError("log-gateway run exited before it was ready")
            self.said += line
            ready += line.count(b"log-gateway: ready")
        return self

    @property
    def pid(self) -> int | None:
        """The process id of ``log-gateway run`` (its workers are its children)."""
        return None if self.proc is None else self.proc.pid

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.proc.wait(), 60)


async def _purge(nc: Any) -> None:
    js = nc.jetstream()
    with contextlib.suppress(Exception):  # no stream yet on the first run
        await js.purge_stream("BENCH")


class _BatchCounter:
    """Counts the entries, messages and bytes of the batches stored; done when all ``total`` arrived."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.entries = self.batches = self.bytes = 0
        self.done = asyncio.Event()
        self.last = 0.0

    async def on_batch(self, msg: Msg) -> None:
        match = _COUNT.search(msg.data, 0, 4096)
        self.entries += int(match.group(1)) if match else 0
        self.batches += 1
        self.bytes += len(msg.data)
        if self.entries >= self.total:
            self.last = time.perf_counter()
            self.done.set()


async def measure_gateway(
    url: str, msgs: list[Message], *args: str, server_pid: int | None = None
) -> dict[str, float]:
    """Entries/s from per-entry publish until their batches are stored, the bus traffic, and CPU.

    CPU: the gateway's processes' microseconds per entry, and the cores the
    gateway and (given ``server_pid``) nats-server kept busy meanwhile.
    """
    nc = await nats.connect(url)
    seen = _BatchCounter(len(msgs))
    await _purge(nc)
    await nc.subscribe(BATCH_SUBJECT, cb=seen.on_batch)
    async with GatewayProcess(url, *args) as gateway:
        producer = Producer(url, ENTRY_SUBJECT, msgs)
        await producer.wait_ready()  # CPU and time are both counted from go
        cpu_before = (tree_cpu_s(gateway.pid), tree_cpu_s(server_pid))
        started = producer.say_go()
        await asyncio.wait_for(seen.done.wait(), 300)
        cpu_used = (tree_cpu_s(gateway.pid) - cpu_before[0], tree_cpu_s(server_pid) - cpu_before[1])
        await producer.join()
    await nc.close()
    elapsed = seen.last - started
    return {
        "entries_per_s": seen.total / elapsed,
        "bus_msgs_per_s": seen.batches / elapsed,
        "bus_bytes_per_s": seen.bytes / elapsed,
        "gateway_cpu_us": cpu_used[0] / seen.total * 1e6,
        "gateway_cores": cpu_used[0] / elapsed,
        "server_cores": cpu_used[1] / elapsed,
    }


@dataclass
class LatencyResult:
    """Per-entry latency at a fixed offered load, and what reached the bus.

    ``worst_second_p99_ms``: the highest p99 of the entries sent in any one second of the run.
    """

    offered_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    entries: int
    bus_msgs_per_s: float
    bus_bytes_per_s: float
    worst_second_p99_ms: float = float("nan")


async def measure_latency(url: str, rate: float, seconds: float, *args: str) -> LatencyResult:
    """Publish at ``rate`` entries/s for ``seconds``; latency from send to stored.

    "Stored" is the time JetStream stored the batch (the stream message's
    timestamp, read on an ordered consumer of the output stream), not the time
    this process got round to it; batches are parsed after the run, so the
    measurement's own work delays nothing it measures.
    """
    nc = await nats.connect(url)
    stored: list[tuple[float, bytes]] = []

    async def on_batch(msg: Msg) -> None:
        stored.append((msg.metadata.timestamp.timestamp(), msg.data))

    await _purge(nc)
    async with GatewayProcess(url, *args):  # (it makes the stream the consumer reads)
        sub = await nc.jetstream().subscribe(BATCH_SUBJECT, cb=on_batch, ordered_consumer=True)
        producer = Producer(url, ENTRY_SUBJECT, rate=rate, seconds=seconds)
        await producer.start()
        await producer.join()
        # The last batches arrive within the batch delay: wait until nothing new comes.
        seen = -1
        while seen != len(stored):
            seen = len(stored)
            await asyncio.sleep(0.5)
        await sub.unsubscribe()
    await nc.close()
    return _latency_result(rate, seconds, stored)


def _latency_result(rate: float, seconds: float, stored: list[tuple[float, bytes]]) -> LatencyResult:
    by_second: dict[int, list[float]] = {}
    latencies: list[float] = []
    for at, body in stored:
        for item in orjson.loads(body)["data"]["entries"]:
            sent = item["metadata"]["sentAt"]
            latencies.append(at - sent)
            by_second.setdefault(int(sent), []).append(at - sent)
    worst = max((_pick(sorted(values), 0.99) for values in by_second.values()), default=float("nan"))
    latencies.sort()
    bus_msgs, bus_bytes = len(stored) / seconds, sum(len(body) for _, body in stored) / seconds
    return LatencyResult(
        rate,
        _pick(latencies, 0.5),
        _pick(latencies, 0.99),
        _pick(latencies, 1.0),
        len(latencies),
        bus_msgs,
        bus_bytes,
        worst,
    )


def _pick(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of ``ordered`` (seconds) in milliseconds."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


async def measure_naive(url: str, msgs: list[Message], *, pipelined: bool = False) -> float:
    """Each entry as its own CloudEvent published to JetStream (what the gateway replaces).

    As a service would usually write it, awaiting each publish's ack; with
    ``pipelined``, nats-py's ``publish_async`` keeps up to 4000 acks pending.
    """
    nc = await nats.connect(url)
    js = nc.jetstream()
    with contextlib.suppress(Exception):  # first run
        await js.delete_stream("NAIVE")
    await js.add_stream(name="NAIVE", subjects=["bench.naive"])
    started = time.perf_counter()
    if pipelined:
        futures = [await js.publish_async("bench.naive", body, headers=headers) for headers, body in msgs]
        await asyncio.gather(*futures)
    else:
        for headers, body in msgs:
            await js.publish("bench.naive", body, headers=headers)
    elapsed = time.perf_counter() - started
    await js.delete_stream("NAIVE")
    await nc.close()
    return len(msgs) / elapsed


def raw_limit(url: str, msgs: list[Message]) -> dict[str, float]:
    """:func:`measure_raw` run to completion (for a process of its own)."""
    return asyncio.run(measure_raw(url, msgs))


def naive_rate(url: str, msgs: list[Message], pipelined: bool) -> float:
    """:func:`measure_naive` run to completion (for a process of its own)."""
    return asyncio.run(measure_naive(url, msgs, pipelined=pipelined))


def otel_processor(count: int) -> Any:
    """A BatchLogRecordProcessor to a do-nothing exporter whose queue holds all ``count`` records
    (none dropped); the SDK refuses an export batch larger than its queue, so a small run keeps
    the queue at the batch size, 512."""
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    return BatchLogRecordProcessor(
        _noop_exporter(), max_queue_size=max(count + 1, 512), max_export_batch_size=512
    )


def measure_otel(count: int) -> float:
    """The OpenTelemetry SDK path: LoggingHandler, BatchLogRecordProcessor, a do-nothing exporter."""
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler

    provider = LoggerProvider()
    provider.add_log_record_processor(otel_processor(count))
    logger = logging.getLogger(f"bench.otel.{count}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
    rng = random.Random(3)
    records = [entry(n, rng) for n in range(count)]
    started = time.perf_counter()
    for data in records:
        logger.info(
            data["message"],
            extra={
                "source": data["source"],
                "component": data["component"],
                "userId": data["userId"],
                "requestId": data["metadata"]["requestId"],
            },
        )
    provider.force_flush()
    elapsed = time.perf_counter() - started
    provider.shutdown()
    return count / elapsed


def measure_call_cost(url: str, count: int) -> dict[str, float]:
    """Microseconds per ``logger.info(..., extra=...)`` call in the caller's thread, for three handlers."""
    import tempfile

    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler

    from publishers.handler import HandlerConfig, NatsLogHandler

    with tempfile.TemporaryDirectory() as tmp:
        provider = LoggerProvider()
        provider.add_log_record_processor(otel_processor(count))
        handlers: dict[str, logging.Handler] = {
            "stdlib FileHandler": logging.FileHandler(f"{tmp}/bench.log"),
            "OpenTelemetry LoggingHandler": LoggingHandler(logger_provider=provider),
            "cortex NatsLogHandler": NatsLogHandler(
                HandlerConfig(servers=(url,), service="bench", queue_size=count + 1)
            ),
        }
        out = {}
        for name, handler in handlers.items():
            logger = logging.getLogger(f"bench.call.{id(handler)}")
            logger.propagate = False
            logger.setLevel(logging.INFO)
            logger.addHandler(handler)
            logger.info("warm up")
            started = time.perf_counter()
            for i in range(count):
                logger.info("charged %d cents", i, extra={"orderId": "o-1", "attempt": 1})
            out[name] = (time.perf_counter() - started) / count * 1e6
            handler.flush()
            handler.close()
        provider.shutdown()
    return out


def _noop_exporter() -> Any:
    """An OpenTelemetry log exporter that does nothing (so only the SDK's own cost is measured)."""
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

    class Nothing(LogRecordExporter):
        def export(self, batch: Any) -> LogRecordExportResult:
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            return None

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

    return Nothing()
