"""A change made through the MCP server counts under the ``mcp`` origin (it reaches the gateway
as the control service's client ``mcp``); other control clients stay ``control``.
On a running gateway, its control service and a real nats-server."""

from __future__ import annotations

from nats.aio.client import Client

from gateway.control.apply import Reconfigurer, origin_kind
from gateway.control.client import ControlClient
from gateway.control.service import ControlService
from gateway.mcp.backend import Backend
from gateway.process.metrics import render_metrics
from gateway.process.natsserver import NatsServer
from gateway.process.settings import gateway_config
from tests.helpers import running_gateway
from tests.test_reconfigure import run_values


async def test_a_change_through_mcp_counts_as_mcp(nats_server: NatsServer, nc: Client) -> None:
    values = run_values()
    async with running_gateway(nats_server.url, gateway_config(values)) as (gateway, gw_nc):
        service = ControlService(gw_nc, gateway, Reconfigurer(gateway, values, gw_nc), version="0.1.0")
        await service.start()
        try:
            backend = Backend(nc=nc, stream=values["stream_name"])
            await backend.configure({"max_batch_entries": 9}, gateway=values["gateway_id"], dry_run=False)
            await ControlClient(nc, client="ops").config_set({"max_batch_entries": 8})
        finally:
            await service.stop()
    assert gateway.config_changes == {"mcp": 1, "control": 1}
    text = render_metrics(gateway).decode()
    assert 'log_gateway_config_changes_total{origin="mcp"} 1.0' in text
    assert origin_kind("control:mcp") == "mcp"
    assert origin_kind("control:mcp-ish") == "control"
    assert origin_kind("sighup") == "sighup"
