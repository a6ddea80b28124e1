"""NKEY seed and credentials-file (JWT) authentication, each against a nats-server configured for it.

Every key and JWT is made inside the test (tests/natsauth.py); every server
configuration is checked with ``nats-server -t`` before the server runs it.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.client import JetStreamContext

from gateway.core.limits import BatchLimits
from gateway.process.connection import ConnectionSettings
from gateway.process.natsserver import NatsServer, find_nats_server
from tests.helpers import (
    StoredBatch,
    config,
    entries,
    log_ids,
    publish_entries,
    running_gateway,
    stored_batches,
    until,
)
from tests.natsauth import KeyPair, OperatorSetup, new_key, operator_setup
from tests.test_cli import gateway_process, run_cli

SENT = 300
MAX_BATCH = 50


def checked(tmp_path: Path, server_config: str) -> str:
    """``server_config`` once ``nats-server -t`` has accepted it, as :class:`NatsServer` will run it."""
    path = tmp_path / f"check-{uuid.uuid4().hex[:8]}.conf"
    path.write_text(f'jetstream {{\n  store_dir: "{tmp_path / "check-js"}"\n}}\n{server_config}\n')
    result = subprocess.run(
        [find_nats_server(), "-t", "-c", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stderr
    return server_config


def seed_file(path: Path, key: KeyPair) -> Path:
    """An NKEY seed file as ``nsc`` writes one: the seed alone, readable by its owner only."""
    path.write_text(key.seed + "\n")
    path.chmod(0o600)
    return path


def nkey_users(*keys: KeyPair) -> str:
    users = "\n".join(f"    {{ nkey: {key.public} }}" for key in keys)
    return f"authorization {{\n  users = [\n{users}\n  ]\n}}\n"


async def _ignore(_exc: Exception) -> None:
    """The test client's error callback: a refused gateway is the test's subject, not the client's."""


async def stored_when_complete(js: JetStreamContext, stream: str, count: int) -> list[StoredBatch]:
    """The stream's batches once they hold ``count`` entries (another process publishes them)."""
    async with asyncio.timeout(60):
        # Another process stores them: the stream is the only thing to watch.
        while len(log_ids(batches := await stored_batches(js, stream))) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return batches


def assert_stored_in_batches(batches: list[StoredBatch], sent: list[dict[str, Any]]) -> None:
    """Every entry stored exactly once, in full batches of at most ``MAX_BATCH``."""
    assert sorted(log_ids(batches)) == sorted(e["logId"] for e in sent)
    assert all(stored.batch.count <= MAX_BATCH for stored in batches)
    assert len(batches) >= len(sent) // MAX_BATCH


async def run_cli_gateway(url: str, flags: list[str], client: Client) -> list[StoredBatch]:
    """``log-gateway run`` with ``flags``; entries published, stored, then SIGTERM (exit 0)."""
    stream = "AUTH" + uuid.uuid4().hex[:10].upper()
    args = ["--nats-url", url, *flags, "--stream-name", stream, "--max-batch-entries", str(MAX_BATCH)]
    async with gateway_process(*args) as (proc, _):
        await publish_entries(client, entries(SENT))
        batches = await stored_when_complete(client.jetstream(), stream, SENT)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    return batches


async def run_in_process(url: str, settings: ConnectionSettings, client: Client) -> list[StoredBatch]:
    """The gateway in this process, connected with ``settings``' nats-py arguments."""
    cfg = config(batch=BatchLimits(max_entries=MAX_BATCH, max_delay_ms=50))
    connect = settings.nats_kwargs()
    del connect["servers"]
    async with running_gateway(url, cfg, **connect) as (gateway, _):
        await publish_entries(client, entries(SENT))
        await until(lambda: gateway.stats.published == SENT)
    return await stored_batches(client.jetstream(), cfg.stream.name)


async def run_gateway(
    how: str, settings: ConnectionSettings, flags: list[str], client: Client
) -> list[StoredBatch]:
    """The gateway run ``how`` ("cli" with ``flags``, else in-process with ``settings``); what it stored."""
    url = settings.servers[0]
    if how == "cli":
        return await run_cli_gateway(url, flags, client)
    return await run_in_process(url, settings, client)


