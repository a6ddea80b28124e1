"""SIGHUP is watched while the app runs and no longer once it stops: a reload during shutdown
must not retune a stopping gateway. On the real app and a real nats-server."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.process import app as app_module
from gateway.process.app import build_app
from gateway.process.connection import ConnectionSettings
from gateway.process.natsserver import NatsServer
from gateway.process.settings import RUN_OPTIONS, gateway_config


def run_values(**changes: Any) -> dict[str, Any]:
    token = uuid.uuid4().hex[:12]
    values = {opt.dest: opt.default for opt in RUN_OPTIONS}
    values |= {"stream_name": "T" + token.upper(), "queue_group": "q" + token, "gateway_id": "gw-" + token}
    return values | changes


@pytest.fixture
def sighup_default() -> Iterator[None]:
    """SIGHUP at its default disposition (a run under ``nohup`` inherits it ignored), put back after."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGHUP, previous)


@pytest.mark.usefixtures("sighup_default")
async def test_sighup_is_unwatched_once_the_app_stops(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "_tune_collector", lambda: None)  # not in the test process
    values = run_values(control=False)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
    holder = build_app(
        gateway_config(values),
        ConnectionSettings(servers=(nats_server.url,)),
        values=values,
        reread=lambda: values,
    )
    async with holder.app:
        await asyncio.wait_for(holder.ready.wait(), 30)
        assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL  # the loop's handler
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
    assert holder.unwatch_sighup is None
