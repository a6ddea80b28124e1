"""Archiving: entries in = entries read back; LogArchived matches the files on disk."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from nats.aio.client import Client

from contracts import LogArchived, LogEntryCreated
from gateway.consumers.archiver import ArchiveConfig, Archiver
from gateway.consumers.segments import Compression, SegmentWriter, read_segment
from gateway.core.limits import BatchLimits
from gateway.process.natsserver import NatsServer
from tests import samples
from tests.helpers import collect, config, entries, publish_entries, running_gateway, until

LOG_GATEWAY = str(Path(sys.executable).parent / "log-gateway")


@pytest.mark.parametrize("compression", list(Compression))
def test_segments_round_trip_entries_unchanged(tmp_path: Path, compression: Compression) -> None:
    writer = SegmentWriter(tmp_path, compression=compression)
    sent = [
        samples.entry(i, metadata={"i": i, "nested": {"ü": [1, None]}}, extraField="kept") for i in range(50)
    ]
    sent.append(samples.entry(99, createdAt="2025-10-13T07:00:00.000+00:00"))
    for data in sent:
        writer.write(LogEntryCreated.parse(data), now=0.0)
    info = writer.finish()
    assert info is not None
    assert writer.finish() is None
    assert info.path.exists()
    assert not list(tmp_path.glob("*.part"))
    assert info.path.name.endswith(compression.suffix)
    assert [e.to_data() for e in read_segment(info.path)] == sent
    assert info.entry_count == 51
    assert info.compressed_size == info.path.stat().st_size
    assert info.start == "2025-10-13T07:00:00.000+00:00"


def test_reading_a_non_segment_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hi")
    with pytest.raises(ValueError, match="segment"):
        list(read_segment(path))


async def test_archiver_rolls_segments_and_announces_each(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    archived = await collect(nc, LogArchived.EVENT_TYPE)
    cfg = config(batch=BatchLimits(max_entries=20, max_delay_ms=10))
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, entries(300))
        await until(lambda: gateway.stats.published == 300)
    archive = ArchiveConfig(directory=tmp_path, stream=cfg.stream.name, max_segment_bytes=20_000, fsync=False)
    archiver = Archiver(nc, archive)
    stop = asyncio.Event()
    task = asyncio.create_task(archiver.run(stop))
    await until(lambda: sum(s.entry_count for s in archiver.segments) + archiver.writer.entries == 300)
    stop.set()
    await asyncio.wait_for(task, 10)
    await until(lambda: len(archived) == len(archiver.segments))
    files = sorted(tmp_path.glob("segment-*"))  # noqa: ASYNC240 - a small local directory
    assert len(files) == len(archiver.segments) > 1
    read_back = [e.to_data() for f in files for e in read_segment(f)]
    assert sorted(e["logId"] for e in read_back) == sorted(e["logId"] for e in entries(300))
    by_id = {s.archive_id: s for s in archiver.segments}
    for msg in archived:
        event = LogArchived.parse(json.loads(msg.data)["data"])
        segment = by_id[event.archiveId]
        assert event.entryCount == len(list(read_segment(segment.path)))
        assert event.compressedSize == segment.path.stat().st_size
        assert event.destination == segment.path.resolve().as_uri()
        created = sorted(e.createdAt for e in read_segment(segment.path))
        assert (event.timeRange.start, event.timeRange.end) == (created[0], created[-1])


async def test_archive_command_finishes_its_segment_on_sigterm(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    cfg = config(batch=BatchLimits(max_entries=10, max_delay_ms=10))
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, entries(200))
        await until(lambda: gateway.stats.published == 200)
    out = tmp_path / "segments"
    proc = await start_archive(nats_server.url, out, cfg.stream.name)
    try:
        await until(lambda: bool(list(out.glob("*.part"))))
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert not list(out.glob("*.part"))
    first = [e.logId for f in out.glob("segment-*") for e in read_segment(f)]
    assert first
    # What the first run had not finished is still in the stream: a second run picks it up.
    archiver = Archiver(nc, ArchiveConfig(directory=out, stream=cfg.stream.name, fsync=False))
    stop = asyncio.Event()
    task = asyncio.create_task(archiver.run(stop))
    await until(
        lambda: len(first) + archiver.writer.entries + sum(s.entry_count for s in archiver.segments) >= 200
    )
    stop.set()
    await asyncio.wait_for(task, 10)
    every = [e.logId for f in out.glob("segment-*") for e in read_segment(f)]
    assert sorted(every) == sorted(e["logId"] for e in entries(200))
    assert sorted(await archive_read(sorted(out.glob("segment-*")))) == sorted(every)


async def start_archive(url: str, out: Path, stream: str) -> asyncio.subprocess.Process:
    """``log-gateway archive`` into ``out`` with segments that never age out."""
    args = ["--nats-url", url, "--dir", str(out), "--stream-name", stream, "--max-segment-age-s", "3600"]
    return await asyncio.create_subprocess_exec(
        LOG_GATEWAY, "archive", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )


async def archive_read(paths: list[Path]) -> list[str]:
    """The logIds ``log-gateway archive-read PATHS`` prints."""
    result = await asyncio.create_subprocess_exec(
        LOG_GATEWAY, "archive-read", *map(str, paths), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await result.communicate()
    return [json.loads(line)["logId"] for line in stdout.decode().splitlines()]
