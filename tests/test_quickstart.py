"""The README's quick start, run as a newcomer pastes it: the gateway, tail, send and nats-py.

The blocks run word for word from the checkout; only the URL is swapped for the one the
gateway prints when port 4222 is taken (by another test's server, say), as the README says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts import LogStreamStarted

ROOT = Path(__file__).parent.parent
STANDARD_URL = "nats://127.0.0.1:4222"


def quick_start_blocks() -> list[str]:
    """The ``sh`` blocks of the README's "Quick start" section, in order."""
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


@contextlib.asynccontextmanager
async def shell(block: str, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """``block`` run by bash from the checkout, its output piped; interrupted (then killed) on exit."""
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", block, cwd=ROOT, env=env, start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


async def read_until(proc: asyncio.subprocess.Process, pattern: str, seen: list[str]) -> re.Match[str]:
    """Read ``proc``'s lines into ``seen`` until one matches ``pattern``."""
    assert proc.stdout is not None
    async with asyncio.timeout(120):  # the first run installs the package
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                pytest.fail("exited early:\n" + "".join(seen))
            seen.append(line)
            if match := re.search(pattern, line):
                return match


async def watch_announcements(nc: Client) -> asyncio.Queue[str]:
    """Stream announcements by ``tail`` (destination console), from now on."""
    got: asyncio.Queue[str] = asyncio.Queue()

    async def on_msg(msg: Msg) -> None:
        if json.loads(msg.data)["data"].get("destination") == "console":
            await got.put(msg.subject)

    await nc.subscribe(LogStreamStarted.EVENT_TYPE, cb=on_msg)
    await nc.flush()
    return got


async def test_the_quick_start_works_word_for_word(tmp_path: Path) -> None:
    run, watch, publish, read = quick_start_blocks()
    assert run.strip() == "bash scripts/run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOG_GATEWAY_")}
    env["XDG_STATE_HOME"] = str(tmp_path)  # the embedded server's state: not the user's own
    gateway_out: list[str] = []
    async with shell(run, env) as gateway:
        url = (await read_until(gateway, r"embedded nats-server at (nats://\S+)", gateway_out)).group(1)
        await read_until(gateway, "log-gateway: ready", gateway_out)
        watch, publish, read = (block.replace(STANDARD_URL, url) for block in (watch, publish, read))
        tail_out: list[str] = []
        nc = await nats.connect(url)
        announced = await watch_announcements(nc)
        async with shell(watch, env) as tail:
            await asyncio.wait_for(announced.get(), 60)  # tail is subscribed once it announces itself
            sender = await asyncio.create_subprocess_exec(
                "bash", "-c", publish, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await asyncio.wait_for(sender.communicate(), 60)
            assert sender.returncode == 0, out.decode()
            assert "sent 1 structured entry" in out.decode()
            await read_until(tail, "my first entry", tail_out)
            await read_until(tail, "hello from nats-py", tail_out)
        await nc.close()
        reader = await asyncio.create_subprocess_exec(
            "bash", "-c", read, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
        )
        read_out, _ = await asyncio.wait_for(reader.communicate(), 60)
        assert reader.returncode == 0, read_out.decode()
        assert sorted(read_out.decode().splitlines()) == [
            "info log-gateway-send my first entry",
            "info quickstart hello from nats-py",
        ]
    assert any(" INFO  log-gateway-send: my first entry" in line for line in tail_out)
