"""The MCP server through the SDK's own clients, over stdio and streamable HTTP, on a real nats-server
and a real gateway (in-process, or ``log-gateway run --mcp`` as a process)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import nats
import pytest
from mcp import Client as McpClient
from mcp import ClientSession, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import INVALID_PARAMS
from nats.aio.client import Client

from gateway.control.apply import Reconfigurer
from gateway.control.service import ControlService
from gateway.mcp.backend import Backend
from gateway.mcp.config import McpHttpSettings
from gateway.mcp.http import McpHttp
from gateway.mcp.server import build_server
from gateway.process.natsserver import NatsServer
from gateway.process.settings import gateway_config
from tests.helpers import config, entries, log_ids, publish_entries, running_gateway, stored_batches, until
from tests.test_cli import clean_env, gateway_process, run_cli
from tests.test_control import controlled
from tests.test_deploy import _permissions_config
from tests.test_query import archive_all, gateway_of, in_stream, send
from tests.test_reconfigure import run_values

TOOLS = {"query_logs", "log_message", "configure_gateway", "gateway_status"}


@asynccontextmanager
async def stdio_session(*args: str, **env: str) -> AsyncIterator[ClientSession]:
    """``log-gateway mcp ARGS`` started by the SDK's stdio client, as an agent host would."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "gateway.process.cli", "mcp", *args], env=clean_env(**env)
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    """The SDK's streamable HTTP client on ``url``, sending ``token`` as the bearer token."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        yield session


async def logged(session: ClientSession, **arguments: Any) -> dict[str, Any]:
    return await called(session, "log_message", arguments)


async def pages(session: ClientSession, **arguments: Any) -> list[dict[str, Any]]:
    """Every page of ``query_logs`` with ``arguments``, following nextCursor to the end."""
    got = [await called(session, "query_logs", arguments)]
    while got[-1]["nextCursor"] is not None:
        got.append(await called(session, "query_logs", arguments | {"cursor": got[-1]["nextCursor"]}))
    return got


async def called(session: ClientSession, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


def error_text(result: Any) -> str:
    assert result.is_error
    return " ".join(block.text for block in result.content)


async def test_stdio_log_message_reaches_the_gateway_and_a_bad_level_is_refused(
    nats_server: NatsServer, nc: Client
) -> None:
    cfg = config()
    async with (
        running_gateway(nats_server.url, cfg),
        stdio_session("--nats-url", nats_server.url, "--stream-name", cfg.stream.name) as session,
    ):
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert names == TOOLS
        sent = await logged(session, logger="billing", level="trace", message="hello", traceId="t-1")
        assert sent["level"] == "debug"  # the entry contract has no trace: published as debug
        bad = await session.call_tool("log_message", {"logger": "billing", "level": "loud", "message": "m"})
        assert "level" in error_text(bad)
        assert "'trace', 'debug', 'info', 'warn', 'error' or 'fatal'" in error_text(bad)
        stored = await stored_entry(nc, cfg.stream.name, sent["logId"])
    assert (stored.source, stored.level, stored.message) == ("billing", "debug", "hello")
    assert stored.model_extra == {"traceId": "t-1"}


async def test_stdio_query_logs_pages_to_the_end_and_refuses_a_bad_cursor_and_limit(
    nats_server: NatsServer, nc: Client
) -> None:
    cfg = config()
    source = "svc-" + uuid.uuid4().hex[:8]
    sent = entries(230, source=source, level="error") + entries(20, start=230, source=source, level="info")
    async with running_gateway(nats_server.url, cfg) as (_, gateway_nc):
        await publish_entries(gateway_nc, sent)
        stored: list[str] = []

        async def all_stored() -> None:
            stored[:] = log_ids(await stored_batches(nc.jetstream(), cfg.stream.name))

        await until_async(all_stored, lambda: len(stored) == len(sent))
        async with stdio_session("--nats-url", nats_server.url, "--stream-name", cfg.stream.name) as session:
            got = await pages(session, source=source, level="error", limit=100)
            assert [len(page["entries"]) for page in got] == [100, 100, 30]
            assert [e["logId"] for page in got for e in page["entries"]] == [e["logId"] for e in sent[:230]]
            with pytest.raises(MCPError) as refused:  # the cursor of another query: invalid params
                await session.call_tool("query_logs", {"source": source, "cursor": got[0]["nextCursor"]})
            assert refused.value.code == INVALID_PARAMS
            assert "same filters" in refused.value.message
            too_many = await session.call_tool("query_logs", {"limit": 5000})
            assert "limit" in error_text(too_many)
            assert "less than or equal to 1000" in error_text(too_many)
            bad_time = await session.call_tool("query_logs", {"timeRange": {"start": "yesterday"}})
            assert "RFC 3339" in error_text(bad_time)


async def test_stdio_gateway_status_and_configure_gateway_through_the_control_service(
    nats_server: NatsServer,
) -> None:
    values = run_values()
    args = ("--nats-url", nats_server.url, "--stream-name", values["stream_name"])
    async with controlled(nats_server.url, values) as (gateway, _), stdio_session(*args) as session:
        [status] = (await called(session, "gateway_status", {"includeConfig": True}))["gateways"]
        dry = await called(
            session, "configure_gateway", {"changes": {"max_batch_delay_ms": 7}, "dryRun": True}
        )
        assert gateway.config.batch.max_delay_ms == 100  # (a dry run applies nothing)
        done = await called(session, "configure_gateway", {"changes": {"max_batch_delay_ms": 7}})
        refused = await session.call_tool(
            "configure_gateway", {"changes": {"spool_dir": "x", "max_in_flight": 2}}
        )
        invalid = await session.call_tool("configure_gateway", {"changes": {"max_batch_entries": 0}})
        nobody = await session.call_tool("gateway_status", {"gateway": "gw-nobody"})
        empty = await session.call_tool("configure_gateway", {"changes": {}})
    assert status["gatewayId"] == values["gateway_id"]
    assert status["connection"]["connected"] is True
    assert status["config"]["settings"]["max_batch_delay_ms"] == 100
    assert "max_batch_delay_ms" in status["config"]["live"]
    assert [(r["dryRun"], r["applied"]) for r in dry["gateways"] + done["gateways"]] == [
        (True, False),
        (False, True),
    ]
    assert gateway.config.batch.max_delay_ms == 7
    assert "spool_dir cannot change" in error_text(refused)
    assert gateway.config.throttle.max_in_flight != 2  # refused as a whole
    assert "max_batch_entries" in error_text(invalid)
    assert "no gateway answers" in error_text(nobody)
    assert "changes" in error_text(empty)


async def test_stdio_query_logs_reads_the_archive_given_and_keeps_to_the_time_range(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    async with gateway_of(nats_server.url) as (gateway, stream):
        await send(nc, gateway, entries(150))
        await archive_all(nc, stream, tmp_path, 150)
    await nc.jetstream().purge_stream(stream)  # the stream forgot them: only the archive has them
    assert await in_stream(nc, stream) == []
    args = ("--nats-url", nats_server.url, "--stream-name", stream)
    window = {"timeRange": {"start": "2025-10-13T08:00:10.000Z", "end": "2025-10-13T08:00:19.999Z"}}
    async with stdio_session(*args, "--archive-dir", str(tmp_path)) as session:
        archived = await pages(session, limit=1000)
        in_window = await pages(session, **window)
        warn_up = await pages(session, minLevel="warn", limit=40)
    assert [e["logId"] for e in archived[0]["entries"]] == [e["logId"] for e in entries(150)]
    assert [e["logId"] for e in in_window[0]["entries"]] == [f"log-{n:08d}" for n in range(10, 20)]
    assert {e["level"] for page in warn_up for e in page["entries"]} == {"warn", "error", "fatal"}
    assert sum(len(page["entries"]) for page in warn_up) == 90


async def until_async(refresh: Any, predicate: Any, timeout_s: float = 30) -> None:
    """Call ``refresh()`` until ``predicate()`` holds."""
    async with asyncio.timeout(timeout_s):
        while True:
            await refresh()
            if predicate():
                return
            await asyncio.sleep(0.05)


async def test_http_at_mcp_in_a_running_gateway_enforces_its_bearer_token(
    nats_server: NatsServer, nc: Client
) -> None:
    stream = "T" + uuid.uuid4().hex[:12].upper()
    token = uuid.uuid4().hex
    source = "agent-" + uuid.uuid4().hex[:8]
    args = ("--nats-url", nats_server.url, "--stream-name", stream, "--queue-group", stream, "--mcp")
    env = clean_env(LOG_GATEWAY_MCP_TOKEN=token)  # (a secret: in the environment, not on a command line)
    async with gateway_process(*args, "--mcp-port", "0", "--log-level", "warning", env=env) as (_, lines):
        found = re.search(r" mcp=(http://\S+/mcp)", "".join(lines))
        assert found is not None, lines
        url = found.group(1)
        await refused_without_the_token(url, token)
        async with http_session(url, token) as session:
            assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
            sent = [
                await logged(
                    session, logger=source, level="error", message=f"tool failed {i}", metadata={"i": i}
                )
                for i in range(3)
            ]
            stored = await stored_entry(nc, stream, sent[-1]["logId"])
            got = await pages(session, source=source, limit=2)
            [status] = (await called(session, "gateway_status", {}))["gateways"]
            change = {"changes": {"max_batch_entries": 50}, "gateway": status["gatewayId"]}
            [applied] = (await called(session, "configure_gateway", change))["gateways"]
    assert (stored.source, stored.level, stored.metadata) == (source, "error", {"i": 2})
    assert [len(page["entries"]) for page in got] == [2, 1]
    assert [e["logId"] for page in got for e in page["entries"]] == [s["logId"] for s in sent]
    assert status["counts"]["published"] >= 3  # (this gateway's own control service answered)
    assert applied["applied"] is True


async def refused_without_the_token(url: str, token: str) -> None:
    async with httpx2.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            refused = await http.post(url, json={}, headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "bearer token" in refused.json()["detail"]
    with pytest.raises(BaseExceptionGroup) as failed:  # the SDK's own client, with a wrong token
        async with http_session(url, "wrong"):
            pass
    # (the SDK reports an HTTP error status as this one JSON-RPC error; the 401 itself is checked above)
    assert [type(exc) for exc in leaves(failed.value)] == [MCPError], leaves(failed.value)


def leaves(group: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(group, BaseExceptionGroup):
        return [leaf for exc in group.exceptions for leaf in leaves(exc)]
    return [group]


async def stored_entry(nc: Client, stream: str, log_id: str) -> Any:
    """The entry ``log_id`` once the gateway has stored it in ``stream``."""
    found: list[Any] = []

    async def look() -> None:
        batches = await stored_batches(nc.jetstream(), stream)
        found[:] = [entry for b in batches for entry in b.batch.entries if entry.logId == log_id]

    await until_async(look, lambda: bool(found))
    return found[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--mcp", "--mcp-host", "0.0.0.0"], "--mcp-token is required to serve MCP on 0.0.0.0"),  # noqa: S104
        (["run", "--mcp", "--workers", "2"], "--mcp serves from one gateway process"),
        (["run", "--mcp", "--mcp-port", "70000"], "--mcp-port must be 0..65535"),
        (["mcp"], "--nats-url / LOG_GATEWAY_NATS_URL is required"),
    ],
)
def test_a_bad_mcp_setting_exits_2_naming_it(args: list[str], needle: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr


async def test_the_stdio_server_exits_0_when_the_host_closes_stdin(nats_server: NatsServer) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "gateway.process.cli", "mcp", "--nats-url", nats_server.url),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=clean_env(),
    )
    assert proc.stdin is not None
    proc.stdin.close()
    async with asyncio.timeout(30):
        assert await proc.wait() == 0
    assert proc.stdout is not None
    assert await proc.stdout.read() == b""  # stdout is the MCP channel: nothing else is written there


def test_without_the_mcp_extra_the_commands_exit_2_naming_it() -> None:
    hide = "import sys; sys.modules['mcp.server'] = None; from gateway.process.cli import main; "
    for args in (
        ["mcp", "--nats-url", "nats://127.0.0.1:1"],
        ["run", "--mcp", "--nats-url", "nats://127.0.0.1:1"],
    ):
        done = subprocess.run(
            [sys.executable, "-c", hide + f"sys.exit(main({args!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=clean_env(),
        )
        assert done.returncode == 2, done.stderr
        assert "pip install 'cortex-log-gateway[mcp]'" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_run_without_mcp_does_not_load_the_sdk() -> None:
    """(FastStream itself imports uvicorn whenever it is installed; the MCP SDK is ours to keep lazy.)"""
    code = "import sys, gateway.process.app, gateway.process.settings; print('mcp' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"


async def test_stdio_as_the_shipped_log_operator_user_every_tool_works(tmp_path: Path) -> None:
    """``deploy/nats/permissions.conf``: the operator user may query, log and steer, nothing else."""
    values = run_values(stream_name="CORTEX_LOGGING")
    source = "ops-" + uuid.uuid4().hex[:8]
    with NatsServer(store_dir=tmp_path, config=_permissions_config()) as server:
        host = server.url.removeprefix("nats://")
        gw_url = f"nats://log-gateway:gw-pass@{host}"
        cfg = gateway_config(values)
        async with running_gateway(gw_url, cfg, inbox_prefix="_INBOX_log_gateway") as (gateway, gw_nc):
            service = ControlService(gw_nc, gateway, Reconfigurer(gateway, values, gw_nc), version="0.1.0")
            await service.start()
            operator = {"LOG_GATEWAY_NATS_URL": f"nats://log-operator:op-pass@{host}"}
            try:
                async with stdio_session(**operator) as session:
                    sent = await logged(session, logger=source, level="warn", message="from an agent")
                    await until(lambda: gateway.stats.published >= 1)
                    found = await pages(session, source=source)
                    [status] = (await called(session, "gateway_status", {}))["gateways"]
                    dry = {"changes": {"max_batch_entries": 9}, "dryRun": True}
                    [checked] = (await called(session, "configure_gateway", dry))["gateways"]
            finally:
                await service.stop()
    assert [e["logId"] for e in found[0]["entries"]] == [sent["logId"]]
    assert status["gatewayId"] == values["gateway_id"]
    assert checked["dryRun"] is True


async def test_an_entry_the_server_refuses_is_a_tool_error_not_a_silent_loss(tmp_path: Path) -> None:
    deny = 'publish: { deny: ["cortex_logging.entry.created"] }'
    denied = f"authorization {{ users = [{{ user: agent, password: pw, permissions: {{ {deny} }} }}] }}"
    with NatsServer(store_dir=tmp_path, config=denied) as server:
        nc = await nats.connect(server.url.replace("nats://", "nats://agent:pw@"))
        try:
            async with McpClient(build_server(Backend(nc=nc, stream="CORTEX_LOGGING"))) as client:
                refused = await client.call_tool(
                    "log_message", {"logger": "a", "level": "info", "message": "m"}
                )
        finally:
            await nc.close()
    said = 'refused the entry: nats: permissions violation for publish to "cortex_logging.entry.created"'
    assert said in error_text(refused)


async def test_an_http_listener_that_ends_by_itself_is_reported(nc: Client) -> None:
    died: list[str] = []
    listener = McpHttp(build_server(Backend(nc=nc, stream="S")), McpHttpSettings(port=0))
    await listener.start(lambda task, _exc: died.append(task.get_name()))
    try:
        async with http_session(listener.url, None) as session:
            assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        listener._uvicorn.should_exit = True  # uvicorn stops serving, as it would after a fatal error
        await until(lambda: died == ["mcp-http"], timeout_s=10)
    finally:
        await listener.stop()


def test_config_show_masks_the_mcp_token() -> None:
    token = uuid.uuid4().hex
    shown = run_cli("config", "show", "--mcp", env=clean_env(LOG_GATEWAY_MCP_TOKEN=token))
    assert shown.returncode == 0, shown.stderr
    assert token not in shown.stdout
    assert re.search(r"^mcp_token\s+\*\*\*\s+env$", shown.stdout, re.MULTILINE), shown.stdout
    assert re.search(r"^mcp\s+true\s+flag$", shown.stdout, re.MULTILINE), shown.stdout
