"""What third-party tools make of the gateway's documents: Ajv (strict) and the AsyncAPI parser.

The platform validates with Ajv; generated consumers read the AsyncAPI document. Both run
here as the real npm packages (``tests/js``, installed by ``scripts/test`` with ``npm ci``),
over the schemas ``log-gateway schemas`` writes and events captured from a real gateway;
their diagnostics are part of each assertion.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts import CONTRACTS, LogEntryCreated, encode_binary, encode_structured, make_attributes
from gateway.config import Subjects
from gateway.control.apply import Reconfigurer
from gateway.control.subjects import ENDPOINTS, control_subject
from gateway.process.natsserver import NatsServer
from gateway.process.settings import gateway_config
from tests import samples
from tests.helpers import collect, entries, publish_entries, running_gateway, until
from tests.test_reconfigure import run_values

JS = Path(__file__).parent / "js"
LOG_GATEWAY = str(Path(sys.executable).parent / "log-gateway")


def node(script: str, *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``tests/js/SCRIPT ARGS`` with node; its exit status and JSON report."""
    if shutil.which("node") is None or not (JS / "node_modules").is_dir():
        pytest.fail("the npm tools are not installed: run npm ci --prefix tests/js (scripts/test does)")
    result = subprocess.run(
        ["node", str(JS / script), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.stdout, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, report


async def captured(nats_server: NatsServer, nc: Client) -> tuple[dict[str, list[Msg]], list[dict[str, Any]]]:
    """Every event a real gateway emits (batch, alert, rejection, announcement) by subject, as
    received, and the entries it was sent."""
    subjects = [c.EVENT_TYPE for c in CONTRACTS if c.EVENT_TYPE != "cortex_logging.entry.created"]
    seen: dict[str, list[Msg]] = {subject: await collect(nc, subject) for subject in subjects}
    values = run_values(max_batch_entries=10, max_batch_delay_ms=10, alert_threshold=3)
    async with running_gateway(nats_server.url, gateway_config(values)) as (gateway, gw_nc):
        sent = entries(20) + [samples.entry(i, level="error", message=f"timeout {i}") for i in range(3)]
        await publish_entries(nc, [*sent, samples.entry(99, level="loud")])
        await until(lambda: gateway.stats.published == len(sent) and gateway.stats.total_rejected == 1)
        # A live change, so the gateway's announcement of it is captured too.
        await Reconfigurer(gateway, values, gw_nc).apply({"max_batch_delay_ms": 20}, origin="sighup")
        await until(lambda: all(seen[s] for s in subjects if s != "cortex_logging.log.archived"))
    return seen, sent


def schema_events(seen: dict[str, list[Msg]], sent: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The events' data by schema file, for Ajv (an archive announcement from the samples)."""
    events = {s: [json.loads(m.data)["data"] for m in msgs] for s, msgs in seen.items()}
    events["cortex_logging.log.archived"] = [samples.ARCHIVED]
    events["cortex_logging.entry.created"] = sent
    return {f"{subject}.schema.json": data for subject, data in events.items()}


def wire_messages(seen: dict[str, list[Msg]]) -> dict[str, list[dict[str, Any]]]:
    """What the wire carried, by subject: each message's headers and JSON body; and an entry
    in each of the three forms ingest accepts, with a correlation id where one is carried."""
    wire = {
        subject: [{"headers": dict(m.headers or {}), "body": json.loads(m.data)} for m in msgs]
        for subject, msgs in seen.items()
    }
    attrs = make_attributes(LogEntryCreated.EVENT_TYPE, "//test", extensions={"correlationid": "c-1"})
    body = json.dumps(samples.ENTRY).encode()
    forms = [encode_structured(attrs, body), encode_binary(attrs, body), ({}, body)]
    wire[LogEntryCreated.EVENT_TYPE] = [{"headers": h, "body": json.loads(b)} for h, b in forms]
    return wire


async def test_the_schemas_compile_under_ajv_strict_and_take_real_events(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    schemas = tmp_path / "schemas"
    written = await asyncio.to_thread(
        subprocess.run,
        [LOG_GATEWAY, "schemas", str(schemas)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    events = tmp_path / "events.json"
    events.write_text(json.dumps(schema_events(*await captured(nats_server, nc))))
    status, report = await asyncio.to_thread(node, "ajv_check.mjs", str(schemas), str(events))
    assert report["problems"] == []
    assert status == 0
    assert sorted(report["compiled"]) == sorted(f"{c.EVENT_TYPE}.schema.json" for c in CONTRACTS)
    for name in report["compiled"]:
        text = (schemas / name).read_text()
        assert '"x-' not in text
        assert '"default": null' not in text
    titles = json.loads((schemas / "cortex_logging.entry.created.schema.json").read_text())["properties"]
    assert titles["createdAt"]["title"] == "createdAt"


async def test_the_asyncapi_document_passes_the_parser_and_declares_what_the_wire_carries(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    """Before: four channels, and the bare data as payload with ``application/json``."""
    made = await asyncio.to_thread(
        subprocess.run, [LOG_GATEWAY, "asyncapi"], capture_output=True, text=True, timeout=60, check=False
    )
    assert made.returncode == 0, made.stderr
    doc, wire = tmp_path / "asyncapi.json", tmp_path / "wire.json"
    doc.write_text(made.stdout)
    seen, _ = await captured(nats_server, nc)
    wire.write_text(json.dumps(wire_messages(seen)))
    status, report = await asyncio.to_thread(node, "asyncapi_check.mjs", str(doc), str(wire))
    assert [d for d in report["diagnostics"] if d["severity"] == 0] == []
    assert report["unmatched"] == []
    assert report["checked"] >= 7
    assert status == 0
    control = {control_subject(endpoint) for endpoint in ENDPOINTS}
    expected = {*Subjects().outputs, *control, LogEntryCreated.EVENT_TYPE, LogEntryCreated.EVENT_TYPE + ".>"}
    assert set(report["channels"]) == expected
    messages = json.loads(made.stdout)["components"]["messages"]
    carried = {name for name, message in messages.items() if "correlationId" in message}
    assert carried == {"entryStructured", "entryBinary"}  # only ingest carries one
    assert "Nats-Msg-Id" in messages["logBatchCreated"]["headers"]["required"]
