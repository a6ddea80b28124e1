"""`server_has_read`: after it, the server has taken or refused everything written before it."""

from __future__ import annotations

from pathlib import Path

import nats
from nats.aio.msg import Msg

from gateway.process.natsserver import NatsServer
from publishers.roundtrip import server_has_read

DENIED = (
    "authorization { users = [{ user: agent, password: pw, "
    'permissions: { publish: { deny: ["denied.subject"] } } }] }'
)


async def test_a_refused_publish_is_known_by_the_time_it_returns(tmp_path: Path) -> None:
    # One flush misses the refusal about one time in seven here: forty tries catch that.
    missed = 0
    with NatsServer(store_dir=tmp_path, config=DENIED) as server:
        for _ in range(40):
            errors: list[Exception] = []

            async def seen(error: Exception, into: list[Exception] = errors) -> None:
                into.append(error)

            nc = await nats.connect(server.url.replace("nats://", "nats://agent:pw@"), error_cb=seen)
            try:
                await nc.publish("denied.subject", b"x")
                await server_has_read(nc)
                missed += nc.last_error is None
            finally:
                await nc.close()
    assert missed == 0


async def test_a_subscription_is_in_place_by_the_time_it_returns(tmp_path: Path) -> None:
    missed = 0
    with NatsServer(store_dir=tmp_path) as server:
        listener, talker = await nats.connect(server.url), await nats.connect(server.url)
        try:
            for n in range(40):
                got: list[Msg] = []

                async def take(msg: Msg, into: list[Msg] = got) -> None:
                    into.append(msg)

                sub = await listener.subscribe(f"probe.{n}", cb=take)
                await server_has_read(listener)
                await talker.publish(f"probe.{n}", b"x")
                await server_has_read(talker)
                await server_has_read(listener)  # (the message, if routed, has reached us)
                missed += not got
                await sub.unsubscribe()
        finally:
            await listener.close()
            await talker.close()
    assert missed == 0
