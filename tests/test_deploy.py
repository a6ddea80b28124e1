"""deploy/: every file checked; the gateway run under exactly the shipped permissions."""

from __future__ import annotations

import argparse
import configparser
import json
import os
import subprocess
from pathlib import Path

import nats
import pytest
import yaml

from gateway.config import DurableIngest, GatewayConfig
from gateway.process.natsserver import NatsServer, find_nats_server
from gateway.process.settings import RUN_OPTIONS, check_config, read_options
from tests.helpers import (
    config,
    entries,
    log_ids,
    publish_entries,
    running_gateway,
    stored_batches,
    until,
    until_ingest,
)

DEPLOY = Path(__file__).parent.parent / "deploy"
PASSWORDS = {
    "LOG_GATEWAY_PASSWORD": "gw-pass",
    "LOG_SERVICE_PASSWORD": "svc-pass",
    "LOG_OPERATOR_PASSWORD": "op-pass",
}


@pytest.mark.parametrize("name", ["node-1.conf", "node-2.conf", "node-3.conf"])
def test_nats_configs_are_valid(name: str) -> None:
    result = subprocess.run(
        [find_nats_server(), "-t", "-c", str(DEPLOY / "nats" / name)],
        capture_output=True,
        text=True,
        env=os.environ | PASSWORDS,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "configuration file" in (result.stdout + result.stderr).lower()


def test_stream_definition_captures_the_gateway_outputs() -> None:
    stream = json.loads((DEPLOY / "nats" / "stream-cortex-logging.json").read_text())
    assert stream["name"] == GatewayConfig().stream.name
    assert set(stream["subjects"]) == set(GatewayConfig().subjects.outputs)
    assert stream["num_replicas"] == 3
    # The duplicate window outlasts the gateway's retry deadline plus one timeout.
    publish = GatewayConfig().publish
    assert stream["duplicate_window"] / 1e9 > publish.retry_deadline_s + publish.timeout_s


def test_ingest_stream_definition_is_a_work_queue_over_the_entry_subjects() -> None:
    stream = json.loads((DEPLOY / "nats" / "stream-cortex-log-entries.json").read_text())
    subjects = GatewayConfig().subjects
    assert stream["name"] == DurableIngest().stream
    assert stream["subjects"] == [subjects.entry, subjects.entry_children]
    assert stream["retention"] == "workqueue"
    assert stream["num_replicas"] == 3
    # It captures nothing the output stream captures (JetStream refuses overlapping streams).
    assert not set(stream["subjects"]) & set(subjects.outputs)


def _probes(container: dict[str, object]) -> tuple[str, str]:
    live = container["livenessProbe"]["httpGet"]["path"]  # type: ignore[index]
    ready = container["readinessProbe"]["httpGet"]["path"]  # type: ignore[index]
    return str(live), str(ready)


@pytest.mark.parametrize("name", ["sidecar.yaml", "deployment.yaml"])
def test_kubernetes_manifests_probe_health_and_readiness(name: str) -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    gateway = next(c for c in spec["containers"] if c["name"] == "log-gateway")
    assert gateway["args"] == ["run"]
    assert _probes(gateway) == ("/healthz", "/readyz")
    env = {e["name"]: e for e in gateway["env"]}
    assert "LOG_GATEWAY_NATS_URL" in env
    assert "secretKeyRef" in env["LOG_GATEWAY_NATS_PASSWORD"]["valueFrom"]
    assert spec["terminationGracePeriodSeconds"] > GatewayConfig().shutdown_timeout_s


def test_compose_runs_three_nats_nodes_and_the_gateway() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"nats-1", "nats-2", "nats-3", "log-gateway"} <= set(services)
    gateway = services["log-gateway"]
    assert gateway["environment"]["LOG_GATEWAY_NATS_URL"].count("nats://") == 3
    assert gateway["environment"]["LOG_GATEWAY_INBOX_PREFIX"] == "_INBOX_log_gateway"
    assert set(gateway["depends_on"]) == {"nats-1", "nats-2", "nats-3"}
    for node in ("nats-1", "nats-2", "nats-3"):
        assert (DEPLOY / "nats" / services[node]["command"][-1].rsplit("/", 1)[-1]).exists()


