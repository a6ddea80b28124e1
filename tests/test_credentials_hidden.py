"""Credentials never appear in the gateway's output or its HTTP endpoints (issue #6, Security).

``log-gateway run`` is driven, one way of authenticating per run, through
connect, batches, a server restart (the broken connection is logged) and a
SIGTERM shutdown at debug log level, the most it ever writes. Each secret is
made fresh for the run, so a match can only be a leak.
"""

from __future__ import annotations

import asyncio
import re
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from gateway.process.connection import ConnectionSettings
from gateway.process.natsserver import NatsServer
from tests.helpers import entries, log_ids, publish_entries, stored_batches
from tests.natsauth import new_key
from tests.test_auth_nkeys import checked, nkey_users, seed_file
from tests.test_cli import LOG_GATEWAY, clean_env, http_get, metric, run_cli

BATCH = 20
PER_ROUND = 100
# Debug level: the most the gateway ever writes.
GATEWAY_ARGS = ["--http-port", "0", "--log-level", "debug", "--max-batch-entries", str(BATCH)]


@dataclass
class Way:
    """One way to authenticate: the server's config, the gateway's flags and the test client's."""

    server_config: str
    flags: Callable[[str], list[str]]
    client: Callable[[str], dict[str, Any]]
    secrets: list[str]


def _with_userinfo(url: str, userinfo: str) -> str:
    return url.replace("nats://", f"nats://{userinfo}@")


def _way(name: str, tmp_path: Path) -> Way:
    secret = uuid.uuid4().hex  # random: found anywhere, it can only be a leak
    users = f'authorization {{\n  users = [\n    {{ user: gw, password: "{secret}" }}\n  ]\n}}\n'
    token = f'authorization {{ token: "{secret}" }}\n'
    if name == "url-password":
        userinfo = f"gw:{secret}"
        return Way(users, lambda url: ["--nats-url", _with_userinfo(url, userinfo)], _url(userinfo), [secret])
    if name == "url-token":
        return Way(token, lambda url: ["--nats-url", _with_userinfo(url, secret)], _url(secret), [secret])
    if name == "token":
        return Way(token, lambda url: ["--nats-url", url, "--nats-token", secret], _url(secret), [secret])
    if name == "user-password":
        flags = ["--nats-user", "gw", "--nats-password", secret]
        return Way(users, lambda url: ["--nats-url", url, *flags], _url(f"gw:{secret}"), [secret])
    key, client_key = new_key("user"), new_key("user")
    seed, client_seed = seed_file(tmp_path / "gw.nk", key), seed_file(tmp_path / "client.nk", client_key)
    return Way(
        nkey_users(key, client_key),
        lambda url: ["--nats-url", url, "--nats-nkey-seed", str(seed)],
        lambda url: {"servers": [url], "nkeys_seed": str(client_seed)},
        [key.seed, key.seed[:20]],
    )


def _url(userinfo: str) -> Callable[[str], dict[str, Any]]:
    return lambda url: {"servers": [_with_userinfo(url, userinfo)]}


@dataclass
class Captured:
    """A running ``log-gateway run``: its stdout and stderr, line by line, kept apart."""

    proc: asyncio.subprocess.Process
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def http_port(self) -> int:
        found = re.search(r"http=http://127.0.0.1:(\d+)", "".join(self.stdout))
        assert found, self.stdout
        return int(found.group(1))

    async def pump(self, stream: asyncio.StreamReader | None, into: list[str]) -> None:
        # Read for the process's whole life: a full pipe would block its logging.
        assert stream is not None
        async for raw in stream:
            into.append(raw.decode(errors="replace"))
            if into is self.stdout and "log-gateway: ready" in into[-1]:
                self.ready.set()


@asynccontextmanager
async def gateway(args: list[str]) -> AsyncIterator[Captured]:
    """``log-gateway run ARGS`` with both pipes read to the end; yields once it is ready."""
    proc = await asyncio.create_subprocess_exec(
        LOG_GATEWAY,
        "run",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(),
    )
    run = Captured(proc)
    pumps = asyncio.gather(run.pump(proc.stdout, run.stdout), run.pump(proc.stderr, run.stderr))
    try:
        async with asyncio.timeout(30):
            exited = asyncio.ensure_future(proc.wait())
            await asyncio.wait(
                {exited, asyncio.ensure_future(run.ready.wait())}, return_when="FIRST_COMPLETED"
            )
        assert run.ready.is_set(), "gateway exited before it was ready:\n" + "".join(run.stderr)
        yield run
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await pumps


