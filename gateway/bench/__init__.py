"""``log-gateway bench``: the gateway against the raw NATS limit, naive per-entry
JetStream publishing and the OpenTelemetry SDK, side by side in one run."""

from gateway.bench.main import BenchConfig, run_bench

__all__ = ["BenchConfig", "run_bench"]
