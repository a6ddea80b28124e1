"""Fixtures: a real nats-server per test on a free loopback port."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client

from gateway.process.natsserver import NatsServer


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A nats-server with JetStream, its store in a temporary directory."""
    with NatsServer() as server:
        yield server


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A nats-py client connected to :func:`nats_server`."""
    client = await nats.connect(nats_server.url, connect_timeout=5)
    yield client
    await client.close()


@pytest.fixture
def subject() -> str:
    """A subject unique to the test."""
    return f"test.{uuid.uuid4().hex}"
