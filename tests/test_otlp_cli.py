"""``log-gateway run --otlp-port`` and ``log-gateway otlp-export`` as users run them: settings,
the extra, and a real gateway process taking the OpenTelemetry SDK's exporter's records."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys

import pytest
from nats.aio.client import Client
from opentelemetry.exporter.otlp.proto.http import Compression

from gateway.process.cli import main
from gateway.process.natsserver import NatsServer
from tests.helpers import stored_batches
from tests.test_cli import clean_env, gateway_process, http_get, run_cli
from tests.test_otlp import emit_with_sdk


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--otlp-port", "0", "--ingest", "jetstream"], "--otlp-port needs --ingest core"),
        (["--otlp-port", "0", "--workers", "2"], "use --workers 1"),
        (["--otlp-port", "70000"], "--otlp-port must be 0..65535"),
        (["--otlp-port", "0", "--otlp-max-body-bytes", "10"], "--otlp-max-body-bytes must be at least 1024"),
    ],
)
def test_bad_otlp_settings_exit_2_naming_them(args: list[str], needle: str) -> None:
    result = run_cli("run", *args, env=clean_env())
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--nats-url", "nats://127.0.0.1:1"], "--endpoint / LOG_GATEWAY_ENDPOINT is required"),
        (["--nats-url", "nats://127.0.0.1:1", "--endpoint", "ftp://x"], "http:// or https://"),
        (
            ["--nats-url", "nats://127.0.0.1:1", "--endpoint", "http://x", "--ack-wait-s", "30"],
            "--ack-wait-s",
        ),
        (["--endpoint", "http://x"], "--nats-url / LOG_GATEWAY_NATS_URL is required"),
    ],
)
def test_bad_export_settings_exit_2_naming_them(args: list[str], needle: str) -> None:
    result = run_cli("otlp-export", *args, env=clean_env())
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--otlp-port", "0"],
        ["otlp-export", "--nats-url", "nats://127.0.0.1:1", "--endpoint", "http://x"],
    ],
)
def test_without_the_extra_the_command_names_it(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "h11", None)  # as if it were not installed
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "needs h11" in err
    assert "pip install 'cortex-log-gateway[otlp]'" in err
    assert len(err.strip().splitlines()) == 1


def test_a_port_in_use_is_a_clear_error(nats_server: NatsServer) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        args = ("--nats-url", nats_server.url, "--otlp-port", port, "--otlp-host", "127.0.0.1")
        result = run_cli("run", *args)
    assert result.returncode == 1, result.stderr
    assert f"cannot start: the OTLP receiver cannot listen on 127.0.0.1:{port}" in result.stderr


async def test_a_gateway_process_takes_the_sdk_exporters_records(nats_server: NatsServer, nc: Client) -> None:
    args = ("--nats-url", nats_server.url, "--otlp-port", "0", "--otlp-host", "127.0.0.1", "--http-port", "0")
    async with gateway_process(*args) as (proc, lines):
        found = re.search(r"otlp=(http://\S+/v1/logs)", "".join(lines))
        health = re.search(r"http=http://127.0.0.1:(\d+)", "".join(lines))
        assert found is not None, lines
        assert health is not None, lines
        await asyncio.to_thread(emit_with_sdk, found.group(1), Compression.Gzip)
        js = nc.jetstream()
        async with asyncio.timeout(30):
            # The process's counters are not ours to read: watch the stream fill.
            while sum(b.batch.count for b in await stored_batches(js, "CORTEX_LOGGING")) < 7:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        status, text = await http_get(int(health.group(1)), "/metrics")
        assert status == 200
        assert 'log_gateway_otlp_responses_total{code="200"} 7.0' in text
        assert "log_gateway_otlp_throttled_total 0.0" in text
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    entries = [e for b in await stored_batches(js, "CORTEX_LOGGING") for e in b.batch.entries]
    assert len(entries) == 7
    assert {(e.source, e.component) for e in entries} == {("billing", "billing.charge")}
