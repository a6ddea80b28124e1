"""Forwarded rejections are bounded as a whole, headers included, on a real nats-server.

Each test states its counts: messages in, rejected (by reason), forwarded, forwards that failed.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import jsonschema
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts import EntryRejected, RejectReason
from contracts.schemas import json_schema
from gateway.core.encode import header_size
from gateway.ingest.reject import MAX_REJECTED_BYTES
from gateway.process.metrics import render_metrics
from gateway.process.natsserver import NatsServer
from gateway.service import Gateway
from tests.helpers import collect, config, running_gateway, until

BAD = "cortex_logging.entry.created.bad"
# A binary-mode envelope without its type: invalid, whatever else the headers hold.
ENVELOPE = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s"}


def many_headers(total: int, value: str) -> dict[str, str]:
    """About ``total`` bytes of headers: the envelope, then ``x-N: value`` lines."""
    headers = dict(ENVELOPE)
    for n in range(total // (len(value) + 10)):
        headers[f"x-{n}"] = value
    return headers


# (headers, body): ~900 KB of headers that JSON must escape (a quote in each value: a
# forward of them whole is over max_payload), ~900 KB of plain ones (whole: ~900 KB on the
# bus), and a 900 KB body behind one huge header.
CASES: list[tuple[dict[str, str], bytes]] = [
    (many_headers(900_000, 'say "' * 20), b"{}"),
    (many_headers(900_000, "v" * 100), b"{}"),
    ({**ENVELOPE, "x-huge": "h" * 60_000}, b"z" * 900_000),
]


def event(msg: Msg) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(msg.data)["data"]
    return data


async def test_rejected_events_stay_within_the_cap_and_say_they_were_cut(
    nats_server: NatsServer, nc: Client
) -> None:
    forwarded = await collect(nc, "cortex_logging.entry.rejected")
    async with running_gateway(nats_server.url, config()) as (gateway, gw_nc):
        limit = min(gw_nc.max_payload, MAX_REJECTED_BYTES)
        for headers, body in CASES:
            await nc.publish(BAD, body, headers=headers)
        await nc.flush()
        await until(lambda: gateway.stats.received == len(CASES), 20)
        await until(lambda: len(forwarded) == len(CASES), 20)
        metrics = render_metrics(gateway).decode()
    # in: 3; rejected: 3 (invalid envelope, or oversize for the big body); forwarded: 3; failed: 0.
    assert gateway.stats.total_rejected == len(forwarded) == len(CASES)
    assert gateway.stats.rejected == Counter({RejectReason.INVALID_ENVELOPE: 2, RejectReason.OVERSIZE: 1})
    assert gateway.stats.reject_forward_failed == 0
    assert "log_gateway_rejected_forward_failed_total 0.0" in metrics
    schema = json_schema(EntryRejected)
    for msg, (headers, body) in zip(forwarded, CASES, strict=True):
        assert header_size(dict(msg.headers or {})) + len(msg.data) <= limit
        data = event(msg)
        jsonschema.validate(data, schema)
        rejected = EntryRejected.parse(data)
        assert rejected.truncated
        assert data["headersTruncated"] is True
        assert data["headers"]["ce-specversion"] == "1.0"  # the first headers are kept
        shown = data["headers"]
        assert shown != headers  # cut: headers left out, or a value cut short ...
        assert all(headers[name].startswith(value) for name, value in shown.items())  # ... from its start
        assert rejected.payloadBytes == len(body)


async def test_a_forward_that_fails_is_counted(nats_server: NatsServer) -> None:
    """Ingest on its own connection, the forwarding one closed: the rejection is counted, and so
    is the forward that could not be made."""
    producer = await nats.connect(nats_server.url)
    main = await nats.connect(nats_server.url)
    ingest = await nats.connect(nats_server.url)
    gateway = Gateway(config())
    try:
        await gateway.start(main, ingest_nc=ingest)
        await main.close()
        await producer.publish(BAD, b"{not json")
        await producer.flush()
        await until(lambda: gateway.stats.total_rejected == 1, 20)
        await until(lambda: gateway.stats.reject_forward_failed == 1, 20)
        metrics = render_metrics(gateway).decode()
    finally:
        await gateway.stop(timeout_s=5)
        await ingest.close()
        await producer.close()
    # in: 1; rejected: 1 (invalid JSON); forwarded: 0; failed forwards: 1.
    assert gateway.stats.rejected == Counter({RejectReason.INVALID_JSON: 1})
    assert "log_gateway_rejected_forward_failed_total 1.0" in metrics
