"""A failure after the gateway started (here: the OTLP port is taken) stops what started:
the gateway is flushed and stopped, the ingest connection and the control service closed.
On the real app and a real nats-server."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
from faststream.exceptions import IncorrectState

from gateway.otlp.config import OtlpConfig
from gateway.process import app as app_module
from gateway.process.app import ListenError, build_app
from gateway.process.connection import ConnectionSettings
from gateway.process.natsserver import NatsServer
from gateway.process.settings import RUN_OPTIONS, gateway_config


def run_values(**changes: Any) -> dict[str, Any]:
    token = uuid.uuid4().hex[:12]
    values = {opt.dest: opt.default for opt in RUN_OPTIONS}
    values |= {"stream_name": "T" + token.upper(), "queue_group": "q" + token, "gateway_id": "gw-" + token}
    return values | changes


async def test_a_taken_otlp_port_stops_the_started_gateway(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "_tune_collector", lambda: None)  # not in the test process
    values = run_values()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        holder = build_app(
            gateway_config(values),
            ConnectionSettings(servers=(nats_server.url,)),
            values=values,
            otlp=OtlpConfig(port=port, host="127.0.0.1"),
        )
        with pytest.raises(ListenError):
            async with holder.app:
                pass
    assert holder.report is not None  # the gateway was stopped (flushed), not abandoned
    assert holder.report.unpublished == 0
    assert not holder.gateway.ready
    assert holder.ingest is not None
    with pytest.raises(IncorrectState):  # stopped: FastStream's broker gives its connection up
        holder.ingest.connection  # noqa: B018
    assert holder.control is not None
    assert holder.control.service is not None
    assert holder.control.service.stopped
