"""``log-gateway bench --pino``: the pino transport (``publishers/pino``), measured by its own
node script against a real nats-server and a real ``log-gateway run``.

The script (``publishers/pino/bench/bench.js``) runs each contender in a fresh node process,
round after round: the caller's cost per ``logger.info`` with the transport, with pino writing
to a file (``pino.destination``), and with each entry published on the main thread by the NATS
client; then the end-to-end entries/s from pino into batches the gateway stored. This module
starts the server and the gateway, runs the script and formats its ratios.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import publishers
from contracts.errors import GatewayError
from gateway.bench.runners import GatewayProcess
from gateway.process.natsserver import NatsServer

__all__ = ["PinoBenchError", "format_pino_results", "pino_bench_problem", "run_pino_bench"]

PINO_DIR = Path(publishers.__file__).parent / "pino"
_SCRIPT = PINO_DIR / "bench" / "bench.js"


class PinoBenchError(GatewayError, RuntimeError):
    """The node script failed (its exit status and the end of its output)."""


def pino_bench_problem() -> str | None:
    """Why ``bench --pino`` cannot run here (no node, no checkout, no npm packages), or None."""
    if shutil.which("node") is None:
        return "bench --pino needs node (Node 20+) on PATH"
    if not _SCRIPT.is_file():
        return f"bench --pino needs the repository's publishers/pino (not found at {PINO_DIR})"
    if not (PINO_DIR / "node_modules").is_dir():
        return f"bench --pino needs the transport's npm packages: run npm ci in {PINO_DIR}"
    return None


async def _measure(url: str, count: int, rounds: int) -> dict[str, Any]:
    async with GatewayProcess(url):
        proc = await asyncio.create_subprocess_exec(
            "node", str(_SCRIPT), "--nats-url", url, "--count", str(count), "--rounds", str(rounds),
            cwd=PINO_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
    if proc.returncode != 0:
        raise PinoBenchError(f"the pino benchmark exited {proc.returncode}: {err.decode()[-2000:]}")
    results: dict[str, Any] = json.loads(out)
    return results


def run_pino_bench(count: int, rounds: int) -> dict[str, Any]:
    """Measure on a nats-server of its own with a gateway beside it; the script's results."""
    with NatsServer(config="max_pending: 1GB") as server:
        return asyncio.run(_measure(server.url, count, rounds))


def _spread(value: dict[str, float], digits: int = 1) -> str:
    return f"{value['median']:.{digits}f} ({value['min']:.{digits}f}-{value['max']:.{digits}f})"


def format_pino_results(results: dict[str, Any]) -> str:
    """The results as a markdown table of the caller's cost, the ratios and the end-to-end rate."""
    calls = results["call_us"]
    lines = [
        f"pino transport, {results['count']:,} calls per contender, {results['rounds']} rounds, "
        f"node {results['node']}; median (min-max):",
        "",
        "| contender | caller's cost per logger.info (µs) |",
        "|---|---|",
        f"| this transport (pino's worker thread) | {_spread(calls['transport'])} |",
        f"| pino.destination to a file | {_spread(calls['destination_file'])} |",
        f"| each entry published on the main thread | {_spread(calls['main_thread_nats'])} |",
        "",
        f"transport / pino.destination: {_spread(results['ratio_transport_to_destination_file'], 2)}; "
        f"main thread / transport: {_spread(results['ratio_main_thread_nats_to_transport'], 2)}",
        f"end to end, pino into stored batches: {_spread(results['end_to_end_entries_per_s'], 0)} entries/s",
    ]
    return "\n".join(lines)
