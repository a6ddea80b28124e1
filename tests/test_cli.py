"""``log-gateway`` as users run it: real processes, real signals, a real nats-server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts import CONTRACTS, LogBatchCreated
from gateway.config import GatewayConfig
from gateway.process import embedded
from gateway.process.app import say
from gateway.process.connection import ConnectionSettings
from gateway.process.natsserver import NatsServer
from gateway.process.settings import RUN_OPTIONS, connection_settings, gateway_config, read_options
from tests.helpers import entries, log_ids, publish_entries, stored_batches

LOG_GATEWAY = str(Path(sys.executable).parent / "log-gateway")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOG_GATEWAY_")}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOG_GATEWAY, *args], capture_output=True, text=True, timeout=60, env=env or clean_env(), check=False
    )


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--max-batch-entries", "0"], {}, "--max-batch-entries must be at least 1, got 0"),
        (["--max-batch-entries", "many"], {}, "--max-batch-entries / LOG_GATEWAY_MAX_BATCH_ENTRIES"),
        ([], {"LOG_GATEWAY_OVERFLOW": "sideways"}, "LOG_GATEWAY_OVERFLOW"),
        ([], {"LOG_GATEWAY_MAX_BATCH_DELAY_MS": "-5"}, "LOG_GATEWAY_MAX_BATCH_DELAY_MS must be at least 1"),
        (["--publish-retry-deadline-s", "500"], {}, "duplicate window"),
        (["--nats-url", "http://x"], {}, "--nats-url 'http://x'"),
        (
            ["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"],
            {},
            "--tls-cert '/nonexistent.pem'",
        ),
        (["--subject-prefix", "a.>"], {}, "subject prefix"),
        (["--max-publish-rate", "nan"], {}, "--max-publish-rate must be positive"),
        (["--connect-timeout-s", "0"], {}, "--connect-timeout-s"),
    ],
)
def test_bad_setting_exits_2_naming_it(args: list[str], env: dict[str, str], needle: str) -> None:
    result = run_cli("run", *args, env=clean_env(**env))
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr


def test_schemas_command_writes_every_contract(tmp_path: Path) -> None:
    result = run_cli("schemas", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{m.EVENT_TYPE}.schema.json" for m in CONTRACTS
    )


def test_asyncapi_names_every_subject_with_its_schema() -> None:
    result = run_cli("asyncapi")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert addresses == {
        "cortex_logging.entry.created",
        "cortex_logging.entry.created.>",
        "cortex_logging.batch.created",
        "cortex_logging.entry.rejected",
        "cortex_logging.gateway.configured",
        "log_gateway.control.all.status",
        "log_gateway.control.all.config_get",
        "log_gateway.control.all.config_set",
        "log_gateway.control.all.query",
        "cortex_logging.error_pattern.detected",
        "cortex_logging.stream.started",
        "cortex_logging.log.archived",
    }
    assert {c.__name__ for c in CONTRACTS} <= set(doc["components"]["schemas"])
    assert "GatewayConfigured" in doc["components"]["schemas"]


@asynccontextmanager
async def gateway_process(
    *args: str, env: dict[str, str] | None = None, ready_lines: int = 1
) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """``log-gateway run ARGS``; yields once ``ready_lines`` processes said ready, with the output so far."""
    proc = await asyncio.create_subprocess_exec(
        LOG_GATEWAY,
        "run",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env or clean_env(),
    )
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while sum(line.count("log-gateway: ready") for line in lines) < ready_lines:
                raw = await proc.stdout.readline() if proc.stdout else b""
                if not raw:
                    pytest.fail("gateway exited before it was ready:\n" + "".join(lines))
                lines.append(raw.decode())
        yield proc, lines
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split(" ")[1]), body


async def received(port: int) -> float:
    return metric((await http_get(port, "/metrics"))[1], "log_gateway_entries_received_total")


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing"
    return float(match.group(1))


async def test_sigterm_with_a_full_buffer_publishes_everything(nats_server: NatsServer, nc: Client) -> None:
    args = ["--nats-url", nats_server.url, "--http-port", "0", "--stream-name", "SIGTERM_TEST"]
    args += ["--max-batch-entries", "20", "--max-publish-rate", "1", "--max-in-flight", "1"]
    async with gateway_process(*args) as (proc, lines):
        port = int(re.search(r"http=http://127.0.0.1:(\d+)", "".join(lines)).group(1))  # type: ignore[union-attr]
        assert await http_get(port, "/healthz") == (200, "ok\n")
        assert (await http_get(port, "/readyz"))[0] == 200
        sent = entries(400)
        await publish_entries(nc, sent)
        async with asyncio.timeout(20):
            # Another process: its /metrics is the only thing to watch.
            while await received(port) < len(sent):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        text = (await http_get(port, "/metrics"))[1]
        assert metric(text, "log_gateway_buffered_entries") > 0  # throttled to 1 batch/s: most still held
        for name in ("log_gateway_batch_entries_bucket", "log_gateway_entry_latency_seconds_bucket"):
            assert name in text
        assert 'log_gateway_entries_rejected_total{reason="oversize"} 0.0' in text
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    stored = log_ids(await stored_batches(nc.jetstream(), "SIGTERM_TEST"))
    assert sorted(stored) == sorted(e["logId"] for e in sent)


async def test_run_without_url_starts_an_embedded_server(tmp_path: Path) -> None:
    async with gateway_process("--state-dir", str(tmp_path)) as (proc, lines):
        url = re.search(r"embedded nats-server at (nats://\S+)", "".join(lines)).group(1)  # type: ignore[union-attr]
        client = await nats.connect(url)
        got: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_batch(msg: Msg) -> None:
            await got.put(msg)

        await client.subscribe(LogBatchCreated.EVENT_TYPE, cb=on_batch)
        await publish_entries(client, entries(3))
        batch = LogBatchCreated.parse(json.loads((await asyncio.wait_for(got.get(), 10)).data)["data"])
        assert batch.count >= 1
        await client.close()
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert (tmp_path / "nats" / "js").is_dir()
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):  # the embedded server stopped with the gateway
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


AUTH_USERS = """
authorization {
  users = [
    { user: gw, password: "s3cret-pw" }
  ]
}
"""


@pytest.mark.parametrize(
    ("server_config", "flags"),
    [
        (AUTH_USERS, ["--nats-user", "gw", "--nats-password", "s3cret-pw"]),
        ('authorization { token: "t0ken-value" }', ["--nats-token", "t0ken-value"]),
    ],
    ids=["user-password", "token"],
)
async def test_run_authenticates_with_credential_flags(
    tmp_path: Path, server_config: str, flags: list[str]
) -> None:
    with NatsServer(store_dir=tmp_path, config=server_config) as server:
        async with gateway_process("--nats-url", server.url, *flags) as (proc, lines):
            proc.send_signal(signal.SIGTERM)
            output = "".join(lines) + (await proc.stdout.read()).decode()  # type: ignore[union-attr]
            assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert "log-gateway: ready" in output
    secret = flags[-1]
    assert secret not in output  # credentials never appear in the output


def test_an_unreachable_server_is_a_clear_error_not_a_hang() -> None:
    result = run_cli("run", "--nats-url", "nats://user:hunter2@127.0.0.1:1", "--connect-timeout-s", "2")
    assert result.returncode == 1
    assert "is NATS reachable at nats://***@127.0.0.1:1" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


async def test_a_spool_directory_in_use_is_a_clear_error(nats_server: NatsServer, tmp_path: Path) -> None:
    spool = str(tmp_path / "spool")
    async with gateway_process("--nats-url", nats_server.url, "--spool-dir", spool):
        result = await asyncio.to_thread(
            run_cli, "run", "--nats-url", nats_server.url, "--spool-dir", spool, "--connect-timeout-s", "5"
        )
    assert result.returncode == 1, result.stderr
    assert f"log-gateway: cannot start: spool directory {spool} is in use" in result.stderr
    assert "Traceback" not in result.stderr


def children_of(pid: int) -> dict[int, bytes]:
    """Live processes whose parent is ``pid``, with their command lines (from /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes()
    return found


async def test_workers_share_the_load_with_a_spool_each_and_no_password_on_a_command_line(
    tmp_path: Path,
) -> None:
    secret = "w-" + uuid.uuid4().hex
    config = f'authorization {{ user: gw, password: "{secret}" }}\n'
    with NatsServer(store_dir=tmp_path / "nats", config=config) as server:
        url = server.url.replace("nats://", f"nats://gw:{secret}@")
        env = clean_env(LOG_GATEWAY_NATS_URL=url)
        args = ["--workers", "2", "--spool-dir", str(tmp_path / "spool"), "--stream-name", "WORKERS"]
        async with gateway_process(*args, env=env, ready_lines=2) as (proc, _):
            workers = children_of(proc.pid)
            nc = await nats.connect(url)
            await publish_entries(nc, entries(2000))
            proc.send_signal(signal.SIGTERM)  # each worker drains what it was sent, then flushes
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            batches = await stored_batches(nc.jetstream(), "WORKERS")
            await nc.close()
    # in: 2000; stored: each once, by both workers.
    assert sorted(log_ids(batches)) == sorted(e["logId"] for e in entries(2000))
    assert len({b.batch.gatewayId for b in batches}) == 2
    assert len(workers) == 2
    assert all(secret.encode() not in line for line in workers.values())
    assert all(b"gateway.process.cli" in line for line in workers.values())
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == ["w0", "w1"]


async def test_workers_do_not_outlive_a_killed_supervisor(nats_server: NatsServer) -> None:
    args = ["--nats-url", nats_server.url, "--workers", "2", "--stream-name", "ORPHANS"]
    async with gateway_process(*args, ready_lines=2) as (proc, _):
        workers = children_of(proc.pid)
        proc.kill()
        await proc.wait()
        async with asyncio.timeout(20):
            while any(map(_alive, workers)):  # noqa: ASYNC110 - another process: nothing to await
                await asyncio.sleep(0.02)
    assert len(workers) == 2


def test_a_line_for_the_shared_stdout_is_written_in_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[str] = []

    class Recorder(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    monkeypatch.setattr(sys, "stdout", Recorder())
    say("log-gateway: ready gateway_id=w1")
    assert writes == ["log-gateway: ready gateway_id=w1\n"]  # print() would write the newline apart


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def test_the_run_process_tunes_its_garbage_collector() -> None:
    # In a child process: freezing and re-tuning the collector is process-wide.
    check = (
        "import gc\n"
        "from gateway.process.app import _FIRST_GENERATION, _tune_collector\n"
        "before = gc.get_threshold()\n"
        "_tune_collector()\n"
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count()\n"
        "assert gc.get_threshold() == (_FIRST_GENERATION, *before[1:]), gc.get_threshold()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_run_defaults_are_the_config_defaults() -> None:
    values = read_options(argparse.Namespace(), RUN_OPTIONS, environ={})
    assert gateway_config(values | {"gateway_id": "g"}) == GatewayConfig(gateway_id="g")
    assert connection_settings(values) == ConnectionSettings()


DEPLOY_CONFIG = Path(__file__).parent.parent / "deploy" / "gateway" / "log-gateway.toml"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "[batch]\nmax_batch_entrys = 5\n",
            "unknown key 'max_batch_entrys' in [batch]; did you mean 'max_batch_entries'?",
        ),
        ('max_batch_delay_ms = "100"\n', "max_batch_delay_ms: expected an integer, got string '100'"),
        (
            "max_buffered_bytes = 4096\n",
            "max_buffered_bytes (4096) must be at least max_batch_bytes (262144)",
        ),
    ],
    ids=["unknown-key", "wrong-type", "cross-field"],
)
def test_config_check_exits_2_naming_the_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2, result.stderr
    assert f"log-gateway: invalid setting: {path}: {needle}" in result.stderr
    # run refuses the same file for the same reason, before connecting to anything
    refused = run_cli("run", "--config", str(path))
    assert refused.returncode == 2, refused.stderr
    assert needle in refused.stderr


