"""The bench's sustained row: which shares of the peak it runs, and what it reports.

The search itself is arithmetic on measured results, so a stand-in for the 60 s
measurement (p99 within the bound up to a given rate) shows which runs it makes;
``tests/test_bench.py`` runs the real measurement in the quick bench, and
``test_latency_is_send_to_the_streams_stored_time`` below the real latency runner.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.bench import main
from gateway.bench.main import BenchConfig, _Progress, _sustained, _sustained_runs
from gateway.bench.runners import LatencyResult, measure_latency
from gateway.process.natsserver import NatsServer

_PEAK = 10_000.0


def _holding_up_to(capacity: float, rates: list[float]) -> Any:
    async def measure(_url: str, rate: float, _seconds: float, *_args: str) -> LatencyResult:
        rates.append(rate)
        p99 = 40.0 if rate <= capacity else 900.0
        return LatencyResult(rate, 20.0, p99, p99, 1000, 2.0, 1e5, p99)

    return measure


@pytest.mark.parametrize(
    ("capacity", "runs", "held"),
    [
        (9_500, [0.9], 0.9),
        (8_500, [0.9, 0.7, 0.8], 0.8),
        (7_500, [0.9, 0.7, 0.8], 0.7),
        (6_500, [0.9, 0.7, 0.6], 0.6),
        (5_500, [0.9, 0.7, 0.6, 0.5], 0.5),
        (4_000, [0.9, 0.7, 0.6, 0.5], None),
    ],
)
async def test_the_highest_share_held_is_found_in_few_runs(
    monkeypatch: pytest.MonkeyPatch, capacity: float, runs: list[float], held: float | None
) -> None:
    rates: list[float] = []
    monkeypatch.setattr(main, "measure_latency", _holding_up_to(capacity, rates))
    config = BenchConfig()
    row = await _sustained("nats://unused", config, _Progress(_sustained_runs(5)), _PEAK)
    assert [t["share"] for t in row["tried"]] == runs
    assert rates == [share * _PEAK for share in runs]
    assert (row["held"] or {}).get("share") == held
    assert len(runs) <= _sustained_runs(len(config.sustained_shares)) == 4


@pytest.mark.timeout(60)
async def test_latency_is_send_to_the_streams_stored_time(nats_server: NatsServer) -> None:
    result = await measure_latency(nats_server.url, 2000, 1.5)
    assert result.entries >= 2000
    # Stored within the batch delay (100 ms) plus a loaded machine's slack, never before it
    # was sent: the stream's timestamps are this machine's clock, as the send times are.
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms < 5000
    assert 0 < result.worst_second_p99_ms <= result.max_ms
    assert result.bus_msgs_per_s < 2000  # batched, and counted from the stream
