"""``log-gateway query`` as a real command: a table, NDJSON pages with cursors, --all, the archive alone."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

from nats.aio.client import Client

from contracts import LogEntryCreated
from gateway.consumers.segments import Compression, SegmentWriter
from gateway.core.limits import BatchLimits
from gateway.process.natsserver import NatsServer
from tests.helpers import config, entries, publish_entries, running_gateway, until

LOG_GATEWAY = str(Path(sys.executable).parent / "log-gateway")


async def query(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``log-gateway query ARGS``: status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        LOG_GATEWAY,
        "query",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=None if env is None else os.environ | env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def cursor_in(stderr: str) -> str | None:
    found = re.search(r"--cursor (\S+)", stderr)
    return found.group(1) if found else None


async def test_query_pages_as_a_table_and_as_json_then_streams_all(
    nats_server: NatsServer, nc: Client
) -> None:
    cfg = config(batch=BatchLimits(max_entries=10, max_delay_ms=5))
    sent = entries(40)
    errors = [e["logId"] for e in sent if e["level"] == "error"]
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.published == 40)
        base = ["--nats-url", nats_server.url, "--stream-name", cfg.stream.name, "--level", "error"]
        status, out, err = await query(*base, "--limit", "5")
        assert status == 0, err
        rows = out.splitlines()
        assert len(rows) == 5
        assert rows[0].startswith(sent[3]["createdAt"])
        assert "ERROR" in rows[0]
        assert sent[3]["message"] in rows[0]
        first = cursor_in(err)
        assert first is not None
        status, out, err = await query(*base, "--limit", "5", "--json", "--cursor", first)
        assert status == 0, err
        assert [json.loads(line)["logId"] for line in out.splitlines()] == errors[5:]
        assert cursor_in(err) is None  # the last page
        status, out, err = await query(*base, "--all")
        assert status == 0, err
        assert [LogEntryCreated.parse_json(line).logId for line in out.splitlines()] == errors
        status, _, err = await query(*base[:-1], "warn", "--cursor", first)
        assert status == 2
        assert "other filters" in err
        assert len(err.splitlines()) == 1


async def test_query_reads_the_archive_alone_without_a_server(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, compression=Compression.ZSTD, fsync=False)
    for data in entries(30, message="payment Timeout here"):
        writer.write(LogEntryCreated.parse(data), 0.0)
    writer.finish()
    # tail's level in the environment is no filter of query's
    tail_level = {"LOG_GATEWAY_LEVEL": "fatal", "LOG_GATEWAY_SOURCE": "svc-1"}
    status, out, err = await query(
        "--archive-dir", str(tmp_path), "--filter", "timeout", "--source", "svc-2", env=tail_level
    )
    assert status == 0, err
    assert len(out.splitlines()) == 10
    assert cursor_in(err) is None
    status, _, err = await query("--archive-dir", str(tmp_path), "--limit", "1001")
    assert status == 2
    assert "--limit" in err
    assert "1000" in err