def test_run_help_states_the_precedence() -> None:
    result = run_cli("run", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "--config FILE TOML file of settings" in text
    assert "from its flag, else its LOG_GATEWAY_* variable, else this file, else its default" in text


def test_config_check_accepts_the_deploy_example() -> None:
    result = run_cli("config", "check", str(DEPLOY_CONFIG))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"log-gateway: {DEPLOY_CONFIG} is valid (")


def test_config_show_names_each_source_and_masks_secrets(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[nats]\nnats_url = "nats://gw:in-url@127.0.0.1:4222"\nnats_user = "gw"\n')
    secret = "pw-" + uuid.uuid4().hex
    env = clean_env(LOG_GATEWAY_NATS_PASSWORD=secret, LOG_GATEWAY_MAX_BATCH_ENTRIES="50")
    result = run_cli("config", "show", "--config", str(path), "--max-batch-entries", "20", env=env)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert rows["nats_url"] == ["nats://***@127.0.0.1:4222", "file"]
    assert rows["nats_user"] == ["gw", "file"]
    assert rows["nats_password"] == ["***", "env"]
    assert rows["max_batch_entries"] == ["20", "flag"]
    assert rows["max_batch_delay_ms"] == ["100", "default"]
    assert "in-url" not in result.stdout
    assert secret not in result.stdout


async def test_run_takes_each_setting_from_flag_else_env_else_file_else_default(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[nats]\nnats_url = "{nats_server.url}"\n'
        "[batch]\nmax_batch_entries = 7\nmax_batch_delay_ms = 60000\n"
        '[identity]\ngateway_id = "from-file"\nstream_name = "FROM_FILE"\n'
    )
    env = clean_env(LOG_GATEWAY_MAX_BATCH_ENTRIES="5", LOG_GATEWAY_GATEWAY_ID="from-env")
    batches: asyncio.Queue[LogBatchCreated] = asyncio.Queue()

    async def on_batch(msg: Msg) -> None:
        await batches.put(LogBatchCreated.parse(json.loads(msg.data)["data"]))

    await nc.subscribe(LogBatchCreated.EVENT_TYPE, cb=on_batch)
    args = ["--config", str(path), "--max-batch-entries", "3"]
    async with gateway_process(*args, env=env) as (proc, lines):
        assert "log-gateway: ready gateway_id=from-env" in "".join(lines)  # env over file
        await publish_entries(nc, entries(9))
        # The delay (file) is a minute: only full batches come, of the flag's size, not env's 5 or file's 7.
        got = [await asyncio.wait_for(batches.get(), 20) for _ in range(3)]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert [batch.count for batch in got] == [3, 3, 3]
    stream = await nc.jetstream().stream_info("FROM_FILE")  # file over default
    assert stream.config.duplicate_window == 120.0  # default: set nowhere


def hold_port(port: int) -> socket.socket | None:
    """Listen on ``port`` so it is in use (None: someone else already holds it)."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", port))
    except OSError:
        holder.close()
        return None
    holder.listen()
    return holder


async def test_a_second_run_on_the_same_state_dir_is_refused_naming_the_first(tmp_path: Path) -> None:
    holder = hold_port(4222)  # 4222 in use, whoever holds it: the first run says so and takes another
    try:
        async with gateway_process("--state-dir", str(tmp_path)) as (proc, lines):
            text = "".join(lines)
            assert f"state directory {tmp_path}" in text
            assert "port 4222 is in use; the embedded nats-server takes a free port" in text
            url = re.search(r"embedded nats-server at (nats://\S+)", text).group(1)  # type: ignore[union-attr]
            assert not url.endswith(":4222")
            second = await asyncio.to_thread(run_cli, "run", "--state-dir", str(tmp_path))
            assert second.returncode == 1
            assert (
                f"log-gateway: cannot start: state directory {tmp_path} is in use by another "
                f"log-gateway run (pid {proc.pid})"
            ) in second.stderr
            assert "embedded nats-server at" not in second.stdout
            proc.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if holder is not None:
            holder.close()


async def test_nats_port_sets_the_embedded_servers_port(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with gateway_process("--state-dir", str(tmp_path), "--nats-port", str(port)) as (proc, lines):
        assert f"embedded nats-server at nats://127.0.0.1:{port}" in "".join(lines)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


def test_the_embedded_server_takes_the_standard_port_when_it_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a free port stands in for 4222, which other tests may hold
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(embedded, "STANDARD_PORT", port)
    server = embedded.EmbeddedServer(tmp_path, None)
    try:
        assert server.start().url == f"nats://127.0.0.1:{port}"
        with pytest.raises(embedded.StateDirBusyError, match=f"pid {os.getpid()}"):
            embedded.EmbeddedServer(tmp_path, None).start()
    finally:
        server.stop()
    again = embedded.EmbeddedServer(tmp_path, 0)  # released with the stop: another may take it
    try:
        assert again.start().port != port
    finally:
        again.stop()


LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) log_gateway[.\w]*: "
)


async def test_run_says_what_happens_in_one_plain_format(tmp_path: Path) -> None:
    args = ("--state-dir", str(tmp_path), "--nats-port", "0", "--summary-interval-s", "0.2")
    async with gateway_process(*args) as (proc, lines):
        url = re.search(r"embedded nats-server at (nats://\S+)", "".join(lines)).group(1)  # type: ignore[union-attr]
        client = await nats.connect(url)
        await publish_entries(client, entries(3))
        await client.close()
        async with asyncio.timeout(20):
            while not any("summary:" in line and "published 3," in line for line in lines):
                lines.append((await proc.stdout.readline()).decode())  # type: ignore[union-attr]
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 30)
    lines += rest.decode().splitlines(keepends=True)
    text = "".join(lines)
    assert "\x1b[" not in text  # not a terminal: no colour codes, FastStream's lines included
    summary = next(line for line in lines if "summary:" in line and "published 3," in line)
    assert "entries/s in" in summary
    assert "batches/s out" in summary
    assert "rejected 0, dropped 0; buffered 0, spooled 0" in summary
    assert "shutdown: received 3, published 3, rejected 0, dropped 0, left 0" in text
    logged = [line for line in lines if not line.startswith("log-gateway: ")]
    assert any("FastStream app started" in line for line in logged)
    assert [line for line in logged if not LOG_LINE.match(line)] == []
