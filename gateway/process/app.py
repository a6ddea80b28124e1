"""The gateway as a FastStream application on its NATS broker.

FastStream owns the connection, the lifespan (start after the broker connects,
flush before it drains) and the AsyncAPI document. The per-entry core ingest is
subscribed with nats-py (see ``gateway.service`` for the measurement) on a
second connection of its own, ``<gateway_id>-ingest``, made exactly as the
broker's (the same settings and callbacks, through a second ``NatsBroker``
without subscribers): the ingest fast path (``gateway.ingest.fastpath``)
replaces nats-py's parser there, and a slip in it must not reach the
connection that carries the batches' PubAcks and the alerts. Durable ingest
fetches on the broker's connection. In the AsyncAPI document the ingest is
declared as FastStream subscribers so every subject the gateway speaks is
described with its schema.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faststream import FastStream
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from nats.aio.client import Client
from nats.errors import SlowConsumerError

from contracts.control import ConfigGetRequest, ConfigSetRequest, StatusRequest
from contracts.errors import GatewayError
from contracts.models import (
    EntryRejected,
    ErrorPatternDetected,
    GatewayConfigured,
    LogArchived,
    LogBatchCreated,
    LogEntryCreated,
    LogStreamStarted,
)
from contracts.query import LogQuery
from gateway.config import GatewayConfig
from gateway.control.apply import Reconfigurer
from gateway.control.hangup import watch_sighup
from gateway.control.service import ControlService
from gateway.control.subjects import control_subject
from gateway.mcp.config import McpHttpSettings
from gateway.otlp.config import OtlpConfig
from gateway.process.asyncapi_envelope import wire_document
from gateway.process.connection import ConnectionSettings
from gateway.process.http import HealthServer
from gateway.process.summary import Summary
from gateway.service import Gateway, ShutdownReport

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from gateway.mcp.http import McpHttp
    from gateway.otlp.receiver import OtlpReceiver

__all__ = ["GatewayApp", "ListenError", "build_app", "build_asyncapi", "say"]

log = logging.getLogger("log_gateway")
VERSION = "0.1.0"
_FIRST_GENERATION = 20_000  # objects allocated (net) before a collection; CPython's default is 700


class _CountedElsewhere(logging.Filter):
    """FastStream logs every connection error with a traceback; the gateway already counts
    slow-consumer drops and permission denials and logs them rate-limited, so a burst
    of them must not flood the log here."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SlowConsumerError) and "permissions violation" not in str(exc)


_faststream_log = logging.getLogger("log_gateway.faststream")
_faststream_log.addFilter(_CountedElsewhere())


@dataclass
class GatewayApp:
    """The FastStream app with the gateway it runs, and its health server (if any)."""

    app: FastStream
    broker: NatsBroker
    gateway: Gateway
    health: HealthServer | None
    report: ShutdownReport | None = None
    ingest: NatsBroker | None = None  # the core-ingest connection's broker (None with durable ingest)
    reconfigurer: Reconfigurer | None = None  # live changes (once started, when given the settings)
    control: ControlService | None = None  # the control service on NATS (once started, when on)
    mcp: McpHttp | None = None  # the /mcp listener (run --mcp), once started
    unwatch_sighup: Callable[[], None] | None = None  # stops applying SIGHUP (while it is watched)

    @property
    def failed(self) -> tuple[str, ...]:
        """The background tasks that died (the gateway's TaskWatch: the /mcp listener's too)."""
        return self.gateway.failed

    summary: asyncio.Task[None] | None = None  # the periodic summary line, while it runs
    otlp: OtlpReceiver | None = None  # with --otlp-port

    @property
    def is_ready(self) -> bool:
        """The gateway is started, none of its background tasks died, and both its connections are up."""
        ingest = self.ingest
        up = self.gateway.ready and not self.failed and _connected(self.broker)
        return up and (ingest is None or _connected(ingest))

    async def stopping(self) -> None:
        """Stop the OTLP receiver (intake first: nothing is taken once the flush begins), the
        periodic summary, the /mcp listener and the control service, the gateway (flushing what it
        holds), then its ingest connection and the health server. SIGHUP goes first: a reload
        must not retune a stopping gateway."""
        if self.unwatch_sighup is not None:
            self.unwatch_sighup()
            self.unwatch_sighup = None
        if self.otlp is not None:
            await self.otlp.stop()
        if self.summary is not None:
            self.summary.cancel()
        if self.mcp is not None:
            await self.mcp.stop()
        if self.control is not None:
            await self.control.stop()
        try:
            self.report = await self.gateway.stop()
        finally:
            if self.ingest is not None:
                await (
                    self.ingest.stop()
                )  # drains and closes the ingest connection once the gateway has stopped
        if self.health is not None:
            await self.health.stop()

    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def collectors(self) -> tuple[Collector, ...]:
        """Metrics beside the gateway's: the OTLP receiver's, when it runs."""
        return () if self.otlp is None else (self.otlp.collector(),)


