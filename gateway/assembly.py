"""How :class:`gateway.service.Gateway` is put together at start: the checks against the
connected server, the disk spool, and the rooms of one running gateway, built in one
piece (so nothing is ever half-built) with the fate of the configured ingest mode."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.js.client import JetStreamContext

from gateway.alerts import AlertPublisher
from gateway.config import ConfigError, GatewayConfig
from gateway.core import BatchEncoder, BatchLimits, Stats
from gateway.core.accumulator import Accumulator
from gateway.core.announce import stream_started
from gateway.core.pipeline import BatchPipeline
from gateway.core.redact import Redactor
from gateway.ingest.acks import Acks
from gateway.ingest.admission import Gate
from gateway.ingest.core_intake import CoreIntake
from gateway.ingest.decode import EntryDecoder
from gateway.ingest.durable_intake import DurableIntake
from gateway.ingest.fates import CoreFate, DurableFate, EntryFate
from gateway.ingest.reject import Rejects
from gateway.logs import RateLimitedLog
from gateway.sender import BatchMetrics, Sender
from gateway.spool.replay import Spooler, open_spool
from gateway.spool.store import SpoolRecord
from gateway.tasks import TaskWatch
from publishers.errors import PublishError
from publishers.jetstream import JetStreamPublisher
from publishers.stream import ensure_stream

__all__ = ["Parts", "Rooms", "announce", "assemble", "ensure_output_stream", "fit_to_server", "open_spooler"]

log = logging.getLogger("log_gateway")


@dataclass(frozen=True, slots=True)
class Parts:
    """What the gateway makes before start and every room shares."""

    config: GatewayConfig
    stats: Stats
    metrics: BatchMetrics
    warn: RateLimitedLog
    clock: Callable[[], float]
    redactor: Redactor | None
    tasks: TaskWatch = field(default_factory=TaskWatch)  # the background tasks, watched


@dataclass(frozen=True, slots=True)
class Rooms:
    """Everything a started gateway runs on."""

    pipeline: BatchPipeline
    publisher: JetStreamPublisher
    fate: EntryFate
    sender: Sender
    intake: CoreIntake | DurableIntake
    spooler: Spooler | None
    replayer: asyncio.Task[None] | None
    gate: Gate  # (other ways in, the OTLP receiver, admit here too)
    rejects: Rejects


def fit_to_server(batch: BatchLimits, max_payload: int) -> BatchLimits:
    """The batch limits within the server's ``max_payload`` (said when they had to shrink)."""
    limits = batch.within(max_payload)
    if limits is not batch:
        log.warning(
            "max_batch_bytes %d exceeds the server's max_payload %d; using it", batch.max_bytes, max_payload
        )
    return limits


async def ensure_output_stream(js: JetStreamContext, config: GatewayConfig) -> None:
    """Make sure the output stream exists and its duplicate window outlasts a retried publish.

    Raises:
        ConfigError: the window is too short for the retry deadline plus one publish timeout.
    """
    spec = config.stream
    if not spec.subjects:
        spec = dataclasses.replace(spec, subjects=config.subjects.outputs)
    info = await ensure_stream(js, spec)
    window = info.config.duplicate_window or 0.0
    worst = config.publish.retry_deadline_s + config.publish.timeout_s
    if window and worst >= window:
        raise ConfigError(
            f"stream {spec.name} has a duplicate window of {window:g}s, shorter than the retry "
            f"deadline plus one publish timeout ({worst:g}s): lower publish_retry_deadline_s"
        )


async def announce(publisher: JetStreamPublisher, config: GatewayConfig, limits: BatchLimits) -> None:
    """Say that a batch stream started (``cortex_logging.stream.started``); best effort."""
    subjects = config.subjects
    headers, body = stream_started(
        stream_id=config.gateway_id,
        started_by=config.gateway_id,
        destination="external",
        fmt="json",
        filters={
            "input": [subjects.entry, subjects.entry_children],
            "output": subjects.batch,
            "perSource": limits.per_source,
        },
    )
    try:
        await publisher.publish(subjects.stream_started, body, headers, deadline_s=10.0)
    except PublishError as exc:
        log.warning("could not announce the batch stream: %s", exc)


