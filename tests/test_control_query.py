"""The control service's ``query`` endpoint: pages over the gateway's own stream, on a real nats-server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nats.aio.client import Client

from contracts.query import LogQuery
from gateway.control.client import ControlClient, ControlError
from gateway.control.subjects import control_subject
from gateway.process.natsserver import NatsServer
from gateway.service import Gateway
from tests.helpers import collect, entries, publish_entries, until
from tests.test_cli import gateway_process
from tests.test_control import controlled
from tests.test_control_cli import ctl
from tests.test_query import in_stream, warn_up
from tests.test_reconfigure import run_values


async def send(nc: Client, gateway: Gateway, batch: list[dict[str, Any]]) -> None:
    """Publish entries and wait until the gateway has stored them."""
    want = gateway.stats.published + len(batch)
    await publish_entries(nc, batch)
    await until(lambda: gateway.stats.published >= want)


@pytest.mark.parametrize("by_id", [True, False])
async def test_paging_to_the_end_through_the_endpoint_returns_each_entry_once_in_order(
    nats_server: NatsServer, nc: Client, by_id: bool
) -> None:
    values = run_values(max_batch_entries=10, max_batch_delay_ms=5)
    async with controlled(nats_server.url, values) as (gateway, _):
        await send(nc, gateway, entries(150))
        client = ControlClient(nc, client="test")
        target = values["gateway_id"] if by_id else None
        pages = [page async for page in client.pages(LogQuery(min_level="warn", limit=7), gateway=target)]
        stored = await in_stream(nc, values["stream_name"], warn_up)
    got = [e.logId for page in pages for e in page.entries]
    assert got == stored  # each once, in stream order
    assert len(stored) == 150 * 3 // 5
    assert [len(p.entries) for p in pages[:-1]] == [7] * (len(pages) - 1)
    assert pages[-1].nextCursor is None
    assert all(p.nextCursor is not None for p in pages[:-1])


async def test_a_page_is_cut_to_fit_the_servers_max_payload(nats_server: NatsServer, nc: Client) -> None:
    values = run_values(max_batch_entries=50)
    big = [e | {"message": f"{e['message']} " + "x" * 4000} for e in entries(400)]
    async with controlled(nats_server.url, values) as (gateway, _):
        await send(nc, gateway, big)
        subject = control_subject("query", values["gateway_id"])
        first = await nc.request(subject, b'{"limit": 1000}', timeout=5)
        pages = [page async for page in ControlClient(nc, timeout_s=5).pages(LogQuery(limit=1000))]
    reply = json.loads(first.data)
    assert len(first.data) < nc.max_payload  # (the gateway's server)
    assert 0 < len(reply["entries"]) < 400  # 400 entries of 4 kB do not fit in 1 MB
    assert reply["nextCursor"] is not None  # fewer than limit, and still a cursor
    assert len(pages) > 1
    assert [e.logId for p in pages for e in p.entries] == [e["logId"] for e in big]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"limit": 5000}', "limit: Input should be less than or equal to 1000"),
        (b'{"level": "loud"}', "level:"),
        (b'{"cursor": "not-a-cursor"}', "cursor is not one this gateway made"),
        (b'{"order": "sideways"}', "order:"),
        (b'{"regex": true, "filter": "("}', "not a valid regular expression"),
        (b'{"regex": true, "filter": "(a+)+$"}', "regex: not answered inside the gateway"),
        (b'{"sudo": true}', "sudo: Extra inputs"),
        (b"[1, 2]", "valid dictionary"),
        (b"\xff\xfe", "invalid_json"),
        (b'{"limit": 1, "limit": 2}', "duplicate"),
        (b"[" * 100 + b"]" * 100, "too_deep"),
        (b'{"filter": "' + b"a" * 70_000 + b'"}', "exceeds 65536"),
    ],
)
async def test_a_bad_or_hostile_query_gets_an_error_reply_and_the_service_stays_up(
    nats_server: NatsServer, nc: Client, body: bytes, words: str
) -> None:
    values = run_values()
    async with controlled(nats_server.url, values):
        reply = await nc.request(control_subject("query", values["gateway_id"]), body, timeout=2)
        still = await ControlClient(nc).query(LogQuery(), gateway=values["gateway_id"])
    error = json.loads(reply.data)
    assert error["code"] == "bad_request"
    assert words in error["error"]
    assert (reply.headers or {})["Nats-Service-Error-Code"] == "400"
    assert still.entries == []
    assert still.nextCursor is None


async def test_a_cursor_of_another_query_is_refused_by_the_client(
    nats_server: NatsServer, nc: Client
) -> None:
    values = run_values(max_batch_entries=10, max_batch_delay_ms=5)
    async with controlled(nats_server.url, values) as (gateway, _):
        await send(nc, gateway, entries(30))
        client = ControlClient(nc)
        page = await client.query(LogQuery(level="error", limit=2))
        assert page.nextCursor is not None
        with pytest.raises(ControlError, match="cursor belongs to a query with other filters") as refused:
            await client.query(LogQuery(level="warn", limit=2, cursor=page.nextCursor))
    assert refused.value.replies[0]["code"] == "bad_request"
    assert [e.level for e in page.entries] == ["error", "error"]


async def test_the_all_form_is_answered_by_one_gateway_of_those_sharing_the_stream(
    nats_server: NatsServer, nc: Client
) -> None:
    first = run_values(max_batch_entries=10, max_batch_delay_ms=5)
    second = run_values(stream_name=first["stream_name"], queue_group=first["queue_group"])
    async with (
        controlled(nats_server.url, first) as (gateway, one),
        controlled(nats_server.url, second) as (other, two),
    ):
        await publish_entries(nc, entries(20))  # (shared by the two gateways of the queue group)
        await until(lambda: gateway.stats.published + other.stats.published == 20)
        client = ControlClient(nc)
        pages = [await client.query(LogQuery(limit=100)) for _ in range(12)]
        answered = [_query_requests(service.service) for service in (one, two)]
    assert all(len(page.entries) == 20 for page in pages)
    assert sum(answered) == 12  # each request answered once, not once per gateway


def _query_requests(service: Any) -> int:
    stats = service.stats()
    return sum(e.num_requests for e in stats.endpoints if e.name == "query")


async def test_ctl_query_prints_a_page_its_cursor_and_every_page(nats_server: NatsServer, nc: Client) -> None:
    url = nats_server.url
    async with gateway_process("--nats-url", url, "--stream-name", "CTLQ", "--max-batch-delay-ms", "5"):
        batches = await collect(nc, "cortex_logging.batch.created")
        await publish_entries(nc, entries(25))
        await until(lambda: sum(len(json.loads(m.data)["data"]["entries"]) for m in batches) == 25)
        page = await ctl("query", "--limit", "10", "--nats-url", url)
        every = await ctl("query", "--limit", "10", "--to-end", "--json", "--nats-url", url)
        errors = await ctl("query", "--level", "error", "--json", "--nats-url", url)
        bad = await ctl("query", "--limit", "5000", "--nats-url", url)
        garbage = await ctl("query", "--cursor", "garbage", "--nats-url", url)
    assert page[0] == 0
    assert len(page[1].splitlines()) == 10
    assert "request 0 handled" in page[1].splitlines()[0]
    assert "add --cursor " in page[2]
    assert every[0] == 0
    assert [json.loads(line)["logId"] for line in every[1].splitlines()] == [e["logId"] for e in entries(25)]
    assert {json.loads(line)["level"] for line in errors[1].splitlines()} == {"error"}
    assert bad[0] == 2
    assert "--limit" in bad[2]
    assert garbage[0] == 1
    assert "cursor is not one this gateway made" in garbage[2]
