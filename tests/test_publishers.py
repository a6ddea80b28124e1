"""Publishing: retries with a deadline, permanent errors never retried, permission denials heard."""

from __future__ import annotations

import time
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client

from gateway.core.limits import BatchLimits
from gateway.process.natsserver import NatsServer
from publishers import (
    JetStreamPublisher,
    PermissionDeniedError,
    PermissionWatch,
    PublishFailedError,
    PublishPolicy,
    StreamConflictError,
    StreamSpec,
    ensure_stream,
    is_retriable,
    reason_for,
)
from tests.helpers import config, entries, publish_entries, running_gateway, until


@pytest.mark.parametrize(
    ("exc", "retriable"),
    [
        (nats.errors.TimeoutError(), True),
        (TimeoutError(), True),
        (nats.errors.NoRespondersError(), True),
        (nats.js.errors.NoStreamResponseError(), True),
        (nats.js.errors.ServiceUnavailableError(code=503), True),
        (nats.errors.ConnectionReconnectingError(), True),
        (nats.errors.OutboundBufferLimitError(), True),
        (nats.errors.MaxPayloadError(), False),
        (nats.js.errors.BadRequestError(code=400), False),
        (nats.js.errors.APIError(code=413), False),
        (PermissionDeniedError("x"), False),
        (ValueError("bug"), False),
    ],
)
def test_only_transient_errors_are_retried(exc: BaseException, retriable: bool) -> None:
    assert is_retriable(exc) is retriable


def test_drop_reasons() -> None:
    assert reason_for(nats.errors.MaxPayloadError()) == "payload_too_large"
    assert reason_for(nats.js.errors.APIError(code=413)) == "payload_too_large"
    assert reason_for(PermissionDeniedError("x")) == "permission_denied"
    assert reason_for(nats.errors.TimeoutError()) == "publish_failed"


async def test_retries_stop_at_the_deadline(nc: Client) -> None:
    retries: list[BaseException] = []
    policy = PublishPolicy(timeout_s=0.2, retry_deadline_s=0.6, backoff_initial_s=0.01, backoff_max_s=0.05)
    publisher = JetStreamPublisher(nc.jetstream(), policy, PermissionWatch(), retries.append)
    started = time.monotonic()
    with pytest.raises(PublishFailedError) as info:
        await publisher.publish("no.stream.here", b"x", {"Nats-Msg-Id": "1"})
    elapsed = time.monotonic() - started
    assert info.value.reason == "publish_failed"
    assert isinstance(info.value.__cause__, nats.js.errors.NoStreamResponseError)
    assert len(retries) >= 2
    assert all(isinstance(e, nats.js.errors.NoStreamResponseError) for e in retries)
    assert 0.6 <= elapsed < 0.6 + policy.timeout_s + policy.backoff_max_s + 0.5


async def test_permanent_error_is_not_retried(nats_server: NatsServer) -> None:
    client = await nats.connect(nats_server.url)
    await ensure_stream(client.jetstream(), StreamSpec(name="BIG", subjects=("big.x",)))
    retries: list[BaseException] = []
    publisher = JetStreamPublisher(client.jetstream(), PublishPolicy(), PermissionWatch(), retries.append)
    with pytest.raises(PublishFailedError) as info:
        await publisher.publish("big.x", b"x" * (client.max_payload + 1), {})
    await client.close()
    assert isinstance(info.value.__cause__, nats.errors.MaxPayloadError)
    assert retries == []


async def test_ensure_stream_creates_then_adds_missing_subjects(nc: Client) -> None:
    js = nc.jetstream()
    info = await ensure_stream(js, StreamSpec(name="OUT", subjects=("a.one",), duplicate_window_s=90))
    assert info.config.subjects == ["a.one"]
    assert info.config.duplicate_window == 90
    again = await ensure_stream(js, StreamSpec(name="OUT", subjects=("a.one", "a.two")))
    assert again.config.subjects == ["a.one", "a.two"]
    assert (await ensure_stream(js, StreamSpec(name="OUT", subjects=("a.two",)))).config.subjects == [
        "a.one",
        "a.two",
    ]


async def test_ensure_stream_uses_a_stream_that_already_captures_the_subjects(nc: Client) -> None:
    js = nc.jetstream()
    await ensure_stream(js, StreamSpec(name="OPS", subjects=("out.a", "out.b")))
    info = await ensure_stream(js, StreamSpec(name="MINE", subjects=("out.a", "out.b")))
    assert info.config.name == "OPS"
    await ensure_stream(js, StreamSpec(name="OTHER", subjects=("out.c",)))
    with pytest.raises(StreamConflictError, match="split across streams"):
        await ensure_stream(js, StreamSpec(name="MINE", subjects=("out.a", "out.c")))
    with pytest.raises(StreamConflictError, match=r"\(none\)"):
        await ensure_stream(js, StreamSpec(name="MINE", subjects=("out.a", "out.new")))


DENY_BATCHES = """
authorization {
  users = [
    { user: gw, password: gw-secret, permissions: {
        publish: { allow: [">"], deny: ["cortex_logging.batch.created"] }
        subscribe: { allow: [">"] } } }
    { user: producer, password: producer-secret }
  ]
}
"""


async def test_a_denied_publish_is_permanent_counted_and_does_not_hang(tmp_path: Path) -> None:
    with NatsServer(store_dir=tmp_path, config=DENY_BATCHES) as server:
        host = server.url.removeprefix("nats://")
        cfg = config(
            batch=BatchLimits(max_entries=10, max_delay_ms=10),
            publish=PublishPolicy(timeout_s=30.0, retry_deadline_s=60.0),
        )
        producer = await nats.connect(f"nats://producer:producer-secret@{host}")
        started = time.monotonic()
        async with running_gateway(f"nats://gw:gw-secret@{host}", cfg) as (gateway, _):
            await publish_entries(producer, entries(50))
            await until(lambda: gateway.stats.total_dropped == 50, timeout_s=15)
            report = await gateway.stop()
        await producer.close()
    # A 30 s ack timeout would have been waited out (and retried) had the denial not been heard.
    assert time.monotonic() - started < 15
    assert gateway.stats.dropped == {"permission_denied": 50}
    assert gateway.stats.published == 0
    assert gateway.stats.retries == 0
    assert report.unpublished == 0
