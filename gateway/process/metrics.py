"""Prometheus metrics read from the gateway's own counts at scrape time (nothing on the hot path)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from contracts.errors import RejectReason
from gateway.core.limits import DropReason
from gateway.core.stats import LatencyHistogram

if TYPE_CHECKING:
    from gateway.service import Gateway

__all__ = ["GatewayCollector", "render_metrics"]

_P = "log_gateway_"


class GatewayCollector(Collector):
    """Exposes a :class:`~gateway.service.Gateway`'s counters, gauges and histograms."""

    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway

    def collect(self) -> Iterable[Metric]:
        gw = self._gw
        stats = gw.stats
        yield _counter("entries_received", "Entry messages received", stats.received)
        yield _counter("entries_published", "Entries acknowledged by JetStream in a batch", stats.published)
        yield _labelled("entries_rejected", "Messages rejected, by reason", stats.rejected, RejectReason)
        yield _labelled(
            "entries_dropped", "Accepted entries not published, by reason", stats.dropped, DropReason
        )
        yield _counter("batches_published", "Batches acknowledged by JetStream", stats.batches)
        yield _counter("publish_retries", "Batch publish attempts retried", stats.retries)
        yield _counter("entries_returned", "Entries handed back for redelivery", stats.returned)
        yield _counter("entries_redelivered", "Entry messages received more than once", stats.redelivered)
        yield _counter(
            "entry_time_fallbacks",
            "Entries accepted whose createdAt named no moment (the receipt time stood in)",
            stats.time_fallbacks,
        )
        yield from self._spool()
        yield _counter("redactions", "Secrets replaced before publishing", self._gw.redactions)
        acc = getattr(self._gw, "acc", None)
        yield GaugeMetricFamily(_P + "buffered_entries", "Entries held", value=acc.held_entries if acc else 0)
        yield GaugeMetricFamily(_P + "buffered_bytes", "Entry bytes held", value=acc.held_bytes if acc else 0)
        yield GaugeMetricFamily(
            _P + "ready", "1 once subscribed with the stream in place", value=int(self._gw.ready)
        )
        yield from self._faults()
        yield from self._pull()
        yield from self._alerts()
        yield _by_origin("config_changes", "Live configuration changes applied, by origin", gw.config_changes)
        yield _by_origin("config_refused", "Live configuration changes refused, by origin", gw.config_refused)
        yield _histogram("batch_entries", "Entries per published batch", self._gw.metrics.entries)
        yield _histogram("batch_bytes", "Bytes per published batch, headers included", self._gw.metrics.size)
        yield _histogram("entry_latency_seconds", "Entry receipt to JetStream ack", self._gw.metrics.latency)

    def _alerts(self) -> Iterable[Metric]:
        alerts = self._gw.alerts
        if alerts is None:
            return
        yield _counter("alerts_published", "Error-pattern alerts published", alerts.stats.published)
        yield _counter(
            "alerts_suppressed", "Alerts held back by the alert rate limit", alerts.stats.suppressed
        )
        yield _counter("alerts_failed", "Alerts that could not be published", alerts.stats.failed)
        yield GaugeMetricFamily(
            _P + "alert_patterns_tracked", "Error patterns counted", value=alerts.detector.tracked
        )

    def _pull(self) -> Iterable[Metric]:
        """Durable ingest's pull requests, their replies and the acks written (none for core ingest)."""
        counts = self._gw.pull_counts
        if not counts:
            return
        yield from self._settled(counts)
        if "requests" not in counts:  # nats-py's fetch reads (no fast path): only the acks are counted
            return
        yield _counter("pull_requests", "Pull requests sent to the ingest consumer", counts["requests"])
        messages = CounterMetricFamily(
            _P + "pull_messages", "Ingest messages, by what became of them", labels=["what"]
        )
        for what in ("asked", "received", "returned"):
            messages.add_metric([what], counts[what])
        yield messages
        yield _counter("pull_heartbeats", "Idle heartbeats (100) on live pull requests", counts["heartbeats"])
        ends = CounterMetricFamily(
            _P + "pull_ends", "How pull requests ended: filled, given up or a status code", labels=["how"]
        )
        for key, value in counts.items():
            if key.startswith("ended_"):
                ends.add_metric([key.removeprefix("ended_")], value)
        yield ends

    @staticmethod
    def _settled(counts: dict[str, int]) -> Iterable[Metric]:
        settled = CounterMetricFamily(
            _P + "ingest_settled", "Ingest messages acked, nakked or terminated", labels=["how"]
        )
        for how in ("ack", "nak", "term"):
            settled.add_metric([how], counts.get(f"settled_{how}", 0))
        yield settled

    def _faults(self) -> Iterable[Metric]:
        """What went wrong beside the entries: dead background tasks, rejects not forwarded."""
        yield GaugeMetricFamily(
            _P + "background_tasks_failed",
            "Background tasks that died (health is down)",
            value=len(self._gw.failed),
        )
        yield _counter(
            "rejected_forward_failed",
            "Rejected messages that could not be forwarded",
            self._gw.stats.reject_forward_failed,
        )

    def _spool(self) -> Iterable[Metric]:
        stats = self._gw.stats
        yield _counter("entries_spooled", "Entries written to the local spool", stats.spooled)
        yield _counter("entries_replayed", "Entries published from the local spool", stats.replayed)
        spooler = self._gw.spooler
        if spooler is None:
            return
        spool = spooler.spool
        yield GaugeMetricFamily(_P + "spool_bytes", "Bytes held in the spool", value=spool.size_bytes)
        yield GaugeMetricFamily(_P + "spool_entries", "Entries held in the spool", value=spool.entries)
        yield GaugeMetricFamily(_P + "spool_batches", "Batches held in the spool", value=spool.records)
        yield GaugeMetricFamily(
            _P + "spool_oldest_age_seconds", "Age of the oldest spooled batch", value=spooler.age_s()
        )


def _counter(name: str, doc: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(_P + name, doc, value=value)


def _labelled(name: str, doc: str, counts: dict[str, int], known: Iterable[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(_P + name, doc, labels=["reason"])
    for reason in sorted({*map(str, known), *counts}):
        family.add_metric([reason], counts.get(reason, 0))
    return family


def _by_origin(name: str, doc: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(_P + name, doc, labels=["origin"])
    for origin in sorted({"sighup", "control", "mcp", *counts}):
        family.add_metric([origin], counts.get(origin, 0))
    return family


def _histogram(name: str, doc: str, hist: LatencyHistogram) -> HistogramMetricFamily:
    # repr is exact and round-trips (2**20 -> "1048576.0"); "%g" rounds to six digits.
    buckets = [(repr(float(bound)), count) for bound, count in zip(hist.buckets, hist.counts, strict=True)]
    buckets.append(("+Inf", hist.count))
    return HistogramMetricFamily(_P + name, doc, buckets=buckets, sum_value=hist.total)


def render_metrics(gateway: Gateway, extra: Iterable[Collector] = ()) -> bytes:
    """The Prometheus text exposition of ``gateway``'s metrics (and of ``extra`` collectors:
    the OTLP receiver's)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(gateway))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)