def _declare_channels(broker: NatsBroker, config: GatewayConfig, *, with_ingest: bool) -> None:
    subjects = config.subjects
    broker.publisher(
        subjects.batch,
        schema=LogBatchCreated,
        title="logBatchCreated",
        description="Batches of log entries, stored in JetStream with Nats-Msg-Id = batchId.",
    )
    broker.publisher(
        subjects.rejected,
        schema=EntryRejected,
        title="entryRejected",
        description="Messages the gateway could not accept, with the reason and the original payload.",
    )
    broker.publisher(
        subjects.configured,
        schema=GatewayConfigured,
        title="gatewayConfigured",
        description="A running gateway applied a live configuration change: each setting's old and new "
        "value, and who asked (sighup, control:<client>, mcp).",
    )
    if not with_ingest:
        return
    _declare_control(broker, config)
    _declare_announcements(broker, config)
    for subject in (subjects.entry, subjects.entry_children):

        async def entry_created(body: LogEntryCreated) -> None:  # pragma: no cover - documentation only
            """Per-entry events (structured or binary CloudEvents, or bare JSON)."""

        broker.subscriber(subject, queue=config.queue_group, title=f"ingest:{subject}")(entry_created)


def _declare_control(broker: NatsBroker, config: GatewayConfig) -> None:
    """The control service's requests (documentation only: the service runs on nats.micro)."""
    prefix, also = (
        config.subjects.prefix,
        "also on log_gateway.control.gw.<gatewayId>.<endpoint> for one gateway",
    )

    async def status(body: StatusRequest) -> None:  # pragma: no cover - documentation only
        """Ask every gateway for counts, buffers, connection, uptime and version (a StatusReply each)."""

    async def config_get(body: ConfigGetRequest) -> None:  # pragma: no cover - documentation only
        """Ask every gateway for its effective settings (a ConfigReply each)."""

    async def config_set(body: ConfigSetRequest) -> None:  # pragma: no cover - documentation only
        """Change settings live on every gateway (a ConfigSetReply or an ErrorReply each)."""

    async def query(body: LogQuery) -> None:  # pragma: no cover - documentation only
        """One page of a query over the stream (a QueryReply: entries, nextCursor; or an ErrorReply).

        One gateway answers (they share the stream); a page may hold fewer than limit entries
        and still have a cursor, to stay under the server's max_payload."""

    for handler in (status, config_get, config_set, query):
        subject = control_subject(handler.__name__, None, prefix)
        broker.subscriber(subject, title=f"control:{handler.__name__}", description=also)(handler)


def _declare_announcements(broker: NatsBroker, config: GatewayConfig) -> None:
    """The other events the gateway (and ``archive``) publish, for the document only."""
    subjects = config.subjects
    for subject, schema, title, description in (
        (
            subjects.alerts,
            ErrorPatternDetected,
            "errorPatternDetected",
            "Error-pattern alerts, published at once.",
        ),
        (subjects.stream_started, LogStreamStarted, "logStreamStarted", "A stream of log events began."),
        (subjects.archived, LogArchived, "logArchived", "A segment file was archived (log-gateway archive)."),
    ):
        broker.publisher(subject, schema=schema, title=title, description=description)


def _broker(
    connection: ConnectionSettings, gateway: Gateway | None, *, name: str | None = None
) -> NatsBroker:
    """The broker (and so the nats-py connection) for ``connection``; its errors go to ``gateway``."""

    async def on_error(exc: BaseException) -> None:
        if gateway is not None:
            gateway.on_error(exc)

    kwargs = connection.broker_kwargs()
    if name is not None:
        kwargs["name"] = name
    return NatsBroker(
        **kwargs,
        error_cb=on_error,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
        logger=_faststream_log,
        log_level=logging.DEBUG,
    )


