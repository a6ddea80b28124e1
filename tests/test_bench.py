"""``log-gateway bench --quick``: the smoke run checks that every measurement works, not how fast."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from gateway.bench.cpu import _own_cpu_s, tree_cpu_s
from gateway.bench.payloads import Message, messages
from gateway.bench.producer import Producer, wire
from gateway.bench.report import headline_figure
from gateway.bench.runners import measure_otel
from gateway.process.natsserver import NatsServer

LOG_GATEWAY = str(Path(sys.executable).parent / "log-gateway")


def _check_overload_rows(results: dict[str, Any]) -> None:
    overload = results["overload"]
    assert overload["offered_per_s"] == pytest.approx(2 * overload["peak_per_s"])
    assert overload["stored"] > 0
    assert overload["ratio_to_peak"] == pytest.approx(overload["median_per_s"] / overload["peak_per_s"])
    flood = results["overload_10x"]
    assert flood["offered_per_s"] == pytest.approx(10 * flood["peak_per_s"])
    assert flood["stored"] > 0
    # What the producer got onto the wire is counted, never more than was offered.
    for row in (overload, flood):
        assert 0 < row["sent_per_s"] <= row["offered_per_s"] * 1.01
    sustained = results["sustained"]
    assert [t["share"] for t in sustained["tried"]] == [0.5]
    assert sustained["tried"][0]["entries"] > 0


@pytest.mark.timeout(400)  # its run takes ~2 minutes here, more on a loaded machine
def test_quick_benchmark_writes_json_markdown_and_png(tmp_path: Path) -> None:
    result = subprocess.run(
        [LOG_GATEWAY, "bench", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=380,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[  1/20]" in result.stderr  # progress is shown while it runs
    results = json.loads((tmp_path / "results.json").read_text())
    for form in ("structured", "binary", "bare", "mix"):
        row = results["throughput"][form]
        assert row["limit"]["median"] > 0
        assert row["gateway"]["median"] > 0
        # One round: the ratio is that round's pair.
        assert row["ratio_gateway_to_limit"]["median"] == pytest.approx(
            row["gateway"]["median"] / row["limit"]["median"], rel=1e-9
        )
        # CPU per message was read for both sides (a process that did the work spent CPU on it).
        assert row["limit_cpu_us"]["median"] > 0
        assert row["gateway_cpu_us"]["median"] > 0
    base = results["baselines"]
    for key in ("naive", "naive_pipelined", "otel", "ratio_gateway_to_naive", "ratio_gateway_to_otel"):
        assert base[key]["min"] <= base[key]["median"] <= base[key]["max"]
    latency = results["latency_at_half_load"]
    assert latency["entries"] > 0
    assert latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert 0 < latency["p50_ms"] < 60_000  # entries carry the time they were sent, not the placeholder
    assert latency["bus_msgs_per_s"] < latency["offered_per_s"]  # batching cut the bus messages
    assert [row["batch_size"] for row in results["batch_size_sweep"]] == [50, 500]
    _check_later_rows(results, tmp_path)
    table = (tmp_path / "results.md").read_text()
    assert "gateway / limit" in table
    assert "OpenTelemetry" in table
    assert "of the peak**" in table
    assert "Sustained capacity" in table
    assert (tmp_path / "batch_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "headline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_later_rows(results: dict[str, Any], out: Path) -> None:
    _check_overload_rows(results)
    _check_workers_and_call_costs(results)
    _check_memory_row(results)
    assert "x their wire bytes**" in (out / "results.md").read_text()


def _check_memory_row(results: dict[str, Any]) -> None:
    memory = results["memory"]
    assert memory["entries"] == 10 * results["config"]["entries"]
    # Every entry offered was held, none lost: the gateway's own counts (and the warm-up entry).
    assert memory["buffered"] == memory["entries"] == memory["received"] - 1
    assert memory["dropped"] == memory["rejected"] == 0
    assert memory["added_bytes"] == memory["loaded_rss_bytes"] - memory["base_rss_bytes"] > 0
    assert memory["ratio_to_wire"] == pytest.approx(memory["added_bytes"] / memory["wire_bytes"])


def _check_workers_and_call_costs(results: dict[str, Any]) -> None:
    variants = results["variants"]
    assert set(variants) == {"1 process", "2 processes", "1 process, durable ingest"}
    assert variants["1 process"]["speedup"]["median"] == 1.0
    assert variants["2 processes"]["gateway_cores"]["median"] > 0
    assert variants["1 process, durable ingest"]["entries_per_s"]["median"] > 0
    assert set(results["call_cost_us"]) == {
        "stdlib FileHandler",
        "OpenTelemetry LoggingHandler",
        "cortex NatsLogHandler",
    }
    costs = results["call_cost_us"]
    # Each handler really ran: shipping a record costs more than a filtered-out call (~0.2 us).
    assert all(cost > 0.5 for cost in costs.values()), costs


async def test_flood_producer_publishes_what_nats_py_would(nc: Client, nats_server: NatsServer) -> None:
    """The benchmark's producer writes raw protocol commands; subscribers must see the same messages."""
    msgs = messages(40, "mix")
    sub = await nc.subscribe("bench.wire", pending_msgs_limit=0)
    await nc.flush()
    producer = Producer(nats_server.url, "bench.wire", msgs)
    await producer.start()
    await producer.join()
    got: list[Msg] = [await sub.next_msg(timeout=10) for _ in msgs]
    assert [(m.headers, m.data) for m in got] == [(headers, body) for headers, body in msgs]
    # And byte for byte what nats-py's client writes for the same publishes.
    assert wire("s", msgs[:3]) == await _nats_py_commands("s", msgs[:3])


