"""The pino transport (publishers/pino/): its node tests against a real nats-server and a real gateway.

The node tests (``node --test``) log through pino and check what the gateway batches; each
also reports the entries its run must have stored, and this test reads the gateway's stream
afterwards: every one of them stored exactly once, nothing more.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from gateway.process.natsserver import NatsServer, find_nats_server
from tests.helpers import collect, config, running_gateway, stored_batches, until
from tests.natsauth import operator_setup
from tests.test_tls import _issue, _make_ca, _tls_config, _write

LOG_GATEWAY = str(Path(sys.executable).parent / "log-gateway")

PINO = Path(__file__).resolve().parent.parent / "publishers" / "pino"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the pino transport's tests need Node 20+")
    if not (PINO / "node_modules").is_dir():
        pytest.skip("publishers/pino has no node_modules: run `npm ci` there (bash scripts/test does)")
    return node


async def _run_node(node: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run node in publishers/pino; its exit code and its output (stdout and stderr together)."""
    proc = await asyncio.create_subprocess_exec(
        node,
        *args,
        cwd=PINO,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 100)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(errors="replace")


def _summary(out: str, name: str) -> int:
    found = re.search(rf"^# {name} (\d+)$", out, re.MULTILINE)
    assert found, out[-4000:]
    return int(found.group(1))


async def test_the_pino_transport_delivers_through_a_real_gateway(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    node = _node()
    report = tmp_path / "runs.jsonl"
    cfg = config()
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        env = {
            "CORTEX_PINO_NATS_URL": nats_server.url,
            "CORTEX_PINO_REPORT": str(report),
            "CORTEX_PINO_NATS_SERVER_BIN": find_nats_server(),
        }
        code, out = await _run_node(node, "--test", "test/", env=env)
        assert code == 0, out[-6000:]
        await gateway.stop()
    assert _summary(out, "fail") == 0
    assert _summary(out, "skipped") == 0, out[-4000:]
    assert _summary(out, "pass") == _summary(out, "tests") >= 17
    runs = {r["run"]: r["expected"] for r in map(json.loads, report.read_text().splitlines())}
    assert len(runs) >= 4, runs
    stored = Counter(
        (str(entry.metadata["run"]), int(str(entry.metadata["n"])))
        for batch in await stored_batches(nc.jetstream(), cfg.stream.name)
        for entry in batch.batch.entries
        if entry.metadata and entry.metadata.get("run") in runs
    )
    assert all(count == 1 for count in stored.values()), [k for k, c in stored.items() if c > 1][:5]
    for run, expected in runs.items():
        assert sorted(n for r, n in stored if r == run) == list(range(expected)), run


async def test_the_pino_benchmark_measures_every_contender(nats_server: NatsServer) -> None:
    """A smoke run of publishers/pino/bench/bench.js: every measurement works (not how fast)."""
    node = _node()
    async with running_gateway(nats_server.url, config()):
        code, out = await _run_node(
            node, "bench/bench.js", "--nats-url", nats_server.url, "--count", "300", "--rounds", "1"
        )
    assert code == 0, out[-4000:]
    results = json.loads(out[out.index('{\n  "count"') :])  # after the progress lines
    calls = results["call_us"]
    assert set(calls) == {"transport", "destination_file", "main_thread_nats"}
    assert all(c["median"] > 0 for c in calls.values())
    ratio = results["ratio_transport_to_destination_file"]["median"]
    assert ratio == pytest.approx(calls["transport"]["median"] / calls["destination_file"]["median"])
    assert results["end_to_end_entries_per_s"]["median"] > 0


async def _entries_from_a_child(node: str, nc: Client, options: dict[str, Any], count: int = 50) -> list[Any]:
    """Run support/log-and-exit.js (log ``count`` records, then process.exit) with these transport
    options; the entries that arrived on ``nc``, decoded."""
    run = uuid.uuid4().hex
    got = await collect(nc, "cortex_logging.entry.created.>")
    env = {"RUN": run, "LOG_COUNT": str(count), "TRANSPORT_OPTIONS": json.dumps(options)}
    code, out = await _run_node(node, "support/log-and-exit.js", env=env)
    assert code == 0, out[-3000:]
    await until(lambda: len(got) >= count, 20)
    entries = [json.loads(msg.data) for msg in got]
    assert [msg.headers and msg.headers.get("ce-type") for msg in got] == [
        "cortex_logging.entry.created"
    ] * count
    assert sorted(e["metadata"]["n"] for e in entries if e["metadata"]["run"] == run) == list(range(count))
    return entries


async def test_the_pino_transport_authenticates_with_a_creds_file(tmp_path: Path) -> None:
    node = _node()
    setup = operator_setup()
    creds = setup.user_creds(tmp_path / "user.creds")
    with NatsServer(store_dir=tmp_path / "nats", config=setup.server_config()) as server:
        nc = await nats.connect(server.url, user_credentials=str(creds))
        try:
            entries = await _entries_from_a_child(node, nc, {"servers": server.url, "credsFile": str(creds)})
        finally:
            await nc.close()
    assert {e["source"] for e in entries} == {"pino-exit"}


async def test_the_pino_transport_speaks_tls_with_a_client_certificate(tmp_path: Path) -> None:
    node = _node()
    ca, ca_key = _make_ca("test-ca")
    ca_file, _ = _write(tmp_path / "ca", ca, ca_key)
    server_cert, server_key = _write(tmp_path / "server", *_issue("127.0.0.1", ca, ca_key, server=True))
    client_cert, client_key = _write(tmp_path / "client", *_issue("pino", ca, ca_key, server=False))
    pki = {"ca": ca_file, "server_cert": server_cert, "server_key": server_key}
    context = ssl.create_default_context(cafile=str(ca_file))
    context.load_cert_chain(str(client_cert), str(client_key))
    tls = {"caFile": str(ca_file), "certFile": str(client_cert), "keyFile": str(client_key)}
    with NatsServer(store_dir=tmp_path / "nats", config=_tls_config(pki, verify=True)) as server:
        url = server.url.replace("nats://", "tls://")
        nc = await nats.connect(url, tls=context)
        try:
            await _entries_from_a_child(node, nc, {"servers": url, "tls": tls})
        finally:
            await nc.close()


def test_log_gateway_bench_pino_prints_the_ratios_side_by_side(tmp_path: Path) -> None:
    """``log-gateway bench --pino``: its own nats-server and gateway, the node script, a table."""
    _node()
    result = subprocess.run(
        [LOG_GATEWAY, "bench", "--pino", "--entries", "300", "--rounds", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for contender in ("this transport", "pino.destination to a file", "published on the main thread"):
        assert contender in result.stdout
    results = json.loads((tmp_path / "pino-results.json").read_text())
    calls = results["call_us"]
    ratio = results["ratio_transport_to_destination_file"]["median"]
    assert ratio == pytest.approx(calls["transport"]["median"] / calls["destination_file"]["median"])
    assert (tmp_path / "pino-results.md").read_text().startswith("pino transport, 300 calls")