def _spec(broker: NatsBroker) -> AsyncAPI:
    return AsyncAPI(
        broker,
        title="cortex-log-gateway",
        version=VERSION,
        description="Batches per-entry Cortex logging events into logBatchCreated CloudEvents on JetStream.",
    )


def say(line: str) -> None:
    """Write ``line`` to stdout in one piece.

    Workers share their supervisor's stdout, and ``print`` writes a line's end
    separately: two workers' ready lines came out as one line and a second,
    empty one, and whoever waited for two ready lines waited forever. One write
    of a whole line (under the pipe's atomic size) cannot interleave.
    """
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def build_app(
    config: GatewayConfig,
    connection: ConnectionSettings,
    *,
    http_port: int | None = None,
    http_host: str = "127.0.0.1",
    values: Mapping[str, Any] | None = None,
    reread: Callable[[], Mapping[str, Any]] | None = None,
    mcp: McpHttpSettings | None = None,
    summary_interval_s: float = 0.0,
    otlp: OtlpConfig | None = None,
) -> GatewayApp:
    """The runnable application; nothing connects until FastStream starts it.

    ``values`` (``run``'s settings) enable live changes: the control service when
    ``values["control"]`` is on, and ``SIGHUP``, which applies ``reread()``.
    ``summary_interval_s`` above 0 logs a one-line summary that often (see
    :mod:`gateway.process.summary`).
    """
    gateway = Gateway(config)
    broker = _broker(connection, gateway)
    _declare_channels(broker, config, with_ingest=False)
    ingest = None
    if config.durable_ingest is None:  # durable ingest fetches on the broker's connection
        ingest = _broker(connection, gateway, name=f"{config.gateway_id}-ingest")
    health = None if http_port is None else _health(http_port, http_host, lambda: holder)
    holder = GatewayApp(
        # FastStream's own lines go through the gateway's logger: one format, no colour codes.
        FastStream(broker, specification=_spec(broker), logger=_faststream_log),
        broker,
        gateway,
        health,
        ingest=ingest,
    )

    extras = _Extras(values, reread, mcp, summary_interval_s, otlp)
    holder.app.after_startup(_started_hook(holder, http_host, extras))
    holder.app.on_shutdown(holder.stopping)
    return holder


@dataclass(frozen=True)
class _Extras:
    """What ``run`` adds to a bare gateway: live changes, the /mcp listener, the summary line,
    the OTLP receiver."""

    values: Mapping[str, Any] | None
    reread: Callable[[], Mapping[str, Any]] | None
    mcp: McpHttpSettings | None
    summary_interval_s: float
    otlp: OtlpConfig | None


def _started_hook(holder: GatewayApp, http_host: str, extras: _Extras) -> Callable[[], Awaitable[None]]:
    """What runs once the broker is connected: the gateway, the probes, "ready", the summary."""
    gateway, ingest = holder.gateway, holder.ingest

    async def started() -> None:
        ingest_nc = None if ingest is None else await ingest.connect()
        await gateway.start(holder.broker.connection, ingest_nc=ingest_nc)
        try:
            await _around_gateway(holder, http_host, extras)
        except BaseException:
            # FastStream runs no shutdown hook (and stops no broker) when this one raises: stop
            # here what started, so what core intake already took is flushed (or counted) and
            # nothing is left open.
            await holder.stopping()
            await holder.broker.stop()
            raise
        holder.ready.set()

    return started


async def _around_gateway(holder: GatewayApp, http_host: str, extras: _Extras) -> None:
    """Once the gateway runs: live changes, the probes, the OTLP receiver, /mcp, the summary."""
    gateway = holder.gateway
    if extras.values is not None:
        await _start_control(holder, extras.values, extras.reread)
    _tune_collector()
    said = await _start_servers(holder, http_host, extras.otlp)
    await _mcp_and_ready_line(holder, gateway.config, said, extras.mcp)
    if extras.summary_interval_s > 0:
        holder.summary = gateway.spawn(Summary(gateway, extras.summary_interval_s).run(), name="summary")


async def _mcp_and_ready_line(
    holder: GatewayApp, config: GatewayConfig, said: str, mcp: McpHttpSettings | None
) -> None:
    """Start the /mcp listener (with ``--mcp``), then say the gateway is ready and where it listens
    (``said``: the health server's and the OTLP receiver's addresses)."""
    holder.mcp = None if mcp is None else await _start_mcp(holder, config, mcp)
    said += f" mcp={holder.mcp.url}" if holder.mcp else ""
    say(f"log-gateway: ready gateway_id={config.gateway_id}{said}")


