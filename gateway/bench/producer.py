"""The benchmark's load: per-entry messages published from a separate process.

Every contender is measured on what it does with the messages, so the load
itself should cost as little as it can: this machine has 2 cores, and a
producer that publishes through nats-py's client spends a core doing so,
taking it from the gateway or the subscriber it measures. So the producer
writes the very bytes nats-py would write for each publish (its own
``PUB``/``HPUB`` command builders, its header encoding) down a plain socket,
all prepared before the clock starts. nats-server sees per-entry publishes
from a client as before; only the client's own cost is gone.

For a flood, everything is written at once. For a fixed offered load
(latency), fresh entries are sent at the rate asked for, each stamped with the
time it was sent (``metadata.sentAt``).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from typing import Any
from urllib.parse import urlsplit

from nats.protocol.command import hpub_cmd, pub_cmd

from gateway.bench.payloads import Message, encode, entry

__all__ = ["Producer", "header_block", "wire"]

_CTX = multiprocessing.get_context("spawn")
_CONNECT = (
    b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1,"name":"bench-producer"}\r\n'
)
_TIMEOUT_S = 120.0
# Entries for a fixed load carry their send time; they are made beforehand with this
# placeholder (as wide as a real time.time() in "%.6f" until the year 2286), swapped when sent.
_PLACEHOLDER = 1111111111.111111
_PLACEHOLDER_BYTES = b"1111111111.111111"
# At most this many distinct entries are made for a fixed load; a longer run sends them again.
_PACED_POOL = 50_000
_CHUNK_S = 0.01  # a paced producer behind its rate writes at most this long's worth at once


def header_block(headers: dict[str, str]) -> bytes:
    """``headers`` as nats-py writes them ahead of a body (the block an HPUB's size counts)."""
    lines = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items())
    return b"NATS/1.0\r\n" + lines + b"\r\n"


def wire(subject: str, msgs: list[Message]) -> bytes:
    """``msgs`` as the commands nats-py writes when publishing each of them to ``subject``."""
    out = []
    for headers, body in msgs:
        if headers is None:
            out.append(pub_cmd(subject, "", body))
        else:
            out.append(hpub_cmd(subject, "", header_block(headers), body))
    return b"".join(out)


@dataclass(frozen=True)
class _Plan:
    """What a producer process publishes: ``msgs`` as fast as it can, or fresh entries at ``rate``."""

    url: str
    subject: str
    msgs: list[Message] | None
    rate: float
    seconds: float


def _producer_main(plan: _Plan, ready: MpEvent, go: MpEvent, sent: Any) -> None:
    with _connected(plan.url) as sock:
        if plan.msgs is None:
            stamped = _stamped(plan.subject, min(int(plan.rate * plan.seconds) + 1, _PACED_POOL))
            ready.set()
            go.wait()
            sent.value = _paced(sock, stamped, plan.rate, plan.seconds)
        else:
            commands = wire(plan.subject, plan.msgs)
            ready.set()
            go.wait()
            sock.sendall(commands)
            sent.value = len(plan.msgs)
        sock.sendall(b"PING\r\n")  # the server has read everything once it answers
        _await_pong(sock.makefile("rb"))


@contextlib.contextmanager
def _connected(url: str) -> Iterator[socket.socket]:
    """A plain socket that has said CONNECT and seen the server answer a PING."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), _TIMEOUT_S) as sock:
        reader = sock.makefile("rb")
        if not reader.readline().startswith(b"INFO "):
            raise RuntimeError("nats-server did not greet the producer")
        sock.sendall(_CONNECT + b"PING\r\n")
        _await_pong(reader)
        yield sock


def _await_pong(reader: Any) -> None:
    while (line := reader.readline()) != b"PONG\r\n":
        if not line or line.startswith(b"-ERR"):
            raise RuntimeError(f"nats-server refused the producer: {line!r}")


def _stamped(subject: str, count: int) -> list[tuple[bytes, int]]:
    """``count`` fresh mixed entries as commands, each with where its send-time placeholder sits."""
    rng = random.Random(11)
    out = []
    for n in range(count):
        command = wire(subject, [encode(entry(n, rng, sent_at=_PLACEHOLDER), "mix", n)])
        out.append((command, command.index(_PLACEHOLDER_BYTES)))
    return out


def _paced(sock: socket.socket, stamped: list[tuple[bytes, int]], rate: float, seconds: float) -> int:
    """Send ``rate`` entries per second for ``seconds``, each stamped with the time it is sent;
    returns how many were sent.

    Behind its rate (the server reads slower than it is offered), each write is at most
    ``_CHUNK_S`` worth: what was due and not sent is never sent in one piece, which at ten times
    the peak grew to minutes of writing after the run's end, and the producer was given up."""
    start = time.perf_counter()
    sent = 0
    width = len(_PLACEHOLDER_BYTES)
    chunk = max(1, int(rate * _CHUNK_S))
    while (elapsed := time.perf_counter() - start) < seconds:
        due = min(int(elapsed * rate), sent + chunk)
        if due > sent:
            stamp = b"%.6f" % time.time()
            parts: list[bytes] = []
            for n in range(sent, due):
                command, at = stamped[n % len(stamped)]
                parts += (command[:at], stamp, command[at + width :])
            sock.sendall(b"".join(parts))
            sent = due
        time.sleep(0.001)
    return sent


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
        self._seconds = seconds
        self._sent = _CTX.Value("q", 0)
        self.proc = _CTX.Process(
            target=_producer_main, args=(plan, self.ready, self.go, self._sent), daemon=True
        )
        self.proc.start()

    async def wait_ready(self) -> None:
        """Wait until the producer is connected with its messages ready."""
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.ready.wait, _TIMEOUT_S):
            raise RuntimeError("the benchmark's producer did not get ready")

    def say_go(self) -> float:
        """Tell a ready producer to go; returns when it was said."""
        started = time.perf_counter()
        self.go.set()
        return started

    async def start(self) -> float:
        """:meth:`wait_ready`, then :meth:`say_go`."""
        await self.wait_ready()
        return self.say_go()

    @property
    def sent(self) -> int:
        """How many entries it sent (set once it finished sending)."""
        return int(self._sent.value)

    async def join(self) -> None:
        """Wait for the producer to finish; it must have published everything."""
        # A paced producer runs ``seconds``, then waits for the server to have read it all: at ten
        # times the peak, the server (sharing two cores with the gateway it is flooding) took more
        # than the 120 s alone, so the wait is the run plus that.
        await asyncio.get_running_loop().run_in_executor(None, self.proc.join, self._seconds + _TIMEOUT_S)
        if self.proc.exitcode != 0:
            raise RuntimeError(f"the benchmark's producer failed (exit code {self.proc.exitcode})")
