"""The redactions counter never goes down: a live change of redact_keys (a new redactor) or
redact off and on again keeps the count. On a running gateway and a real nats-server."""

from __future__ import annotations

import re

from nats.aio.client import Client

from gateway.control.apply import Reconfigurer
from gateway.process.metrics import render_metrics
from gateway.process.natsserver import NatsServer
from gateway.process.settings import gateway_config
from tests import samples
from tests.helpers import publish_entries, running_gateway, until
from tests.test_reconfigure import run_values


def redactions(text: str) -> float:
    found = re.search(r"^log_gateway_redactions_total (\S+)$", text, re.MULTILINE)
    assert found, text
    return float(found.group(1))


async def test_redactions_are_kept_across_live_changes(nats_server: NatsServer, nc: Client) -> None:
    values = run_values(redact=True, max_batch_delay_ms=5)
    async with running_gateway(nats_server.url, gateway_config(values)) as (gateway, gw_nc):
        control = Reconfigurer(gateway, values, gw_nc)
        await publish_entries(nc, [samples.entry(1, metadata={"password": "a"})])
        await until(lambda: gateway.stats.published == 1)
        assert redactions(render_metrics(gateway).decode()) == 1
        await control.apply({"redact_keys": ["password", "ssn"]}, origin="control:test")
        assert redactions(render_metrics(gateway).decode()) == 1
        await publish_entries(nc, [samples.entry(2, metadata={"ssn": "b"})])
        await until(lambda: gateway.stats.published == 2)
        await control.apply({"redact": False}, origin="control:test")
        await control.apply({"redact": True}, origin="control:test")
        assert redactions(render_metrics(gateway).decode()) == 2
        assert gateway.redactions == 2
