"""The median over full bench runs that the aims of issue 17 are judged on."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.bench.runs import AIMS, aims_table, main

__all__: list[str] = []

RECORDED = json.loads((Path(__file__).parent.parent / "docs" / "bench-results.json").read_text())


def _run(bare: float, handler_us: float) -> dict[str, Any]:
    run: dict[str, Any] = copy.deepcopy(RECORDED)
    run["throughput"]["bare"]["ratio_gateway_to_limit"]["median"] = bare
    run["call_cost_us"]["stdlib FileHandler"] = 40.0
    run["call_cost_us"]["cortex NatsLogHandler"] = handler_us
    return run


def _row(table: str, name: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_each_row_is_the_median_of_the_runs_against_its_aim() -> None:
    table = aims_table([_run(0.79, 42.0), _run(0.85, 38.0), _run(0.81, 44.0)])
    assert _row(table, "gateway / limit, bare") == [
        "gateway / limit, bare",
        "0.790",
        "0.850",
        "0.810",
        "**0.810**",
        ">= 0.8, met",
    ]
    handler = _row(table, "NatsLogHandler / FileHandler, caller's cost")
    assert handler[1:] == ["1.050", "0.950", "1.100", "**1.050**", "<= 1, missed"]
    assert len(table.splitlines()) == 2 + len(AIMS)


def test_a_missing_row_or_no_run_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = copy.deepcopy(RECORDED)
    del broken["variants"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(broken))
    assert main([str(path)]) == 2
    assert "KeyError" in capsys.readouterr().err
    assert main([]) == 2
    assert "no bench results given" in capsys.readouterr().err