def test_dockerfile_runs_the_gateway_as_a_user_with_a_healthcheck() -> None:
    text = (DEPLOY / "gateway" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["log-gateway"]' in text
    assert 'CMD ["run"]' in text
    assert "HEALTHCHECK" in text
    assert "/readyz" in text
    assert "USER gateway" in text
    assert "STOPSIGNAL SIGTERM" in text


def test_systemd_unit_stops_gracefully() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((DEPLOY / "systemd" / "log-gateway.service").read_text())
    service = unit["Service"]
    assert service["ExecStart"].endswith("log-gateway run")
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > GatewayConfig().shutdown_timeout_s
    assert service["Restart"] == "on-failure"


def _permissions_config() -> str:
    """The shipped permissions, passwords filled in, plus an admin user the test reads with."""
    text = (DEPLOY / "nats" / "permissions.conf").read_text()
    for name, value in PASSWORDS.items():
        text = text.replace(f"${name}", f'"{value}"')
    head, tail = text.rsplit("  ]", 1)
    return head + '    { user: test-admin, password: "admin-pass" }\n  ]' + tail


@pytest.mark.parametrize("ingest", [None, DurableIngest()], ids=["core", "jetstream"])
async def test_gateway_runs_under_exactly_the_shipped_permissions(
    tmp_path: Path, ingest: DurableIngest | None
) -> None:
    with NatsServer(store_dir=tmp_path, config=_permissions_config()) as server:
        host = server.url.removeprefix("nats://")
        service = await nats.connect(f"nats://service:svc-pass@{host}")
        cfg = config(stream=GatewayConfig().stream, durable_ingest=ingest)
        gateway_url = f"nats://log-gateway:gw-pass@{host}"
        async with running_gateway(gateway_url, cfg, inbox_prefix="_INBOX_log_gateway") as (gateway, gw_nc):
            await publish_entries(service, entries(300))
            await until(lambda: gateway.stats.published == 300)
            denied: list[BaseException] = []
            gw_nc._error_cb = _collector(denied)
            await gw_nc.publish("some.other.subject", b"x")
            await gw_nc.flush()
            await until(lambda: bool(denied))
        assert gateway.stats.total_dropped == 0
        assert gateway.stats.total_rejected == 0
        reader = await nats.connect(f"nats://test-admin:admin-pass@{host}")
        stored = log_ids(await stored_batches(reader.jetstream(), cfg.stream.name))
        if ingest is not None:
            # Acks went through: the work queue is empty, nothing waits for redelivery.
            await until_ingest(reader, ingest, (0, 0), timeout_s=10)
        await reader.close()
        await service.close()
    assert sorted(stored) == sorted(e["logId"] for e in entries(300))
    assert "permissions violation" in str(denied[0]).lower()


def _collector(into: list[BaseException]):  # type: ignore[no-untyped-def]
    async def on_error(exc: BaseException) -> None:
        into.append(exc)

    return on_error


def test_the_example_config_file_is_the_compose_gateways_settings() -> None:
    path = DEPLOY / "gateway" / "log-gateway.toml"
    assert check_config(path) > 10
    values = read_options(argparse.Namespace(config=path), RUN_OPTIONS, environ={})
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["log-gateway"]["environment"]
    assert ",".join(values["nats_url"]) == compose["LOG_GATEWAY_NATS_URL"]
    assert values["inbox_prefix"] == compose["LOG_GATEWAY_INBOX_PREFIX"]
    assert str(values["stream_replicas"]) == compose["LOG_GATEWAY_STREAM_REPLICAS"]
