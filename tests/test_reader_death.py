"""Ingest readers are watched: one that dies is logged with its traceback and takes health
(Gateway.failed, so /healthz) down; on a running gateway and a real nats-server."""

from __future__ import annotations

import logging
from collections.abc import Coroutine

import pytest
from nats.aio.client import Client

from gateway.config import DurableIngest
from gateway.core.entry import PendingEntry
from gateway.core.limits import BatchLimits
from gateway.ingest import fastpath
from gateway.process.natsserver import NatsServer
from tests.helpers import FAST_PUBLISH, config, entries, publish_entries, running_gateway, until


def broken(*args: object) -> None:
    for arg in args:  # (a coroutine handed over is closed, not left never awaited)
        if isinstance(arg, Coroutine):
            arg.close()
    raise RuntimeError("a bug in the reader")


async def test_a_durable_reader_that_dies_takes_health_down(
    nats_server: NatsServer, nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    spec = DurableIngest(ack_wait_s=5.0, fetch_timeout_s=0.2)
    cfg = config(
        durable_ingest=spec, publish=FAST_PUBLISH, batch=BatchLimits(max_entries=10, max_delay_ms=20)
    )
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        assert not gateway.failed

        def admit(entry: PendingEntry) -> None:
            broken(entry)

        gateway.gate.admit = admit  # type: ignore[method-assign,assignment]
        with caplog.at_level(logging.ERROR, logger="log_gateway"):
            await publish_entries(nc, entries(1))
            await until(lambda: gateway.failed == ("intake:durable",), timeout_s=10)
    died = [r for r in caplog.records if "background task intake:durable died" in r.getMessage()]
    assert died
    assert died[0].exc_info is not None
    assert "a bug in the reader" in caplog.text


async def test_a_core_reader_that_dies_takes_health_down(
    nats_server: NatsServer, nc: Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(batch=BatchLimits(max_entries=10, max_delay_ms=20))
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        assert not gateway.failed
        # A bug in the reader's own loop (not in a handler, whose errors it catches): it fails
        # finishing what a handler left waiting, here the forward of a rejected message.
        monkeypatch.setattr(fastpath._Sink, "_finish", staticmethod(broken))
        with caplog.at_level(logging.ERROR, logger="log_gateway"):
            await nc.publish("cortex_logging.entry.created", b"{not json")
            await nc.flush()
            await until(lambda: gateway.failed != (), timeout_s=10)
    assert gateway.failed[0].startswith("intake:")
    died = [r for r in caplog.records if "died" in r.getMessage()]
    assert died
    assert died[0].exc_info is not None


async def test_a_durable_reader_stopped_on_request_is_no_failure(nats_server: NatsServer, nc: Client) -> None:
    spec = DurableIngest(ack_wait_s=5.0, fetch_timeout_s=0.2)
    cfg = config(
        durable_ingest=spec, publish=FAST_PUBLISH, batch=BatchLimits(max_entries=10, max_delay_ms=20)
    )
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, entries(3))
        await until(lambda: gateway.stats.published == 3)
        await gateway.stop()
    assert gateway.failed == ()
