"""``log-gateway bench --query`` runs on a tiny archive: both engines find the same entries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LOG_GATEWAY = str(Path(sys.executable).parent / "log-gateway")


def test_query_bench_runs_on_a_tiny_archive(tmp_path: Path) -> None:
    done = subprocess.run(
        [LOG_GATEWAY, "bench", "--query", "--entries", "3000", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "query-results.json").read_text())
    ours, duckdb = results["ours"], results["duckdb"]
    assert ours["matched"] == duckdb["matched"] > 0
    assert ours["scanned"] == 3000
    assert ours["first_page_entries"] == duckdb["first_page_entries"] == min(100, ours["matched"])
    assert results["scan_ratio"] > 0
    assert "DuckDB read_json" in (tmp_path / "query-results.md").read_text()
    assert not list(tmp_path.glob("query-archive-*"))  # the archive it wrote is gone
