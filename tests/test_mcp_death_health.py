"""The /mcp listener dying shows wherever health does: Gateway.failed (so /healthz, the
background-tasks metric and ctl status), not only /readyz. On the real app and a real nats-server."""

from __future__ import annotations

import asyncio

import pytest

from gateway.mcp.config import McpHttpSettings
from gateway.process import app as app_module
from gateway.process.app import build_app
from gateway.process.connection import ConnectionSettings
from gateway.process.metrics import render_metrics
from gateway.process.natsserver import NatsServer
from tests.helpers import config, until


async def test_a_dead_mcp_listener_takes_the_gateway_health_down(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "_tune_collector", lambda: None)  # not in the test process
    holder = build_app(config(), ConnectionSettings(servers=(nats_server.url,)), mcp=McpHttpSettings(port=0))
    async with holder.app:
        await asyncio.wait_for(holder.ready.wait(), 30)
        assert holder.mcp is not None
        assert not holder.gateway.failed
        holder.mcp._uvicorn.should_exit = True  # uvicorn stops serving, as it would after a fatal error
        await until(lambda: holder.gateway.failed == ("mcp-http",), timeout_s=10)
        assert not holder.is_ready
        assert "log_gateway_background_tasks_failed 1.0" in render_metrics(holder.gateway).decode()
