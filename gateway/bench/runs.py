"""The aims of issue 17 over several full ``log-gateway bench`` runs: each run's figure and their median.

One run already alternates three rounds per row; machines drift between runs, so the
figures an aim is judged on are the medians over runs of each run's median (the
handler's caller cost is one measurement per run, so for it the runs are the rounds).

Usage: ``python -m gateway.bench.runs RESULTS.json [RESULTS.json ...]`` prints a
Markdown table.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AIMS", "Aim", "aims_table", "main"]


@dataclass(frozen=True, slots=True)
class Aim:
    """One row: how to read its figure from a run's results, and the aim it is held to."""

    name: str
    read: Callable[[dict[str, Any]], float]
    bound: float
    at_least: bool = True  # False: the figure must stay at or below ``bound``
    fmt: str = ".3f"  # three places, so that a median just under its aim does not print as it

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the aim."""
        return value >= self.bound if self.at_least else value <= self.bound


def _ratio(form: str) -> Callable[[dict[str, Any]], float]:
    return lambda r: float(r["throughput"][form]["ratio_gateway_to_limit"]["median"])


def _durable(r: dict[str, Any]) -> float:
    return float(r["variants"]["1 process, durable ingest"]["speedup"]["median"])


def _handler(r: dict[str, Any]) -> float:
    calls = r["call_cost_us"]
    return float(calls["cortex NatsLogHandler"] / calls["stdlib FileHandler"])


AIMS: tuple[Aim, ...] = (
    Aim("gateway / limit, bare", _ratio("bare"), 0.8),
    Aim("gateway / limit, structured", _ratio("structured"), 0.8),
    Aim("gateway / limit, binary", _ratio("binary"), 0.95),
    Aim("gateway / limit, mix", _ratio("mix"), 0.85),
    Aim("durable / core ingest, mix", _durable, 0.6),
    Aim("NatsLogHandler / FileHandler, caller's cost", _handler, 1.0, at_least=False),
    Aim("RSS / wire bytes, 1,000,000 held", lambda r: float(r["memory"]["ratio_to_wire"]), 2.0, False),
)


def aims_table(runs: Sequence[dict[str, Any]]) -> str:
    """A Markdown table: a column per run, the median over runs, the aim and whether it is met."""
    if not runs:
        raise ValueError("no bench results given")
    head = " | ".join(f"run {i + 1}" for i in range(len(runs)))
    lines = [f"| row | {head} | median | aim |", "|---|" + "---|" * (len(runs) + 2)]
    for aim in AIMS:
        values = [aim.read(run) for run in runs]
        median = statistics.median(values)
        cells = " | ".join(f"{v:{aim.fmt}}" for v in values)
        verdict = "met" if aim.met(median) else "missed"
        sign = ">=" if aim.at_least else "<="
        lines.append(f"| {aim.name} | {cells} | **{median:{aim.fmt}}** | {sign} {aim.bound:g}, {verdict} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table for the results files named in ``argv``; 2 with a message when one is unusable."""
    paths = list(sys.argv[1:] if argv is None else argv)
    try:
        runs = [json.loads(Path(p).read_text()) for p in paths]
        print(aims_table(runs))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"bench runs: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
