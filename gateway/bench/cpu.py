"""CPU time of processes, read from ``/proc`` (Linux).

Throughput on a shared 2-core machine drifts by tens of percent between runs;
the CPU a process spent per entry drifts much less, and says where the cores
went (the gateway, nats-server, the producer). Where ``/proc`` is missing the
readings are NaN and the benchmark reports throughput alone.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["tree_cpu_s", "tree_pids"]

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _own_cpu_s(pid: int) -> float:
    """User and system CPU seconds of one process (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out.extend(int(child) for child in task.read_text().split())
        except OSError:
            continue
    return out


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(_children(current))
    return out


def tree_cpu_s(pid: int | None) -> float:
    """CPU seconds spent so far by ``pid`` and its live descendants; NaN without ``/proc``."""
    if pid is None or not Path("/proc/self/stat").exists():
        return math.nan
    return sum(_own_cpu_s(each) for each in tree_pids(pid))
