"""``log-gateway tail``: what a person (or a pipe) sees."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts import LogEntryCreated, LogStreamStarted
from gateway.config import AlertConfig
from gateway.consumers.tail import TailOptions, format_alert, format_entry
from gateway.core.limits import BatchLimits
from gateway.core.patterns import PatternLimits
from gateway.process.natsserver import NatsServer
from tests import samples
from tests.helpers import config, entries, publish_entries, running_gateway

LOG_GATEWAY = str(Path(sys.executable).parent / "log-gateway")


def test_entries_are_coloured_by_level_only_when_asked() -> None:
    entry = LogEntryCreated.parse(samples.entry(3, component="worker", metadata={"k": 1}))  # level error
    plain = format_entry(entry, color=False)
    assert plain == '08:00:03.003 ERROR svc-0/worker: request 3 handled in 3ms {"k":1}'
    coloured = format_entry(entry, color=True)
    assert "\x1b[31m" in coloured
    assert "ERROR" in coloured
    assert coloured.endswith('{"k":1}')
    fatal = format_entry(LogEntryCreated.parse(samples.entry(4)), color=True)
    assert "\x1b[1;97;41m" in fatal


def test_alerts_stand_out() -> None:
    data = {
        "severity": "high",
        "source": "pay",
        "pattern": "timeout <num>",
        "occurrences": 9,
        "timeWindow": "60s",
    }
    assert format_alert(data, color=False) == "!! ALERT HIGH pay: timeout <num> x9 in 60s"
    assert format_alert(data, color=True).startswith("\x1b[1;95m!! ALERT")


def test_level_filter_means_that_level_and_above() -> None:
    assert TailOptions(min_level="warn").levels == {"warn", "error", "fatal"}
    with pytest.raises(ValueError, match="level"):
        TailOptions(min_level="loud")


async def start_tail(nc: Client, url: str, *args: str) -> asyncio.subprocess.Process:
    """Start ``log-gateway tail`` and return once it has announced itself (so it is subscribed)."""
    started: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_started(msg: Msg) -> None:
        await started.put(msg)

    sub = await nc.subscribe(LogStreamStarted.EVENT_TYPE, cb=on_started)
    proc = await asyncio.create_subprocess_exec(
        LOG_GATEWAY, "tail", "--nats-url", url, *args, stdout=asyncio.subprocess.PIPE
    )
    msg = await asyncio.wait_for(started.get(), 20)
    await sub.unsubscribe()
    assert LogStreamStarted.parse(json.loads(msg.data)["data"]).destination == "console"
    return proc


async def read_lines(proc: asyncio.subprocess.Process, n: int) -> list[str]:
    assert proc.stdout is not None
    return [(await asyncio.wait_for(proc.stdout.readline(), 20)).decode().rstrip("\n") for _ in range(n)]


async def test_json_tail_filters_by_level_and_source(nats_server: NatsServer, nc: Client) -> None:
    cfg = config(batch=BatchLimits(max_entries=10, max_delay_ms=10))
    async with running_gateway(nats_server.url, cfg):
        proc = await start_tail(nc, nats_server.url, "--json", "--level", "error", "--source", "svc-1,svc-2")
        sent = entries(60)
        await publish_entries(nc, sent)
        expected = [e for e in sent if e["level"] in ("error", "fatal") and e["source"] in ("svc-1", "svc-2")]
        shown: list[dict[str, object]] = []
        alerts: list[dict[str, object]] = []
        while len(shown) < len(expected):
            line = json.loads((await read_lines(proc, 1))[0])
            (alerts if "alert" in line else shown).append(line)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert sorted(str(e["logId"]) for e in shown) == sorted(e["logId"] for e in expected)
    assert all(a["alert"]["source"] in ("svc-1", "svc-2") for a in alerts)  # type: ignore[index]


async def test_tail_highlights_alerts(nats_server: NatsServer, nc: Client) -> None:
    cfg = config(
        batch=BatchLimits(max_entries=100, max_delay_ms=10),
        alerts=AlertConfig(limits=PatternLimits(threshold=3)),
    )
    async with running_gateway(nats_server.url, cfg):
        proc = await start_tail(nc, nats_server.url, "--color", "always", "--source", "db")
        storm = [
            samples.entry(i, level="error", source="db", message=f"deadlock on row {i}") for i in range(3)
        ]
        await publish_entries(nc, storm)
        lines = await read_lines(proc, 4)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    alert_lines = [line for line in lines if "ALERT" in line]
    assert len(alert_lines) == 1
    assert "\x1b[1;95m" in alert_lines[0]
    assert "deadlock on row <num>" in alert_lines[0]
    assert sum("\x1b[31mERROR" in line for line in lines) == 3


async def test_tail_rejected_shows_what_the_gateway_rejected(nats_server: NatsServer, nc: Client) -> None:
    async with running_gateway(nats_server.url, config()):
        proc = await start_tail(nc, nats_server.url, "--rejected", "--color", "never")
        await publish_entries(nc, [samples.entry(1, level="loud")])
        [line] = await read_lines(proc, 1)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert line.startswith("!! REJECTED invalid_entry on cortex_logging.entry.created (")
    assert "level" in line
