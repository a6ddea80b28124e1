"""Alerts from a running gateway: at once, beside a throttled batch publisher."""

from __future__ import annotations

import json

import pytest
from nats.aio.client import Client

from contracts import ErrorPatternDetected, LogStreamStarted
from gateway.config import AlertConfig, ThrottleLimits
from gateway.core.limits import BatchLimits
from gateway.core.patterns import PatternLimits
from gateway.process.natsserver import NatsServer
from tests import samples
from tests.helpers import collect, config, publish_entries, running_gateway, until


def storm(n: int, start: int = 0, source: str = "payments") -> list[dict[str, object]]:
    return [
        samples.entry(
            start + i, level="error", source=source, message=f"timeout after {i * 7}ms to 10.0.0.{i % 250}"
        )
        for i in range(n)
    ]


async def test_alert_goes_out_while_batches_are_throttled(nats_server: NatsServer, nc: Client) -> None:
    alerts = await collect(nc, ErrorPatternDetected.EVENT_TYPE)
    cfg = config(
        batch=BatchLimits(max_entries=500, max_delay_ms=5000),
        throttle=ThrottleLimits(max_publish_rate=0.2, max_in_flight=1),
        alerts=AlertConfig(limits=PatternLimits(threshold=5, window_s=60, cooldown_s=300)),
    )
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, storm(9))
        await until(lambda: len(alerts) == 1 and gateway.stats.received == 9, timeout_s=10)
        assert gateway.stats.published == 0  # the batch is still waiting out its delay
        assert gateway.acc.held_entries == 9
    event = json.loads(alerts[0].data)
    assert alerts[0].headers is not None
    assert event["type"] == "cortex_logging.error_pattern.detected"
    alert = ErrorPatternDetected.parse(event["data"])
    assert alert.occurrences == 5
    assert alert.severity == "low"
    assert alert.timeWindow == "60s"
    assert alert.pattern == "timeout after <num>ms to <ip>"
    assert event["data"]["source"] == "payments"
    assert gateway.alerts is not None
    assert gateway.alerts.stats.published == 1


async def test_storms_rising_and_quiet(nats_server: NatsServer, nc: Client) -> None:
    alerts = await collect(nc, ErrorPatternDetected.EVENT_TYPE)
    cfg = config(alerts=AlertConfig(limits=PatternLimits(threshold=5), max_rate=100))
    unrelated = [
        samples.entry(
            1000 + i,
            level="error",
            source="quiet",
            message=f"failure kind {'abcdefg'[i % 7]} {'hijklmn'[i // 7]}",
        )
        for i in range(49)
    ]
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, [*unrelated, *storm(40, source="loud")])
        await until(lambda: gateway.stats.received == 89)
        await until(lambda: gateway.alerts is not None and gateway.alerts.stats.published == 4)
    parsed = [ErrorPatternDetected.parse(json.loads(m.data)["data"]) for m in alerts]
    assert [a.severity for a in parsed] == ["low", "medium", "high", "critical"]
    assert len({a.patternId for a in parsed}) == 1
    assert all(json.loads(m.data)["data"]["source"] == "loud" for m in alerts)


@pytest.mark.parametrize("enabled", [False])
async def test_alerts_can_be_turned_off(nats_server: NatsServer, nc: Client, enabled: bool) -> None:
    announcements = await collect(nc, LogStreamStarted.EVENT_TYPE)
    cfg = config(alerts=AlertConfig(enabled=enabled))
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, storm(20))
        await until(lambda: gateway.stats.published == 20)
    assert gateway.alerts is None
    info = await nc.jetstream().stream_info(cfg.stream.name, subjects_filter=">")
    assert ErrorPatternDetected.EVENT_TYPE not in (info.state.subjects or {})
    started = LogStreamStarted.parse(json.loads(announcements[0].data)["data"])
    assert started.destination == "external"
    assert started.streamId == cfg.gateway_id
    assert started.filters is not None
    assert started.filters["output"] == "cortex_logging.batch.created"
