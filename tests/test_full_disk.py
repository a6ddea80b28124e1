"""A full disk under the spool, as an operator breaks it: a real ``log-gateway run``, a real
nats-server, and a real 512 KiB filesystem (tmpfs) filled to its last byte.

Each test states its counts: entries in, stored (each once, in order), dropped with reason.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import signal
import subprocess
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from gateway.process.app import build_app
from gateway.process.connection import ConnectionSettings
from gateway.process.natsserver import NatsServer
from gateway.spool import Spool
from tests.helpers import entries, log_ids, publish_entries, stored_batches
from tests.test_cli import gateway_process, http_get, metric
from tests.test_spool import rec
from tests.test_spool_gateway import spooled_config

DISK = "512k"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs, unmounted afterwards; the test is skipped where mounting is refused."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {DISK} tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> None:
    """Write files into ``directory`` until the filesystem has not one byte left."""
    index = 0
    for chunk in (64 * 1024, 4096, 1):
        while True:
            try:
                with (directory / f"filler-{index}").open("wb") as out:
                    index += 1
                    while True:
                        out.write(b"\0" * chunk)
                        out.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    stat = os.statvfs(directory)
    assert stat.f_bavail == 0, "the filesystem still has room"


async def scrape(port: int) -> str:
    return (await http_get(port, "/metrics"))[1]


async def until_metric(port: int, name: str, want: float, timeout_s: float = 30.0) -> None:
    """Wait for another process's metric ``name`` to reach ``want`` (its /metrics is all there is)."""
    try:
        async with asyncio.timeout(timeout_s):
            while metric(await scrape(port), name) < want:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"{name} stayed at {metric(await scrape(port), name)}, below {want}")


BEFORE, AWAY, FULL, AFTER = (
    entries(n, start, level="info") for n, start in ((100, 0), (300, 100), (40, 400), (50, 440))
)


async def break_and_mend(nc: Client, port: int, stream: str, disk: Path) -> str:
    """Entries in; the stream deleted while more arrive (spooled); the disk filled to its last
    byte while more arrive (not spoolable); the stream recreated; more once the spool is empty.
    Returns the gateway's metrics at the end."""
    js = nc.jetstream()
    await publish_entries(nc, BEFORE)
    await until_metric(port, "log_gateway_entries_published_total", len(BEFORE))
    info = await js.stream_info(stream)
    await js.delete_stream(stream)  # JetStream answers no more: batches time out, then spool
    await publish_entries(nc, AWAY)
    await until_metric(port, "log_gateway_entries_spooled_total", len(AWAY))
    fill(disk)
    await publish_entries(nc, FULL)  # the disk full and the stream away: each one is counted
    await until_metric(port, 'log_gateway_entries_dropped_total{reason="spool_failed"}', len(FULL))
    await js.add_stream(info.config)  # the stream is back; the disk is still full
    await until_metric(port, "log_gateway_entries_replayed_total", len(AWAY))
    await publish_entries(nc, AFTER)  # the spool is empty again: straight to the stream
    await until_metric(port, "log_gateway_entries_published_total", len(BEFORE) + len(AWAY) + len(AFTER))
    return await scrape(port)


