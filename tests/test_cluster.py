"""A real 3-node NATS cluster on loopback: the stream leader dies while the gateway publishes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from gateway.process.natsserver import NatsServer
from publishers import StreamSpec
from tests.helpers import config, entries, log_ids, publish_entries, running_gateway, stored_batches, until


def free_ports(count: int) -> list[int]:
    """Ports the OS says are free now (the cluster's route ports must be known up front)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[NatsServer]]:
    client_ports, route_ports = free_ports(3), free_ports(3)
    nodes = []
    for i in range(3):
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(route_ports) if j != i)
        listen = f'listen: "127.0.0.1:{route_ports[i]}"'
        extra = f"server_name: n{i}\ncluster {{\n  name: test-cluster\n  {listen}\n  routes: [{routes}]\n}}\n"
        nodes.append(NatsServer(store_dir=tmp_path / f"n{i}", config=extra, port=client_ports[i]))
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.close()


async def jetstream_ready(nc: Client) -> None:
    """Wait until the cluster has elected its JetStream meta leader."""
    async with asyncio.timeout(30):
        while True:
            try:
                await nc.jetstream().account_info()
            except Exception:  # noqa: BLE001 - not ready yet: no meta leader
                await asyncio.sleep(0.2)
            else:
                return


async def round_trip(nc: Client) -> None:
    """Wait until the client has a server that answers (after a reconnect, if there is one)."""
    async with asyncio.timeout(60):
        while True:
            try:
                await nc.flush(timeout=2)
            except nats.errors.Error:
                await asyncio.sleep(0.1)
            else:
                return


@pytest.mark.timeout(180)
async def test_killing_the_stream_leader_loses_and_duplicates_nothing(cluster: list[NatsServer]) -> None:
    urls = ",".join(node.url for node in cluster)
    producer = await nats.connect(servers=urls.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    await jetstream_ready(producer)
    cfg = config(stream=StreamSpec(name="CLUSTERED", replicas=3))
    sent = entries(3000)
    async with running_gateway(urls, cfg) as (gateway, gw_nc):
        info = await producer.jetstream().stream_info(cfg.stream.name)
        assert info.config.num_replicas == 3
        leader = info.cluster.leader if info.cluster else None
        victim = next(node for i, node in enumerate(cluster) if f"n{i}" == leader)
        # The services stay up: they publish through the nodes that survive.
        service = await nats.connect(servers=[n.url for n in cluster if n is not victim])
        await publish_entries(service, sent[:1000])
        await until(lambda: gateway.stats.received >= 500)
        victim.kill()
        # If the gateway was on the killed node, entries routed to it in that moment were
        # never received (core NATS ingest; durable ingest is the answer to that). What it
        # did receive must all be stored once. Wait until it is back before phase two.
        await round_trip(gw_nc)
        before = gateway.stats.received
        await publish_entries(service, sent[1000:])
        await service.close()
        await until(lambda: gateway.stats.received == before + 2000 and gateway.acc.held_entries == 0, 120)
        report = await gateway.stop()
    stored = log_ids(await stored_batches(producer.jetstream(), cfg.stream.name))
    await producer.close()
    assert leader is not None
    assert len(stored) == len(set(stored)), "an entry was stored twice"
    assert len(stored) == gateway.stats.received
    assert {e["logId"] for e in sent[1000:]} <= set(stored)
    assert set(stored) <= {e["logId"] for e in sent}
    assert gateway.stats.total_dropped == 0
    assert report.unpublished == 0