def open_spooler(config: GatewayConfig, stats: Stats, publisher: JetStreamPublisher) -> Spooler | None:
    """Open the disk spool, when one is configured; its replay publishes through ``publisher``."""
    spool = config.spool
    if spool is None:
        return None
    timeout_s = config.publish.timeout_s

    async def replay(record: SpoolRecord) -> None:
        await publisher.publish(record.subject, record.body, record.headers, deadline_s=timeout_s)

    spooler = Spooler(open_spool(spool), spool, replay, stats, config.buffer.overflow)
    if spooler.backlog:
        log.info("spool holds %d entries from before; replaying them first", spooler.spool.entries)
    return spooler


def assemble(
    parts: Parts,
    alerts: AlertPublisher | None,
    *,
    nc: Client,
    ingest_nc: Client,
    js: JetStreamContext,
    limits: BatchLimits,
    publisher: JetStreamPublisher,
    spooler: Spooler | None,
) -> Rooms:
    """The rooms of one gateway, wired: pipeline, admission, sender, fate, intake, replay."""
    config, stats = parts.config, parts.stats
    wake = asyncio.Event()
    pipeline = _pipeline(parts, limits, wake)
    gate = Gate(pipeline, wake, parts.warn)
    acks = Acks(ingest_nc)
    fate: EntryFate = CoreFate(stats) if config.durable_ingest is None else DurableFate(stats, acks.settle)
    sender = Sender(
        pipeline,
        publisher,
        config.subjects.batch,
        config.throttle,
        fate=fate,
        spooler=spooler,
        stats=stats,
        metrics=parts.metrics,
        wake=wake,
        freed=gate.freed,
        warn=parts.warn,
        clock=parts.clock,
    )
    decoder = _decoder(parts, limits, alerts)
    rejects = Rejects(nc, config.subjects.rejected, config.gateway_id, stats, parts.warn)
    room = _fetch_room(pipeline.acc, sender)
    intake = _intake(
        parts, nc=ingest_nc, js=js, room=room, decoder=decoder, gate=gate, rejects=rejects, acks=acks
    )
    replayer = None if spooler is None else parts.tasks.spawn(spooler.run(), name="log-gateway-replay")
    return Rooms(pipeline, publisher, fate, sender, intake, spooler, replayer, gate, rejects)


def _intake(
    parts: Parts,
    *,
    nc: Client,
    js: JetStreamContext,
    room: Callable[[], int],
    decoder: EntryDecoder,
    gate: Gate,
    rejects: Rejects,
    acks: Acks,
) -> CoreIntake | DurableIntake:
    config = parts.config
    subjects = (config.subjects.entry, config.subjects.entry_children)
    spec = config.durable_ingest
    if spec is None:
        return CoreIntake(
            nc,
            subjects,
            queue=config.queue_group,
            decoder=decoder,
            gate=gate,
            rejects=rejects,
            stats=parts.stats,
            pending_msgs_limit=config.pending_msgs_limit,
            pending_bytes_limit=config.pending_bytes_limit,
            spawn=parts.tasks.spawn,
        )
    return DurableIntake(
        nc,
        js,
        spec,
        subjects,
        decoder=decoder,
        gate=gate,
        rejects=rejects,
        stats=parts.stats,
        acks=acks,
        room=room,
        spawn=parts.tasks.spawn,
    )


def _fetch_room(acc: Accumulator, sender: Sender) -> Callable[[], int]:
    """How many more entries durable ingest may fetch now."""

    def room() -> int:
        # The ingest stream is the buffer: hold only what keeps every publish slot busy twice
        # over, so no entry waits here (under a throttle) until its ack_wait runs out. Read
        # each time: a live change may move the caps.
        enough = min(acc.buffer.max_entries, 2 * sender.max_in_flight * acc.limits.max_entries)
        return enough - acc.held_entries

    return room


def _decoder(parts: Parts, limits: BatchLimits, alerts: AlertPublisher | None) -> EntryDecoder:
    return EntryDecoder(
        max_batch_bytes=limits.max_bytes,
        clock=parts.clock,
        redactor=parts.redactor,
        on_error_entry=alerts.observe if alerts else None,
        strict=parts.config.strict_entries,
    )


def _pipeline(parts: Parts, limits: BatchLimits, wake: asyncio.Event) -> BatchPipeline:
    gateway_id = parts.config.gateway_id
    encoder = BatchEncoder(
        gateway_id=gateway_id, ce_source=f"//log-gateway/{gateway_id}", max_entries=limits.max_entries
    )
    return BatchPipeline(limits, parts.config.buffer, encoder, parts.stats, on_wake=wake.set)
