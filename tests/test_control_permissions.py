"""deploy/nats/permissions.conf keeps the control service out of a service user's reach."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import nats.errors
import pytest

from contracts.query import LogQuery
from gateway.config import GatewayConfig
from gateway.control.apply import Reconfigurer
from gateway.control.client import ControlClient, ControlError
from gateway.control.service import ControlService
from gateway.control.subjects import control_subject
from gateway.process.natsserver import NatsServer
from gateway.process.settings import gateway_config
from tests.helpers import entries, publish_entries, running_gateway, until
from tests.test_deploy import _collector, _permissions_config
from tests.test_reconfigure import run_values


async def test_a_service_users_control_request_is_denied_and_an_operators_answered(tmp_path: Path) -> None:
    values = run_values(stream_name=GatewayConfig().stream.name)
    with NatsServer(store_dir=tmp_path, config=_permissions_config()) as server:
        host = server.url.removeprefix("nats://")
        url = f"nats://log-gateway:gw-pass@{host}"
        async with running_gateway(url, gateway_config(values), inbox_prefix="_INBOX_log_gateway") as (
            gateway,
            gw_nc,
        ):
            service = ControlService(gw_nc, gateway, Reconfigurer(gateway, values, gw_nc), version="0.1.0")
            await service.start()
            denied: list[BaseException] = []
            intruder = await nats.connect(f"nats://service:svc-pass@{host}", error_cb=_collector(denied))
            subject = control_subject("config_set", values["gateway_id"])
            await intruder.publish(subject, b'{"changes": {"alerts": false}}')
            await intruder.flush()
            async with asyncio.timeout(10):
                while not denied:  # noqa: ASYNC110 - the server's -ERR comes on the error callback
                    await asyncio.sleep(0.01)
            with pytest.raises(ControlError):  # and a whole request gets no answer
                await ControlClient(intruder, timeout_s=0.5).config_set({"alerts": False})
            operator = await nats.connect(f"nats://log-operator:op-pass@{host}")
            answered = await ControlClient(operator, timeout_s=5).config_set({"max_batch_delay_ms": 7})
            await publish_entries(intruder, entries(3))  # (a service may log entries)
            await until(lambda: gateway.stats.published == 3)
            # The gateway reads its own stream for a query, under the shipped permissions too.
            page = await ControlClient(operator, timeout_s=5).query(LogQuery(limit=2))
            rest = await ControlClient(operator, timeout_s=5).query(LogQuery(limit=2, cursor=page.nextCursor))
            await operator.close()
            await intruder.close()
            await service.stop()
    assert "permissions violation" in str(denied[0]).lower()
    assert subject in str(denied[0])
    assert answered[0]["applied"] is True
    assert gateway.config.alerts.enabled is True
    assert gateway.config.batch.max_delay_ms == 7
    assert gateway.config_changes["control"] == 1
    assert [e.logId for e in page.entries + rest.entries] == [e["logId"] for e in entries(3)]
    assert rest.nextCursor is None
