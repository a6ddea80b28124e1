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
from collections import Counter
from pathlib import Path

import pytest
from nats.aio.client import Client

from gateway.process.natsserver import NatsServer, find_nats_server
from tests.helpers import config, running_gateway, stored_batches

PINO = Path(__file__).resolve().parent.parent / "publishers" / "pino"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the pino transport's tests need Node 20+")
    if not (PINO / "node_modules").is_dir():
        pytest.skip("publishers/pino has no node_modules: run `npm ci` there (bash scripts/test does)")
    return node


async def _node_tests(node: str, url: str, report: Path) -> tuple[int, str]:
    env = {
        **os.environ,
        "CORTEX_PINO_NATS_URL": url,
        "CORTEX_PINO_REPORT": str(report),
        "CORTEX_PINO_NATS_SERVER_BIN": find_nats_server(),
    }
    proc = await asyncio.create_subprocess_exec(
        node,
        "--test",
        "test/",
        cwd=PINO,
        env=env,
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
        code, out = await _node_tests(node, nats_server.url, report)
        assert code == 0, out[-6000:]
        await gateway.stop()
    assert _summary(out, "fail") == 0
    assert _summary(out, "skipped") == 0, out[-4000:]
    assert _summary(out, "pass") == _summary(out, "tests") >= 14
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
