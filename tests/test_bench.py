"""``log-gateway bench --quick``: the smoke run checks that every measurement works, not how fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LOG_GATEWAY = str(Path(sys.executable).parent / "log-gateway")


@pytest.mark.timeout(400)
def test_quick_benchmark_writes_json_markdown_and_png(tmp_path: Path) -> None:
    result = subprocess.run(
        [LOG_GATEWAY, "bench", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=380,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[  1/19]" in result.stderr  # progress is shown while it runs
    results = json.loads((tmp_path / "results.json").read_text())
    for form in ("structured", "binary", "bare", "mix"):
        row = results["throughput"][form]
        assert row["limit"]["median"] > 0
        assert row["gateway"]["median"] > 0
        assert row["ratio_gateway_to_limit"]["median"] == pytest.approx(
            row["gateway"]["median"] / row["limit"]["median"], rel=1e-9
        )
    base = results["baselines"]
    for key in ("naive", "naive_pipelined", "otel", "ratio_gateway_to_naive", "ratio_gateway_to_otel"):
        assert base[key]["min"] <= base[key]["median"] <= base[key]["max"]
    latency = results["latency_at_half_load"]
    assert latency["entries"] > 0
    assert latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert latency["bus_msgs_per_s"] < latency["offered_per_s"]  # batching cut the bus messages
    assert [row["batch_size"] for row in results["batch_size_sweep"]] == [50, 500]
    assert set(results["workers"]) == {"1", "2"}
    assert set(results["call_cost_us"]) == {
        "stdlib FileHandler",
        "OpenTelemetry LoggingHandler",
        "cortex NatsLogHandler",
    }
    costs = results["call_cost_us"]
    # Each handler really ran: shipping a record costs more than a filtered-out call (~0.2 us).
    assert all(cost > 0.5 for cost in costs.values()), costs
    table = (tmp_path / "results.md").read_text()
    assert "gateway / limit" in table
    assert "OpenTelemetry" in table
    assert (tmp_path / "batch_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
