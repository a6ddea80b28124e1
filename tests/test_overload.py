"""Overload, on real processes: a ``log-gateway run`` offered twice what it can pass on
keeps publishing near its capacity (no congestion collapse), and alerts still go out.

The peak is measured first, in the same test, with a flood; the offered load is
then paced at twice that. The bounds are loose on purpose (this machine is
shared and noisy): a collapse shows as goodput a tenth of the peak or less.
"""

from __future__ import annotations

import json

import pytest
from nats.aio.client import Client

from contracts import ErrorPatternDetected
from gateway.bench.overload import measure_goodput
from gateway.bench.payloads import messages
from gateway.bench.runners import measure_gateway
from gateway.config import AlertConfig, ThrottleLimits
from gateway.core.limits import BatchLimits, BufferLimits, DropReason
from gateway.core.patterns import PatternLimits
from gateway.process.natsserver import NatsServer
from tests import samples
from tests.helpers import collect, config, entries, publish_entries, running_gateway, until

pytestmark = pytest.mark.slow


async def _peak(url: str) -> float:
    return (await measure_gateway(url, messages(40_000, "mix")))["entries_per_s"]


@pytest.mark.timeout(180)
async def test_goodput_holds_at_twice_the_load_it_can_take(nats_server: NatsServer) -> None:
    peak = await _peak(nats_server.url)
    result = await measure_goodput(nats_server.url, 2 * peak, 14)
    assert result.median_per_s >= 0.5 * peak, (peak, result)
    assert result.min_per_s >= 0.2 * peak, (peak, result)


def _storm(n: int) -> list[dict[str, object]]:
    return [
        samples.entry(900_000 + i, level="error", source="payments", message=f"timeout after {i}ms to db")
        for i in range(n)
    ]


async def test_error_entries_shed_at_the_pending_limits_still_raise_an_alert(
    nats_server: NatsServer, nc: Client
) -> None:
    """The buffer full (block), the pending queue full: bulk entries are shed, counted; the
    error entries shed with them are still shown to the pattern detector, so the alert goes out."""
    alerts = await collect(nc, ErrorPatternDetected.EVENT_TYPE)
    cfg = config(
        batch=BatchLimits(max_entries=10, max_delay_ms=50),
        buffer=BufferLimits(max_entries=20),
        throttle=ThrottleLimits(max_publish_rate=0.5, max_in_flight=1),
        pending_msgs_limit=50,
        alerts=AlertConfig(limits=PatternLimits(threshold=5), max_rate=100),
    )
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, entries(500, level="info"))
        await until(lambda: gateway.stats.dropped[DropReason.SLOW_CONSUMER] > 0, timeout_s=10)
        shed_before = gateway.stats.dropped[DropReason.SLOW_CONSUMER]
        # A batch released meanwhile frees at most 10 places in the queue: with 30 errors, at
        # least 20 are shed, well over the threshold of 5.
        await publish_entries(nc, _storm(30))
        await until(lambda: len(alerts) >= 1, timeout_s=5)
        await until(lambda: gateway.stats.received == 530, timeout_s=10)
        assert gateway.stats.dropped[DropReason.SLOW_CONSUMER] > shed_before  # the errors were shed too
    alert = ErrorPatternDetected.parse(json.loads(alerts[0].data)["data"])
    assert alert.pattern == "timeout after <num>ms to db"
    held_or_out = gateway.stats.published + gateway.stats.total_dropped
    assert held_or_out == 530  # every entry accepted was published or counted (shutdown flushed the rest)
