"""Run every measurement in rounds, side by side, and write JSON, Markdown and a PNG."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import platform
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import nats

from gateway.bench.memory import measure_memory
from gateway.bench.overload import measure_goodput
from gateway.bench.payloads import FORMS, messages
from gateway.bench.report import write_headline, write_markdown, write_plot
from gateway.bench.runners import (
    measure_call_cost,
    measure_gateway,
    measure_latency,
    measure_otel,
    naive_rate,
    raw_limit,
)
from gateway.config import DurableIngest
from gateway.process.natsserver import NatsServer

__all__ = ["BenchConfig", "run_bench"]

_T = TypeVar("_T")

# The producer floods: nats-server holds what a consumer has not read yet, up to
# max_pending per connection (64 MB by default) before it cuts the consumer off.
_SERVER_CONFIG = "max_pending: 1GB"


@dataclass(frozen=True, kw_only=True, slots=True)
class BenchConfig:
    """How much to measure."""

    entries: int = 100_000
    rounds: int = 3
    latency_s: float = 5.0
    batch_sizes: tuple[int, ...] = (10, 50, 100, 500)
    workers: tuple[int, ...] = (1, 2)
    overload_s: float = 60.0
    sustained_s: float = 60.0
    sustained_shares: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6, 0.5)
    out_dir: Path = Path("bench-results")

    @property
    def memory_entries(self) -> int:
        """Entries the memory row holds: ten times ``entries`` (1,000,000 in the full run)."""
        return 10 * self.entries

    @classmethod
    def quick(cls, out_dir: Path) -> BenchConfig:
        """A smoke run: checks that everything works, not how fast."""
        return cls(
            entries=3000,
            rounds=1,
            latency_s=1.0,
            batch_sizes=(50, 500),
            workers=(1, 2),
            overload_s=4.0,
            sustained_s=1.0,
            sustained_shares=(0.5,),
            out_dir=out_dir,
        )


@dataclass
class _Progress:
    total: int
    done: int = 0
    started: float = field(default_factory=time.perf_counter)

    def say(self, what: str, value: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        print(
            f"[{self.done:>3}/{self.total}] {elapsed:6.1f}s  {what:<42} {value}", file=sys.stderr, flush=True
        )


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def _rounds(
    config: BenchConfig, progress: _Progress, name: str, measure: Callable[[], Coroutine[Any, Any, float]]
) -> list[float]:
    out = []
    for index in range(config.rounds):
        value = await measure()
        out.append(value)
        progress.say(f"{name} (round {index + 1})", f"{value:>10,.0f} entries/s")
    return out


async def _throughput(
    url: str, config: BenchConfig, progress: _Progress, server_pid: int | None
) -> dict[str, Any]:
    """Per wire form, rounds of the limit and the gateway back to back, so each ratio compares neighbours."""
    results: dict[str, Any] = {}
    for form in FORMS:
        msgs = messages(config.entries, form)
        limit: list[dict[str, float]] = []
        gateway: list[dict[str, float]] = []
        for index in range(config.rounds):
            limit.append(await _fresh(raw_limit, url, msgs))
            gateway.append(await measure_gateway(url, msgs, server_pid=server_pid))
            progress.say(f"{form} (round {index + 1}): limit, gateway", _pair(limit[-1], gateway[-1]))
        results[form] = _compared(limit, gateway)
    return results


def _pair(limit: dict[str, float], gateway: dict[str, float]) -> str:
    ratio = gateway["entries_per_s"] / limit["per_s"]
    return f"{limit['per_s']:>9,.0f} /s, {gateway['entries_per_s']:>9,.0f} /s: {ratio:.2f}"


def _compared(limit: list[dict[str, float]], gateway: list[dict[str, float]]) -> dict[str, Any]:
    pairs = list(zip(limit, gateway, strict=True))
    return {
        "limit": _spread([lim["per_s"] for lim in limit]),
        "gateway": _spread([gw["entries_per_s"] for gw in gateway]),
        "ratio_gateway_to_limit": _spread([gw["entries_per_s"] / lim["per_s"] for lim, gw in pairs]),
        "limit_cpu_us": _spread([lim["cpu_us"] for lim in limit]),
        "gateway_cpu_us": _spread([gw["gateway_cpu_us"] for gw in gateway]),
        "gateway_cores": _spread([gw["gateway_cores"] for gw in gateway]),
        "server_cores": _spread([gw["server_cores"] for gw in gateway]),
    }


async def _baselines(
    url: str, config: BenchConfig, progress: _Progress, gateway: list[float]
) -> dict[str, Any]:
    msgs = messages(config.entries, "structured")
    naive = await _rounds(
        config, progress, "naive: await each JetStream publish", partial(_fresh, naive_rate, url, msgs, False)
    )
    pipelined = await _rounds(
        config,
        progress,
        "naive, pipelined (publish_async)",
        partial(_fresh, naive_rate, url, msgs, True),
    )
    otel_rates = await _rounds(
        config,
        progress,
        "OpenTelemetry SDK (BatchLogRecordProcessor)",
        partial(_fresh, measure_otel, config.entries),
    )
    return {
        "naive": _spread(naive),
        "naive_pipelined": _spread(pipelined),
        "otel": _spread(otel_rates),
        "ratio_gateway_to_naive": _spread([g / n for g, n in zip(gateway, naive, strict=True)]),
        "ratio_gateway_to_naive_pipelined": _spread([g / n for g, n in zip(gateway, pipelined, strict=True)]),
        "ratio_gateway_to_otel": _spread([g / o for g, o in zip(gateway, otel_rates, strict=True)]),
    }


async def _fresh(fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` in a new interpreter: each contender measured on a clean heap of its own,
    not beside the benchmark's (which holds every message of a run, and the collector walks them)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


async def _overload(
    url: str, config: BenchConfig, progress: _Progress, peak: float, factor: float
) -> dict[str, Any]:
    """Goodput while ``factor`` times the peak is offered for ``overload_s``, against the peak (a
    collapse shows as a ratio far below 1)."""
    result = await measure_goodput(url, factor * peak, config.overload_s)
    ratio = result.ratio_to(peak)
    progress.say(
        f"goodput at {factor:g}x the peak ({factor * peak:,.0f}/s offered)",
        f"{result.median_per_s:>10,.0f} entries/s, {ratio:.2f} of peak",
    )
    return {**asdict(result), "peak_per_s": peak, "factor": factor, "ratio_to_peak": ratio}


# Sustained means p99 from send to stored within the batch delay plus this, for the whole run.
_SUSTAINED_SLACK_MS = 50.0
_DELAY_MS = 100.0  # log-gateway run's default --max-batch-delay-ms, which these runs use


async def _sustained(url: str, config: BenchConfig, progress: _Progress, peak: float) -> dict[str, Any]:
    """The highest of ``sustained_shares`` of the burst peak held for ``sustained_s`` with p99
    (send to stored in JetStream) within the batch delay + 50 ms: the highest share first (if
    it holds, that is the answer), then a binary search of the rest, taking a lower share to
    hold whenever a higher one does (at most 1 + log2 of the shares runs)."""
    shares = sorted(config.sustained_shares, reverse=True)
    tried: list[dict[str, Any]] = []
    held: dict[str, Any] | None = None
    lo, hi = 0, len(shares) - 1
    while lo <= hi:
        index = lo if not tried else (lo + hi) // 2
        row = await _sustained_try(url, config, progress, peak, shares[index])
        tried.append(row)
        if row["held"]:
            held, hi = row, index - 1
        else:
            lo = index + 1
    return {
        "seconds": config.sustained_s,
        "p99_bound_ms": _DELAY_MS + _SUSTAINED_SLACK_MS,
        "tried": tried,
        "held": held,
        "peak_per_s": peak,
    }


async def _sustained_try(
    url: str, config: BenchConfig, progress: _Progress, peak: float, share: float
) -> dict[str, Any]:
    result = await measure_latency(url, share * peak, config.sustained_s)
    ok = result.p99_ms <= _DELAY_MS + _SUSTAINED_SLACK_MS
    progress.say(
        f"sustained {share:.0%} of peak for {config.sustained_s:g} s",
        f"p99 {result.p99_ms:.1f} ms (worst second {result.worst_second_p99_ms:.0f})",
    )
    return {"share": share, **asdict(result), "held": ok}


def _sustained_runs(shares: int) -> int:
    """The most runs :func:`_sustained` makes over ``shares`` shares."""
    return 1 + (shares - 1).bit_length() if shares > 1 else shares


async def _sweep(url: str, config: BenchConfig, progress: _Progress, peak: float) -> list[dict[str, Any]]:
    """Throughput and latency at half load against the batch size."""
    rows = []
    msgs = messages(config.entries, "mix")
    for size in config.batch_sizes:
        args = ("--max-batch-entries", str(size))
        traffic = await measure_gateway(url, msgs, *args)
        progress.say(f"batch size {size}: peak", f"{traffic['entries_per_s']:>10,.0f} entries/s")
        latency = await measure_latency(url, peak / 2, config.latency_s, *args)
        progress.say(f"batch size {size}: p99 at {peak / 2:,.0f}/s", f"{latency.p99_ms:>10.1f} ms")
        rows.append({"batch_size": size, **traffic, "latency": asdict(latency)})
    return rows


async def _variants(
    url: str, config: BenchConfig, progress: _Progress, server_pid: int | None
) -> dict[str, Any]:
    """The gateway run other ways (``--workers N``, durable ingest) on the mix, in rounds, each
    round trying every way back to back; speedup is against the first way in the same round."""
    msgs = messages(config.entries, "mix")
    ways = {f"{n} process{'es' if n > 1 else ''}": ("--workers", str(n)) for n in config.workers}
    ways["1 process, durable ingest"] = ("--ingest", "jetstream")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in ways}
    for index in range(config.rounds):
        for name, args in ways.items():
            result = await measure_gateway(url, msgs, *args, server_pid=server_pid)
            if "--ingest" in args:  # so it neither stores what later runs publish nor leaves a backlog
                await _delete_ingest_stream(url)
            runs[name].append(result)
            progress.say(
                f"{name}, mix (round {index + 1})",
                f"{result['entries_per_s']:>10,.0f} entries/s, {result['gateway_cores']:.2f} cores",
            )
    first = next(iter(runs.values()))
    return {
        name: {
            "args": list(ways[name]),
            "entries_per_s": _spread([r["entries_per_s"] for r in results]),
            "gateway_cpu_us": _spread([r["gateway_cpu_us"] for r in results]),
            "gateway_cores": _spread([r["gateway_cores"] for r in results]),
            "server_cores": _spread([r["server_cores"] for r in results]),
            "speedup": _spread(
                [r["entries_per_s"] / base["entries_per_s"] for r, base in zip(results, first, strict=True)]
            ),
        }
        for name, results in runs.items()
    }


async def _delete_ingest_stream(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(DurableIngest().stream)
    finally:
        await nc.close()


async def _all(config: BenchConfig) -> dict[str, Any]:
    steps = (
        len(FORMS) * config.rounds
        + 3 * config.rounds
        + 2 * len(config.batch_sizes)
        + (len(config.workers) + 1) * config.rounds
        + 4
        + _sustained_runs(len(config.sustained_shares))
        + 1
    )
    progress = _Progress(steps)
    with NatsServer(config=_SERVER_CONFIG) as server:
        throughput = await _throughput(server.url, config, progress, server.pid)
        mix_gateway = [throughput["mix"]["gateway"]["median"]] * config.rounds
        baselines = await _baselines(server.url, config, progress, mix_gateway)
        peak = throughput["mix"]["gateway"]["median"]
        latency = await measure_latency(server.url, peak / 2, config.latency_s)
        progress.say(f"gateway latency at half load ({peak / 2:,.0f}/s)", f"p99 {latency.p99_ms:.1f} ms")
        overload = await _overload(server.url, config, progress, peak, 2)
        overload_10x = await _overload(server.url, config, progress, peak, 10)
        sustained = await _sustained(server.url, config, progress, peak)
        sweep = await _sweep(server.url, config, progress, peak)
        variants = await _variants(server.url, config, progress, server.pid)
        calls = await _fresh(measure_call_cost, server.url, min(config.entries, 20_000))
        progress.say("per-call cost of logger.info", ", ".join(f"{k} {v:.1f} us" for k, v in calls.items()))
        memory = await _memory(server.url, config, progress)
    return {
        "config": {**asdict(config), "out_dir": str(config.out_dir)},
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": _cpus()},
        "throughput": throughput,
        "baselines": baselines,
        "latency_at_half_load": asdict(latency),
        "overload": overload,
        "overload_10x": overload_10x,
        "sustained": sustained,
        "batch_size_sweep": sweep,
        "variants": variants,
        "call_cost_us": calls,
        "memory": memory,
    }


async def _memory(url: str, config: BenchConfig, progress: _Progress) -> dict[str, float]:
    """RSS of a throttled gateway holding ``memory_entries`` mix entries, against their wire bytes."""
    result = await measure_memory(url, messages(config.memory_entries, "mix"))
    progress.say(
        f"memory holding {result.entries:,} entries",
        f"{result.ratio:.2f}x their wire bytes, {result.added_bytes / result.entries:,.0f} B per entry",
    )
    return result.as_dict()


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Measure everything; write ``results.json``, ``results.md``, ``batch_size.png`` and ``headline.png``."""
    results = asyncio.run(_all(config))
    config.out_dir.mkdir(parents=True, exist_ok=True)
    (config.out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, config.out_dir / "results.md")
    write_plot(results, config.out_dir / "batch_size.png")
    write_headline(results, config.out_dir / "headline.png")
    return results