async def _start_mcp(holder: GatewayApp, config: GatewayConfig, settings: McpHttpSettings) -> McpHttp:
    """The /mcp listener on the broker's connection (imported here: it needs the mcp extra)."""
    from gateway.mcp.serve import start_http  # noqa: PLC0415 - the mcp extra, only with --mcp

    nc = holder.broker.connection
    # The batches are where they were stored: another stream may already capture the subject.
    stream = await nc.jetstream().find_stream_name_by_subject(config.subjects.batch)
    return await start_http(
        nc,
        settings,
        stream=stream,
        subject_prefix=config.subjects.prefix,
        on_death=holder.gateway.task_died,
    )


def _health(port: int, host: str, app: Callable[[], GatewayApp]) -> HealthServer:
    """The HTTP probes and metrics of the app ``app()`` returns (built after this)."""
    # prometheus_client only with an HTTP port (before ready, as the rest of the start)
    from gateway.process.metrics import render_metrics  # noqa: PLC0415

    return HealthServer(
        port=port,
        host=host,
        ready=lambda: app().is_ready,
        metrics=lambda: render_metrics(app().gateway, app().collectors()),
        failed=lambda: app().failed,
    )


async def _start_control(
    holder: GatewayApp, values: Mapping[str, Any], reread: Callable[[], Mapping[str, Any]] | None
) -> None:
    """Live changes for the started gateway: the one path, the control service, SIGHUP."""
    nc: Client = holder.broker.connection
    holder.reconfigurer = Reconfigurer(holder.gateway, values, nc)
    if values.get("control", True):
        holder.control = ControlService(nc, holder.gateway, holder.reconfigurer, version=VERSION)
        await holder.control.start()
    if reread is not None:
        holder.unwatch_sighup = watch_sighup(holder.reconfigurer, reread)


class ListenError(GatewayError, OSError):
    """A server of the gateway cannot listen where it was told to."""


async def _start_servers(holder: GatewayApp, http_host: str, otlp: OtlpConfig | None) -> str:
    """Start the health server and the OTLP receiver (those configured); the ready line's addresses."""
    said = ""
    if holder.health is not None:
        await holder.health.start()
        said = f" http=http://{http_host}:{holder.health.port}"
    if otlp is None:
        return said
    from gateway.otlp.receiver import OtlpReceiver  # noqa: PLC0415 - the otlp extra, only when asked for

    holder.otlp = OtlpReceiver.for_gateway(otlp, holder.gateway)
    try:
        await holder.otlp.start()
    except OSError as exc:
        holder.otlp = None
        where = f"{otlp.host}:{otlp.port}"
        raise ListenError(f"the OTLP receiver cannot listen on {where}: {exc.strerror}") from None
    return f"{said} otlp=http://{otlp.host}:{holder.otlp.port}/v1/logs"


def _connected(broker: NatsBroker) -> bool:
    nc: Client = broker.connection
    return nc.is_connected


def _tune_collector() -> None:
    """Make the cyclic garbage collector cheap under load; the process is started, nothing else runs.

    What exists now (modules, schemas, the app) lives as long as the process:
    frozen, it is no longer walked by every full pass. Under a flood the gateway
    holds tens of thousands of entries for a while (until their batches' acks
    come back, while the ingest traffic keeps the loop busy); a larger first generation
    lets most of them be published and freed before a pass walks them. Measured
    with gc.callbacks on this project's machine (bare entries): 137 first-
    generation passes per 80k entries became 5, and the collector's time fell
    from about 0.8 us per entry to about 0.2 us.

    No full pass first: ``run`` imported the app with the collector paused, and a
    pass over everything here (some 30 ms of the cold start) found about 200
    unreachable objects, which stay frozen (a few KB, once).
    """
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(_FIRST_GENERATION, second, third)


def build_asyncapi(config: GatewayConfig, *, yaml: bool = False) -> str:
    """The AsyncAPI 3.0 document of every subject the gateway speaks."""
    broker = _broker(ConnectionSettings(servers=("nats://localhost:4222",)), None)
    _declare_channels(broker, config, with_ingest=True)
    doc = wire_document(json.loads(_spec(broker).to_specification().to_json()))
    if yaml:
        import yaml as pyyaml  # noqa: PLC0415 - the asyncapi extra, lazily; the command checks it first

        return str(pyyaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return json.dumps(doc, indent=2)
