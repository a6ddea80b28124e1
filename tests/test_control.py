"""The control service (nats.micro) and its client, on running gateways and a real nats-server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from nats.aio.client import Client

from gateway.control.apply import Reconfigurer
from gateway.control.client import ControlClient, ControlError
from gateway.control.service import ControlService
from gateway.control.subjects import control_subject
from gateway.process.natsserver import NatsServer
from gateway.process.settings import gateway_config
from gateway.service import Gateway
from tests.helpers import entries, log_ids, publish_entries, running_gateway, stored_batches, until
from tests.test_reconfigure import run_values


@asynccontextmanager
async def controlled(url: str, values: dict[str, Any]) -> AsyncIterator[tuple[Gateway, ControlService]]:
    """A running gateway answering the control service."""
    async with running_gateway(url, gateway_config(values)) as (gateway, gw_nc):
        service = ControlService(gw_nc, gateway, Reconfigurer(gateway, values, gw_nc), version="0.1.0")
        await service.start()  # (answering once it returns: the hostile cases ask at once)
        try:
            yield gateway, service
        finally:
            await service.stop()


async def test_discovered_by_ping_and_each_gateway_answers_for_itself(
    nats_server: NatsServer, nc: Client
) -> None:
    first, second = run_values(), run_values()
    second["queue_group"] = first["queue_group"]  # two gateways of one queue group
    async with AsyncExitStack() as stack:
        for values in (first, second):
            await stack.enter_async_context(controlled(nats_server.url, values))
        pings = await _gather(nc, "$SRV.PING.log-gateway")
        client = ControlClient(nc, client="test")
        everyone = await client.status()
        one = await client.config_get(second["gateway_id"])
        info = json.loads((await nc.request("$SRV.INFO.log-gateway", b"", timeout=2)).data)
        with pytest.raises(ControlError, match="no gateway answers"):
            await client.status("gw-nobody")
    ids = {first["gateway_id"], second["gateway_id"]}
    assert {ping["metadata"]["gateway_id"] for ping in pings} == ids
    assert {reply["gatewayId"] for reply in everyone} == ids
    assert all(reply["connection"]["connected"] for reply in everyone)
    assert [reply["gatewayId"] for reply in one] == [second["gateway_id"]]
    assert one[0]["settings"]["max_batch_delay_ms"] == 100
    assert "max_batch_delay_ms" in one[0]["live"]
    assert {e["subject"] for e in info["endpoints"]} >= {control_subject("config_set")}


async def _gather(nc: Client, subject: str) -> list[dict[str, Any]]:
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(subject, b"", reply=inbox)
    got = [json.loads((await sub.next_msg(timeout=2)).data)]
    got.append(json.loads((await sub.next_msg(timeout=2)).data))
    await sub.unsubscribe()
    return got


async def test_a_change_under_a_flood_counts_every_entry_once(nats_server: NatsServer, nc: Client) -> None:
    values = run_values(max_batch_entries=100)
    async with controlled(nats_server.url, values) as (gateway, _):
        client = ControlClient(nc, client="flood")

        async def steer() -> list[list[dict[str, Any]]]:
            replies = []
            for delay, size in [(5, 20), (50, 250), (1, 60), (30, 400)] * 2:
                change = {"max_batch_delay_ms": delay, "max_batch_entries": size, "max_in_flight": size % 7}
                replies.append(await client.config_set(change, gateway=values["gateway_id"]))
                await asyncio.sleep(0.2)
            return replies

        steering = asyncio.create_task(steer())
        for start in range(0, 5_000, 500):
            await publish_entries(nc, entries(500, start=start))
            await asyncio.sleep(0.05)
        replies = await steering
        await until(lambda: gateway.stats.published == 5_000, timeout_s=60)
    ids = log_ids(await stored_batches(nc.jetstream(), values["stream_name"]))
    assert sorted(ids) == sorted(e["logId"] for e in entries(5_000))
    assert all(reply[0]["applied"] for reply in replies)
    assert gateway.config_changes["control"] == 8
    assert gateway.stats.total_dropped == 0


async def test_a_refused_change_is_an_error_and_leaves_the_config(
    nats_server: NatsServer, nc: Client
) -> None:
    values = run_values()
    async with controlled(nats_server.url, values) as (gateway, _):
        client = ControlClient(nc)
        with pytest.raises(ControlError, match="spool_dir cannot change") as refused:
            await client.config_set({"spool_dir": "spool", "max_batch_delay_ms": 5})
        dry = await client.config_set({"max_batch_delay_ms": 5}, dry_run=True)
    assert refused.value.replies[0]["code"] == "refused"
    assert dry[0]["dryRun"] is True
    assert dry[0]["applied"] is False
    assert gateway.config.batch.max_delay_ms == 100


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\xff\xfe", "invalid_json"),
        (b'{"changes": {"a": 1}, "changes": {}}', "duplicate"),
        (b'{"changes": {"max_batch_delay_ms": 5}, "sudo": true}', "sudo: Extra inputs"),
        (b'{"changes": {"max_batch_delay_ms": 5}, "dryRun": "yes"}', "dryRun"),
        (b'{"changes": {"../../etc": 5}}', "String should match pattern"),
        (b'{"changes": {"max_in_flight": [1, [2, [3]]]}}', "max_in_flight: expected an integer"),
        (b"[" * 100 + b"]" * 100, "too_deep"),
        (b'{"changes": {"x": "' + b"a" * 70_000 + b'"}}', "exceeds 65536"),
        (b'{"changes": {"max_in_flight": 99999999999999999999999}}', "number_out_of_range"),
    ],
)
async def test_hostile_requests_get_an_error_reply_and_the_service_stays_up(
    nats_server: NatsServer, nc: Client, body: bytes, words: str
) -> None:
    values = run_values()
    async with controlled(nats_server.url, values) as (gateway, _):
        reply = await nc.request(control_subject("config_set", values["gateway_id"]), body, timeout=2)
        still = await ControlClient(nc).status(values["gateway_id"])
    error = json.loads(reply.data)
    refused = words.startswith("max_in_flight")  # (valid JSON, a bad value: a refused change)
    assert error["code"] == ("refused" if refused else "bad_request")
    assert words in error["error"]
    assert (reply.headers or {})["Nats-Service-Error-Code"] == ("409" if refused else "400")
    assert still[0]["gatewayId"] == values["gateway_id"]
    assert gateway.config_changes["control"] == 0