async def test_replay_survives_a_full_disk_and_counts_every_entry(
    nats_server: NatsServer, nc: Client, small_disk: Path
) -> None:
    spool_dir, stream = small_disk / "spool", "FULL_DISK"
    args = ["--nats-url", nats_server.url, "--http-port", "0", "--stream-name", stream, "--alerts", "false"]
    args += ["--spool-dir", str(spool_dir), "--spool-fsync", "always", "--max-batch-entries", "20"]
    args += ["--publish-timeout-s", "0.3", "--publish-retry-deadline-s", "1"]
    async with gateway_process(*args) as (proc, lines):
        port = int(re.search(r"http=http://127.0.0.1:(\d+)", "".join(lines)).group(1))  # type: ignore[union-attr]
        text = await break_and_mend(nc, port, stream, small_disk)
        healthz, readyz = await http_get(port, "/healthz"), await http_get(port, "/readyz")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        assert proc.stdout is not None
        output = "".join(lines) + (await proc.stdout.read()).decode()
    batches = await stored_batches(nc.jetstream(), stream)
    stored = log_ids(batches)
    # in: 490; stored: 100 (in the stream deleted), then the 300 spooled, replayed each once and
    # in order, then 50 more; dropped: the 40 sent while the disk was full and the stream away.
    assert stored == [e["logId"] for e in [*AWAY, *AFTER]]
    sequences = [b.batch.sequence for b in batches]
    assert sequences == sorted(sequences)
    published = metric(text, "log_gateway_entries_published_total")
    assert published == len(BEFORE) + len(stored)  # a replayed batch counted once
    assert metric(text, "log_gateway_entries_received_total") == published + len(FULL)
    assert metric(text, "log_gateway_entries_replayed_total") == len(AWAY)
    assert metric(text, 'log_gateway_entries_dropped_total{reason="spool_failed"}') == len(FULL)
    assert metric(text, "log_gateway_spool_entries") == 0
    assert healthz == (200, "ok\n")
    assert readyz[0] == 200
    assert code == 0
    assert "cannot write the replay cursor" in output  # said once, when the disk filled
    assert "the replay cursor is written again" in output
    assert "background task" not in output
    # Nothing is left to be replayed (twice) at the next start: no segment, no stray temporary file.
    assert sorted(p.name for p in spool_dir.iterdir()) == ["cursor", "lock"]


async def test_a_dead_background_task_takes_health_down_and_is_logged(
    nats_server: NatsServer, nc: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The replay task dies of a bug: /healthz and /readyz say so, and the log has its traceback."""
    cfg = spooled_config(tmp_path / "spool")
    holder = build_app(cfg, ConnectionSettings(servers=(nats_server.url,)), http_port=0)
    await holder.app.start()
    try:
        assert holder.health is not None
        port, gateway = holder.health.port, holder.gateway
        assert await http_get(port, "/healthz") == (200, "ok\n")
        assert gateway.spooler is not None

        def buggy() -> None:
            raise KeyError("a bug in the spool")

        gateway.spooler.spool.peek = buggy  # type: ignore[method-assign]
        await nc.jetstream().delete_stream(cfg.stream.name)  # batches spool; replay then peeks
        await publish_entries(nc, entries(30, level="info"))
        try:
            async with asyncio.timeout(20):
                while (await http_get(port, "/healthz"))[0] == 200:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pytest.fail("/healthz stayed 200 with the replay task dead")
        healthz, readyz = await http_get(port, "/healthz"), await http_get(port, "/readyz")
        failed = list(gateway.failed)
        text = (await http_get(port, "/metrics"))[1]
    finally:
        await holder.app.stop()
    assert healthz[0] == readyz[0] == 503
    assert "log-gateway-replay" in healthz[1]
    assert failed == ["log-gateway-replay"]
    assert metric(text, "log_gateway_background_tasks_failed") == 1
    deaths = [r for r in caplog.records if "log-gateway-replay" in r.getMessage() and r.exc_info]
    assert len(deaths) == 1  # logged once, with the traceback
    assert "a bug in the spool" in "".join(traceback.format_exception(*deaths[0].exc_info))  # type: ignore[misc]


def test_commits_on_a_full_disk_free_spent_segments_first_and_lose_nothing(small_disk: Path) -> None:
    """Record by record, with the disk full: each commit consumes; the cursor catches up as soon as
    a used-up segment is deleted; reopened, the spool holds exactly what was not consumed."""
    directory = small_disk / "spool"
    records = [rec(n, size=3000) for n in range(12)]
    options: dict[str, Any] = {"max_bytes": 256 * 1024, "segment_bytes": 4 * Spool.framed_size(records[0])}
    with Spool.open(directory, **options) as spool:  # 4 records a segment: 3 segments
        for record in records:
            spool.append(record)
        fill(small_disk)
        owed = []
        for record in records[:6]:
            assert spool.peek() == record
            spool.commit()  # never raises for the cursor: the record was published
            owed.append(spool.cursor_error is not None)
        # 1-3 find no room for the cursor; the 4th deletes segment 0 and writes it in its room.
        assert owed == [True, True, True, False, False, False]
        assert not (directory / "cursor.tmp").exists()
    with Spool.open(directory, **options) as reopened:
        assert reopened.peek() == records[6]
        assert reopened.records == 6
