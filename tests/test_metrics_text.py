"""The /metrics text as a scraper parses it: histogram bucket bounds written exactly."""

from __future__ import annotations

from nats.aio.client import Client
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.stats import BATCH_BYTES_BUCKETS, BATCH_ENTRIES_BUCKETS, LATENCY_BUCKETS_S
from gateway.process.metrics import render_metrics
from gateway.process.natsserver import NatsServer
from tests.helpers import config, entries, publish_entries, running_gateway, until

HISTOGRAMS = {
    "log_gateway_batch_bytes": BATCH_BYTES_BUCKETS,
    "log_gateway_batch_entries": BATCH_ENTRIES_BUCKETS,
    "log_gateway_entry_latency_seconds": LATENCY_BUCKETS_S,
}


async def test_histogram_bucket_labels_are_the_exact_bounds(nats_server: NatsServer, nc: Client) -> None:
    async with running_gateway(nats_server.url, config()) as (gateway, _):
        await publish_entries(nc, entries(10))
        await until(lambda: gateway.stats.published == 10)
        text = render_metrics(gateway).decode()
    assert 'le="1048576.0"' in text  # 2**20, not the rounded 1.04858e+06
    seen: dict[str, list[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_bucket") and family.name in HISTOGRAMS:
                seen.setdefault(family.name, []).append(sample.labels["le"])
    for name, bounds in HISTOGRAMS.items():
        labels = seen[name]
        assert labels[-1] == "+Inf"
        assert [float(label) for label in labels[:-1]] == list(bounds), name