@pytest.mark.parametrize("how", ["cli", "in-process"])
async def test_nkey_seed_file_authenticates_and_entries_are_stored(tmp_path: Path, how: str) -> None:
    gateway_key, client_key = new_key("user"), new_key("user")
    seed = seed_file(tmp_path / "gateway.nk", gateway_key)
    server_config = checked(tmp_path, nkey_users(gateway_key, client_key))
    with NatsServer(store_dir=tmp_path / "nats", config=server_config) as server:
        client_seed = seed_file(tmp_path / "client.nk", client_key)
        client = await nats.connect(server.url, nkeys_seed=str(client_seed), error_cb=_ignore)
        settings = ConnectionSettings(servers=(server.url,), nkey_seed_file=seed)
        batches = await run_gateway(how, settings, ["--nats-nkey-seed", str(seed)], client)
        await client.close()
    assert_stored_in_batches(batches, entries(SENT))


def test_a_seed_the_server_does_not_know_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    known, stranger = new_key("user"), new_key("user")
    seed = seed_file(tmp_path / "stranger.nk", stranger)
    with NatsServer(store_dir=tmp_path / "nats", config=checked(tmp_path, nkey_users(known))) as server:
        result = run_cli(
            "run", "--nats-url", server.url, "--nats-nkey-seed", str(seed), "--connect-timeout-s", "5"
        )
    assert result.returncode == 1, result.stderr
    assert "log-gateway: ready" not in result.stdout
    assert (
        "log-gateway: cannot start: NATS connection failed: nats: 'Authorization Violation'" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert stranger.seed not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("flag", "text", "needle"),
    [
        ("--nats-nkey-seed", "not a seed\n", "does not hold a user NKEY seed"),
        ("--nats-nkey-seed", "", "does not hold a user NKEY seed"),
        ("--nats-creds", "just some text\n", "is not a NATS credentials file"),
    ],
    ids=["garbage-seed", "empty-seed", "creds-without-jwt"],
)
def test_a_file_that_is_not_a_key_is_a_bad_setting(tmp_path: Path, flag: str, text: str, needle: str) -> None:
    """Exit 2 at once, naming the file: nats-py would raise deep inside, or (creds) never return."""
    path = tmp_path / "key"
    path.write_text(text)
    result = run_cli("run", "--nats-url", "nats://127.0.0.1:1", flag, str(path), "--connect-timeout-s", "5")
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert str(path) in result.stderr


def test_an_account_seed_is_not_a_user_seed(tmp_path: Path) -> None:
    """Only user keys log in; an account (or operator) seed is refused before connecting."""
    path = seed_file(tmp_path / "account.nk", new_key("account"))
    with pytest.raises(ValueError, match="does not hold a user NKEY seed") as info:
        ConnectionSettings(servers=("nats://127.0.0.1:1",), nkey_seed_file=path)
    assert path.read_text().strip() not in str(info.value)


@pytest.fixture
def operator(tmp_path: Path) -> OperatorSetup:
    """Operator, system account and a JetStream account, with the server config checked."""
    setup = operator_setup()
    checked(tmp_path, setup.server_config())
    return setup


@pytest.mark.parametrize("how", ["cli", "in-process"])
async def test_creds_file_authenticates_in_operator_mode(
    tmp_path: Path, operator: OperatorSetup, how: str
) -> None:
    creds = operator.user_creds(tmp_path / "log-gateway.creds")
    client_creds = operator.user_creds(tmp_path / "client.creds", name="test-client", user=new_key("user"))
    with NatsServer(store_dir=tmp_path / "nats", config=operator.server_config()) as server:
        client = await nats.connect(server.url, user_credentials=str(client_creds), error_cb=_ignore)
        settings = ConnectionSettings(servers=(server.url,), creds_file=creds)
        batches = await run_gateway(how, settings, ["--nats-creds", str(creds)], client)
        await client.close()
    assert_stored_in_batches(batches, entries(SENT))


def test_creds_of_an_account_the_operator_did_not_sign_are_refused(
    tmp_path: Path, operator: OperatorSetup
) -> None:
    rogue = operator_setup()  # same layout, other operator: its account is unknown to this server
    creds = rogue.user_creds(tmp_path / "rogue.creds")
    with NatsServer(store_dir=tmp_path / "nats", config=operator.server_config()) as server:
        result = run_cli(
            "run", "--nats-url", server.url, "--nats-creds", str(creds), "--connect-timeout-s", "5"
        )
    assert result.returncode == 1, result.stderr
    assert "log-gateway: ready" not in result.stdout
    assert "Authorization Violation" in result.stderr
    assert rogue.user.seed not in result.stdout + result.stderr
