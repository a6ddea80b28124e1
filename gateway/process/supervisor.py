"""``log-gateway run --workers N``: N gateway processes in one queue group, under one supervisor.

:func:`supervise` starts each worker as ``python -m gateway.process.cli`` with
the supervisor's own arguments plus what must differ per worker (gateway id,
HTTP port, spool directory), forwards SIGTERM/SIGINT to them and returns the
worst exit status. A worker calls :func:`die_with_supervisor` first, so it is
terminated when the supervisor dies and none outlives it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Workers", "die_with_supervisor", "supervise"]

_SUPERVISOR = "LOG_GATEWAY_SUPERVISOR_PID"  # set for workers, not a setting
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class Workers:
    """The worker processes to run.

    Attributes:
        count: how many.
        argv: the supervisor's own arguments (``run ...``); each worker gets them too.
        servers: the NATS URLs, handed over in the environment (they may hold credentials).
        gateway_id: the supervisor's ``--gateway-id``, if given; worker ``i`` gets ``<id>-w<i>``.
        http_port: the supervisor's ``--http-port``; worker ``i`` gets ``port + i`` (0 stays 0).
        spool_dir: the supervisor's ``--spool-dir``; worker ``i`` gets ``<dir>/w<i>``.
    """

    count: int
    argv: tuple[str, ...]
    servers: tuple[str, ...]
    gateway_id: str | None = None
    http_port: int | None = None
    spool_dir: Path | None = None

    def worker_argv(self, index: int) -> list[str]:
        """The arguments of worker ``index``: later flags win over the supervisor's."""
        argv = [*self.argv, "--workers", "1"]
        if self.gateway_id:
            argv += ["--gateway-id", f"{self.gateway_id}-w{index}"]
        if self.http_port:  # (0 stays 0: each picks a free port)
            argv += ["--http-port", str(self.http_port + index)]
        if self.spool_dir is not None:  # a spool belongs to one process: one directory each
            argv += ["--spool-dir", str(self.spool_dir / f"w{index}")]
        return argv


def supervise(workers: Workers) -> int:
    """Run the workers until they exit, forwarding SIGTERM/SIGINT; the highest exit status."""
    # The URL may hold credentials: hand it over in the environment, not on a command line.
    env = os.environ | {"LOG_GATEWAY_NATS_URL": ",".join(workers.servers), _SUPERVISOR: str(os.getpid())}
    children = [
        subprocess.Popen([sys.executable, "-m", "gateway.process.cli", *workers.worker_argv(index)], env=env)  # noqa: S603
        for index in range(workers.count)
    ]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # (SIGHUP: each worker reloads)
        signal.signal(signum, forward)
    return max(child.wait() for child in children)


def die_with_supervisor() -> None:
    """In a worker: take SIGTERM when the supervisor dies (Linux), so no worker outlives it.

    Does nothing in a process that no supervisor started.
    """
    parent = os.environ.get(_SUPERVISOR)
    if parent is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)