async def _nats_py_commands(subject: str, msgs: list[Message]) -> bytes:
    """What ``Client.publish`` writes: a client never connected keeps its commands in a pending buffer."""
    client = Client()
    client._max_pending_size = 1 << 20  # what connect() would set: buffer while not connected
    for headers, body in msgs:
        await client.publish(subject, body, headers=headers)
    return b"".join(client._pending)


def test_cpu_reading_counts_a_process_and_its_children() -> None:
    """Gateway CPU in the benchmark is read over ``log-gateway run`` and its workers."""
    busy_child = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'while True: pass'])"
    parent = subprocess.Popen([sys.executable, "-c", busy_child], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while tree_cpu_s(parent.pid) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tree_cpu_s(parent.pid) >= 0.5  # the spinning grandchild's time is counted
        assert _own_cpu_s(parent.pid) < 0.4  # though its parent only waits
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
    assert tree_cpu_s(None) != tree_cpu_s(None)  # nothing to read: NaN


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's LoggingHandler, as the bench uses it
def test_the_otel_contender_runs_on_a_small_count() -> None:
    """Before: ``bench --quick --entries 100`` died in the SDK (max_export_batch_size > max_queue_size)."""
    assert measure_otel(100) > 0


DOCS = Path(__file__).parent.parent / "docs"


def test_the_headline_picture_shows_the_gateway_against_the_limit_and_each_contender() -> None:
    """From the full run the README reports (docs/bench-results.json), as docs/bench-headline.png."""
    results = json.loads((DOCS / "bench-results.json").read_text())
    fig = headline_figure(results)
    against_limit, against_contenders = fig.axes
    legend = [text.get_text() for text in against_limit.get_legend().get_texts()]
    assert legend == ["limit: raw nats-py (msgs/s)", "gateway (entries/s stored)"]
    assert [tick.get_text() for tick in against_limit.get_yticklabels()] == list(results["throughput"])
    assert "per second" in against_limit.get_xlabel()
    assert "entries per second" in against_contenders.get_xlabel()
    names = [tick.get_text() for tick in against_contenders.get_yticklabels()]
    assert names[0] == "gateway (mix)"
    assert any("OpenTelemetry" in name for name in names)
    written = " ".join(t.get_text() for t in against_limit.texts)
    mix = results["throughput"]["mix"]
    assert (
        f"{mix['gateway']['median']:,.0f} ({mix['ratio_gateway_to_limit']['median']:.2f} of the limit)"
        in written
    )
    assert (DOCS / "bench-headline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