async def poll(port: int, path: str, done: Callable[[int, str], bool]) -> str:
    """GET ``path`` until ``done(status, body)`` (another process: its HTTP server is what to watch)."""
    async with asyncio.timeout(60):
        while not done(*(answer := await http_get(port, path))):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return answer[1]


async def published(port: int, count: int) -> None:
    await poll(port, "/metrics", lambda _, text: metric(text, "log_gateway_entries_published_total") >= count)


async def restart(server: NatsServer, port: int, client_back: asyncio.Event) -> None:
    """Stop the server until the gateway reports not ready, start it, wait until both are back."""
    client_back.clear()
    await asyncio.to_thread(server.stop)
    await poll(port, "/readyz", lambda status, _: status == 503)
    await asyncio.to_thread(server.start)
    async with asyncio.timeout(60):
        await client_back.wait()
    await poll(port, "/readyz", lambda status, _: status == 200)


async def _ignore(_exc: Exception) -> None:
    """The test client's error callback: its own broken connection at the restart is expected."""


async def connect_client(options: dict[str, Any]) -> tuple[Client, asyncio.Event]:
    """The test's own connection, and an event set each time it reconnects."""
    back = asyncio.Event()

    async def on_reconnect() -> None:
        back.set()

    client = await nats.connect(
        **options, error_cb=_ignore, reconnected_cb=on_reconnect, reconnect_time_wait=0.1
    )
    return client, back


@pytest.mark.parametrize("how", ["url-password", "url-token", "token", "user-password", "nkey-seed"])
async def test_credentials_never_appear_in_output_or_metrics(tmp_path: Path, how: str) -> None:
    way = _way(how, tmp_path)
    stream = "HIDE" + uuid.uuid4().hex[:10].upper()
    args = [*GATEWAY_ARGS, "--stream-name", stream]
    with NatsServer(store_dir=tmp_path / "nats", config=checked(tmp_path, way.server_config)) as server:
        client, client_back = await connect_client(way.client(server.url))
        async with gateway([*way.flags(server.url), *args]) as run:
            port = run.http_port
            await publish_entries(client, entries(PER_ROUND))
            await published(port, PER_ROUND)
            await restart(server, port, client_back)
            await publish_entries(client, entries(PER_ROUND, PER_ROUND))
            await published(port, 2 * PER_ROUND)
            scraped = [(await http_get(port, path))[1] for path in ("/metrics", "/readyz", "/healthz")]
            run.proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(run.proc.wait(), 30) == 0
        stored = log_ids(await stored_batches(client.jetstream(), stream))
        await client.close()
    stdout, stderr = "".join(run.stdout), "".join(run.stderr)
    # It went through every stage: batches before and after the restart, the broken
    # connection logged, a clean shutdown.
    assert sorted(stored) == sorted(e["logId"] for e in entries(2 * PER_ROUND))
    assert metric(scraped[0], "log_gateway_batches_published_total") >= 2 * PER_ROUND / BATCH
    assert "Connection broken" in stderr
    assert "shutdown: every buffered entry was published" in stderr
    for secret in way.secrets:
        for name, text in (("stdout", stdout), ("stderr", stderr), ("HTTP", "".join(scraped))):
            assert secret not in text, f"a credential appeared in {name}"


@pytest.mark.parametrize(
    "url",
    ["gw:{secret}@127.0.0.1:1", "nats:/gw:{secret}@127.0.0.1:1", "http://gw:{secret}@127.0.0.1:1"],
    ids=["no-scheme", "no-host", "wrong-scheme"],
)
def test_a_malformed_url_is_reported_without_its_password(url: str) -> None:
    """A mistyped URL is still an error worth showing, with its credentials cut out."""
    secret = uuid.uuid4().hex
    result = run_cli("run", "--nats-url", url.format(secret=secret), "--connect-timeout-s", "2")
    assert result.returncode in (1, 2), result.stderr
    assert "***@127.0.0.1:1" in result.stderr
    assert secret not in result.stdout + result.stderr


def test_connection_settings_repr_shows_no_secret() -> None:
    """Whatever logs the settings object (a debug line, a traceback's locals) shows no credential."""
    secrets = [uuid.uuid4().hex for _ in range(3)]
    settings = ConnectionSettings(
        servers=(f"nats://gw:{secrets[0]}@127.0.0.1:4222", "nats://127.0.0.1:4223"),
        token=secrets[1],
        user="gw",
        password=secrets[2],
    )
    shown = repr(settings)
    assert "nats://***@127.0.0.1:4222" in shown
    assert "nats://127.0.0.1:4223" in shown
    assert "user='gw'" in shown
    assert not any(secret in shown for secret in secrets)
