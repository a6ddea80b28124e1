"""Steering real ``log-gateway run`` processes: SIGHUP, ``--workers 2`` over the control
service, and ``log-gateway ctl`` run as a command."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts import LogBatchCreated
from gateway.control.client import ControlClient, ControlError
from gateway.process.natsserver import NatsServer
from tests.helpers import entries, publish_entries
from tests.test_cli import LOG_GATEWAY, clean_env, gateway_process


async def next_line_with(proc: asyncio.subprocess.Process, text: str) -> str:
    """The next line of the process's output that holds ``text``."""
    async with asyncio.timeout(20):
        while True:
            raw = await proc.stdout.readline() if proc.stdout else b""
            assert raw, f"the gateway exited before saying {text!r}"
            if text in raw.decode():
                return raw.decode()


async def received(client: ControlClient, gateway_id: str) -> int:
    counts: int = (await client.status(gateway_id))[0]["counts"]["received"]
    return counts


async def test_sighup_rereads_the_file_and_the_next_batches_follow_it(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    path, gateway_id = tmp_path / "gateway.toml", "hup-" + uuid.uuid4().hex[:8]
    path.write_text("max_batch_delay_ms = 60000\nmax_batch_entries = 1000\n")
    batches: asyncio.Queue[tuple[float, LogBatchCreated]] = asyncio.Queue()

    async def on_batch(msg: Msg) -> None:
        await batches.put((time.monotonic(), LogBatchCreated.parse(json.loads(msg.data)["data"])))

    await nc.subscribe(LogBatchCreated.EVENT_TYPE, cb=on_batch)
    args = ["--config", str(path), "--nats-url", nats_server.url, "--gateway-id", gateway_id]
    async with gateway_process(*args, "--stream-name", "HUP") as (proc, _):
        client = ControlClient(nc)
        await publish_entries(nc, entries(3))
        async with asyncio.timeout(20):
            while await received(client, gateway_id) < 3:  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.02)
        assert batches.empty()  # held: its batch is due a minute after its first entry
        path.write_text("max_batch_delay_ms = 50\nmax_batch_entries = 1000\n")
        proc.send_signal(signal.SIGHUP)
        said = await next_line_with(proc, "configuration changed by sighup")
        _, first = await asyncio.wait_for(batches.get(), 10)  # the open batch, due under 50 ms now
        sent_at = time.monotonic()
        await publish_entries(nc, entries(4, start=3))
        arrived, second = await asyncio.wait_for(batches.get(), 10)
        path.write_text("max_batch_delay_ms = = 0\n")  # not TOML: the running settings stay
        proc.send_signal(signal.SIGHUP)
        refused = await next_line_with(proc, "SIGHUP")
        settings = (await client.config_get(gateway_id))[0]["settings"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert "max_batch_delay_ms 60000 -> 50" in said
    assert (first.count, second.count) == (3, 4)
    assert arrived - sent_at < 2.0  # not the minute of the old delay
    assert "not reloaded, the running ones stay" in refused
    assert str(path) in refused
    assert settings["max_batch_delay_ms"] == 50


async def test_both_workers_answer_and_take_a_change(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    base, path = "wk-" + uuid.uuid4().hex[:8], tmp_path / "gateway.toml"
    path.write_text("max_batch_delay_ms = 100\n")
    args = ["--nats-url", nats_server.url, "--workers", "2", "--gateway-id", base, "--stream-name", "WK"]
    async with gateway_process(*args, "--config", str(path), ready_lines=2) as (proc, _):
        client = ControlClient(nc, timeout_s=5)
        statuses = await client.status()
        changed = await client.config_set({"max_batch_delay_ms": 25})
        settings = await client.config_get()
        pings = await _pings(nc)
        path.write_text("max_batch_delay_ms = 40\n")
        proc.send_signal(signal.SIGHUP)  # to the supervisor: each worker reloads
        async with asyncio.timeout(20):
            while await _delays(client) != [40, 40]:  # noqa: ASYNC110 - other processes
                await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    workers = {f"{base}-w0", f"{base}-w1"}
    assert {s["gatewayId"] for s in statuses} == workers
    assert {c["gatewayId"] for c in changed if c["applied"]} == workers
    assert {s["settings"]["max_batch_delay_ms"] for s in settings} == {25}
    assert pings == workers


async def _delays(client: ControlClient) -> list[int]:
    return sorted(reply["settings"]["max_batch_delay_ms"] for reply in await client.config_get())


async def _pings(nc: Client) -> set[str]:
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish("$SRV.PING.log-gateway", b"", reply=inbox)
    got = [json.loads((await sub.next_msg(timeout=5)).data) for _ in range(2)]
    await sub.unsubscribe()
    return {ping["metadata"]["gateway_id"] for ping in got}


async def ctl(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        LOG_GATEWAY,
        "ctl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_ctl_status_get_and_set_as_a_command(nats_server: NatsServer) -> None:
    gateway_id, url = "ctl-" + uuid.uuid4().hex[:8], nats_server.url
    async with gateway_process("--nats-url", url, "--gateway-id", gateway_id, "--stream-name", "CTL") as (
        proc,
        _,
    ):
        status = await ctl("status", "--nats-url", url)
        changed = await ctl(
            "config", "set", "max_batch_delay_ms=50", "--gateway", gateway_id, "--nats-url", url
        )
        dry = await ctl("config", "set", "overflow=drop_oldest", "--dry-run", "--all", "--nats-url", url)
        got = await ctl("config", "get", "--nats-url", url, "--json")
        refused = await ctl("config", "set", "stream_name=OTHER", "--nats-url", url)
        nobody = await ctl("status", "--gateway", "gw-nobody", "--nats-url", url)
        bad = await ctl("config", "set", "max_batch_delay_ms", "--nats-url", url)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert status[0] == 0
    assert f"{gateway_id}  ready" in status[1]
    assert changed == (0, f"{gateway_id}: changed max_batch_delay_ms 100 -> 50\n", "")
    assert dry[1] == f"{gateway_id}: would change overflow 'block' -> 'drop_oldest'\n"
    settings = json.loads(got[1])[0]["settings"]
    assert (settings["max_batch_delay_ms"], settings["overflow"]) == (50, "block")
    assert refused[0] == 1
    assert "stream_name cannot change while the gateway runs" in refused[2]
    assert nobody[0] == 1
    assert "no gateway answers" in nobody[2]
    assert bad[0] == 2
    assert "expected SETTING=VALUE" in bad[2]


async def test_control_false_runs_no_control_service(nats_server: NatsServer, nc: Client) -> None:
    args = ["--nats-url", nats_server.url, "--control", "false", "--stream-name", "NOCTL"]
    async with gateway_process(*args) as (proc, lines):
        gateway_id = "".join(lines).split("gateway_id=", 1)[1].split()[0]
        with pytest.raises(ControlError) as refused:
            await ControlClient(nc, timeout_s=1).status(gateway_id)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert "no gateway answers" in str(refused.value)
