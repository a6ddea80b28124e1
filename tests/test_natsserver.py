"""The nats-server runner used by the gateway and the tests."""

from __future__ import annotations

import socket
from pathlib import Path

import nats
import pytest

from gateway.process.natsserver import NatsServer, NatsServerError


def test_two_servers_get_different_free_ports() -> None:
    with NatsServer() as first, NatsServer() as second:
        assert first.port != second.port
        for server in (first, second):
            with socket.create_connection(("127.0.0.1", server.port or 0), timeout=2) as sock:
                assert sock.recv(4) == b"INFO"


async def test_restart_keeps_port_and_jetstream_data(tmp_path: Path) -> None:
    server = NatsServer(store_dir=tmp_path).start()
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="KEEP", subjects=["keep.>"])
        await js.publish("keep.one", b"1")
        await nc.close()
        port = server.port
        server.kill()
        assert server.pid is None
        server.start()
        assert server.port == port
        nc = await nats.connect(server.url)
        info = await nc.jetstream().stream_info("KEEP")
        assert info.state.messages == 1
        await nc.close()
    finally:
        server.close()


def test_bad_config_fails_with_the_server_output(tmp_path: Path) -> None:
    server = NatsServer(store_dir=tmp_path, config="this is { not valid")
    with pytest.raises(NatsServerError, match="exited"):
        server.start()


def test_stop_is_idempotent() -> None:
    server = NatsServer().start()
    server.stop()
    server.stop()
    assert server.pid is None
    server.close()
    server.close()


def test_url_before_start_is_an_error() -> None:
    with pytest.raises(NatsServerError, match="not started"):
        _ = NatsServer().url
