"""The benchmark's load: per-entry messages published from a separate process.

Every contender is measured on what it does with the messages, so the load
itself should cost as little as it can: this machine has 2 cores, and a
producer that publishes through nats-py's client spends a core doing so,
taking it from the gateway or the subscriber it measures. So for a flood the
producer writes the very bytes nats-py would write for each publish (its own
``PUB``/``HPUB`` command builders, its header encoding) down a plain socket,
all prepared before the clock starts. nats-server sees per-entry publishes
from a client as before; only the client's own cost is gone.

For a fixed offered load (latency), fresh entries stamped with their send time
are published through nats-py at the rate asked for.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import socket
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from typing import Any
from urllib.parse import urlsplit

import nats
from nats.protocol.command import hpub_cmd, pub_cmd

from gateway.bench.payloads import Message, encode, entry

__all__ = ["Producer", "wire"]

_CTX = multiprocessing.get_context("spawn")
_CONNECT = (
    b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1,"name":"bench-producer"}\r\n'
)
_TIMEOUT_S = 120.0


def wire(subject: str, msgs: list[Message]) -> bytes:
    """``msgs`` as the commands nats-py writes when publishing each of them to ``subject``."""
    out = []
    for headers, body in msgs:
        if headers is None:
            out.append(pub_cmd(subject, "", body))
        else:
            block = b"NATS/1.0\r\n" + b"".join(
                b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items()
            )
            out.append(hpub_cmd(subject, "", block + b"\r\n", body))
    return b"".join(out)


@dataclass(frozen=True)
class _Plan:
    """What a producer process publishes: ``msgs`` as fast as it can, or fresh entries at ``rate``."""

    url: str
    subject: str
    msgs: list[Message] | None
    rate: float
    seconds: float


def _producer_main(plan: _Plan, ready: MpEvent, go: MpEvent) -> None:
    if plan.msgs is None:
        asyncio.run(_paced(plan, ready, go))
    else:
        _flood(plan.url, wire(plan.subject, plan.msgs), ready, go)


def _flood(url: str, commands: bytes, ready: MpEvent, go: MpEvent) -> None:
    """Write ``commands`` once told to go; return when the server has read them all (a PING's PONG)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), _TIMEOUT_S) as sock:
        reader = sock.makefile("rb")
        if not reader.readline().startswith(b"INFO "):
            raise RuntimeError("nats-server did not greet the producer")
        sock.sendall(_CONNECT + b"PING\r\n")
        _await_pong(reader)
        ready.set()
        go.wait()
        sock.sendall(commands)
        sock.sendall(b"PING\r\n")
        _await_pong(reader)


def _await_pong(reader: Any) -> None:
    while (line := reader.readline()) != b"PONG\r\n":
        if not line or line.startswith(b"-ERR"):
            raise RuntimeError(f"nats-server refused the producer: {line!r}")


async def _paced(plan: _Plan, ready: MpEvent, go: MpEvent) -> None:
    """Publish fresh entries (stamped with their send time) at ``plan.rate`` per second."""
    nc = await nats.connect(plan.url, pending_size=256 * 1024 * 1024)
    ready.set()
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    rng = random.Random(11)
    start = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - start) < plan.seconds:
        due = int(elapsed * plan.rate)
        while sent < due:
            headers, body = encode(entry(sent, rng, sent_at=time.time()), "mix", sent)
            await nc.publish(plan.subject, body, headers=headers)
            sent += 1
        await asyncio.sleep(0.002)
    await nc.flush()
    await nc.close()


class Producer:
    """A separate process that publishes once told to go (so it does not share our core)."""

    def __init__(
        self,
        url: str,
        subject: str,
        msgs: list[Message] | None = None,
        *,
        rate: float = 0,
        seconds: float = 0,
    ) -> None:
        self.ready = _CTX.Event()
        self.go = _CTX.Event()
        plan = _Plan(url, subject, msgs, rate, seconds)
        self.proc = _CTX.Process(target=_producer_main, args=(plan, self.ready, self.go), daemon=True)
        self.proc.start()

    async def start(self) -> float:
        """Wait until the producer is connected with its messages ready, say go; returns when it was said."""
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.ready.wait, _TIMEOUT_S):
            raise RuntimeError("the benchmark's producer did not get ready")
        started = time.perf_counter()
        self.go.set()
        return started

    async def join(self) -> None:
        """Wait for the producer to finish; it must have published everything."""
        await asyncio.get_running_loop().run_in_executor(None, self.proc.join, _TIMEOUT_S)
        if self.proc.exitcode != 0:
            raise RuntimeError(f"the benchmark's producer failed (exit code {self.proc.exitcode})")
