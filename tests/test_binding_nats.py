"""CloudEvents structured and binary mode through a real nats-server and JetStream."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts import (
    ContentMode,
    LogEntryCreated,
    decode_contract,
    encode_binary,
    encode_structured,
    make_attributes,
)
from tests import samples

EXTENSIONS = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "rojo=00f067aa0ba902b7",
    "correlationid": "corr 1 / ü",
    "causationid": "cause-1",
}


@pytest.mark.parametrize("encode", [encode_structured, encode_binary])
async def test_core_nats_round_trip(nc: Client, subject: str, encode: Any) -> None:
    attrs = make_attributes(LogEntryCreated.EVENT_TYPE, "//svc/pod-1", extensions=EXTENSIONS)
    received: asyncio.Queue[Msg] = asyncio.Queue()
    await nc.subscribe(subject, cb=received.put)
    headers, body = encode(attrs, orjson.dumps(samples.ENTRY))
    await nc.publish(subject, body, headers=headers)
    msg = await asyncio.wait_for(received.get(), 5)
    event, entry = decode_contract(msg.headers, msg.data, LogEntryCreated)
    assert event.attributes == attrs
    assert entry.to_data() == samples.ENTRY
    assert event.mode is (ContentMode.STRUCTURED if encode is encode_structured else ContentMode.BINARY)


async def test_bare_data_round_trip(nc: Client, subject: str) -> None:
    received: asyncio.Queue[Msg] = asyncio.Queue()
    await nc.subscribe(subject, cb=received.put)
    await nc.publish(subject, orjson.dumps(samples.ENTRY))
    msg = await asyncio.wait_for(received.get(), 5)
    event, entry = decode_contract(msg.headers, msg.data, LogEntryCreated)
    assert event.mode is ContentMode.BARE
    assert entry.logId == samples.ENTRY["logId"]


@pytest.mark.parametrize("encode", [encode_structured, encode_binary])
async def test_jetstream_keeps_the_event_intact(nc: Client, subject: str, encode: Any) -> None:
    js = nc.jetstream()
    stream = "BIND" + subject.rsplit(".", maxsplit=1)[-1][:8].upper()
    await js.add_stream(name=stream, subjects=[subject])
    attrs = make_attributes(LogEntryCreated.EVENT_TYPE, "//svc/pod-1", extensions=EXTENSIONS)
    headers, body = encode(attrs, orjson.dumps(samples.ENTRY))
    ack = await js.publish(subject, body, headers=headers)
    stored = await js.get_msg(stream, ack.seq)
    event, entry = decode_contract(stored.headers, stored.data or b"", LogEntryCreated)
    assert event.attributes == attrs
    assert entry.to_data() == samples.ENTRY
