"""The MCP server through the SDK's own clients, over stdio and streamable HTTP, on a real nats-server
and a real gateway (in-process, or ``log-gateway run --mcp`` as a process)."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from nats.aio.client import Client

from gateway.process.natsserver import NatsServer
from tests.helpers import config, running_gateway, stored_batches
from tests.test_cli import clean_env, gateway_process, run_cli

TOOLS = {"query_logs", "log_message", "configure_gateway", "gateway_status"}


@asynccontextmanager
async def stdio_session(*args: str) -> AsyncIterator[ClientSession]:
    """``log-gateway mcp ARGS`` started by the SDK's stdio client, as an agent host would."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "gateway.process.cli", "mcp", *args], env=clean_env()
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
    result = await session.call_tool("log_message", arguments)
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
        assert {"log_message"} <= names <= TOOLS
        sent = await logged(session, logger="billing", level="trace", message="hello", traceId="t-1")
        assert sent["level"] == "debug"  # the entry contract has no trace: published as debug
        bad = await session.call_tool("log_message", {"logger": "billing", "level": "loud", "message": "m"})
        assert "level" in error_text(bad)
        assert "'trace', 'debug', 'info', 'warn', 'error' or 'fatal'" in error_text(bad)
        stored = await stored_entry(nc, cfg.stream.name, sent["logId"])
    assert (stored.source, stored.level, stored.message) == ("billing", "debug", "hello")
    assert stored.model_extra == {"traceId": "t-1"}


async def test_http_at_mcp_in_a_running_gateway_enforces_its_bearer_token(
    nats_server: NatsServer, nc: Client
) -> None:
    stream = "T" + uuid.uuid4().hex[:12].upper()
    token = uuid.uuid4().hex
    args = ("--nats-url", nats_server.url, "--stream-name", stream, "--queue-group", stream)
    env = clean_env(LOG_GATEWAY_MCP_TOKEN=token)  # (a secret: in the environment, not on a command line)
    async with gateway_process(*args, "--mcp", "--mcp-port", "0", "--log-level", "warning", env=env) as (
        _,
        lines,
    ):
        url = re.search(r" mcp=(http://\S+/mcp)", "".join(lines))
        assert url is not None, lines
        async with httpx2.AsyncClient() as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
                refused = await http.post(url.group(1), json={}, headers=headers)
                assert refused.status_code == 401, refused.text
                assert "bearer token" in refused.json()["detail"]
        async with http_session(url.group(1), token) as session:
            assert {"log_message"} <= {tool.name for tool in (await session.list_tools()).tools}
            sent = await logged(
                session, logger="agents", level="error", message="tool failed", metadata={"k": 1}
            )
            stored = await stored_entry(nc, stream, sent["logId"])
    assert (stored.source, stored.level, stored.metadata) == ("agents", "error", {"k": 1})


async def stored_entry(nc: Client, stream: str, log_id: str) -> Any:
    """The entry ``log_id`` once the gateway has stored it in ``stream``."""
    async with asyncio.timeout(30):
        while True:
            found = [
                entry
                for stored in await stored_batches(nc.jetstream(), stream)
                for entry in stored.batch.entries
                if entry.logId == log_id
            ]
            if found:
                return found[0]
            await asyncio.sleep(0.05)  # (a batch is stored within max_batch_delay_ms: ask again)


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
