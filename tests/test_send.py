"""``log-gateway send`` as users run it: the real command, into a real gateway on a real server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from nats.aio.client import Client

from gateway.process.natsserver import NatsServer
from tests.helpers import config, running_gateway, stored_batches, until

LOG_GATEWAY = str(Path(sys.executable).parent / "log-gateway")


async def send(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOG_GATEWAY_")}
    proc = await asyncio.create_subprocess_exec(
        LOG_GATEWAY, "send", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("form", ["structured", "binary", "bare"])
async def test_send_publishes_entries_the_gateway_batches(
    nats_server: NatsServer, nc: Client, form: str
) -> None:
    cfg = config()
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        status, out, err = await send(
            "--nats-url", nats_server.url, "--count", "3", "--form", form,
            "--level", "error", "--message", "disk full", "--source", "svc-a",
        )  # fmt: skip
        assert status == 0, err
        await until(lambda: gateway.stats.published == 3)
    assert gateway.stats.total_rejected == 0
    assert f"log-gateway: sent 3 {form} entries to cortex_logging.entry.created at {nats_server.url}" in out
    got = [
        e for stored in await stored_batches(nc.jetstream(), cfg.stream.name) for e in stored.batch.entries
    ]
    assert [(e.level, e.message, e.source) for e in got] == [("error", "disk full", "svc-a")] * 3
    assert sorted(str(e.metadata["n"]) for e in got if e.metadata) == ["1", "2", "3"]
    first = next(e for e in got if e.metadata and e.metadata["n"] == 1)
    assert f"log-gateway: first logId {first.logId}" in out


async def test_send_says_what_is_wrong_with_a_setting() -> None:
    status, _, err = await send("--nats-url", "nats://127.0.0.1:4222", "--form", "xml")
    assert status == 2
    assert "--form" in err
    assert "structured, binary, bare" in err
